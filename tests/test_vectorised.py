"""Self-checks for the mlp and cnn assignments: the TODO code must be vectorised.

The numbers are checked by test_layers.py, test_criteria.py and
test_conv.py; here we check that no Python loop runs once per sample of a
batch, or once per output row or pixel of an image (testkit/vectorised.py
says how). Loops over a fixed number of things are fine: the layers of a
network, the parameters, the k·k offsets of a kernel.
"""

import numpy as np
import pytest

import im2col
import layers
import loss
import optimizer
from testkit.vectorised import assert_vectorized

MLP_FILES = [layers.__file__, loss.__file__, optimizer.__file__]
RNG = np.random.default_rng(0)
X, DELTA, LABELS = RNG.normal(size=(40, 6)), RNG.normal(size=(40, 4)), RNG.integers(0, 4, size=40)


def forward_backward(make_layer, width):
    """make_run(n) for assert_vectorized: forward and backward of a new layer on n samples."""
    def make_run(n):
        layer = make_layer()

        def run():
            out = layer.forward(X[:n, :width].copy())
            layer.backward(DELTA[:n, :out.shape[1]].copy())
        return run
    return make_run


@pytest.mark.solution('mlp')
@pytest.mark.parametrize('name, make_layer, width', [
    ('FCLayer', lambda: layers.FCLayer(6, 4), 6),
    ('ReLULayer', layers.ReLULayer, 4),
    ('SigmoidLayer', layers.SigmoidLayer, 4),
])
def test_layer_forward_and_backward_are_vectorised(name, make_layer, width):
    assert_vectorized(forward_backward(make_layer, width), MLP_FILES, f'{name}.forward and backward')


@pytest.mark.solution('mlp')
@pytest.mark.parametrize('name', ['SoftmaxCrossEntropyLossLayer', 'EuclideanLossLayer'])
def test_criterion_forward_and_backward_are_vectorised(name):
    def make_run(n):
        criterion = getattr(loss, name)()
        return lambda: (criterion.forward(X[:n, :4].copy(), LABELS[:n]), criterion.backward())
    assert_vectorized(make_run, MLP_FILES, f'{name}.forward and backward')


@pytest.mark.solution('mlp')
def test_sgd_step_with_weight_decay_is_vectorised():
    def make_run(n):
        layer = layers.FCLayer(n, 3)          # W is (n, 3): a loop over its rows would grow
        layer.grad_W, layer.grad_b = np.ones_like(layer.W), np.ones_like(layer.b)
        sgd = optimizer.SGD(layers.Network([layer]), 0.1, momentum=0.9, weight_decay=0.01)
        sgd.step()                            # the first step creates the velocities
        return sgd.step
    assert_vectorized(make_run, MLP_FILES, 'SGD.step', what='rows of W')


# ----- cnn: a growing batch, and a growing image -----

CONV_W, CONV_B = RNG.normal(size=(3, 2, 3, 3)), RNG.normal(size=3)
IMAGES = RNG.normal(size=(10, 2, 14, 14))
IMAGE_DELTA = RNG.normal(size=(10, 3, 14, 14))


def conv_forward(x):
    return lambda: im2col.conv_forward(x, CONV_W, CONV_B, 1)


def conv_backward(x):
    _, cols = im2col.conv_forward(x, CONV_W, CONV_B, 1)
    delta = IMAGE_DELTA[:x.shape[0], :, :x.shape[2], :x.shape[3]].copy()
    return lambda: im2col.conv_backward(delta, cols, x.shape, CONV_W, 1)


def max_pool_forward(x):
    return lambda: im2col.max_pool_forward(x, 2, 0)


def max_pool_backward(x):
    out, x_pad = im2col.max_pool_forward(x, 2, 0)
    return lambda: im2col.max_pool_backward(IMAGE_DELTA[:out.shape[0], :2, :out.shape[2], :out.shape[3]].copy(),
                                            out, x_pad, 2, 0)


def avg_pool_forward(x):
    return lambda: im2col.avg_pool_forward(x, 2, 0)


def avg_pool_backward(x):
    h = x.shape[2] // 2
    return lambda: im2col.avg_pool_backward(IMAGE_DELTA[:x.shape[0], :2, :h, :h].copy(), x.shape, 2, 0)


CNN_FUNCTIONS = [conv_forward, conv_backward, max_pool_forward, max_pool_backward, avg_pool_forward,
                 avg_pool_backward]


@pytest.mark.solution('cnn')
@pytest.mark.parametrize('function', CNN_FUNCTIONS, ids=lambda f: f.__name__)
def test_convolution_and_pooling_have_no_loop_over_the_images(function):
    assert_vectorized(lambda n: function(IMAGES[:n, :, :6, :6].copy()), [im2col.__file__], function.__name__,
                      sizes=(2, 10), what='images in the batch')


@pytest.mark.solution('cnn')
@pytest.mark.parametrize('function', CNN_FUNCTIONS, ids=lambda f: f.__name__)
def test_convolution_and_pooling_have_no_loop_over_the_rows_or_pixels(function):
    assert_vectorized(lambda h: function(IMAGES[:2, :, :h, :h].copy()), [im2col.__file__], function.__name__,
                      sizes=(6, 14), what='rows of the image')
