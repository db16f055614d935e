"""layers.py: every formula against a hand computation or an independent
reference, every backward against finite differences in float64, and the
course's layer API (FCLayer, ReLULayer, SigmoidLayer, TanhLayer, Network)."""

import math

import numpy as np
import pytest

import layers
from testkit.gradients import assert_close, check_gradient, no_float_errors
from loss import EuclideanLossLayer, SoftmaxCrossEntropyLossLayer
from optimizer import trainable_layers

rng = np.random.default_rng(0)


# ----- the maths of the fully connected layer -----

@pytest.mark.solution('mlp')
def test_affine_forward_matches_explicit_sums():
    Input, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=(1, 2))
    # u_j = sum_i w_ij x_i + b_j, written out for every sample and output
    expected = np.array([[sum(Input[n, i] * W[i, j] for i in range(3)) + b[0, j] for j in range(2)]
                         for n in range(4)])
    assert_close(layers.affine_forward(Input, W, b), expected, "affine_forward")


@pytest.mark.solution('mlp')
def test_fc_layer_gradients_match_numerical_gradient():
    layer = layers.FCLayer(4, 3)
    x = rng.normal(size=(6, 4))
    R = rng.normal(size=(6, 3))  # loss L = sum(R * u), so dL/du = R

    def loss():
        return np.sum(R * layer.forward(x))

    layer.forward(x)
    grad_x = layer.backward(R)
    grad_W, grad_b = layer.grad_W.copy(), layer.grad_b.copy()
    check_gradient(loss, layer.W, grad_W, "FCLayer.grad_W")
    check_gradient(loss, layer.b, grad_b, "FCLayer.grad_b")
    check_gradient(loss, x, grad_x, "FCLayer.backward (delta of the layer below)")


# ----- activations -----

@pytest.mark.parametrize("layer_class", [
    pytest.param(layers.ReLULayer, marks=pytest.mark.solution('mlp')),
    pytest.param(layers.SigmoidLayer, marks=pytest.mark.solution('mlp')),
    layers.TanhLayer])   # given in the handout, as a worked example
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
    assert_close(layers.ReLULayer().forward(z), [[0.0, 0.0, 3.0]], "ReLULayer")
    assert_close(layers.SigmoidLayer().forward(z), [[1 / (1 + math.e ** 2), 0.5, 1 / (1 + math.e ** -3)]],
                 "SigmoidLayer")
    assert_close(layers.TanhLayer().forward(z), [[math.tanh(-2.0), 0.0, math.tanh(3.0)]], "TanhLayer")


@pytest.mark.solution('mlp')
def test_sigmoid_does_not_overflow_for_extreme_inputs():
    with no_float_errors("SigmoidLayer.forward at z = -1000",
                         "1 / (1 + np.exp(-z)) computes exp(1000), which overflows to inf (the result is "
                         "still right, but NumPy warns and a float32 network overflows already at z = -89). "
                         "Write it without a large positive exponent, e.g. 0.5 * (1 + np.tanh(0.5 * z))."):
        out = layers.SigmoidLayer().forward(np.array([[-1000.0, 1000.0]]))
    assert_close(out, [[0.0, 1.0]], "SigmoidLayer at +-1000", atol=1e-300)


def test_activations_have_no_parameters():
    for layer in (layers.ReLULayer(), layers.SigmoidLayer(), layers.TanhLayer()):
        assert layer.trainable is False and layer.param_names == ()


# ----- the course's FCLayer constructor and initialisations -----

def test_fc_layer_course_api_and_init_scale():
    np.random.seed(0)
    relu = layers.FCLayer(784, 256)                       # actFunction='relu' by default
    sigmoid = layers.FCLayer(784, 256, 'sigmoid')         # the course passes it positionally
    raw = math.sqrt(2 / (784 + 256))
    assert np.std(relu.W) == pytest.approx(raw * math.sqrt(2), rel=0.02)
    assert np.std(sigmoid.W) == pytest.approx(raw, rel=0.02)
    # the homework's own rule draws the biases from the same Gaussian
    assert relu.b.shape == (1, 256) and np.std(relu.b) > 0
    assert relu.trainable is True and layers.FCLayer(3, 2, 'relu', False).trainable is False


@pytest.mark.parametrize('init, expected_std', [
    ('gaussian', 0.01),
    ('xavier', 1 / math.sqrt(400)),
    ('msra', math.sqrt(2 / 400)),   # He et al.; the notes print 2/sqrt(n_in), a typo
])
def test_initialisations_by_name(init, expected_std):
    np.random.seed(1)
    layer = layers.FCLayer(400, 300, init=init)
    assert np.std(layer.W) == pytest.approx(expected_std, rel=0.02)
    assert abs(np.mean(layer.W)) < expected_std / 20
    assert np.array_equal(layer.b, np.zeros((1, 300))), "biases start at zero except in the course's rule"
    np.random.seed(1)
    assert np.array_equal(layers.FCLayer(400, 300, init=init).W, layer.W), "np.random.seed reproduces it"


def test_gaussian_init_takes_a_std():
    np.random.seed(2)
    assert np.std(layers.FCLayer(300, 300, init='gaussian', std=0.1).W) == pytest.approx(0.1, rel=0.02)


def test_conv_style_fans_count_the_kernel():
    # a 3x3 convolution from 8 to 16 channels: fan_in = 8*3*3 = 72
    assert layers.init_std('msra', 8 * 3 * 3, 16 * 3 * 3) == pytest.approx(math.sqrt(2 / 72))


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(actFunction='softmax'), ValueError, "actFunction must be one of 'relu', 'sigmoid', 'tanh'"),
    (dict(init='he'), ValueError, "unknown init 'he'; choose one of course, gaussian, xavier, msra"),
    (dict(init='xavier', std=0.1), ValueError, "only applies to init='gaussian'"),
    (dict(trainable='relu'), TypeError, "trainable must be True or False, got 'relu'"),
])
def test_fc_layer_explains_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        layers.FCLayer(3, 2, **kwargs)


