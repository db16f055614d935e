"""Convolution, pooling and reshape (im2col.py and the layers at the end of
layers.py): the vectorised forms against the loop reference, every backward
against finite differences in float64, shapes, layouts, dtypes and errors."""

import numpy as np
import pytest

import im2col
import layers
from loss import SoftmaxCrossEntropyLossLayer
from testkit.gradients import assert_close, check_gradient

rng = np.random.default_rng(0)

# (N, C, H, W, F, k, pad): shapes, pads, kernel sizes and channel counts,
# including non-square images, pad 0, a 1x1 kernel and a kernel as wide as the image.
CONV_CASES = [
    (2, 1, 5, 5, 3, 3, 1),
    (3, 2, 6, 7, 4, 3, 0),
    (2, 3, 7, 5, 2, 5, 2),
    (1, 2, 4, 4, 3, 1, 0),
    (2, 4, 5, 6, 3, 2, 1),
    (1, 1, 3, 3, 2, 3, 0),
]
# (N, C, H, W, k, pad); odd sizes leave a cropped edge, pads must stay < k.
POOL_CASES = [
    (2, 3, 4, 4, 2, 0),
    (2, 2, 5, 7, 2, 0),
    (1, 3, 6, 6, 3, 0),
    (2, 2, 5, 5, 2, 1),
    (1, 2, 7, 8, 3, 2),
    (2, 1, 4, 4, 1, 0),
]


