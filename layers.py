"""Layers and networks: the building blocks of a multi-layer perceptron (notes §2).

Letter conventions (as in CS231n's layers.py): N is the batch size, D the number
of input features of a layer, M its number of outputs. Samples are rows, so a
batch of inputs is an (N, D) array and the course's u = W·y + b (notes §2.1)
becomes u = Input @ W + b with W of shape (D, M).

Every layer follows one contract (notes §2.3.6, "模块化编程"):

    out = layer.forward(Input)        # keeps what backward needs
    delta_below = layer.backward(delta)
        # delta = dE/d(out); sets layer.grad_<name> for every parameter
        # and returns dE/d(Input), the delta of the layer below (notes §2.3.3)

A layer with parameters lists them in `param_names`; the gradient of the
parameter `W` sits beside it as `grad_W` (the course's naming). `weight_names`
lists the parameters that weight decay applies to (weights, never biases).

The file reads top to bottom:
1. initialisation by name (notes §2.5.1),
2. the maths of the fully connected layer, written once (the homework model
   in loss.py calls the same functions),
3. input checks and dtype handling,
4. the layers: FCLayer, ReLULayer, SigmoidLayer, TanhLayer,
5. Network (a stack of layers) and Classifier (a network with a loss, behind
   the homework's model interface).
The losses live in loss.py, the optimisers in optimizer.py.
"""

import numpy as np


# ---------------------------------------------------------------------------
# 1. Initialisation (notes §2.5.1)
# ---------------------------------------------------------------------------

INITS = ('course', 'gaussian', 'xavier', 'msra')
ACTIVATIONS = ('relu', 'sigmoid', 'tanh')


