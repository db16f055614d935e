"""Layers of a multi-layer perceptron; the maths of every model in this project.

Letter conventions (as in CS231n's layers.py): N is the batch size, D the number
of input features of a layer, M its number of outputs, C the number of classes.
Samples are rows, so a batch of inputs is an (N, D) array and the course's
u = W·y + b (notes §2.1) becomes u = Input @ W + b with W of shape (D, M).

The formulas live once, in the functions at the top of this file. The layer
classes below and the homework model in loss.py call them, so the softmax, the
cross-entropy and the affine gradient are written in exactly one place.

Every layer follows one contract:

    out = layer.forward(Input)        # keeps what backward needs
    delta_below = layer.backward(delta)
        # delta = dE/d(out); sets layer.grad_<name> for every parameter
        # and returns dE/d(Input), the delta of the layer below (notes §2.3.3)

A layer with parameters lists them in `param_names`; the gradient of the
parameter `W` sits beside it as `grad_W` (the course's naming).
"""

import numpy as np

import im2col


# ---------------------------------------------------------------------------
# The maths, written once
# ---------------------------------------------------------------------------

def affine_forward(Input, W, b):
    """The affine map of a fully connected layer, u = Input @ W + b.

    Inputs:
    - Input: (N, D) batch of inputs
    - W: (D, M) weights
    - b: (1, M) biases, broadcast over the batch
    Returns u: (N, M)
    """
    ### BEGIN SOLUTION mlp
    return Input @ W + b
    ### END SOLUTION


def affine_grads(Input, delta):
    """Gradients of the loss with respect to W and b of an affine map.

    With u = Input @ W + b, dE/dW = Input^T @ delta and dE/db = sum of delta
    over the batch (notes §2.3.4). The loss E is already a batch mean, so
    delta carries the 1/N and the sums below are the averaged gradients.

    Inputs:
    - Input: (N, D) the input of the forward pass
    - delta: (N, M) dE/du, the local sensitivity of the layer's outputs
    Returns (grad_W (D, M), grad_b (1, M))
    """
    ### BEGIN SOLUTION mlp
    grad_W = Input.T @ delta
    grad_b = delta.sum(axis=0, keepdims=True)
    return grad_W, grad_b
    ### END SOLUTION


def one_hot(labels, num_classes, dtype=np.float64):
    """Targets as a one-hot (1-of-K) table (notes §1.2.1).

    Inputs:
    - labels: (N,) integer class ids in [0, C), or already (N, C) one-hot rows
    - num_classes: C
    Returns t: (N, C) of the given dtype
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        if labels.shape[1] != num_classes:
            raise ValueError(f"one-hot labels have {labels.shape[1]} columns, "
                             f"expected one per class ({num_classes})")
        return labels.astype(dtype, copy=False)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be (N,) integer class ids or (N, {num_classes}) one-hot "
                         f"rows; got shape {labels.shape} and dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}); got values from "
                         f"{labels.min()} to {labels.max()}")
    return np.eye(num_classes, dtype=dtype)[labels]


def log_softmax(logits):
    """Row-wise log of the softmax, computed stably.

    softmax is unchanged when a constant is subtracted from a row, so we
    subtract the row maximum first: exp() then never overflows, and
    log(sum(exp)) stays finite even for logits of 1e4.

    Inputs:
    - logits: (N, C) class scores
    Returns log_prob: (N, C), log P(y = k | x) of every class
    """
    ### BEGIN SOLUTION mlp
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    ### END SOLUTION


def softmax(logits):
    """Row-wise softmax, P(y = k | x) = exp(z_k) / sum_j exp(z_j) (notes §1.2.3).

    Inputs:
    - logits: (N, C) class scores
    Returns prob: (N, C), each row sums to 1
    """
    return np.exp(log_softmax(logits))


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against the labels (notes §1.2.5).

    J = -1/N sum_n sum_k t_k^(n) ln P(y = k | x^(n)), computed from the
    log-softmax so that extreme logits give a finite loss.

    Inputs:
    - logits: (N, C) class scores
    - labels: (N,) integer class ids or (N, C) one-hot rows
    Returns (loss, prob): loss a Python float, prob (N, C) the softmax
    probabilities (kept by callers for the backward pass)
    """
    ### BEGIN SOLUTION mlp
    log_prob = log_softmax(logits)
    t = one_hot(labels, logits.shape[1], logits.dtype)
    loss = -np.sum(t * log_prob) / len(logits)
    return float(loss), np.exp(log_prob)
    ### END SOLUTION


