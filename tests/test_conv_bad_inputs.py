"""Bad inputs of the convolution and pooling layers get a one-line error
naming the cause, instead of NumPy's stride tricks failing or an empty output."""

import numpy as np
import pytest

from layers import AvgPoolingLayer, ConvLayer, MaxPoolingLayer


def images(n=2, c=1, size=3, dtype=np.float64):
    return np.ones((n, c, size, size), dtype=dtype)


@pytest.mark.parametrize('layer, message', [
    (lambda: ConvLayer(1, 2, 7, 0), r"ConvLayer: kernel_size 7 is larger than the padded input 3x3"),
    (lambda: ConvLayer(1, 2, 7, 1), r"padded input 5x5 \(input 3x3, pad 1\)"),
    (lambda: MaxPoolingLayer(5, 0), r"MaxPoolingLayer: kernel_size 5 is larger than the padded input 3x3"),
    (lambda: AvgPoolingLayer(4, 0), r"AvgPoolingLayer: kernel_size 4 is larger"),
])
def test_a_window_larger_than_the_image_is_named_not_an_empty_output(layer, message):
    with pytest.raises(ValueError, match=message) as info:
        layer().forward(images())
    assert '\n' not in str(info.value)


@pytest.mark.solution('cnn')        # runs the convolution and pooling themselves
def test_windows_that_just_fit_still_work():
    assert ConvLayer(1, 2, 3, 0).forward(images()).shape == (2, 2, 1, 1)
    assert MaxPoolingLayer(3, 0).forward(images()).shape == (2, 1, 1, 1)
    assert AvgPoolingLayer(4, 1).forward(images()).shape == (2, 1, 1, 1)


@pytest.mark.parametrize('dtype', [np.uint8, np.int64])
def test_integer_images_ask_to_scale_to_floats(dtype):
    with pytest.raises(TypeError, match=r"ConvLayer got .* input"):
        ConvLayer(1, 2, 3, 1).forward(images(dtype=dtype))
