"""Hidden checks of the cnn assignment: shapes the public checks do not draw
(a kernel as large as the image, a 1x1 kernel on many channels, a batch of
one) and pooling where every window is a tie. Their names appear in the
feedback; their code is sent to the child at run time only."""

import numpy as np

from checks import Check, cnn, compare_all


def conv_edge_inputs(rng):
    """case 0: one image, one channel, kernel = image size (a 1x1 output), no padding;
    case 1: a 1x1 kernel on 6 channels of a 5x3 image; case 2: kernel 3 with padding 2."""
    inputs = {}
    for case, (n, c, f, k, pad, h, w) in enumerate([(1, 1, 2, 5, 0, 5, 5), (3, 6, 4, 1, 0, 5, 3),
                                                     (2, 2, 3, 3, 2, 4, 6)]):
        h_out, w_out = h + 2 * pad - k + 1, w + 2 * pad - k + 1
        inputs.update({f'x{case}': rng.normal(size=(n, c, h, w)), f'W{case}': rng.normal(size=(f, c, k, k)),
                       f'b{case}': rng.normal(size=f), f'pad{case}': np.array(pad),
                       f'delta{case}': rng.normal(size=(n, f, h_out, w_out))})
    return inputs


def conv_edge_child(inputs, modules):
    out, case = {}, 0
    while f'x{case}' in inputs:
        one = {key: inputs[f'{key}{case}'] for key in ('x', 'W', 'b', 'pad', 'delta')}
        for key, value in conv_child(one, modules).items():   # noqa: F821  (a helper of the check)
            out[f'case {case}: {key}'] = value
        case += 1
    return out


def tied_pool_inputs(rng):
    """Every window a tie (a constant image per channel), kernel 2 with padding 1."""
    n, c, h, w = 2, 3, 6, 5
    x = np.repeat(rng.normal(size=(n, c, 1, 1)), h, axis=2).repeat(w, axis=3)
    return {'x': x, 'kernel_size': np.array(2), 'pad': np.array(1),
            'delta': rng.normal(size=(n, c, (h + 2) // 2, (w + 2) // 2))}


def tied_pool_child(inputs, modules):
    out = dict(max_pool_child(inputs, modules))   # noqa: F821  (helpers of the check)
    out.update(avg_pool_child(inputs, modules))   # noqa: F821
    return out


def checks(root):
    return [
        Check('hidden_convolution_shapes', "convolution with a kernel as large as the image, a 1x1 kernel on "
                                           "6 channels, and padding 2, alone and in ConvLayer",
              conv_edge_inputs, conv_edge_child, compare_all(rtol=1e-8, atol=1e-12), hidden=True,
              helpers=[cnn.conv_child]),
        Check('hidden_pooling_ties', "max and average pooling where every window is a tie, with padding",
              tied_pool_inputs, tied_pool_child, compare_all(rtol=1e-8, atol=1e-12), hidden=True,
              helpers=[cnn.max_pool_child, cnn.avg_pool_child]),
    ]
