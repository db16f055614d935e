"""Dropout and the normalisation layers (notes §4.2.3, §4.3): their statistics,
running averages, modes, dtypes, and every backward against central
differences in float64, for (N, D) and (N, C, H, W) inputs."""

import numpy as np
import pytest

from testkit.gradients import assert_close, check_gradient
from layers import (BatchNormLayer, DropoutLayer, GroupNormLayer, InstanceNormLayer, LayerNormLayer,
                    param_names_of)

SHAPES = [(6, 5), (4, 3, 3, 2)]          # (N, D) and (N, C, H, W)


def _feature_axes(shape):
    return (0,) if len(shape) == 2 else (0, 2, 3)


def _randomise_affine(layer, rng):
    layer.gamma = rng.normal(1.0, 0.3, layer.gamma.shape)
    layer.beta = rng.normal(0.0, 0.3, layer.beta.shape)


def _check_layer_gradients(layer, x, rng):
    """Input, gamma and beta gradients of E = sum(out * R) against central differences."""
    R = rng.normal(size=x.shape)

    def loss():
        return float(np.sum(layer.forward(x) * R))

    layer.forward(x)
    grad_x = layer.backward(R)
    grad_gamma, grad_beta = layer.grad_gamma.copy(), layer.grad_beta.copy()
    name = type(layer).__name__
    check_gradient(loss, x, grad_x, f"{name} dE/dInput {x.shape}", rtol=1e-5)
    check_gradient(loss, layer.gamma, grad_gamma, f"{name} grad_gamma {x.shape}", rtol=1e-5)
    check_gradient(loss, layer.beta, grad_beta, f"{name} grad_beta {x.shape}", rtol=1e-5)


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------

def test_dropout_drops_with_probability_p_and_scales_the_survivors():
    layer = DropoutLayer(p=0.3, seed=0)
    x = np.ones((400, 500), dtype=np.float32)
    out = layer.forward(x)
    dropped = np.mean(out == 0)
    # 200000 Bernoulli(0.3) draws: standard error 0.001
    assert abs(dropped - 0.3) < 0.005, f"dropped fraction {dropped:.4f}, expected 0.3"
    assert_close(out[out != 0], np.full(np.count_nonzero(out), 1 / 0.7), "kept units scaled by 1/(1-p)",
                 rtol=1e-6)
    assert out.dtype == np.float32
    assert abs(out.mean() - 1) < 0.01, "inverted dropout keeps the mean"


def test_dropout_backward_uses_the_forward_mask():
    rng = np.random.default_rng(1)
    layer = DropoutLayer(p=0.5, seed=3)
    x = rng.normal(size=(8, 3, 4, 4))
    out = layer.forward(x)
    delta = rng.normal(size=x.shape)
    grad = layer.backward(delta)
    kept = out != 0
    assert_close(grad[kept], delta[kept] * 2.0, "gradient of kept units", rtol=1e-12)
    assert np.all(grad[~kept] == 0), "dropped units pass no gradient"
    # and it is the exact derivative of the (fixed-mask) forward map
    mask = layer.mask.copy()
    check_gradient(lambda: float(np.sum(x * mask * delta)), x, grad, "dropout dE/dInput")


def test_dropout_is_the_identity_at_evaluation_and_reproducible():
    x = np.random.default_rng(2).normal(size=(10, 7))
    layer = DropoutLayer(p=0.5, seed=5)
    layer.training = False
    assert layer.forward(x) is x and layer.backward(x) is x
    a = DropoutLayer(p=0.5, seed=5).forward(x)
    b = DropoutLayer(p=0.5, seed=5).forward(x)
    c = DropoutLayer(p=0.5, seed=6).forward(x)
    assert np.array_equal(a, b), "the same seed must give the same mask"
    assert not np.array_equal(a, c)


@pytest.mark.parametrize('p', [-0.1, 1.0, 1.5, '0.5'])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match='probability of dropping'):
        DropoutLayer(p=p)


# ---------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('shape', SHAPES)
def test_batchnorm_training_output_has_the_batch_statistics_of_beta_and_gamma(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=shape)
    layer = BatchNormLayer(shape[1], eps=0.0)
    _randomise_affine(layer, rng)
    out = layer.forward(x)
    axes = _feature_axes(shape)
    assert_close(out.mean(axis=axes), layer.beta, "per-feature mean = beta", atol=1e-12)
    assert_close(out.std(axis=axes), np.abs(layer.gamma), "per-feature std = |gamma|", rtol=1e-10)


