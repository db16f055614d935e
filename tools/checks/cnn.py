"""Graded checks of the cnn assignment (im2col.py).

The child functions call the student-facing functions of im2col.py:
conv_forward(x, W, b, pad) -> (out, cols), conv_backward(delta, cols,
x_shape, W, pad) -> (dx, dW, db), max_pool_forward(x, k, pad) -> (out,
x_pad), max_pool_backward(delta, out, x_pad, k, pad) -> dx,
avg_pool_forward(x, k, pad) -> out, avg_pool_backward(delta, x_shape, k,
pad) -> dx; and the layers of layers.py that use them (ConvLayer,
MaxPoolingLayer, AvgPoolingLayer) with their parameters set from the inputs. Shapes, kernel
sizes and paddings are drawn per grading run; expected values come from the
reference.
"""

import numpy as np

from checks import VECTORISED_HELPERS, Check, compare_all, compare_vectorised


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def conv_inputs(rng):
    n, c, f = int(rng.integers(2, 5)), int(rng.integers(1, 4)), int(rng.integers(2, 5))
    k = int(rng.choice([1, 2, 3, 5]))
    pad = int(rng.integers(0, k))
    h, w = int(rng.integers(max(k, 4), 9)), int(rng.integers(max(k, 4), 9))
    h_out, w_out = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    return {'x': rng.normal(size=(n, c, h, w)), 'W': rng.normal(size=(f, c, k, k)), 'b': rng.normal(size=f),
            'pad': np.array(pad), 'delta': rng.normal(size=(n, f, h_out, w_out))}


def pool_inputs(rng):
    n, c = int(rng.integers(2, 5)), int(rng.integers(1, 4))
    k = int(rng.choice([2, 3]))
    pad = int(rng.integers(0, k))
    h, w = int(rng.integers(k + 2, 10)), int(rng.integers(k + 2, 10))
    h_out, w_out = (h + 2 * pad) // k, (w + 2 * pad) // k
    x = rng.normal(size=(n, c, h, w))
    x[:, :, :k, :k] = 0.0                       # a window of ties: the delta goes to its first pixel
    return {'x': x, 'kernel_size': np.array(k), 'pad': np.array(pad),
            'delta': rng.normal(size=(n, c, h_out, w_out))}


def vectorised_inputs(rng, batch_sizes=(2, 10), image_sizes=(6, 14)):
    """Images for the largest batch and image size; the child cuts the smaller ones out."""
    n, h = batch_sizes[1], image_sizes[1]
    return {'batch sizes': np.array(batch_sizes), 'image sizes': np.array(image_sizes),
            'x': rng.normal(size=(n, 2, h, h)), 'W': rng.normal(size=(3, 2, 3, 3)), 'b': rng.normal(size=3),
            'delta': rng.normal(size=(n, 3, h, h))}


# ---------------------------------------------------------------------------
# Child functions
# ---------------------------------------------------------------------------

def conv_child(inputs, modules):
    import numpy as np
    x, W, b, pad = inputs['x'], inputs['W'], inputs['b'], int(inputs['pad'])
    out, cols = modules.im2col.conv_forward(x, W, b, pad)
    dx, dW, db = modules.im2col.conv_backward(inputs['delta'], cols, x.shape, W, pad)
    layer = modules.layers.ConvLayer(W.shape[1], W.shape[0], W.shape[2], pad)
    layer.W, layer.b = W.copy(), b.copy()
    layer_out = layer.forward(x)
    layer_dx = layer.backward(inputs['delta'])
    return {'conv_forward out': np.asarray(out, dtype=np.float64),
            'conv_backward dx': np.asarray(dx, dtype=np.float64),
            'conv_backward dW': np.asarray(dW, dtype=np.float64),
            'conv_backward db': np.asarray(db, dtype=np.float64),
            'ConvLayer.forward output': np.asarray(layer_out, dtype=np.float64),
            'ConvLayer.backward delta for the layer below': np.asarray(layer_dx, dtype=np.float64),
            'ConvLayer.grad_W': np.asarray(layer.grad_W, dtype=np.float64),
            'ConvLayer.grad_b': np.asarray(layer.grad_b, dtype=np.float64)}


def max_pool_child(inputs, modules):
    import numpy as np
    x, k, pad = inputs['x'], int(inputs['kernel_size']), int(inputs['pad'])
    out, x_pad = modules.im2col.max_pool_forward(x, k, pad)
    dx = modules.im2col.max_pool_backward(inputs['delta'], out, x_pad, k, pad)
    layer = modules.layers.MaxPoolingLayer(k, pad)
    layer_out = layer.forward(x)
    layer_dx = layer.backward(inputs['delta'])
    return {'max_pool_forward out': np.asarray(out, dtype=np.float64),
            'max_pool_backward dx': np.asarray(dx, dtype=np.float64),
            'MaxPoolingLayer.forward output': np.asarray(layer_out, dtype=np.float64),
            'MaxPoolingLayer.backward delta for the layer below': np.asarray(layer_dx, dtype=np.float64)}