def channel_major(x):
    """The same values laid out in memory as (C, N, H, W), as the layers' outputs are."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


# ---------------------------------------------------------------------------
# Vectorised against the loop reference
# ---------------------------------------------------------------------------

@pytest.mark.solution('cnn')
@pytest.mark.parametrize("layout", ['plain', 'channel_major'])
@pytest.mark.parametrize("N, C, H, W, F, k, pad", CONV_CASES)
def test_conv_matches_loop_reference(N, C, H, W, F, k, pad, layout):
    x = rng.normal(size=(N, C, H, W))
    if layout == 'channel_major':
        x = channel_major(x)
    weights, bias = rng.normal(size=(F, C, k, k)), rng.normal(size=F)
    out, cols = im2col.conv_forward(x, weights, bias, pad)
    expected = im2col.conv_forward_loops(x, weights, bias, pad)
    assert out.shape == (N, F, H + 2 * pad - k + 1, W + 2 * pad - k + 1)
    assert_close(out, expected, "conv_forward", rtol=1e-10, atol=1e-12)

    delta = rng.normal(size=out.shape)
    dx, dW, db = im2col.conv_backward(delta, cols, x.shape, weights, pad)
    ref_dx, ref_dW, ref_db = im2col.conv_backward_loops(x, weights, pad, delta)
    assert_close(dx, ref_dx, "conv_backward dx", rtol=1e-10, atol=1e-12)
    assert_close(dW, ref_dW, "conv_backward dW", rtol=1e-10, atol=1e-12)
    assert_close(db, ref_db, "conv_backward db", rtol=1e-10, atol=1e-12)


def test_conv_loop_reference_against_hand_computation():
    # One 3x3 image, one 2x2 filter, pad 0: four windows summed by hand.
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    weights = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    out = im2col.conv_forward_loops(x, weights, np.array([0.5]), pad=0)
    # window (0,0) = [[0,1],[3,4]]: 0 + 2 + 9 + 16 = 27, plus the bias
    assert_close(out, [[[[27.5, 37.5], [57.5, 67.5]]]], "conv by hand")
    # pad 1 on a 1x1 image of value 2 with a 3x3 filter of ones: each output sees the 2 once
    out = im2col.conv_forward_loops(np.full((1, 1, 1, 1), 2.0), np.ones((1, 1, 3, 3)), np.zeros(1), pad=1)
    assert_close(out, [[[[2.0]]]], "padded conv by hand")


def test_pool_loop_reference_against_hand_computation():
    x = np.array([[[[1.0, 5.0, 2.0, 0.0],
                    [3.0, 4.0, 8.0, 1.0],
                    [0.0, 0.0, 1.0, 1.0],
                    [0.0, 2.0, 1.0, 1.0]]]])
    assert_close(im2col.pool_forward_loops(x, 2, 0, 'max'), [[[[5.0, 8.0], [2.0, 1.0]]]], "max by hand")
    assert_close(im2col.pool_forward_loops(x, 2, 0, 'avg'), [[[[3.25, 2.75], [0.5, 1.0]]]], "avg by hand")
    # the max window's delta goes to its largest pixel (the first one on a tie)
    dx = im2col.pool_backward_loops(x, 2, 0, 'max', np.ones((1, 1, 2, 2)))
    assert_close(dx[0, 0], [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0, 1, 0, 0]], "max delta by hand")


@pytest.mark.solution('cnn')
@pytest.mark.parametrize("layout", ['plain', 'channel_major'])
@pytest.mark.parametrize("mode", ['max', 'avg'])
@pytest.mark.parametrize("N, C, H, W, k, pad", POOL_CASES)
def test_pool_matches_loop_reference(N, C, H, W, k, pad, mode, layout):
    x = rng.normal(size=(N, C, H, W))
    if layout == 'channel_major':
        x = channel_major(x)
    if mode == 'max':
        out, x_pad = im2col.max_pool_forward(x, k, pad)
    else:
        out = im2col.avg_pool_forward(x, k, pad)
    assert out.shape == (N, C, (H + 2 * pad) // k, (W + 2 * pad) // k)
    assert_close(out, im2col.pool_forward_loops(x, k, pad, mode), f"{mode}_pool_forward", rtol=1e-12)

    delta = rng.normal(size=out.shape)
    if mode == 'max':
        dx = im2col.max_pool_backward(delta, out, x_pad, k, pad)
    else:
        dx = im2col.avg_pool_backward(delta, x.shape, k, pad)
    assert_close(dx, im2col.pool_backward_loops(x, k, pad, mode, delta), f"{mode}_pool_backward",
                 rtol=1e-12)


@pytest.mark.solution('cnn')
def test_max_pool_tie_sends_delta_to_first_maximum_only():
    # After a ReLU many windows are all zeros: exactly one pixel per window may
    # receive the delta, or the gradient would be counted several times.
    x = np.maximum(rng.normal(size=(3, 2, 6, 6)), 0)
    x[:, :, :2, :2] = 0.0
    x[0, 0, 2:4, 2:4] = 1.5
    out, x_pad = im2col.max_pool_forward(x, 2, 0)
    delta = rng.normal(size=out.shape)
    dx = im2col.max_pool_backward(delta, out, x_pad, 2, 0)
    assert_close(dx, im2col.pool_backward_loops(x, 2, 0, 'max', delta), "max_pool_backward with ties")
    receivers = (dx != 0).reshape(3, 2, 3, 2, 3, 2).sum(axis=(3, 5))
    assert receivers.max() == 1


# ---------------------------------------------------------------------------
# Gradients against finite differences (float64)
# ---------------------------------------------------------------------------

def upstream_delta(out):
    """A loss L = sum(R * out) with a fixed random R, so dL/dout = R."""
    R = np.random.default_rng(1).normal(size=out.shape)
    return R


@pytest.mark.solution('cnn')
@pytest.mark.parametrize("C, F, k, pad", [(1, 2, 3, 1), (2, 3, 3, 0), (3, 2, 2, 1)])
def test_conv_layer_gradients_match_numerical_gradient(C, F, k, pad):
    np.random.seed(C * 100 + F * 10 + k)  # the initial W
    layer = layers.ConvLayer(C, F, k, pad)
    layer.b = rng.normal(size=F)
    x = rng.normal(size=(2, C, 5, 4))
    R = upstream_delta(layer.forward(x))

    def loss():
        return np.sum(R * layer.forward(x))

    layer.forward(x)
    dx = layer.backward(R)
    grad_W, grad_b = layer.grad_W.copy(), layer.grad_b.copy()
    # The loss is linear in each of x, W and b, so central differences have no
    # truncation error and a step of 1e-4 keeps the rounding error small.
    check_gradient(loss, x, dx, "ConvLayer delta for the layer below", rtol=1e-6, h=1e-4)
    check_gradient(loss, layer.W, grad_W, "ConvLayer.grad_W", rtol=1e-6, h=1e-4)
    check_gradient(loss, layer.b, grad_b, "ConvLayer.grad_b", rtol=1e-6, h=1e-4)


@pytest.mark.solution('cnn')
@pytest.mark.parametrize("layer", [layers.MaxPoolingLayer(2), layers.MaxPoolingLayer(3, 1),
                                   layers.AvgPoolingLayer(2), layers.AvgPoolingLayer(3, 2)],
                         ids=lambda layer: f"{type(layer).__name__}({layer.kernel_size}, {layer.pad})")
def test_pooling_layer_gradients_match_numerical_gradient(layer):
    x = rng.normal(size=(2, 3, 7, 6))  # distinct values: no ties, the max is differentiable
    R = upstream_delta(layer.forward(x))

    def loss():
        return np.sum(R * layer.forward(x))

    layer.forward(x)
    check_gradient(loss, x, layer.backward(R), type(layer).__name__, rtol=1e-6)


def test_reshape_layer_gradient_and_partial_batches():
    layer = layers.ReshapeLayer((2, 3, 3), (18,))
    for batch in (5, 3, 1):  # the full batch, a smaller last batch, a single image
        x = rng.normal(size=(batch, 2, 3, 3))
        out = layer.forward(x)
        assert out.shape == (batch, 18)
        assert_close(out, x.reshape(batch, 18), "ReshapeLayer forward")
        R = rng.normal(size=out.shape)
        dx = layer.backward(R)
        check_gradient(lambda: np.sum(R * layer.forward(x)), x, dx, "ReshapeLayer")
    # The course's form names the batch size first; other batch sizes still work.
    course = layers.ReshapeLayer((100, 16, 7, 7), (100, 784))
    for batch in (100, 37):
        x = rng.normal(size=(batch, 16, 7, 7))
        assert course.forward(x).shape == (batch, 784)
        assert course.backward(np.ones((batch, 784))).shape == (batch, 16, 7, 7)


@pytest.mark.solution('cnn', 'mlp')
def test_small_cnn_gradients_match_numerical_gradient():
    # conv -> ReLU -> max-pool -> conv -> ReLU -> avg-pool -> reshape -> FC -> softmax cross-entropy
    np.random.seed(3)
    network = layers.Network([
        layers.ConvLayer(1, 2, 3, 1), layers.ReLULayer(), layers.MaxPoolingLayer(2),
        layers.ConvLayer(2, 3, 3, 1), layers.ReLULayer(), layers.AvgPoolingLayer(2),
        layers.ReshapeLayer((3, 2, 2), (12,)), layers.FCLayer(12, 4)])
    model = layers.Classifier(network, SoftmaxCrossEntropyLossLayer())
    x = rng.normal(size=(3, 1, 8, 8))
    labels = np.array([0, 3, 1])

    def loss():
        return model.forward(x, labels)[0]

    loss()
    model.gradient_computing()
    for index in (0, 3, 7):
        layer = network.layerList[index]
        for name in layer.param_names:
            analytic = getattr(layer, 'grad_' + name).copy()
            check_gradient(loss, getattr(layer, name), analytic, f"layer {index} grad_{name}", rtol=1e-5)


# ---------------------------------------------------------------------------
# Layers: shapes, dtypes, layouts, errors
# ---------------------------------------------------------------------------

@pytest.mark.solution('cnn')
def test_course_network_shapes_and_float32():
    np.random.seed(0)
    conv = layers.ConvLayer(1, 8, 3, 1, input_grad=False)
    stack = [conv, layers.ReLULayer(), layers.MaxPoolingLayer(2),
             layers.ConvLayer(8, 16, 3, 1), layers.ReLULayer(), layers.MaxPoolingLayer(2),
             layers.ReshapeLayer((16, 7, 7), (784,))]
    x = rng.normal(size=(10, 1, 28, 28)).astype(np.float32)
    shapes = []
    for layer in stack:
        x = layer.forward(x)
        shapes.append(x.shape)
        assert x.dtype == np.float32, f"{type(layer).__name__} returned {x.dtype}"
    assert shapes == [(10, 8, 28, 28)] * 2 + [(10, 8, 14, 14)] + [(10, 16, 14, 14)] * 2 + \
        [(10, 16, 7, 7), (10, 784)]
    delta = np.ones_like(x)
    for layer in reversed(stack):
        delta = layer.backward(delta)
        if delta is not None:
            assert delta.dtype == np.float32
    assert delta is None  # input_grad=False: the first layer passes nothing down
    assert conv.W.dtype == conv.grad_W.dtype == conv.b.dtype == np.float32
    assert conv.W.shape == conv.grad_W.shape == (8, 1, 3, 3) and conv.grad_b.shape == (8,)


def test_conv_layer_initialisation_counts_the_kernel():
    np.random.seed(0)
    layer = layers.ConvLayer(8, 16, 3, 1)
    fan_in, fan_out = 8 * 9, 16 * 9
    expected_std = (2 / (fan_in + fan_out)) ** 0.5 * 2 ** 0.5  # the course's scaled Xavier
    assert layer.W.shape == (16, 8, 3, 3) and layer.b.shape == (16,)
    assert abs(layer.W.std() / expected_std - 1) < 0.1


@pytest.mark.parametrize("make, message", [
    (lambda: layers.ConvLayer(1, 8, 3, 3), "pad (3) must be smaller than kernel_size (3)"),
    (lambda: layers.MaxPoolingLayer(2, 2), "pad (2) must be smaller than kernel_size (2)"),
    (lambda: layers.ConvLayer(1, 8, 0, 0), "kernel_size must be an integer >= 1"),
    (lambda: layers.ReshapeLayer((16, 7, 7), (700,)), "same number of values"),
])
def test_bad_layer_arguments_say_what_to_do(make, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        make()


def test_bad_inputs_say_what_to_do():
    conv = layers.ConvLayer(1, 8, 3, 1)
    with pytest.raises(ValueError, match=r"reshape\(-1, 1, 28, 28\)"):
        conv.forward(np.zeros((4, 784)))
    with pytest.raises(ValueError, match="expects 1 input channel"):
        conv.forward(np.zeros((4, 3, 28, 28)))
    with pytest.raises(ValueError, match=r"expects inputs of shape \(N,\) \+ \(16, 7, 7\)"):
        layers.ReshapeLayer((16, 7, 7), (784,)).forward(np.zeros((4, 8, 7, 7)))


@pytest.mark.solution('cnn', 'mlp')
def test_batch_norm_and_dropout_on_feature_maps_of_conv_layers():
    # The layers of the training issue work on the (channel-major) feature
    # maps a ConvLayer returns: batch norm's gradients through the convolution
    # against finite differences, dropout's mask per value.
    np.random.seed(5)
    rng = np.random.default_rng(5)    # its own generator: the same numbers whatever runs before
    conv, norm = layers.ConvLayer(2, 3, 3, 1), layers.BatchNormLayer(3)
    norm.gamma, norm.beta = rng.normal(size=3), rng.normal(size=3)
    stack = [conv, norm, layers.ReLULayer(), layers.MaxPoolingLayer(2)]
    x = rng.normal(size=(4, 2, 6, 6))

    def forward():
        out = x
        for layer in stack:
            out = layer.forward(out)
        return out

    R = upstream_delta(forward())
    delta = R
    for layer in reversed(stack):
        delta = layer.backward(delta)
    analytic = {name: getattr(layer, 'grad_' + name).copy()
                for layer in (conv, norm) for name in layer.param_names}
    # Batch norm subtracts each channel's mean, so the convolution's bias
    # cancels: its gradient is 0 up to rounding.
    assert np.abs(analytic.pop('b')).max() < 1e-12
    for name, param in (('W', conv.W), ('gamma', norm.gamma), ('beta', norm.beta)):
        check_gradient(lambda: np.sum(R * forward()), param, analytic[name], f"grad_{name}", rtol=1e-4)
    check_gradient(lambda: np.sum(R * forward()), x, delta, "input delta", rtol=1e-4)

    dropout = layers.DropoutLayer(0.5, seed=0)
    maps = conv.forward(x)
    dropped = dropout.forward(maps)
    assert dropped.shape == maps.shape
    kept = dropped != 0
    assert_close(dropped[kept], maps[kept] / 0.5, "dropout keeps and rescales")
    assert 0.3 < kept.mean() < 0.7