@pytest.mark.parametrize('shape', SHAPES)
def test_batchnorm_running_statistics_and_evaluation_by_hand(shape):
    rng = np.random.default_rng(1)
    layer = BatchNormLayer(shape[1], eps=1e-5, momentum=0.1)
    _randomise_affine(layer, rng)
    axes = _feature_axes(shape)
    m = int(np.prod([shape[a] for a in axes]))
    running_mean, running_var = np.zeros(shape[1]), np.ones(shape[1])
    for _ in range(3):
        x = rng.normal(1.0, 2.0, size=shape)
        layer.forward(x)
        running_mean = 0.9 * running_mean + 0.1 * x.mean(axis=axes)
        running_var = 0.9 * running_var + 0.1 * x.var(axis=axes) * m / (m - 1)
    assert_close(layer.running_mean, running_mean, "running_mean after 3 batches", rtol=1e-12)
    assert_close(layer.running_var, running_var, "running_var after 3 batches", rtol=1e-12)

    layer.training = False
    x = rng.normal(size=shape)
    before = layer.running_mean.copy()
    shape_c = (1, -1) + (1,) * (len(shape) - 2)
    expected = (layer.gamma.reshape(shape_c) * (x - running_mean.reshape(shape_c))
                / np.sqrt(running_var.reshape(shape_c) + 1e-5) + layer.beta.reshape(shape_c))
    assert_close(layer.forward(x), expected, "evaluation uses the running statistics", rtol=1e-10)
    assert np.array_equal(layer.running_mean, before), "evaluation must not update the running statistics"
    # evaluation output of one sample does not depend on the rest of the batch
    assert_close(layer.forward(x[:1]), expected[:1], "evaluation of a single sample", rtol=1e-10)


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('training', [True, False])
def test_batchnorm_backward_matches_finite_differences(shape, training):
    rng = np.random.default_rng(2)
    layer = BatchNormLayer(shape[1], momentum=0.0)    # momentum 0: forward calls leave the state alone
    layer.running_mean = rng.normal(size=shape[1])
    layer.running_var = rng.uniform(0.5, 2, size=shape[1])
    _randomise_affine(layer, rng)
    layer.training = training
    _check_layer_gradients(layer, rng.normal(size=shape), rng)


def test_batchnorm_parameters_and_state_follow_the_data_dtype():
    layer = BatchNormLayer(4)
    out = layer.forward(np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32))
    assert out.dtype == np.float32
    for name in ('gamma', 'beta', 'running_mean', 'running_var'):
        assert getattr(layer, name).dtype == np.float32, name
    assert param_names_of(layer) == ('gamma', 'beta'), "running statistics are state, not parameters"
    assert layer.weight_names == (), "gamma and beta are never weight-decayed"


def test_batchnorm_explains_a_wrong_shape():
    with pytest.raises(ValueError, match=r'BatchNormLayer\(4\) expects Input of shape \(N, 4\)'):
        BatchNormLayer(4).forward(np.zeros((2, 3)))


# ---------------------------------------------------------------------------
# Layer, group and instance normalisation
# ---------------------------------------------------------------------------

def _reference_group_norm(x, num_groups, gamma, beta, eps):
    """Straightforward per-sample, per-group normalisation, written independently."""
    N, C = x.shape[:2]
    out = np.empty_like(x)
    size = C // num_groups
    for n in range(N):
        for g in range(num_groups):
            block = x[n, g * size:(g + 1) * size]
            out[n, g * size:(g + 1) * size] = (block - block.mean()) / np.sqrt(block.var() + eps)
    shape_c = (1, -1) + (1,) * (x.ndim - 2)
    return out * gamma.reshape(shape_c) + beta.reshape(shape_c)


@pytest.mark.parametrize('make, groups', [
    (lambda C: LayerNormLayer(C), lambda C: 1),
    (lambda C: GroupNormLayer(2, C), lambda C: 2),
    (lambda C: InstanceNormLayer(C), lambda C: C),
])
@pytest.mark.parametrize('shape', [(5, 6), (3, 4, 3, 2)])
def test_group_layer_instance_norm_statistics_and_backward(make, groups, shape):
    rng = np.random.default_rng(3)
    C = shape[1]
    if len(shape) == 2 and groups(C) == C:
        pytest.skip("instance norm of a single position is 0 everywhere")
    layer = make(C)
    _randomise_affine(layer, rng)
    x = rng.normal(2.0, 3.0, size=shape)
    expected = _reference_group_norm(x, groups(C), layer.gamma, layer.beta, layer.eps)
    assert_close(layer.forward(x), expected, f"{layer!r} output", rtol=1e-10)
    layer.training = False
    assert_close(layer.forward(x), expected, f"{layer!r} is the same at evaluation", rtol=1e-10)
    _check_layer_gradients(layer, x, rng)
    assert layer.weight_names == () and param_names_of(layer) == ('gamma', 'beta')


def test_group_norm_rejects_groups_that_do_not_divide_the_channels():
    with pytest.raises(ValueError, match='must divide'):
        GroupNormLayer(3, 4)


@pytest.mark.parametrize('normalization, dropout, expected', [
    ('none', 0.0, ['FCLayer', 'ReLULayer', 'FCLayer', 'ReLULayer', 'FCLayer']),
    ('batch', 0.5, ['FCLayer', 'BatchNormLayer', 'ReLULayer', 'DropoutLayer',
                    'FCLayer', 'BatchNormLayer', 'ReLULayer', 'DropoutLayer', 'FCLayer']),
    ('layer', 0.0, ['FCLayer', 'LayerNormLayer', 'ReLULayer', 'FCLayer', 'LayerNormLayer', 'ReLULayer',
                    'FCLayer']),
])
def test_add_regularisation_places_normalisation_before_and_dropout_after_each_activation(
        normalization, dropout, expected):
    from layers import add_regularisation, build_mlp
    network = add_regularisation(build_mlp(6, [5, 4], 3), dropout, normalization, seed=0)
    assert [type(layer).__name__ for layer in network.layerList] == expected
    norms = [layer for layer in network.layerList if hasattr(layer, 'gamma')]
    assert [layer.num_features for layer in norms] == ([5, 4] if norms else [])
    with pytest.raises(ValueError, match='choose one of none, batch, layer'):
        add_regularisation(build_mlp(6, [5], 3), 0.0, 'group')