def softmax_cross_entropy_backward(prob, labels):
    """Gradient of the mean cross-entropy with respect to the logits.

    For softmax with cross-entropy the local sensitivity of the output layer
    is delta = y - t (notes §2.3.4); the loss is a batch mean, hence the 1/N.

    Inputs:
    - prob: (N, C) softmax probabilities from the forward pass
    - labels: (N,) integer class ids or (N, C) one-hot rows
    Returns delta: (N, C) = dE/dlogits
    """
    ### BEGIN SOLUTION mlp
    return (prob - one_hot(labels, prob.shape[1], prob.dtype)) / len(prob)
    ### END SOLUTION


def accuracy(logits, labels):
    """Fraction of rows whose highest score is the true class (notes §1.2.7).

    Inputs:
    - logits: (N, C) class scores (or probabilities)
    - labels: (N,) integer class ids or (N, C) one-hot rows
    Returns acc: a Python float in [0, 1]
    """
    ### BEGIN SOLUTION mlp
    labels = np.asarray(labels)
    true_class = labels.argmax(axis=1) if labels.ndim == 2 else labels
    return float(np.mean(logits.argmax(axis=1) == true_class))
    ### END SOLUTION


def xavier_init(num_input, num_output):
    """The homework's initialisation of a fully connected layer.

    W and b are drawn from N(0, std) with std = sqrt(2 / (num_input + num_output))
    times sqrt(2), exactly as in the original homework framework. It draws from
    NumPy's global generator, so np.random.seed makes it reproducible.

    Returns (W (num_input, num_output), b (1, num_output)), float64.
    """
    raw_std = (2 / (num_input + num_output)) ** 0.5
    init_std = raw_std * (2 ** 0.5)
    W = np.random.normal(0, init_std, (num_input, num_output))
    b = np.random.normal(0, init_std, (1, num_output))
    return W, b


def check_batch(layer, Input, num_input, labels=None):
    """Clear errors for the shapes that most often go wrong, before NumPy's own.

    Inputs:
    - layer: the layer checking (named in the message)
    - Input: should be an (N, num_input) array
    - labels: optional, should hold N labels: (N,) class ids or (N, C) one-hot
    """
    shape = np.shape(Input)
    if len(shape) != 2 or shape[1] != num_input:
        hint = (" Flatten the images first: images.reshape(len(images), -1)."
                if len(shape) > 2 and int(np.prod(shape[1:])) == num_input else "")
        raise ValueError(f"{type(layer).__name__} expects Input of shape (batch_size, {num_input}), "
                         f"got {shape}.{hint}")
    if labels is not None and len(labels) != shape[0]:
        raise ValueError(f"{type(layer).__name__}: {shape[0]} inputs but {len(labels)} labels; "
                         f"there must be one label per input row")


def param_names_of(layer):
    """Names of a layer's parameters. A layer that does not list `param_names`
    is taken to be the course's (W, b) layer, so that a homework model written
    for the original framework works unchanged."""
    return getattr(layer, 'param_names', ('W', 'b'))


def match_dtype(layer, Input):
    """Give a layer's parameters the floating dtype of the data they meet.

    Training runs in float32 (twice the matrix-product speed of float64),
    gradient checks in float64; the parameters follow the data, so there is
    no silent float64 upcast on the training path.
    """
    if not np.issubdtype(Input.dtype, np.floating):
        return
    for name in param_names_of(layer):
        param = getattr(layer, name)
        if param.dtype != Input.dtype:
            setattr(layer, name, param.astype(Input.dtype))


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------

class Layer(object):
    """Base class: a layer without parameters that passes its input through.

    Subclasses override forward and backward; a layer with parameters sets
    `param_names` and `trainable = True`.
    """
    param_names = ()
    trainable = False
    training = True  # switched by Network.train() / Network.eval()

    def forward(self, Input):
        return Input

    def backward(self, delta):
        return delta


