"""Bad layer and augmentation inputs (the convolution layers: test_conv_bad_inputs.py) get a one-line error naming the cause
before NumPy fails somewhere inside (or training runs on silently)."""

import numpy as np
import pytest

from augment import Augmenter
import layers
from layers import BatchNormLayer, FCLayer


@pytest.mark.parametrize('dtype', [np.uint8, np.int64, bool])
def test_integer_images_ask_to_scale_to_floats(dtype):
    with pytest.raises(TypeError, match=r"FCLayer got (uint8|int64|bool) input .*images.astype\(np.float32\) / 255"):
        FCLayer(9, 2).forward(np.full((2, 9), 200, dtype=dtype))


def test_batch_norm_refuses_to_train_on_one_value_per_feature():
    layer = BatchNormLayer(4)
    with pytest.raises(ValueError, match=r"BatchNormLayer: training on a batch of 1 sample.*batch_size >= 2"):
        layer.forward(np.ones((1, 4)))
    layer.forward(np.arange(8.0).reshape(2, 4))               # two samples: fine
    layer.training = False                                     # what Network.eval() sets
    assert layer.forward(np.ones((1, 4))).shape == (1, 4)     # evaluation uses the running statistics
    maps = BatchNormLayer(3)
    assert maps.forward(np.ones((1, 3, 2, 2)) + np.arange(4.0).reshape(2, 2)).shape == (1, 3, 2, 2)   # 4 values each


def test_a_last_batch_of_one_sample_is_normalised_with_the_running_statistics():
    layer = BatchNormLayer(2)
    layer.forward(np.array([[0.0, 1.0], [2.0, 5.0]]))          # a full batch: running statistics move
    mean, var = layer.running_mean.copy(), layer.running_var.copy()
    x = np.array([[3.0, -1.0]])
    out = layer.forward(x)                                      # still training: the epoch's last batch
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + layer.eps))
    np.testing.assert_array_equal(layer.running_mean, mean)     # one sample says nothing about the batch
    delta = np.array([[1.0, 2.0]])
    np.testing.assert_allclose(layer.backward(delta), delta / np.sqrt(var + layer.eps))   # the affine map's


@pytest.mark.parametrize('settings, error, message', [
    (dict(rotate=720), ValueError, r"rotate is the largest angle in degrees, at most 180, got 720"),
    (dict(shift=100), ValueError, r"shift .* below half the image \(14 for \(28, 28\)\), got 100"),
    (dict(shift=1.5), ValueError, r"shift .* an integer"),
    (dict(flip='yes'), TypeError, r"flip must be a number, got 'yes'"),
    (dict(rotate=None), TypeError, r"rotate must be a number"),
])
def test_augmentation_settings_out_of_range_are_named(settings, error, message):
    with pytest.raises(error, match=message) as info:
        Augmenter(**settings)
    assert '\n' not in str(info.value)


def test_usual_augmentation_settings_are_accepted():
    out = Augmenter(shift=2, rotate=10, flip=0.5, seed=0)(np.zeros((3, 784), dtype=np.float32))
    assert out.shape == (3, 784)


def test_convolution_layers_without_im2col_name_the_assignment(monkeypatch):
    monkeypatch.setattr(layers, 'im2col', None)          # a handout without the cnn assignment's file
    for make in (lambda: layers.ConvLayer(1, 2, 3, 1), lambda: layers.MaxPoolingLayer(2),
                 lambda: layers.AvgPoolingLayer(2)):
        with pytest.raises(NotImplementedError, match=r"is part of the 'cnn' assignment: it needs im2col.py"):
            make()
