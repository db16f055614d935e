"""The shared maths of layers.py: every formula against a hand computation or
an independent reference, every backward against finite differences."""

import math

import numpy as np
import pytest

import layers
from gradcheck import assert_close, check_gradient

rng = np.random.default_rng(0)


@pytest.mark.solution('mlp')
def test_affine_forward_matches_explicit_sums():
    Input, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=(1, 2))
    # u_j = sum_i w_ij x_i + b_j, written out for every sample and output
    expected = np.array([[sum(Input[n, i] * W[i, j] for i in range(3)) + b[0, j] for j in range(2)]
                         for n in range(4)])
    assert_close(layers.affine_forward(Input, W, b), expected, "affine_forward")


@pytest.mark.solution('mlp')
@pytest.mark.parametrize("layer_class", [layers.ReLU, layers.Sigmoid, layers.Tanh])
def test_activation_backward_matches_numerical_gradient(layer_class):
    x = rng.normal(size=(5, 4))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the ReLU kink at 0
    R = rng.normal(size=(5, 4))  # loss L = sum(R * f(x)), so dL/df = R
    layer = layer_class()
    layer.forward(x)
    analytic = layer.backward(R)
    check_gradient(lambda: np.sum(R * layer_class().forward(x)), x, analytic, layer_class.__name__)


@pytest.mark.solution('mlp')
def test_activation_values():
    z = np.array([[-2.0, 0.0, 3.0]])
    assert_close(layers.ReLU().forward(z), [[0.0, 0.0, 3.0]], "ReLU")
    assert_close(layers.Sigmoid().forward(z), [[1 / (1 + math.e ** 2), 0.5, 1 / (1 + math.e ** -3)]], "Sigmoid")
    assert_close(layers.Tanh().forward(z), [[math.tanh(-2.0), 0.0, math.tanh(3.0)]], "Tanh")
    # no overflow warning for extreme inputs
    with np.errstate(over='raise', invalid='raise', divide='raise'):
        out = layers.Sigmoid().forward(np.array([[-1000.0, 1000.0]]))
    assert_close(out, [[0.0, 1.0]], "Sigmoid at +-1000", atol=1e-300)


@pytest.mark.solution('mlp')
def test_fc_layer_gradients_match_numerical_gradient():
    layer = layers.FCLayer(4, 3)
    x = rng.normal(size=(6, 4))
    R = rng.normal(size=(6, 3))

    def loss():
        return np.sum(R * layer.forward(x))

    layer.forward(x)
    grad_x = layer.backward(R)
    grad_W, grad_b = layer.grad_W.copy(), layer.grad_b.copy()
    check_gradient(loss, layer.W, grad_W, "FCLayer.grad_W")
    check_gradient(loss, layer.b, grad_b, "FCLayer.grad_b")
    check_gradient(loss, x, grad_x, "FCLayer.backward (delta of the layer below)")


@pytest.mark.solution('mlp')
def test_softmax_hand_values_and_stability():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    e = np.exp([1.0, 2.0, 3.0])
    assert_close(layers.softmax(logits), [e / e.sum(), [1 / 3] * 3], "softmax")
    # shift invariance and no overflow for logits far beyond exp's range
    huge = np.array([[1e4, 1e4 - 1.0, -1e4]])
    with np.errstate(over='raise', invalid='raise', divide='raise'):
        prob = layers.softmax(huge)
    assert_close(prob, [[1 / (1 + math.e ** -1), 1 / (1 + math.e), 0.0]], "softmax of huge logits", atol=1e-300)


@pytest.mark.solution('mlp')
def test_cross_entropy_hand_values():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    labels = np.array([2, 0])
    e = np.exp([1.0, 2.0, 3.0])
    expected = (-math.log(e[2] / e.sum()) + math.log(3)) / 2
    loss, prob = layers.softmax_cross_entropy(logits, labels)
    assert isinstance(loss, float)
    assert loss == pytest.approx(expected, rel=1e-12)
    # one-hot labels give the same loss as class ids
    loss_one_hot, _ = layers.softmax_cross_entropy(logits, np.eye(3)[labels])
    assert loss_one_hot == pytest.approx(expected, rel=1e-12)