def avg_pool_child(inputs, modules):
    import numpy as np
    x, k, pad = inputs['x'], int(inputs['kernel_size']), int(inputs['pad'])
    out = modules.im2col.avg_pool_forward(x, k, pad)
    dx = modules.im2col.avg_pool_backward(inputs['delta'], x.shape, k, pad)
    layer = modules.layers.AvgPoolingLayer(k, pad)
    layer_out = layer.forward(x)
    layer_dx = layer.backward(inputs['delta'])
    return {'avg_pool_forward out': np.asarray(out, dtype=np.float64),
            'avg_pool_backward dx': np.asarray(dx, dtype=np.float64),
            'AvgPoolingLayer.forward output': np.asarray(layer_out, dtype=np.float64),
            'AvgPoolingLayer.backward delta for the layer below': np.asarray(layer_dx, dtype=np.float64)}


# What vectorised_child traces: the functions, each for a growing batch and a
# growing image (a loop over the output rows or pixels grows with the image).
VECTORISED_FUNCTIONS = ['conv_forward', 'conv_backward', 'max_pool_forward', 'max_pool_backward',
                        'avg_pool_forward', 'avg_pool_backward']
VECTORISED_SIZES = [('batch sizes', 'images in the batch'), ('image sizes', 'rows of the image')]


def vectorised_child(inputs, modules):
    """Line counts of im2col.py for each function of VECTORISED_FUNCTIONS,
    once for a small and a large batch (images of 6 x 6) and once for a
    small and a large image (2 images), with the value of each large run.
    Convolution: 3 x 3 kernel, padding 1; pooling: 2 x 2 windows."""
    import os
    import numpy as np
    im2col = modules.im2col
    files = [os.path.abspath(im2col.__file__)]

    def make(function, n, h):
        x, W, b = inputs['x'][:n, :, :h, :h].copy(), inputs['W'], inputs['b']
        conv_out, cols = im2col.conv_forward(x, W, b, 1)
        pooled, x_pad = im2col.max_pool_forward(x, 2, 0)
        conv_delta = inputs['delta'][:n, :, :h, :h].copy()
        pool_delta = inputs['delta'][:n, :2, :h // 2, :h // 2].copy()
        calls = {'conv_forward': lambda: im2col.conv_forward(x, W, b, 1)[0],
                 'conv_backward': lambda: im2col.conv_backward(conv_delta, cols, x.shape, W, 1),
                 'max_pool_forward': lambda: im2col.max_pool_forward(x, 2, 0)[0],
                 'max_pool_backward': lambda: im2col.max_pool_backward(pool_delta, pooled, x_pad, 2, 0),
                 'avg_pool_forward': lambda: im2col.avg_pool_forward(x, 2, 0),
                 'avg_pool_backward': lambda: im2col.avg_pool_backward(pool_delta, x.shape, 2, 0)}
        result = {}

        def run():
            result['value'] = calls[function]()
        def value():
            arrays = result['value'] if isinstance(result['value'], tuple) else (result['value'],)
            return np.concatenate([np.ravel(a) for a in arrays if a is not None])
        return run, value

    small_batch, small_image = int(inputs['batch sizes'][0]), int(inputs['image sizes'][0])
    out = {}
    for function in VECTORISED_FUNCTIONS:  # noqa: F821  (a constant of the check)
        for sizes, _ in VECTORISED_SIZES:  # noqa: F821
            label = f'{function} ({sizes[:-1]})'
            if sizes == 'batch sizes':
                maker = lambda n, f=function: make(f, n, small_image)  # noqa: E731
            else:
                maker = lambda h, f=function: make(f, small_batch, h)  # noqa: E731
            out[f'line counts: {label}'], out[f'value: {label}'] = traced(maker, files, inputs[sizes])  # noqa: F821
    return out


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------

def checks(root):
    """The checks of the cnn assignment, for the reference folder `root`."""
    return [
        Check('convolution', "conv_forward and conv_backward (out, dx, dW, db), alone and in ConvLayer",
              conv_inputs, conv_child, compare_all(rtol=1e-8, atol=1e-12)),
        Check('max_pooling', "max_pool_forward and max_pool_backward (ties: the first maximum), alone and "
                             "in MaxPoolingLayer", pool_inputs, max_pool_child, compare_all(rtol=1e-8, atol=1e-12)),
        Check('avg_pooling', "avg_pool_forward and avg_pool_backward, alone and in AvgPoolingLayer",
              pool_inputs, avg_pool_child, compare_all(rtol=1e-8, atol=1e-12)),
        Check('vectorised', "no Python loop over the images of a batch or the rows and pixels of an image in "
                            "convolution and pooling, forward and backward (loops over the k·k kernel offsets "
                            "are fine)", vectorised_inputs, vectorised_child,
              compare_vectorised(['im2col.py'], [(f'{function} ({sizes[:-1]})', what, sizes)
                                                 for function in VECTORISED_FUNCTIONS
                                                 for sizes, what in VECTORISED_SIZES]),
              constants={'VECTORISED_FUNCTIONS': VECTORISED_FUNCTIONS, 'VECTORISED_SIZES': VECTORISED_SIZES},
              helpers=VECTORISED_HELPERS),
    ]
