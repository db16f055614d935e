"""Graded checks of the cnn assignment (im2col.py).

The child functions call the student-facing functions of im2col.py:
conv_forward(x, W, b, pad) -> (out, cols), conv_backward(delta, cols,
x_shape, W, pad) -> (dx, dW, db), max_pool_forward(x, k, pad) -> (out,
x_pad), max_pool_backward(delta, out, x_pad, k, pad) -> dx,
avg_pool_forward(x, k, pad) -> out, avg_pool_backward(delta, x_shape, k,
pad) -> dx; and the layers of layers.py that use them (ConvLayer,
MaxPoolingLayer) with their parameters set from the inputs. Shapes, kernel
sizes and paddings are drawn per grading run; expected values come from the
reference.
"""

import numpy as np

from checks import Check, compare_all


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
    return {'avg_pool_forward out': np.asarray(out, dtype=np.float64),
            'avg_pool_backward dx': np.asarray(dx, dtype=np.float64)}


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
        Check('avg_pooling', "avg_pool_forward and avg_pool_backward",
              pool_inputs, avg_pool_child, compare_all(rtol=1e-8, atol=1e-12)),
    ]
