"""Self-checks for the cnn assignment: convolution and pooling must be
vectorised (test_vectorised.py does the same for the mlp assignment).

The numbers are checked by test_conv.py; here we check that no Python loop
runs once per image of a batch, or once per output row or pixel of an image
(testkit/vectorised.py says how). Loops over a fixed number of things are
fine: the k·k offsets of a kernel, the channels.
"""

import numpy as np
import pytest

import im2col
from testkit.vectorised import assert_vectorized

RNG = np.random.default_rng(0)

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