class FCLayer(Layer):
    """Fully connected layer, u = Input @ W + b (notes §2.1).

    Parameters W (num_input, num_output) and b (1, num_output), initialised
    as in the homework (xavier_init); gradients grad_W and grad_b.
    """
    param_names = ('W', 'b')

    def __init__(self, num_input, num_output, trainable=True, input_grad=True):
        """input_grad=False for the first layer of a network: there is no layer
        below to pass a delta to, so backward skips that matrix product."""
        self.num_input = num_input
        self.num_output = num_output
        self.trainable = trainable
        self.input_grad = input_grad
        self.W, self.b = xavier_init(num_input, num_output)

    def forward(self, Input):
        """Input (N, num_input) -> u (N, num_output); keeps Input for backward."""
        check_batch(self, Input, self.num_input)
        match_dtype(self, Input)
        self.Input = Input
        return affine_forward(Input, self.W, self.b)

    def backward(self, delta):
        """delta (N, num_output) -> delta of the layer below (N, num_input).

        Sets grad_W and grad_b; the delta passed down is delta @ W^T, the
        vector form of delta_i = sum_j delta_j w_ji (notes §2.3.3). Returns
        None when input_grad is False (the first layer of a network).
        """
        self.grad_W, self.grad_b = affine_grads(self.Input, delta)
        if not self.input_grad:
            return None
        ### BEGIN SOLUTION mlp
        return delta @ self.W.T
        ### END SOLUTION


class ReLU(Layer):
    """f(z) = max(0, z); f'(z) = 1 where z > 0, else 0 (notes §2.1.3)."""

    def forward(self, Input):
        ### BEGIN SOLUTION mlp
        self.active = Input > 0
        return Input * self.active
        ### END SOLUTION

    def backward(self, delta):
        ### BEGIN SOLUTION mlp
        return delta * self.active
        ### END SOLUTION


class Sigmoid(Layer):
    """f(z) = 1 / (1 + e^-z); f'(z) = f(z)(1 - f(z)) (notes §2.1.3)."""

    def forward(self, Input):
        ### BEGIN SOLUTION mlp
        # Written through tanh, 1/(1+e^-z) = (1 + tanh(z/2)) / 2, so that a
        # large negative z cannot overflow exp().
        self.output = 0.5 * (1 + np.tanh(0.5 * Input))
        return self.output
        ### END SOLUTION

    def backward(self, delta):
        ### BEGIN SOLUTION mlp
        return delta * self.output * (1 - self.output)
        ### END SOLUTION


class Tanh(Layer):
    """f(z) = tanh(z); f'(z) = 1 - f(z)^2 (notes §2.1.3)."""

    def forward(self, Input):
        ### BEGIN SOLUTION mlp
        self.output = np.tanh(Input)
        return self.output
        ### END SOLUTION

    def backward(self, delta):
        ### BEGIN SOLUTION mlp
        return delta * (1 - self.output ** 2)
        ### END SOLUTION


class SoftmaxCrossEntropy(object):
    """Criterion (loss layer): softmax followed by the mean cross-entropy.

    forward(logits (N, C), labels) -> loss (float); also sets .loss, .acc.
    backward() -> dE/dlogits (N, C).
    Labels are (N,) integer class ids or (N, C) one-hot rows.
    """

    def forward(self, logits, labels):
        self.labels = labels
        self.loss, self.prob = softmax_cross_entropy(logits, labels)
        self.acc = accuracy(logits, labels)
        return self.loss

    def backward(self):
        return softmax_cross_entropy_backward(self.prob, self.labels)


class Network(object):
    """A stack of layers applied in order (notes §2.3.6, modular programming)."""

    def __init__(self, layers):
        self.layers = list(layers)

    def forward(self, Input):
        """Input (N, D) -> output of the last layer."""
        for layer in self.layers:
            Input = layer.forward(Input)
        return Input

    def backward(self, delta):
        """Back-propagates delta from the last layer to the first (l = L, ..., 1)."""
        for layer in reversed(self.layers):
            delta = layer.backward(delta)
        return delta

    def train(self):
        """Training mode: dropout and batch norm (when present) use the batch."""
        for layer in self.layers:
            layer.training = True

    def eval(self):
        """Evaluation mode: deterministic layers, for validation and test."""
        for layer in self.layers:
            layer.training = False


class Classifier(object):
    """A network and a criterion behind the homework's model interface.

    `loss, acc = model.forward(images, labels)` then `model.gradient_computing()`:
    the same three beats as the homework's SoftmaxCrossEntropyLoss, so one
    Solver and one optimizer train both. `layers` exposes the network's
    layers to the optimizer.
    """

    def __init__(self, network, criterion=None):
        self.network = network
        self.criterion = criterion if criterion is not None else SoftmaxCrossEntropy()

    @property
    def layers(self):
        return self.network.layers

    def forward(self, Input, labels):
        loss = self.criterion.forward(self.network.forward(Input), labels)
        return loss, self.criterion.acc

    def gradient_computing(self):
        self.network.backward(self.criterion.backward())

    def train(self):
        self.network.train()

    def eval(self):
        self.network.eval()