@pytest.mark.solution('mlp')
def test_cross_entropy_is_finite_for_extreme_logits():
    logits = np.array([[1e4, -1e4], [-1e4, 1e4]])
    with np.errstate(over='raise', invalid='raise', divide='raise'):
        loss, prob = layers.softmax_cross_entropy(logits, np.array([1, 1]))
        delta = layers.softmax_cross_entropy_backward(prob, np.array([1, 1]))
    # sample 0 is wrong by a margin of 2e4, sample 1 right: mean loss 1e4
    assert loss == pytest.approx(1e4)
    assert np.all(np.isfinite(delta))


@pytest.mark.solution('mlp')
def test_cross_entropy_backward_matches_numerical_gradient():
    logits = rng.normal(size=(5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    _, prob = layers.softmax_cross_entropy(logits, labels)
    analytic = layers.softmax_cross_entropy_backward(prob, labels)
    check_gradient(lambda: layers.softmax_cross_entropy(logits, labels)[0], logits, analytic,
                   "softmax_cross_entropy_backward")


@pytest.mark.solution('mlp')
def test_accuracy_and_one_hot():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert layers.accuracy(logits, np.array([1, 0, 0, 1])) == 0.5
    assert layers.accuracy(logits, np.eye(2)[[1, 0, 1, 0]]) == 1.0
    assert_close(layers.one_hot(np.array([2, 0], dtype=np.uint8), 3), [[0, 0, 1], [1, 0, 0]], "one_hot")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        layers.one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="integer class ids"):
        layers.one_hot(np.array([0.5, 1.0]), 3)


@pytest.mark.solution('mlp')
def test_mlp_gradients_match_numerical_gradient():
    np.random.seed(1)
    model = layers.build_mlp(5, [4, 3], 3, activation=layers.Tanh)
    x = rng.normal(size=(6, 5))
    labels = np.array([0, 1, 2, 2, 1, 0])

    def loss():
        return model.forward(x, labels)[0]

    loss()
    model.gradient_computing()
    for index, layer in enumerate(model.layers):
        for name in layer.param_names:
            analytic = getattr(layer, 'grad_' + name).copy()
            check_gradient(loss, getattr(layer, name), analytic, f"layer {index} grad_{name}")


@pytest.mark.solution('mlp')
def test_parameters_follow_the_data_dtype():
    np.random.seed(0)
    model = layers.build_mlp(5, [4], 3)
    x32 = rng.normal(size=(2, 5)).astype(np.float32)
    loss, acc = model.forward(x32, np.array([0, 1]))
    model.gradient_computing()
    assert isinstance(loss, float) and isinstance(acc, float)
    for layer in layers.trainable_layers(model):
        assert layer.W.dtype == np.float32 and layer.grad_W.dtype == np.float32, type(layer)


def test_network_train_eval_switch_every_layer():
    network = layers.Network([layers.FCLayer(3, 3), layers.ReLU()])
    network.eval()
    assert [layer.training for layer in network.layers] == [False, False]
    network.train()
    assert [layer.training for layer in network.layers] == [True, True]


@pytest.mark.solution('mlp')
def test_parameters_lists_trainable_layers_only_and_explains_missing_gradients():
    model = layers.build_mlp(3, [2], 2)
    model.layers[2].trainable = False  # freeze the output layer
    with pytest.raises(RuntimeError, match="gradient_computing"):
        list(layers.parameters(model))
    model.forward(np.ones((1, 3)), np.array([1]))
    model.gradient_computing()
    assert [key for key, _, _ in layers.parameters(model)] == ['0.W', '0.b']
    model.layers[0].grad_W = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"grad_W has shape \(2, 3\) but W has shape \(3, 2\)"):
        list(layers.parameters(model))


def test_fc_layer_explains_a_wrong_input_width():
    with pytest.raises(ValueError, match=r"FCLayer expects Input of shape \(batch_size, 3\), got \(2, 4\)"):
        layers.FCLayer(3, 2).forward(np.ones((2, 4)))


@pytest.mark.solution('mlp')
def test_first_layer_of_an_mlp_skips_the_input_delta():
    model = layers.build_mlp(4, [3], 2)
    assert [getattr(layer, 'input_grad', None) for layer in model.layers] == [False, None, True]
    model.forward(np.ones((2, 4)), np.array([0, 1]))
    model.gradient_computing()  # still sets the first layer's gradients
    assert model.layers[0].grad_W.shape == (4, 3)
    assert model.network.backward(np.ones((2, 2))) is None
