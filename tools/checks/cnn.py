"""Graded checks of the cnn assignment (im2col.py: convolution and pooling).

The child functions use the layers of the course: ConvLayer(inputs, filters,
kernel_size, pad) with W (F, C, k, k), b (F,), forward(Input) and
backward(delta) -> delta below, grad_W, grad_b; MaxPoolingLayer(kernel_size,
pad) and AvgPoolingLayer(kernel_size, pad). Parameters are set from the
inputs; expected values come from the reference.
"""

import numpy as np

from checks import Check, compare_all


def conv_inputs(rng):
    n, c, f, k = int(rng.integers(2, 4)), 3, 4, 3
    h, w = int(rng.integers(5, 8)), int(rng.integers(5, 8))
    pad = int(rng.integers(0, 2))
    return {'x': rng.normal(size=(n, c, h, w)), 'W': rng.normal(scale=0.3, size=(f, c, k, k)),
            'b': rng.normal(scale=0.3, size=(f,)), 'pad': np.array(pad),
            'delta': rng.normal(size=(n, f, h + 2 * pad - k + 1, w + 2 * pad - k + 1))}


def pool_inputs(rng):
    n, c, k = 2, 3, 2
    h, w = 2 * int(rng.integers(2, 5)), 2 * int(rng.integers(2, 5))
    return {'x': rng.normal(size=(n, c, h, w)), 'kernel_size': np.array(k), 'pad': np.array(0),
            'delta': rng.normal(size=(n, c, h // k, w // k))}


def conv_child(inputs, modules):
    import numpy as np
    W, b = inputs['W'], inputs['b']
    layer = modules.layers.ConvLayer(W.shape[1], W.shape[0], W.shape[2], int(inputs['pad']))
    layer.W, layer.b = W.copy(), b.copy()
    out = layer.forward(inputs['x'].copy())
    below = layer.backward(inputs['delta'].copy())
    return {'ConvLayer.forward output': np.asarray(out, dtype=np.float64),
            'ConvLayer.backward delta for the layer below': np.asarray(below, dtype=np.float64),
            'ConvLayer.grad_W': np.asarray(layer.grad_W, dtype=np.float64),
            'ConvLayer.grad_b': np.asarray(layer.grad_b, dtype=np.float64)}


def pooling_child(inputs, modules):
    import numpy as np
    out = {}
    for name in ('MaxPoolingLayer', 'AvgPoolingLayer'):
        layer = getattr(modules.layers, name)(int(inputs['kernel_size']), int(inputs['pad']))
        out[f'{name}.forward output'] = np.asarray(layer.forward(inputs['x'].copy()), dtype=np.float64)
        out[f'{name}.backward delta'] = np.asarray(layer.backward(inputs['delta'].copy()), dtype=np.float64)
    return out


def checks(root):
    """The checks of the cnn assignment, for the reference folder `root`."""
    return [
        Check('conv_layer', "ConvLayer: forward, backward (delta below, grad_W, grad_b), with and without padding",
              conv_inputs, conv_child, compare_all(rtol=1e-8, atol=1e-12)),
        Check('pooling', "MaxPoolingLayer and AvgPoolingLayer: forward and backward",
              pool_inputs, pooling_child, compare_all(rtol=1e-8, atol=1e-12)),
    ]