def init_std(init, fan_in, fan_out, actFunction='relu', std=None):
    """The standard deviation of the zero-mean Gaussian that W is drawn from.

    - 'course': the homework framework's rule, sqrt(2 / (fan_in + fan_out))
      (Glorot and Bengio's average of the two fans), times sqrt(2) when a ReLU
      follows the layer, which zeroes half of its inputs.
    - 'gaussian': a fixed std, 0.01 unless `std` is given.
    - 'xavier': 1 / sqrt(fan_in), as the notes define it.
    - 'msra' (He et al.): sqrt(2 / fan_in). The notes print 2 / sqrt(fan_in),
      a typo: the variance, not the std, is 2 / fan_in, which keeps the
      variance of ReLU activations constant from layer to layer.
    fan_in and fan_out count every input and output of one unit (a
    convolution counts its kernel: channels * k * k).
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    if actFunction not in ACTIVATIONS:
        raise ValueError(f"actFunction must be one of {', '.join(map(repr, ACTIVATIONS))} (it chooses "
                         f"the initial scale); got {actFunction!r}")
    if std is not None and init != 'gaussian':
        raise ValueError(f"std={std} only applies to init='gaussian' (init={init!r} computes its own)")
    if init == 'course':
        raw_std = (2 / (fan_in + fan_out)) ** 0.5
        return raw_std * (2 ** 0.5) if actFunction == 'relu' else raw_std
    if init == 'gaussian':
        return 0.01 if std is None else float(std)
    if init == 'xavier':
        return (1 / fan_in) ** 0.5
    return (2 / fan_in) ** 0.5  # msra


def init_weights(init, shape, fan_in, fan_out, actFunction='relu', std=None):
    """W of the given shape, drawn from N(0, init_std(...)) with NumPy's global
    generator (np.random.seed makes it reproducible, as in the course)."""
    return np.random.normal(0, init_std(init, fan_in, fan_out, actFunction, std), shape)


def init_bias(init, shape, fan_in, fan_out, actFunction='relu', std=None):
    """Biases start at zero, except in the homework's own rule ('course'),
    which draws them from the same Gaussian as the weights."""
    if init == 'course':
        return init_weights(init, shape, fan_in, fan_out, actFunction, std)
    return np.zeros(shape)


def xavier_init(num_input, num_output):
    """The homework's initialisation of a fully connected layer followed by ReLU.

    W and b are drawn from N(0, std) with std = sqrt(2 / (num_input + num_output))
    times sqrt(2), exactly as in the original homework framework.

    Returns (W (num_input, num_output), b (1, num_output)), float64.
    """
    W = init_weights('course', (num_input, num_output), num_input, num_output)
    b = init_bias('course', (1, num_output), num_input, num_output)
    return W, b


# ---------------------------------------------------------------------------
# 2. The maths of a fully connected layer, written once
# ---------------------------------------------------------------------------

def affine_forward(Input, W, b):
    """The affine map of a fully connected layer, u = Input @ W + b.

    Inputs:
    - Input: (N, D) batch of inputs
    - W: (D, M) weights
    - b: (1, M) biases, broadcast over the batch
    Returns u: (N, M)
    """
    ############################################################################
    # TODO: Put your code here
    # Apply linear transformation(Wx+b) to Input, and return results.
    # (Samples are rows here, so the course's Wx+b is Input @ W + b.)
    ### BEGIN SOLUTION mlp
    return Input @ W + b
    ### END SOLUTION
    ############################################################################


def affine_grads(Input, delta):
    """Gradients of the loss with respect to W and b of an affine map.

    With u = Input @ W + b, dE/dW = Input^T @ delta and dE/db = the sum of delta
    over the batch (notes §2.3.4). The loss E is already a batch mean, so
    delta carries the 1/N and these sums are the averaged gradients.

    Inputs:
    - Input: (N, D) the input of the forward pass
    - delta: (N, M) dE/du, the local sensitivity of the layer's outputs
    Returns (grad_W (D, M), grad_b (1, M))
    """
    ############################################################################
    # TODO: Put your code here
    # Calculate the gradient of W and b using the later layer's gradient: delta
    ### BEGIN SOLUTION mlp
    grad_W = Input.T @ delta
    grad_b = delta.sum(axis=0, keepdims=True)
    return grad_W, grad_b
    ### END SOLUTION
    ############################################################################


def affine_input_delta(delta, W):
    """The delta passed to the layer below, dE/dInput = delta @ W^T: the
    vector form of delta_i = sum_j delta_j w_ji (notes §2.3.3).

    Inputs:
    - delta: (N, M) dE/du
    - W: (D, M) weights
    Returns (N, D)
    """
    ############################################################################
    # TODO: Put your code here
    # Calculate the delta of the layer below (the gradient with respect to Input)
    ### BEGIN SOLUTION mlp
    return delta @ W.T
    ### END SOLUTION
    ############################################################################


# ---------------------------------------------------------------------------
# 3. Input checks and dtypes
# ---------------------------------------------------------------------------

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


def check_trainable(layer, trainable):
    """The course passes `trainable` positionally; a string there is a mistake."""
    if not isinstance(trainable, (bool, np.bool_)):
        raise TypeError(f"{type(layer).__name__}: trainable must be True or False, got {trainable!r}"
                        + (" (an activation name goes in actFunction=...)" if isinstance(trainable, str)
                           else ""))
    return bool(trainable)


# ---------------------------------------------------------------------------
# 4. Layers
# ---------------------------------------------------------------------------

class Layer(object):
    """Base class: a layer without parameters that passes its input through.

    Subclasses override forward and backward; a layer with parameters sets
    `param_names`, `weight_names` and `trainable = True`.
    """
    param_names = ()       # parameters the optimizer updates, e.g. ('W', 'b')
    weight_names = ('W',)  # of those, the ones weight decay applies to
    trainable = False
    training = True        # switched by Network.train() / Network.eval()

    def forward(self, Input):
        return Input

    def backward(self, delta):
        return delta

    def __repr__(self):
        return f"{type(self).__name__}()"


class FCLayer(Layer):
    """Fully connected layer, u = Input @ W + b (notes §2.1).

    Parameters W (num_input, num_output) and b (1, num_output); gradients
    grad_W and grad_b, set by backward.
    """
    param_names = ('W', 'b')

    def __init__(self, num_input, num_output, actFunction='relu', trainable=True, init='course',
                 std=None, input_grad=True):
        """
        Apply a linear transformation to the incoming data: y = Wx + b
        Args:
            num_input: size of each input sample (D)
            num_output: size of each output sample (M)
            actFunction: the activation that follows, 'relu', 'sigmoid' or 'tanh';
                as in the course it only chooses the initial scale of init='course'
            trainable: whether if this layer is trainable
            init: 'course' (the homework's rule), 'gaussian' (std 0.01, or `std`),
                'xavier' or 'msra' (notes §2.5.1; see init_std)
            input_grad: False for the first layer of a network, which has no
                layer below to pass a delta to: backward skips that product
        """
        self.num_input = num_input
        self.num_output = num_output
        self.actFunction = actFunction
        self.trainable = check_trainable(self, trainable)
        self.init = init
        self.input_grad = input_grad
        shape = (num_input, num_output)
        self.W = init_weights(init, shape, num_input, num_output, actFunction, std)
        self.b = init_bias(init, (1, num_output), num_input, num_output, actFunction, std)

    def forward(self, Input):
        """Input (N, num_input) -> u (N, num_output); keeps Input for backward."""
        check_batch(self, Input, self.num_input)
        match_dtype(self, Input)
        self.Input = Input
        return affine_forward(Input, self.W, self.b)

    def backward(self, delta):
        """delta (N, num_output) -> delta of the layer below (N, num_input).

        Sets grad_W and grad_b. With input_grad=False (the first layer of a
        network) it returns None: nothing below needs the delta.
        """
        self.grad_W, self.grad_b = affine_grads(self.Input, delta)
        return affine_input_delta(delta, self.W) if self.input_grad else None

    def __repr__(self):
        return f"FCLayer({self.num_input}, {self.num_output}, actFunction={self.actFunction!r}, init={self.init!r})"


class ReLULayer(Layer):
    """f(z) = max(0, z); f'(z) = 1 where z > 0, else 0 (notes §2.1.3)."""

    def forward(self, Input):
        """Input (N, ...) -> max(0, Input), same shape; keeps the mask z > 0."""
        ############################################################################
        # TODO: Put your code here
        # Apply ReLU activation function to Input, and return results.
        ### BEGIN SOLUTION mlp
        self.active = Input > 0
        return Input * self.active
        ### END SOLUTION
        ############################################################################

    def backward(self, delta):
        """delta (N, ...) -> delta * f'(z), same shape."""
        ############################################################################
        # TODO: Put your code here
        # Calculate the gradient using the later layer's gradient: delta
        ### BEGIN SOLUTION mlp
        return delta * self.active
        ### END SOLUTION
        ############################################################################


class SigmoidLayer(Layer):
    """f(z) = 1 / (1 + e^-z); f'(z) = f(z)(1 - f(z)) (notes §2.1.3)."""

    def forward(self, Input):
        """Input (N, ...) -> sigmoid(Input), same shape; keeps the output."""
        ############################################################################
        # TODO: Put your code here
        # Apply Sigmoid activation function to Input, and return results.
        ### BEGIN SOLUTION mlp
        # Written through tanh, 1/(1+e^-z) = (1 + tanh(z/2)) / 2, so that a
        # large negative z cannot overflow exp().
        self.output = 0.5 * (1 + np.tanh(0.5 * Input))
        return self.output
        ### END SOLUTION
        ############################################################################

    def backward(self, delta):
        """delta (N, ...) -> delta * f(z)(1 - f(z)), same shape."""
        ############################################################################
        # TODO: Put your code here
        # Calculate the gradient using the later layer's gradient: delta
        ### BEGIN SOLUTION mlp
        return delta * self.output * (1 - self.output)
        ### END SOLUTION
        ############################################################################


class TanhLayer(Layer):
    """f(z) = tanh(z); f'(z) = 1 - f(z)^2 (notes §2.1.3). Given as a worked
    example of an activation layer."""

    def forward(self, Input):
        """Input (N, ...) -> tanh(Input), same shape; keeps the output."""
        self.output = np.tanh(Input)
        return self.output

    def backward(self, delta):
        """delta (N, ...) -> delta * (1 - tanh(z)^2), same shape."""
        return delta * (1 - self.output ** 2)


# ---------------------------------------------------------------------------
# 5. Networks
# ---------------------------------------------------------------------------

class Network(object):
    """A stack of layers applied in order (notes §2.3.6, modular programming).

        net = Network()
        net.add(FCLayer(784, 128))
        net.add(ReLULayer())
        net.add(FCLayer(128, 10))
        logits = net.forward(images)          # (N, 784) -> (N, 10)
        net.backward(criterion.backward())    # sets every layer's gradients

    Printing a network lists its layers, their output shapes (after a first
    forward pass) and the number of parameters.
    """

    def __init__(self, layers=()):
        self.layerList = []
        self.numLayer = 0
        self.output_shapes = []   # of the last forward pass, one per layer
        for layer in layers:
            self.add(layer)

    def add(self, layer):
        """Append a layer; returns the network, so that calls can be chained."""
        if self.numLayer and getattr(layer, 'input_grad', True) is False:
            raise ValueError(f"{layer!r} was built with input_grad=False, which only the first layer "
                             "of a network may use (a layer above it needs the delta it returns); "
                             "build it with input_grad=True")
        self.layerList.append(layer)
        self.numLayer += 1
        return self

    def forward(self, x):
        """x (N, ...) -> the output of the last layer; records each output shape."""
        shapes = []
        for layer in self.layerList:
            x = layer.forward(x)
            shapes.append(np.shape(x)[1:])
        self.output_shapes = shapes
        return x

    def backward(self, delta):
        """Back-propagates delta from the last layer to the first (l = L, ..., 1).

        Returns the delta for the network's input (None when the first layer
        skips it, see FCLayer's input_grad)."""
        for layer in reversed(self.layerList):
            delta = layer.backward(delta)
        return delta

    def train(self):
        """Training mode: dropout and batch norm (when present) use the batch."""
        for layer in self.layerList:
            layer.training = True

    def eval(self):
        """Evaluation mode: deterministic layers, for validation and test."""
        for layer in self.layerList:
            layer.training = False

    def num_params(self):
        """Number of trainable numbers in the network."""
        return sum(int(np.size(getattr(layer, name))) for layer in self.layerList
                   if getattr(layer, 'trainable', False) for name in param_names_of(layer))

    def __repr__(self):
        lines = [f"Network with {self.numLayer} layers and {self.num_params():,} trainable parameters"]
        for index, layer in enumerate(self.layerList):
            shape = (f"(N, {', '.join(map(str, self.output_shapes[index]))})"
                     if index < len(self.output_shapes) else "(run a batch through to see)")
            count = sum(int(np.size(getattr(layer, name))) for name in param_names_of(layer)) \
                if getattr(layer, 'param_names', ()) else 0
            frozen = '' if getattr(layer, 'trainable', False) or not count else ' (frozen)'
            lines.append(f"  {index:2d}  {layer!r:<58} -> {shape:<16} {count:>9,} params{frozen}")
        return '\n'.join(lines)


class Classifier(object):
    """A network and a criterion (loss layer) behind the homework's model interface.

        loss, acc = model.forward(images, labels)
        model.gradient_computing()
        optimizer.step()

    the same three beats as the homework's SoftmaxCrossEntropyLoss, so one
    Solver and one optimizer train both.
    """

    def __init__(self, network, criterion):
        self.network = network
        self.criterion = criterion

    def forward(self, Input, labels):
        """Input (N, ...), labels (N,) or (N, C) -> (loss, acc) as floats."""
        loss = self.criterion.forward(self.network.forward(Input), labels)
        return loss, self.criterion.acc

    def predict(self, Input):
        """The network's output (N, C) for a batch, e.g. class scores."""
        return self.network.forward(Input)

    def gradient_computing(self):
        self.network.backward(self.criterion.backward())

    def train(self):
        self.network.train()

    def eval(self):
        self.network.eval()

    def __repr__(self):
        return f"{self.network!r}\n  loss: {type(self.criterion).__name__}"


def layers_of(model):
    """Every layer of a model (what an optimizer or a diagnostic walks over): a Classifier's network's layerList, a
    Network's layerList; any other model (the homework's
    SoftmaxCrossEntropyLoss) is a single layer."""
    model = getattr(model, 'network', model)
    return list(getattr(model, 'layerList', [model]))


def trainable_layers(model):
    """The layers whose parameters an optimizer updates (trainable = True)."""
    return [layer for layer in layers_of(model) if getattr(layer, 'trainable', False)]


ACTIVATION_LAYERS = {'relu': ReLULayer, 'sigmoid': SigmoidLayer, 'tanh': TanhLayer}


def build_mlp(num_input, hidden_sizes, num_output, activation='relu', init='course'):
    """Network for an MLP: FC -> activation for each hidden size, then FC.

    build_mlp(784, [256], 10) has one hidden layer of 256 ReLU units. The
    first layer does not compute a delta for the input (input_grad=False).
    """
    if activation not in ACTIVATION_LAYERS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATION_LAYERS)}")
    network, width = Network(), num_input
    for hidden in hidden_sizes:
        network.add(FCLayer(width, hidden, activation, init=init, input_grad=network.numLayer > 0))
        network.add(ACTIVATION_LAYERS[activation]())
        width = hidden
    # The output layer feeds the loss, not an activation: 'course' scales it
    # as the homework does for its single layer (the ReLU rule).
    network.add(FCLayer(width, num_output, init=init, input_grad=network.numLayer > 0))
    return network