def build_mlp(num_input, hidden_sizes, num_output, activation=ReLU):
    """Classifier for an MLP: FC -> activation for each hidden size, then FC.

    build_mlp(784, [], 10) is the homework's softmax regression;
    build_mlp(784, [256], 10) has one hidden layer of 256 ReLU units.
    The first layer does not compute a delta for the input (input_grad=False).
    """
    layers, width = [], num_input
    for hidden in hidden_sizes:
        layers += [FCLayer(width, hidden, input_grad=bool(layers)), activation()]
        width = hidden
    layers.append(FCLayer(width, num_output, input_grad=bool(layers)))
    return Classifier(Network(layers))


# ---------------------------------------------------------------------------
# Parameters, as an optimizer sees them
# ---------------------------------------------------------------------------

def trainable_layers(model):
    """The layers whose parameters an optimizer updates.

    A model with a `layers` attribute (Network, Classifier) contributes its
    trainable layers; any other model is a single layer, as the homework's
    SoftmaxCrossEntropyLoss is.
    """
    layers = getattr(model, 'layers', [model])
    return [layer for layer in layers if getattr(layer, 'trainable', False)]


def parameters(model):
    """Yield (key, param, grad) for every trainable parameter of the model.

    key names the parameter for optimizer state ('0.W', '0.b', '2.W', ...).
    """
    for index, layer in enumerate(trainable_layers(model)):
        for name in param_names_of(layer):
            param = getattr(layer, name)
            grad = getattr(layer, 'grad_' + name, None)
            where = f"{type(layer).__name__}.grad_{name}"
            if grad is None:
                raise RuntimeError(f"{where} is not set: compute the gradients "
                                   "(model.gradient_computing() or backward()) before optimizer.step()")
            if np.shape(grad) != np.shape(param):
                raise ValueError(f"{where} has shape {np.shape(grad)} but {name} has shape "
                                 f"{np.shape(param)}; a gradient must have its parameter's shape")
            yield f"{index}.{name}", param, grad


# ---------------------------------------------------------------------------
# Convolutional layers (notes §3): convolution, pooling, reshape.
# The maths (a loop reference and the vectorised form) is in im2col.py.
# Feature maps are (N, C, H, W) arrays.
# ---------------------------------------------------------------------------

