"""Convolution and pooling of image batches: the maths of a CNN's layers.

Letter conventions (as in CS231n): N images per batch, C input channels,
F filters (output channels), H x W an image, k x k a kernel, p the zero
padding, H' x W' an output map. Images are (N, C, H, W) arrays; a
convolution's weights are W (F, C, k, k) and its biases b (F,).

Convolution, stride 1 (notes §3): output map f of image n is

    out[n, f, i, j] = b[f] + sum_{c, di, dj} W[f, c, di, dj] * x_pad[n, c, i + di, j + dj]

with H' = H + 2p - k + 1. Every output pixel reads one k x k window of the
padded input, so the whole layer is one matrix product once the windows are
laid out as the columns of a matrix ("im2col"):

    cols  (C·k·k, N·H'·W')   column = one window, flattened
    W_row (F, C·k·k)         row = one filter, flattened
    out   = W_row @ cols + b -> (F, N·H'·W') -> (N, F, H', W')

The file has two parts:
1. A short reference implementation with loops (`*_loops`), which says the
   maths as directly as possible; read it first. It is slow (seconds for a
   single batch) and kept for reading and for the tests.
2. The vectorised implementation that the layers use. No Python loop over
   images, positions or channels: windows are strided views of the input
   (np.lib.stride_tricks.as_strided, no data copied), each layer is one
   matrix product, and the only loops run over the k·k kernel offsets.

Memory layout, which decides the speed: the matrix product gives the output
as (F, N·H'·W'), channel-major ("CNHW" in memory). The forward pass returns
it as a transposed *view* of shape (N, F, H', W'), so nothing is copied;
ReLU keeps that layout (NumPy's element-wise operations follow the input's
memory order), pooling reads it through strided views of the k·k window
pixels and writes its output in the same order, and the next convolution's
im2col reads it row by row. Pooling, with stride = kernel size, is k·k
element-wise operations on those views (np.maximum for max pooling, sums
for average pooling): a reduction over window axes of a 6-D view is many
times slower in NumPy. The backward passes use no np.add.at and no index
arrays: col2im is one strided add per kernel offset, max pooling's backward
one comparison and one strided assignment per offset. A caller only ever
sees (N, C, H, W) shapes; the layout is an implementation detail that any
code written against shapes can ignore.

What your TODO code may use, and what it costs. Any NumPy is allowed:
np.add.at, index arrays (x_pad[n, c, i + di, j + dj], as CS231n's
im2col_indices), np.argmax with np.put_along_axis, reshapes of windows.
They give the right numbers and pass every test and graded check for
correctness; they are only slower. On the course CNN's second layer (batch
100, 8 -> 16 channels, 14 x 14; `python tools/bench.py --conv-variants`),
index arrays make im2col about 13 times slower than the strided view,
np.add.at makes col2im about 15 times slower than k·k strided adds, and
argmax + put_along_axis makes max pooling's backward about 5 times slower
than k·k comparisons (CPU time, one BLAS thread; your machine will differ).
What is NOT allowed is a Python loop over the images of a batch or over the
output rows or pixels: it is slow (a loop over the images of a batch of 100
already doubles conv_forward's time; loops over the pixels, as in the
`*_loops` functions above, take seconds per batch), and the tests
(tests/test_vectorised.py) and the graded check 'vectorised' name its line
and take that point. A loop over the k·k kernel offsets or over the
channels is fine: its length does not grow with the batch or the image.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided


# ---------------------------------------------------------------------------
# 1. Reference implementation with loops (for reading and for the tests)
# ---------------------------------------------------------------------------

def conv_forward_loops(x, W, b, pad):
    """Convolution, stride 1, by its definition (see the module docstring).

    Inputs: x (N, C, H, W), W (F, C, k, k), b (F,), pad p (zero padding).
    Returns out (N, F, H + 2p - k + 1, W + 2p - k + 1).
    """
    N, _, H, W_in = x.shape
    F, _, k, _ = W.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    H_out, W_out = H + 2 * pad - k + 1, W_in + 2 * pad - k + 1
    out = np.zeros((N, F, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_pad[n, :, i:i + k, j:j + k]  # (C, k, k)
                    out[n, f, i, j] = np.sum(window * W[f]) + b[f]
    return out


def conv_backward_loops(x, W, pad, delta):
    """Gradients of a convolution by the chain rule, one output pixel at a time.

    out[n, f, i, j] depends on W[f] through the window it read, and on that
    window's pixels through W[f]; each pixel's delta flows back along both.

    Inputs: x, W, pad as in the forward pass; delta (N, F, H', W') = dE/dout.
    Returns (dx (N, C, H, W), dW (F, C, k, k), db (F,)).
    """
    N, F, H_out, W_out = delta.shape
    k = W.shape[2]
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros_like(x_pad)
    dW = np.zeros_like(W)
    db = delta.sum(axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    dW[f] += delta[n, f, i, j] * x_pad[n, :, i:i + k, j:j + k]
                    dx_pad[n, :, i:i + k, j:j + k] += delta[n, f, i, j] * W[f]
    H_pad, W_pad = x_pad.shape[2:]
    return dx_pad[:, :, pad:H_pad - pad, pad:W_pad - pad], dW, db


def pool_forward_loops(x, kernel_size, pad, mode):
    """Max or average pooling, stride = kernel size, by its definition.

    The input is zero-padded by `pad` first, as in the course's pooling
    layer; windows that do not fit at the bottom/right edge are dropped.
    Inputs: x (N, C, H, W); mode 'max' or 'avg'.
    Returns out (N, C, (H + 2p) // k, (W + 2p) // k).
    """
    k = kernel_size
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    N, C, H_pad, W_pad = x_pad.shape
    out = np.zeros((N, C, H_pad // k, W_pad // k), dtype=x.dtype)
    reduce = np.max if mode == 'max' else np.mean
    for n in range(N):
        for c in range(C):
            for i in range(H_pad // k):
                for j in range(W_pad // k):
                    out[n, c, i, j] = reduce(x_pad[n, c, i * k:(i + 1) * k, j * k:(j + 1) * k])
    return out


def pool_backward_loops(x, kernel_size, pad, mode, delta):
    """Gradient of pooling: a max window passes its delta to its largest pixel
    (the first one, in reading order, on a tie); an average window shares it
    equally among its k·k pixels.

    Inputs: x, kernel_size, pad, mode as in the forward pass;
    delta (N, C, H', W'). Returns dx (N, C, H, W).
    """
    k = kernel_size
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros_like(x_pad)
    N, C, H_out, W_out = delta.shape
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_pad[n, c, i * k:(i + 1) * k, j * k:(j + 1) * k]
                    d_window = dx_pad[n, c, i * k:(i + 1) * k, j * k:(j + 1) * k]
                    if mode == 'max':
                        di, dj = np.unravel_index(np.argmax(window), window.shape)
                        d_window[di, dj] += delta[n, c, i, j]
                    else:
                        d_window += delta[n, c, i, j] / (k * k)
    H_pad, W_pad = x_pad.shape[2:]
    return dx_pad[:, :, pad:H_pad - pad, pad:W_pad - pad]


# ---------------------------------------------------------------------------
# 2. Vectorised implementation (what the layers use)
# ---------------------------------------------------------------------------

def check_images(x, name='x'):
    """Clear error unless x is an (N, C, H, W) array of images."""
    if np.ndim(x) != 4:
        hint = (" Give the images their shape first: images.reshape(-1, 1, 28, 28)."
                if np.ndim(x) == 2 else "")
        raise ValueError(f"{name} must be a batch of images of shape (N, C, H, W); "
                         f"got shape {np.shape(x)}.{hint}")


def pad_images(x, pad):
    """Zero padding of the two image axes: (N, C, H, W) -> (N, C, H + 2p, W + 2p).

    The padded array is allocated in the input's memory layout (C, N, H, W
    order for the layers' outputs), so that later views stay cheap.
    """
    if pad == 0:
        return x
    N, C, H, W = x.shape
    order = (1, 0, 2, 3) if _channel_major(x) else (0, 1, 2, 3)
    shape = tuple(x.shape[a] + (2 * pad if a >= 2 else 0) for a in order)
    x_pad = np.zeros(shape, dtype=x.dtype).transpose(np.argsort(order))
    x_pad[:, :, pad:pad + H, pad:pad + W] = x
    return x_pad


def _channel_major(x):
    """True when x (N, C, H, W) is laid out in memory as (C, N, H, W)."""
    return x.shape[0] > 1 and x.strides[0] < x.strides[1]


def image_windows(x_pad, kernel_size):
    """All k x k windows (stride 1) of padded images, as a view (nothing is copied).

    Input: x_pad (N, C, H_pad, W_pad).
    Returns windows (N, C, H', W', k, k), with windows[n, c, i, j] the window
    whose top-left corner is x_pad[n, c, i, j]: moving one step along i (or
    di) moves one row in memory, so both get the row stride. It is a strided
    view into x_pad, so treat it as read-only.
    """
    N, C, H_pad, W_pad = x_pad.shape
    k = kernel_size
    sn, sc, sh, sw = x_pad.strides
    return as_strided(x_pad, shape=(N, C, H_pad - k + 1, W_pad - k + 1, k, k),
                      strides=(sn, sc, sh, sw, sh, sw), writeable=False)


def im2col(x_pad, kernel_size):
    """Windows as the columns of a matrix: (N, C, H_pad, W_pad) -> (C·k·k, N·H'·W').

    Row (c, di, dj) of the result holds pixel (di, dj) of channel c of every
    window, in (n, i, j) order. This reshape is the one copy a convolution
    makes of its input.
    """
    windows = image_windows(x_pad, kernel_size)          # (N, C, H', W', k, k)
    N, C, H_out, W_out, k, _ = windows.shape
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * k * k, N * H_out * W_out)


def col2im(cols, x_pad_shape, kernel_size, dtype):
    """The adjoint of im2col: adds each column back onto the window it came from.

    Inputs: cols (C·k·k, N·H'·W'); x_pad_shape (N, C, H_pad, W_pad).
    Returns dx_pad (N, C, H_pad, W_pad), laid out as (C, N, H, W) in memory.
    Overlapping windows share pixels, so their contributions are summed: one
    strided add per kernel offset (k·k of them), never np.add.at.
    """
    N, C, H_pad, W_pad = x_pad_shape
    k = kernel_size
    H_out, W_out = H_pad - k + 1, W_pad - k + 1
    cols = cols.reshape(C, k, k, N, H_out, W_out)
    dx_pad = np.zeros((C, N, H_pad, W_pad), dtype=dtype)
    for di in range(k):
        for dj in range(k):
            dx_pad[:, :, di:di + H_out, dj:dj + W_out] += cols[:, di, dj]
    return dx_pad.transpose(1, 0, 2, 3)


def conv_forward(x, W, b, pad):
    """Convolution, stride 1, as one matrix product (module docstring).

    Inputs: x (N, C, H, W); W (F, C, k, k); b (F,); pad p.
    Returns (out (N, F, H', W'), cols): cols (C·k·k, N·H'·W') is kept for
    the backward pass. out is a view of an (F, N, H', W') array.
    """
    N = x.shape[0]
    F, _, k, _ = W.shape
    x_pad = pad_images(x, pad)
    H_out, W_out = x_pad.shape[2] - k + 1, x_pad.shape[3] - k + 1
    ############################################################################
    # TODO: Put your code here
    # Lay the windows out as columns (im2col), multiply by the filters as rows
    # (W.reshape(F, -1)), add the biases, and return the (F, N·H'·W') product
    # as (N, F, H', W'): reshape to (F, N, H', W'), then transpose (no copy).
    ### BEGIN SOLUTION cnn
    cols = im2col(x_pad, k)                              # (C·k·k, N·H'·W')
    out = W.reshape(F, -1) @ cols                        # (F, N·H'·W')
    out += b[:, None]
    out = out.reshape(F, N, H_out, W_out).transpose(1, 0, 2, 3)
    ### END SOLUTION
    ############################################################################
    return out, cols


def conv_backward(delta, cols, x_shape, W, pad, input_grad=True):
    """Gradients of a convolution from the columns kept by conv_forward.

    With out_row = W_row @ cols + b (module docstring), as for a fully
    connected layer (notes §2.3.4): dW_row = delta_row @ cols^T,
    db = delta summed over images and positions, and dcols = W_row^T @ delta_row,
    which col2im adds back onto the input pixels.

    Inputs: delta (N, F, H', W') = dE/dout; cols from conv_forward; x_shape
    (N, C, H, W) of the input; W (F, C, k, k); pad p; input_grad False skips dx
    (the first layer of a network has no layer below).
    Returns (dx (N, C, H, W) or None, dW (F, C, k, k), db (F,)).
    """
    N, C, H, W_in = x_shape
    F, _, k, _ = W.shape
    delta_row = delta.transpose(1, 0, 2, 3).reshape(F, -1)   # (F, N·H'·W'), a view when channel-major
    ############################################################################
    # TODO: Put your code here
    # The gradients of the filters (as W, (F, C, k, k)) and of the biases (F,).
    ### BEGIN SOLUTION cnn
    dW = (delta_row @ cols.T).reshape(W.shape)
    db = delta_row.sum(axis=1)
    ### END SOLUTION
    ############################################################################
    if not input_grad:
        return None, dW, db
    ############################################################################
    # TODO: Put your code here
    # The gradient of the columns, added back onto the padded input (col2im).
    ### BEGIN SOLUTION cnn
    dcols = W.reshape(F, -1).T @ delta_row                   # (C·k·k, N·H'·W')
    dx_pad = col2im(dcols, (N, C, H + 2 * pad, W_in + 2 * pad), k, delta.dtype)
    ### END SOLUTION
    ############################################################################
    return dx_pad[:, :, pad:pad + H, pad:pad + W_in], dW, db


def window_pixels(x_pad, kernel_size, di, dj):
    """Pixel (di, dj) of every non-overlapping k x k window, as a view.

    Input: x_pad (N, C, H_pad, W_pad). Returns (N, C, H', W') with
    H' = H_pad // k: element [n, c, i, j] is x_pad[n, c, i·k + di, j·k + dj].
    With stride = kernel size the windows tile the image, so a pooling layer
    is k·k element-wise operations on these views (windows that do not fit at
    the bottom/right edge are dropped).
    """
    k = kernel_size
    H_out, W_out = x_pad.shape[2] // k, x_pad.shape[3] // k
    return x_pad[:, :, di:H_out * k:k, dj:W_out * k:k]


def kernel_offsets(kernel_size):
    """The k·k offsets (di, dj) of a window's pixels, in reading order."""
    return [(di, dj) for di in range(kernel_size) for dj in range(kernel_size)]


def max_pool_forward(x, kernel_size, pad):
    """Max pooling, stride = kernel size: out = the largest pixel of each window.

    Inputs: x (N, C, H, W); kernel_size k; pad p (zero padding).
    Returns (out (N, C, H', W'), x_pad): the padded input is kept for the
    backward pass, which finds each window's maximum again.
    """
    x_pad = pad_images(x, pad)
    ############################################################################
    # TODO: Put your code here
    # Start from pixel (0, 0) of every window (a copy) and keep the larger
    # value pixel by pixel over the other offsets (np.maximum with out=).
    ### BEGIN SOLUTION cnn
    out = window_pixels(x_pad, kernel_size, 0, 0).copy()
    for di, dj in kernel_offsets(kernel_size)[1:]:
        np.maximum(out, window_pixels(x_pad, kernel_size, di, dj), out=out)
    ### END SOLUTION
    ############################################################################
    return out, x_pad


def max_pool_backward(delta, out, x_pad, kernel_size, pad):
    """Gradient of max pooling: each window's delta goes to its maximum.

    The pixel that equals the window's output receives the delta; on a tie
    (common in all-zero windows after a ReLU) only the first such pixel in
    reading order does, as np.argmax would choose.
    Inputs: delta (N, C, H', W'); out, x_pad from max_pool_forward; pad p.
    Returns dx (N, C, H, W).
    """
    dx_pad = _zeros_like_layout(x_pad)
    unclaimed = np.ones_like(out, dtype=bool)    # windows whose maximum is still to be found
    for di, dj in kernel_offsets(kernel_size):
        ############################################################################
        # TODO: Put your code here
        # Where the pixel at offset (di, dj) is its window's maximum and the
        # window is still unclaimed, it receives the window's delta.
        ### BEGIN SOLUTION cnn
        is_max = window_pixels(x_pad, kernel_size, di, dj) == out
        is_max &= unclaimed
        unclaimed ^= is_max
        window_pixels(dx_pad, kernel_size, di, dj)[...] = delta * is_max
        ### END SOLUTION
        ############################################################################
    return _unpad(dx_pad, pad)


def avg_pool_forward(x, kernel_size, pad):
    """Average pooling, stride = kernel size: out = the mean of each window.

    Inputs: x (N, C, H, W); kernel_size k; pad p. Returns out (N, C, H', W').
    """
    x_pad = pad_images(x, pad)
    ############################################################################
    # TODO: Put your code here
    # Sum the k·k pixels of every window (window_pixels), then divide by k².
    ### BEGIN SOLUTION cnn
    out = window_pixels(x_pad, kernel_size, 0, 0).copy()
    for di, dj in kernel_offsets(kernel_size)[1:]:
        out += window_pixels(x_pad, kernel_size, di, dj)
    out *= 1 / kernel_size ** 2
    ### END SOLUTION
    ############################################################################
    return out


def avg_pool_backward(delta, x_shape, kernel_size, pad):
    """Gradient of average pooling: each window shares its delta equally, 1/k² per pixel.

    Inputs: delta (N, C, H', W'); x_shape (N, C, H, W) of the input;
    kernel_size k; pad p. Returns dx (N, C, H, W).
    """
    N, C, H, W = x_shape
    dx_pad = _zeros_like_layout(delta, (N, C, H + 2 * pad, W + 2 * pad))
    ############################################################################
    # TODO: Put your code here
    # Every pixel of a window receives delta / k² (write into window_pixels of dx_pad).
    ### BEGIN SOLUTION cnn
    share = delta * (1 / kernel_size ** 2)
    for di, dj in kernel_offsets(kernel_size):
        window_pixels(dx_pad, kernel_size, di, dj)[...] = share
    ### END SOLUTION
    ############################################################################
    return _unpad(dx_pad, pad)


def _zeros_like_layout(x, shape=None):
    """Zeros of x's dtype, of shape `shape` (default x.shape), laid out in
    memory like x (channel-major or plain)."""
    shape = x.shape if shape is None else shape
    if _channel_major(x):
        return np.zeros((shape[1], shape[0]) + tuple(shape[2:]), dtype=x.dtype).transpose(1, 0, 2, 3)
    return np.zeros(shape, dtype=x.dtype)


def _unpad(x_pad, pad):
    """Remove `pad` pixels from each side of the image axes (a view)."""
    H_pad, W_pad = x_pad.shape[2:]
    return x_pad[:, :, pad:H_pad - pad, pad:W_pad - pad]