def test_fc_layer_explains_a_wrong_input_width():
    with pytest.raises(ValueError, match=r"FCLayer expects Input of shape \(batch_size, 3\), got \(2, 4\)"):
        layers.FCLayer(3, 2).forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match="Flatten the images first"):
        layers.FCLayer(4, 2).forward(np.ones((2, 2, 2)))


# ----- Network -----

def course_network(activation=layers.TanhLayer, sizes=(5, 4, 3, 3)):
    """FC -> act -> FC -> act -> FC: a three-layer network, built the course's way."""
    network = layers.Network()
    for index, (d, m) in enumerate(zip(sizes[:-1], sizes[1:])):
        network.add(layers.FCLayer(d, m))
        if index < len(sizes) - 2:
            network.add(activation())
    return network


@pytest.mark.solution('mlp')
def test_network_course_api():
    network = layers.Network()
    assert network.layerList == [] and network.numLayer == 0
    fc, relu = layers.FCLayer(3, 2), layers.ReLULayer()
    assert network.add(fc) is network
    network.add(relu)
    assert network.layerList == [fc, relu] and network.numLayer == 2
    out = network.forward(np.array([[1.0, -2.0, 0.5]]))
    assert_close(out, np.maximum(0, np.array([[1.0, -2.0, 0.5]]) @ fc.W + fc.b), "Network.forward")


@pytest.mark.solution('mlp')
def test_network_summary_lists_layers_shapes_and_parameter_count():
    np.random.seed(0)
    network = course_network(layers.ReLULayer, (784, 128, 64, 10))
    text = repr(network)
    assert "Network with 5 layers and 109,386 trainable parameters" in text  # 784*128+128 + 128*64+64 + 64*10+10
    assert "run a batch through to see" in text
    network.forward(np.zeros((7, 784)))
    text = repr(network)
    assert "(N, 128)" in text and "(N, 10)" in text and "100,480 params" in text
    network.layerList[0].trainable = False
    assert "(frozen)" in repr(network) and "8,906 trainable parameters" in repr(network)


@pytest.mark.solution('mlp')
@pytest.mark.parametrize('criterion_class', [SoftmaxCrossEntropyLossLayer, EuclideanLossLayer])
@pytest.mark.parametrize('activation', [layers.TanhLayer, layers.SigmoidLayer, layers.ReLULayer])
def test_three_layer_network_gradients_match_numerical_gradient(activation, criterion_class):
    np.random.seed(1)
    network = course_network(activation)
    criterion = criterion_class()
    x = rng.normal(size=(6, 5))
    labels = np.array([0, 1, 2, 2, 1, 0])

    def loss():
        return criterion.forward(network.forward(x), labels)

    loss()
    grad_x = network.backward(criterion.backward())
    for index, layer in enumerate(network.layerList):
        for name in layer.param_names:
            analytic = getattr(layer, 'grad_' + name).copy()
            check_gradient(loss, getattr(layer, name), analytic, f"layer {index} grad_{name}",
                           rtol=1e-6, atol=1e-9)
    check_gradient(loss, x, grad_x, "Network.backward (delta of the input)", rtol=1e-6, atol=1e-9)


def test_network_train_eval_switch_every_layer():
    network = layers.Network([layers.FCLayer(3, 3), layers.ReLULayer()])
    network.eval()
    assert [layer.training for layer in network.layerList] == [False, False]
    network.train()
    assert [layer.training for layer in network.layerList] == [True, True]


@pytest.mark.solution('mlp')
def test_first_layer_of_an_mlp_skips_the_input_delta():
    network = layers.build_mlp(4, [3], 2)
    assert [getattr(layer, 'input_grad', None) for layer in network.layerList] == [False, None, True]
    network.forward(np.ones((2, 4)))
    assert network.backward(np.ones((2, 2))) is None
    assert network.layerList[0].grad_W.shape == (4, 3)  # its own gradients are still set


def test_a_layer_without_input_delta_is_refused_anywhere_but_first():
    network = layers.Network().add(layers.FCLayer(4, 3))
    with pytest.raises(ValueError, match="only the first layer of a network may use"):
        network.add(layers.FCLayer(3, 2, input_grad=False))


def test_build_mlp_explains_an_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'elu'; choose one of relu, sigmoid, tanh"):
        layers.build_mlp(4, [3], 2, activation='elu')


@pytest.mark.solution('mlp')
def test_parameters_follow_the_data_dtype():
    np.random.seed(0)
    model = layers.Classifier(layers.build_mlp(5, [4], 3), SoftmaxCrossEntropyLossLayer())
    x32 = rng.normal(size=(2, 5)).astype(np.float32)
    loss, acc = model.forward(x32, np.array([0, 1]))
    model.gradient_computing()
    assert isinstance(loss, float) and isinstance(acc, float)
    for index, layer in enumerate(trainable_layers(model)):
        for name in ('W', 'grad_W', 'b', 'grad_b'):
            dtype = getattr(layer, name).dtype
            assert dtype == np.float32, (
                f"layer {index}: {name} is {dtype} for float32 data: something upcasts to float64 (for "
                f"example one_hot(labels, C) is float64 unless given dtype=logits.dtype). Training is then "
                f"about twice as slow, but not wrong (0 points).")