def _check_positive_int(owner, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_pad(owner, kernel_size, pad):
    """pad < kernel_size, as in the course: a wider padding only adds outputs
    that see nothing but zeros."""
    pad = _check_positive_int(owner, 'pad', pad, minimum=0)
    if pad >= kernel_size:
        raise ValueError(f"{owner}: pad ({pad}) must be smaller than kernel_size ({kernel_size}); "
                         f"pad = (kernel_size - 1) // 2 = {(kernel_size - 1) // 2} keeps the image size")
    return pad


class ConvLayer(Layer):
    """Convolution, stride 1, with zero padding (notes §3).

    Parameters W (filters, inputs, k, k) and b (filters,); gradients grad_W
    and grad_b. forward takes (N, inputs, H, W) and returns
    (N, filters, H + 2·pad - k + 1, W + 2·pad - k + 1).
    """
    param_names = ('W', 'b')

    def __init__(self, inputs, filters, kernel_size, pad, trainable=True, init='course',
                 input_grad=True):
        """init names the initialisation of W (layers.init_weights), with
        fan-in inputs·k·k and fan-out filters·k·k; b starts at zero.
        input_grad=False for the first layer of a network: backward then
        skips the delta for the input, which no layer below needs."""
        owner = 'ConvLayer'
        self.inputs = _check_positive_int(owner, 'inputs', inputs)
        self.filters = _check_positive_int(owner, 'filters', filters)
        self.kernel_size = _check_positive_int(owner, 'kernel_size', kernel_size)
        self.pad = _check_pad(owner, self.kernel_size, pad)
        self.trainable = trainable
        self.input_grad = input_grad
        k = self.kernel_size
        self.W = _conv_init(init, (filters, inputs, k, k), fan_in=inputs * k * k, fan_out=filters * k * k)
        self.b = np.zeros(filters)

    def forward(self, Input):
        """Input (N, inputs, H, W) -> (N, filters, H', W'); keeps the im2col columns."""
        im2col.check_images(Input, 'ConvLayer input')
        if Input.shape[1] != self.inputs:
            raise ValueError(f"ConvLayer expects {self.inputs} input channel(s), got an input of "
                             f"shape {Input.shape} with {Input.shape[1]}")
        match_dtype(self, Input)
        self.input_shape = Input.shape
        out, self.cols = im2col.conv_forward(Input, self.W, self.b, self.pad)
        return out

    def backward(self, delta):
        """delta (N, filters, H', W') -> delta of the layer below (N, inputs, H, W),
        or None when input_grad is False; sets grad_W and grad_b."""
        delta_below, self.grad_W, self.grad_b = im2col.conv_backward(
            delta, self.cols, self.input_shape, self.W, self.pad, self.input_grad)
        return delta_below


class MaxPoolingLayer(Layer):
    """Max pooling over k x k windows, stride k, after zero padding by pad.

    (N, C, H, W) -> (N, C, (H + 2·pad) // k, (W + 2·pad) // k).
    """

    def __init__(self, kernel_size, pad=0):
        self.kernel_size = _check_positive_int('MaxPoolingLayer', 'kernel_size', kernel_size)
        self.pad = _check_pad('MaxPoolingLayer', self.kernel_size, pad)

    def forward(self, Input):
        im2col.check_images(Input, 'MaxPoolingLayer input')
        self.output, self.input_padded = im2col.max_pool_forward(Input, self.kernel_size, self.pad)
        return self.output

    def backward(self, delta):
        return im2col.max_pool_backward(delta, self.output, self.input_padded, self.kernel_size, self.pad)


class AvgPoolingLayer(Layer):
    """Average pooling over k x k windows, stride k, after zero padding by pad.

    (N, C, H, W) -> (N, C, (H + 2·pad) // k, (W + 2·pad) // k).
    """

    def __init__(self, kernel_size, pad=0):
        self.kernel_size = _check_positive_int('AvgPoolingLayer', 'kernel_size', kernel_size)
        self.pad = _check_pad('AvgPoolingLayer', self.kernel_size, pad)

    def forward(self, Input):
        im2col.check_images(Input, 'AvgPoolingLayer input')
        self.input_shape = Input.shape
        return im2col.avg_pool_forward(Input, self.kernel_size, self.pad)

    def backward(self, delta):
        return im2col.avg_pool_backward(delta, self.input_shape, self.kernel_size, self.pad)


class ReshapeLayer(Layer):
    """Reshapes every sample of a batch, e.g. feature maps (N, 16, 7, 7) to rows (N, 784).

    input_shape and output_shape describe one sample, (16, 7, 7) and (784,).
    The course's form with the batch size first, ReshapeLayer((100, 16, 7, 7),
    (100, 784)), is accepted too: the leading batch size is then ignored, so
    the layer works for a smaller last batch and evaluation batches of any size.
    """

    def __init__(self, input_shape, output_shape):
        self.input_shape, self.output_shape = tuple(input_shape), tuple(output_shape)
        if int(np.prod(self.input_shape)) != int(np.prod(self.output_shape)):
            raise ValueError(f"ReshapeLayer: input_shape {self.input_shape} and output_shape "
                             f"{self.output_shape} must hold the same number of values")

    def _sample_shapes(self, Input):
        """(input, output) shapes of one sample, for the given batch."""
        if Input.shape[1:] == self.input_shape:
            return self.input_shape, self.output_shape
        if Input.shape[1:] == self.input_shape[1:]:      # the course's batch-first form
            return self.input_shape[1:], self.output_shape[1:]
        raise ValueError(f"ReshapeLayer expects inputs of shape (N,) + {self.input_shape}, "
                         f"got {Input.shape}")

    def forward(self, Input):
        """Input (N,) + input_shape -> (N,) + output_shape, a view where possible."""
        _, sample_out = self._sample_shapes(Input)
        self.batch_input_shape = Input.shape
        return Input.reshape((len(Input),) + sample_out)

    def backward(self, delta):
        """delta (N,) + output_shape -> (N,) + input_shape."""
        return delta.reshape(self.batch_input_shape)


def _conv_init(init, shape, fan_in, fan_out):
    """Provisional until layers.init_weights lands: the course's scaled Xavier."""
    std = (2 / (fan_in + fan_out)) ** 0.5 * 2 ** 0.5
    return np.random.normal(0, std, shape)
