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
lists the parameters that weight decay applies to (weights, never biases), and
`state_names` the arrays saved with the parameters but never trained (batch
norm's running statistics). layer.params() gives {name: array}.

The file reads top to bottom:
1. initialisation by name (notes §2.5.1),
2. the maths of the fully connected layer, written once (the homework model
   in loss.py calls the same functions),
3. input checks and dtype handling,
4. the layers: FCLayer, ReLULayer, SigmoidLayer, TanhLayer,
5. Network (a stack of layers) and Classifier (a network with a loss, behind
   the homework's model interface), and the parameters and state of any
   model by name (parameter_slots, state_dict, load_state_dict, predict),
6. regularisation and normalisation: DropoutLayer, BatchNormLayer,
   LayerNormLayer, GroupNormLayer, InstanceNormLayer and add_regularisation
   (notes §4.2.3, §4.3),
7. the convolutional layers, ConvLayer, MaxPoolingLayer, AvgPoolingLayer and
   ReshapeLayer (notes §3; their maths is in im2col.py).
The losses live in loss.py, the optimisers in optimizer.py.
"""

import numpy as np

try:
    import im2col      # the convolution maths (the cnn assignment); not in the other handouts
except ModuleNotFoundError:
    im2col = None


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


def state_names_of(layer):
    """Names of a layer's state: arrays that are saved with the parameters but
    never trained, such as batch norm's running statistics."""
    return tuple(getattr(layer, 'state_names', ()))


def match_dtype(layer, Input):
    """Give a layer's parameters the floating dtype of the data they meet.

    Training runs in float32 (twice the matrix-product speed of float64),
    gradient checks in float64; the parameters follow the data, so there is
    no silent float64 upcast on the training path.
    """
    if np.issubdtype(Input.dtype, np.integer) or Input.dtype == bool:
        raise TypeError(f"{type(layer).__name__} got {Input.dtype} input (raw pixels 0-255 train badly): "
                        f"scale the images to floats first, e.g. images.astype(np.float32) / 255")
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

    def params(self):
        """{name: array} of the layer's parameters, e.g. {'W': W, 'b': b} (the arrays themselves)."""
        return {name: getattr(self, name) for name in param_names_of(self)}

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

class Model(object):
    """What every model shares (Network, Classifier, the homework's
    SoftmaxCrossEntropyLoss): its parameters and state by name, through
    parameter_slots (section 5)."""

    def params(self):
        """{key: array} of every parameter, e.g. '0.W' in a network, 'W' in the
        homework model (the arrays themselves)."""
        return named_arrays(self, state=False)

    def state_dict(self):
        """A copy of every parameter and every piece of layer state, by key."""
        return state_dict(self)

    def load_state_dict(self, arrays):
        """Set every parameter and piece of state from a dict made by state_dict()."""
        load_state_dict(self, arrays)


class Network(Model):
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
        return sum(int(np.size(array)) for array in named_arrays(self, state=False, trainable_only=True).values())

    def __repr__(self):
        lines = [f"Network with {self.numLayer} layers and {self.num_params():,} trainable parameters"]
        for index, layer in enumerate(self.layerList):
            shape = (f"(N, {', '.join(map(str, self.output_shapes[index]))})"
                     if index < len(self.output_shapes) else "(run a batch through to see)")
            count = sum(int(np.size(array)) for array in named_arrays(layer, state=False).values())
            frozen = '' if getattr(layer, 'trainable', False) or not count else ' (frozen)'
            lines.append(f"  {index:2d}  {layer!r:<58} -> {shape:<16} {count:>9,} params{frozen}")
        return '\n'.join(lines)


class Classifier(Model):
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


# ---------------------------------------------------------------------------
# Parameters and state by name: the one way every part of the framework
# (optimisers, early stopping, checkpoints, pictures) finds them
# ---------------------------------------------------------------------------

def parameter_slots(model, state=False, trainable_only=False):
    """Yield (key, layer, name) for every parameter of a model (and its state
    with state=True), in layer order.

    The key is '<layer index>.<name>' for a network ('0.W', '3.running_mean')
    and the bare name for a single-layer model such as the homework's ('W').
    """
    layers = layers_of(model)
    single = len(layers) == 1 and not hasattr(getattr(model, 'network', model), 'layerList')
    for index, layer in enumerate(layers):
        if trainable_only and not getattr(layer, 'trainable', False):
            continue
        names = tuple(param_names_of(layer)) + (state_names_of(layer) if state else ())
        for name in names:
            yield (name if single else f'{index}.{name}'), layer, name


def named_arrays(model, state=True, trainable_only=False):
    """{key: array} of a model's parameters and state (the arrays themselves)."""
    return {key: getattr(layer, name) for key, layer, name in parameter_slots(model, state, trainable_only)}


def state_dict(model):
    """A copy of every parameter and piece of state of any model, by key."""
    return {key: np.array(array, copy=True) for key, array in named_arrays(model).items()}


def load_state_dict(model, arrays, source='the state dict'):
    """Set a model's parameters and state from {key: array}; the keys and the
    shapes must be exactly the model's (a clear error names what differs)."""
    slots = {key: (layer, name) for key, layer, name in parameter_slots(model, state=True)}
    missing, unexpected = sorted(set(slots) - set(arrays)), sorted(set(arrays) - set(slots))
    if missing or unexpected:
        raise ValueError(f"{source} does not fit this {type(model).__name__}: missing {missing or 'nothing'}, "
                         f"unexpected {unexpected or 'nothing'}; build the same architecture first")
    for key, (layer, name) in slots.items():
        if np.shape(arrays[key]) != np.shape(getattr(layer, name)):
            raise ValueError(f"{source}: {key} has shape {np.shape(arrays[key])}, but this model's is "
                             f"{np.shape(getattr(layer, name))}; build the same architecture first")
    for key, (layer, name) in slots.items():
        setattr(layer, name, np.array(arrays[key], copy=True))


def predict(model, Input):
    """Class scores (N, C) of any model: its own predict(), or, for a homework
    model written for the original framework (which has none), Input @ W + b."""
    if hasattr(model, 'predict'):
        return model.predict(Input)
    return Input @ model.W + model.b


def describe(model):
    """The architecture of a model as plain data (JSON): per layer, its class
    and the shapes of its parameters and state."""
    return [{'layer': type(layer).__name__,
             'arrays': {name: list(np.shape(getattr(layer, name)))
                        for name in tuple(param_names_of(layer)) + state_names_of(layer)}}
            for layer in layers_of(model)]


ACTIVATION_LAYERS = {'relu': ReLULayer, 'sigmoid': SigmoidLayer, 'tanh': TanhLayer}


def build_mlp(num_input, hidden_sizes, num_output, activation='relu', init='course'):
    """Network for an MLP: FC -> activation for each hidden size, then FC.

    The course's network: build_mlp(784, [128], 10, activation) is
    FCLayer(784, 128) -> activation layer -> FCLayer(128, 10), every FCLayer
    with its defaults (actFunction='relu', init='course'), whatever the
    activation layer. The notebook, the report and the Solver all build
    their MLPs here, so the same setting gives the same numbers everywhere.
    The first layer does not compute a delta for the input (input_grad=False).
    """
    if activation not in ACTIVATION_LAYERS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATION_LAYERS)}")
    network, width = Network(), num_input
    for hidden in hidden_sizes:
        network.add(FCLayer(width, hidden, init=init, input_grad=network.numLayer > 0))
        network.add(ACTIVATION_LAYERS[activation]())
        width = hidden
    network.add(FCLayer(width, num_output, init=init, input_grad=network.numLayer > 0))
    return network


# ---------------------------------------------------------------------------
# 6. Regularisation and normalisation layers (notes §4.2.3, §4.3)
#
# Shapes: (N, D) for fully connected activations, (N, C, H, W) for feature
# maps. None of these layers has weights to decay: gamma and beta are
# scale and shift (weight_names = ()), so weight decay never touches them.
# Each one honours `training` (set by Network.train() / Network.eval()).
# ---------------------------------------------------------------------------

def normalize_forward(x, axes, eps):
    """x_hat = (x - mean) / sqrt(var + eps), the statistics taken over `axes`
    (notes §4.3.3). The variance is the biased one, mean((x - mean)^2).

    Returns (x_hat, mean, var, inv_std), the last three with kept dimensions.
    (Means are written as sum / m, m the values per group: the same numbers
    as np.mean, with less overhead on small arrays.)
    """
    m = _group_size(x, axes)
    mean = x.sum(axis=axes, keepdims=True) / m
    x_hat = x - mean
    var = np.square(x_hat).sum(axis=axes, keepdims=True) / m
    inv_std = 1 / np.sqrt(var + eps)
    x_hat *= inv_std                                  # in place: centred -> normalised
    return x_hat, mean, var, inv_std


def normalize_backward(grad_x_hat, x_hat, inv_std, axes):
    """dE/dx from dE/dx_hat, for x_hat normalised with statistics over `axes`.

    Both the mean and the variance depend on every x of the group, so the
    chain rule gives, with averages over the m values of a group,
        dE/dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)),  g = dE/dx_hat.
    """
    m = _group_size(grad_x_hat, axes)
    mean_g = grad_x_hat.sum(axis=axes, keepdims=True) / m
    mean_g_x_hat = (grad_x_hat * x_hat).sum(axis=axes, keepdims=True) / m
    grad_x = grad_x_hat - mean_g
    grad_x -= x_hat * mean_g_x_hat
    grad_x *= inv_std
    return grad_x


def _group_size(x, axes):
    """Number of values in each group of a reduction over `axes`."""
    return int(np.prod([x.shape[axis] for axis in axes]))


def _check_features(layer, Input, num_features):
    """Clear error unless Input is (N, num_features) or (N, num_features, H, W)."""
    if Input.ndim not in (2, 4) or Input.shape[1] != num_features:
        raise ValueError(f"{type(layer).__name__}({num_features}) expects Input of shape "
                         f"(N, {num_features}) or (N, {num_features}, H, W), got {Input.shape}")


def _per_feature(vector, ndim):
    """A (C,) vector shaped to broadcast against (N, C) or (N, C, H, W)."""
    return vector.reshape((1, -1) + (1,) * (ndim - 2))


class DropoutLayer(Layer):
    """Dropout (notes §4.2.3): each unit is dropped (set to 0) with probability p.

    Inverted dropout: during training the units that survive are divided by
    (1 - p),
        out = Input * mask / (1 - p),  mask[i] = 1 with probability 1 - p, else 0,
    so that E[out] = Input and evaluation is the identity. This is the
    notes' test-time weight scaling moved to training time: the notes keep
    the training output Input * mask and multiply the weights by (1 - p) at
    test time; the next layer then sees W(1 - p) @ Input at test and
    W @ (Input * mask) at training, whose mean is the same W(1 - p) @ Input.
    Dividing by (1 - p) during training instead gives the same ratio between
    training and test, so a network trained one way equals the other with
    W scaled by (1 - p), and the test-time network needs no change.

    Works on any shape, (N, D) or (N, C, H, W) (each value dropped on its own).
    Inputs: p in [0, 1), the probability of DROPPING a unit (0.5 in the notes
    for hidden layers, about 0.2 for lower layers); seed for its own random
    generator, so that runs repeat exactly.
    """

    def __init__(self, p=0.5, seed=None):
        if not (isinstance(p, (int, float)) and 0 <= p < 1):
            raise ValueError(f"DropoutLayer: p is the probability of dropping a unit, in [0, 1); got {p!r}")
        self.p = p
        self.rng = np.random.default_rng(seed)
        self.mask = None

    def forward(self, Input):
        if not self.training or self.p == 0:
            self.mask = None
            return Input
        keep = self.rng.random(Input.shape, dtype=np.float32) >= self.p
        # The mask already carries the 1 / (1 - p), so backward reuses it as is.
        self.mask = keep.astype(Input.dtype) / Input.dtype.type(1 - self.p)
        return Input * self.mask

    def backward(self, delta):
        # Only the units that were kept pass a gradient, scaled like their output.
        return delta if self.mask is None else delta * self.mask

    def __repr__(self):
        return f"DropoutLayer(p={self.p})"


class BatchNormLayer(Layer):
    """Batch normalisation (notes §4.3.3): per feature, over the batch.

        x_hat = (x - mu_B) / sqrt(var_B + eps),   y = gamma * x_hat + beta

    (N, D) input: mu_B and var_B per feature, over the N samples.
    (N, C, H, W) input: per channel, over the N * H * W values of the channel.

    Training uses the batch's statistics and updates the running ones,
        running = (1 - momentum) * running + momentum * batch statistic,
    (the running variance uses the unbiased batch variance, m / (m - 1) var_B);
    evaluation normalises with the running statistics, so a test image's
    output does not depend on the other images of its batch.

    Parameters gamma (C,) = 1 and beta (C,) = 0, gradients grad_gamma and
    grad_beta. running_mean and running_var are state, not parameters: the
    optimiser never sees them; they follow the data's dtype, like gamma and beta.
    """
    param_names = ('gamma', 'beta')
    weight_names = ()
    state_names = ('running_mean', 'running_var')   # saved and restored with the parameters

    def __init__(self, num_features, eps=1e-5, momentum=0.1, trainable=True):
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNormLayer: momentum must be in [0, 1], got {momentum!r}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.trainable = trainable
        self.gamma = np.ones(num_features)
        self.beta = np.zeros(num_features)
        self.running_mean = np.zeros(num_features)
        self.running_var = np.ones(num_features)
        self.trained_on_batches = False    # whether a training batch gave statistics yet

    def forward(self, Input):
        """Input (N, C) or (N, C, H, W) -> same shape."""
        _check_features(self, Input, self.num_features)
        match_dtype(self, Input)
        if self.running_mean.dtype != Input.dtype:
            self.running_mean = self.running_mean.astype(Input.dtype)
            self.running_var = self.running_var.astype(Input.dtype)
        self.axes = (0,) if Input.ndim == 2 else (0, 2, 3)
        m = Input.size // self.num_features               # values per feature
        if self.training and m < 2 and not self.trained_on_batches:
            raise ValueError(f"BatchNormLayer: training on a batch of {Input.shape[0]} sample(s) of shape "
                             f"{Input.shape[1:]} normalises every feature to 0 (one value per feature); "
                             f"use batch_size >= 2, or LayerNormLayer")
        # A last, partial batch of one value per feature has no statistics of
        # its own: it is normalised with the running ones, as in evaluation.
        self.batch_statistics = self.training and m >= 2
        if self.batch_statistics:
            self.trained_on_batches = True
            self.x_hat, mean, var, self.inv_std = normalize_forward(Input, self.axes, self.eps)
            unbiased_var = var.ravel() * (m / max(m - 1, 1))
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean.ravel()
            self.running_var = (1 - self.momentum) * self.running_var + self.momentum * unbiased_var
        else:
            mean = _per_feature(self.running_mean, Input.ndim)
            self.inv_std = 1 / np.sqrt(_per_feature(self.running_var, Input.ndim) + self.eps)
            self.x_hat = (Input - mean) * self.inv_std
        out = self.x_hat * _per_feature(self.gamma, Input.ndim)
        out += _per_feature(self.beta, Input.ndim)
        return out

    def backward(self, delta):
        """delta (same shape as the output) -> delta of the layer below; sets
        grad_gamma and grad_beta (C,)."""
        self.grad_gamma = np.sum(delta * self.x_hat, axis=self.axes)
        self.grad_beta = np.sum(delta, axis=self.axes)
        grad_x_hat = delta * _per_feature(self.gamma, delta.ndim)
        if not self.batch_statistics:
            # Fixed running statistics: the normalisation is a per-feature affine map.
            return grad_x_hat * self.inv_std
        return normalize_backward(grad_x_hat, self.x_hat, self.inv_std, self.axes)

    def __repr__(self):
        return f"BatchNormLayer({self.num_features}, eps={self.eps}, momentum={self.momentum})"


class GroupNormLayer(Layer):
    """Group normalisation (notes §4.3.4): per sample, over groups of channels.

    The C channels are split into num_groups groups of C / num_groups
    channels; each sample's group is normalised with its own mean and
    variance (over the group's channels and all positions), then each
    channel is scaled and shifted: y = gamma_c * x_hat + beta_c.
    Nothing depends on the other samples of the batch, so training and
    evaluation compute the same thing, and tiny batches are no problem
    (the notes: "group norm for CNNs with small batches").

    Special cases:
    - num_groups = 1: layer norm (LayerNormLayer), all features of a sample;
    - num_groups = C: instance norm (InstanceNormLayer), each channel of each
      sample on its own (notes: used for image stylisation).
    Input (N, C, H, W), or (N, C) taken as C channels of one position.
    Parameters gamma (C,) = 1, beta (C,) = 0; gradients grad_gamma, grad_beta.
    """
    param_names = ('gamma', 'beta')
    weight_names = ()

    def __init__(self, num_groups, num_channels, eps=1e-5, trainable=True):
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(f"{type(self).__name__}: num_groups ({num_groups}) must divide "
                             f"num_channels ({num_channels})")
        self.num_groups = num_groups
        self.num_features = num_channels
        self.eps = eps
        self.trainable = trainable
        self.gamma = np.ones(num_channels)
        self.beta = np.zeros(num_channels)

    def _grouped(self, x):
        """(N, C, ...) -> (N, G, C / G, rest): the statistics are over axes (2, 3)."""
        return x.reshape(len(x), self.num_groups, self.num_features // self.num_groups, -1)

    def forward(self, Input):
        """Input (N, C) or (N, C, H, W) -> same shape."""
        _check_features(self, Input, self.num_features)
        match_dtype(self, Input)
        x_hat, _, _, self.inv_std = normalize_forward(self._grouped(Input), (2, 3), self.eps)
        self.x_hat = x_hat.reshape(Input.shape)
        return _per_feature(self.gamma, Input.ndim) * self.x_hat + _per_feature(self.beta, Input.ndim)

    def backward(self, delta):
        """delta -> delta of the layer below; sets grad_gamma and grad_beta (C,)."""
        axes = (0,) if delta.ndim == 2 else (0, 2, 3)
        self.grad_gamma = np.sum(delta * self.x_hat, axis=axes)
        self.grad_beta = np.sum(delta, axis=axes)
        grad_x_hat = self._grouped(delta * _per_feature(self.gamma, delta.ndim))
        return normalize_backward(grad_x_hat, self._grouped(self.x_hat), self.inv_std,
                                  (2, 3)).reshape(delta.shape)

    def __repr__(self):
        return f"{type(self).__name__}({self.num_groups}, {self.num_features}, eps={self.eps})"


class LayerNormLayer(GroupNormLayer):
    """Layer normalisation (notes §4.3.4): each sample normalised over all its
    features, y = gamma * x_hat + beta with gamma, beta per feature (or per
    channel for (N, C, H, W)). Group norm with a single group."""

    def __init__(self, num_features, eps=1e-5, trainable=True):
        super().__init__(1, num_features, eps=eps, trainable=trainable)

    def __repr__(self):
        return f"LayerNormLayer({self.num_features}, eps={self.eps})"


class InstanceNormLayer(GroupNormLayer):
    """Instance normalisation (notes §4.3.4): each channel of each sample
    normalised over its H x W positions. Group norm with one channel per group."""

    def __init__(self, num_channels, eps=1e-5, trainable=True):
        super().__init__(num_channels, num_channels, eps=eps, trainable=trainable)

    def __repr__(self):
        return f"InstanceNormLayer({self.num_features}, eps={self.eps})"


# Normalisation layers an MLP can use after each hidden FC layer (cfg['normalization']).
NORMALIZATION_LAYERS = {'none': None, 'batch': BatchNormLayer, 'layer': LayerNormLayer}


def add_regularisation(network, dropout=0.0, normalization='none', seed=None):
    """A copy of an MLP's layer stack with normalisation and dropout in the usual places:

        FC -> [BatchNorm or LayerNorm] -> activation -> [Dropout(p)]   every hidden layer,
        FC                                                             the output layer.

    The normalisation acts on each hidden layer's input to the activation
    (notes §4.3.3); dropout drops hidden units after the activation (notes
    §4.2.3; never the output scores). The existing layers are shared, not copied.

    Inputs:
    - network: a Network whose layers are FC, activation, FC, activation, ..., FC
    - dropout: p, the probability of dropping a hidden unit (0 = no dropout layers)
    - normalization: 'none', 'batch' or 'layer' (NORMALIZATION_LAYERS)
    - seed: seed of the first dropout layer (the next ones use seed + 1, ...)
    Returns a new Network.
    """
    if normalization not in NORMALIZATION_LAYERS:
        raise ValueError(f"unknown normalization {normalization!r}; choose one of "
                         f"{', '.join(NORMALIZATION_LAYERS)}")
    norm_layer = NORMALIZATION_LAYERS[normalization]
    layers = list(network.layerList)
    out = Network()
    hidden_index = 0
    for index, layer in enumerate(layers):
        out.add(layer)
        is_last = index == len(layers) - 1
        if isinstance(layer, FCLayer) and not is_last and norm_layer is not None:
            out.add(norm_layer(layer.num_output))
        if not isinstance(layer, FCLayer) and not is_last and dropout:
            out.add(DropoutLayer(dropout, seed=None if seed is None else seed + hidden_index))
            hidden_index += 1
    return out


# ---------------------------------------------------------------------------
# 7. Convolutional layers (notes §3): convolution, pooling, reshape.
# The maths (a loop reference and the vectorised form) is in im2col.py.
# Feature maps are (N, C, H, W) arrays.
# ---------------------------------------------------------------------------

def _check_positive_int(owner, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _needs_im2col(owner):
    if im2col is None:
        raise NotImplementedError(f"{owner} is part of the 'cnn' assignment: it needs im2col.py, which "
                                  f"this folder does not hold")


def _check_window(owner, Input, kernel_size, pad):
    """The k x k window must fit the padded image at least once."""
    height, width = Input.shape[2] + 2 * pad, Input.shape[3] + 2 * pad
    if min(height, width) < kernel_size:
        raise ValueError(f"{owner}: kernel_size {kernel_size} is larger than the padded input "
                         f"{height}x{width} (input {Input.shape[2]}x{Input.shape[3]}, pad {pad}): the "
                         f"output would be empty; use a smaller kernel or layer, or a larger input")


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
                 actFunction='relu', std=None, input_grad=True):
        """
        Args:
            inputs: input channels C; filters: output channels F
            kernel_size: k, the kernel is k x k; pad: zero padding, 0 <= pad < k
                (pad = (k - 1) // 2 keeps the image size)
            trainable: whether this layer is trainable
            init, actFunction, std: the initialisation, as for FCLayer
                (init_weights), with fan-in C·k·k and fan-out F·k·k
            input_grad: False for the first layer of a network, whose backward
                then skips the delta for the input (no layer below needs it)
        """
        owner = 'ConvLayer'
        _needs_im2col(owner)
        self.inputs = _check_positive_int(owner, 'inputs', inputs)
        self.filters = _check_positive_int(owner, 'filters', filters)
        self.kernel_size = _check_positive_int(owner, 'kernel_size', kernel_size)
        self.pad = _check_pad(owner, self.kernel_size, pad)
        self.trainable = check_trainable(self, trainable)
        self.init = init
        self.input_grad = input_grad
        k = self.kernel_size
        fans = dict(fan_in=inputs * k * k, fan_out=filters * k * k, actFunction=actFunction, std=std)
        self.W = init_weights(init, (filters, inputs, k, k), **fans)
        self.b = init_bias(init, (filters,), **fans)

    def forward(self, Input):
        """Input (N, inputs, H, W) -> (N, filters, H', W'); keeps the im2col columns."""
        im2col.check_images(Input, 'ConvLayer input')
        if Input.shape[1] != self.inputs:
            raise ValueError(f"ConvLayer expects {self.inputs} input channel(s), got an input of "
                             f"shape {Input.shape} with {Input.shape[1]}")
        _check_window('ConvLayer', Input, self.kernel_size, self.pad)
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

    def __repr__(self):
        return (f"ConvLayer({self.inputs}, {self.filters}, kernel_size={self.kernel_size}, "
                f"pad={self.pad}, init={self.init!r})")


class MaxPoolingLayer(Layer):
    """Max pooling over k x k windows, stride k, after zero padding by pad.

    (N, C, H, W) -> (N, C, (H + 2·pad) // k, (W + 2·pad) // k).
    """

    def __init__(self, kernel_size, pad=0):
        _needs_im2col('MaxPoolingLayer')
        self.kernel_size = _check_positive_int('MaxPoolingLayer', 'kernel_size', kernel_size)
        self.pad = _check_pad('MaxPoolingLayer', self.kernel_size, pad)

    def forward(self, Input):
        im2col.check_images(Input, 'MaxPoolingLayer input')
        _check_window('MaxPoolingLayer', Input, self.kernel_size, self.pad)
        self.output, self.input_padded = im2col.max_pool_forward(Input, self.kernel_size, self.pad)
        return self.output

    def backward(self, delta):
        return im2col.max_pool_backward(delta, self.output, self.input_padded, self.kernel_size, self.pad)

    def __repr__(self):
        return f"MaxPoolingLayer(kernel_size={self.kernel_size}, pad={self.pad})"


class AvgPoolingLayer(Layer):
    """Average pooling over k x k windows, stride k, after zero padding by pad.

    (N, C, H, W) -> (N, C, (H + 2·pad) // k, (W + 2·pad) // k).
    """

    def __init__(self, kernel_size, pad=0):
        _needs_im2col('AvgPoolingLayer')
        self.kernel_size = _check_positive_int('AvgPoolingLayer', 'kernel_size', kernel_size)
        self.pad = _check_pad('AvgPoolingLayer', self.kernel_size, pad)

    def forward(self, Input):
        im2col.check_images(Input, 'AvgPoolingLayer input')
        _check_window('AvgPoolingLayer', Input, self.kernel_size, self.pad)
        self.input_shape = Input.shape
        return im2col.avg_pool_forward(Input, self.kernel_size, self.pad)

    def backward(self, delta):
        return im2col.avg_pool_backward(delta, self.input_shape, self.kernel_size, self.pad)

    def __repr__(self):
        return f"AvgPoolingLayer(kernel_size={self.kernel_size}, pad={self.pad})"


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

    def __repr__(self):
        return f"ReshapeLayer({self.input_shape}, {self.output_shape})"


def build_cnn(input_shape, conv_channels, hidden_sizes, num_output, kernel_size=3, init='course'):
    """Network for a CNN: a block per entry of conv_channels, then an MLP.

    Each block is ConvLayer (k x k, pad (k - 1) // 2) -> ReLULayer ->
    MaxPoolingLayer(2); a ReshapeLayer turns the last feature maps into rows
    for FC -> ReLU per hidden size, then the output FCLayer.
    build_cnn((1, 28, 28), [8, 16], [128], 10) is the course's network:
    (N, 1, 28, 28) -> (N, 8, 14, 14) -> (N, 16, 7, 7) -> (N, 784) -> (N, 128) -> (N, 10).
    """
    if len(input_shape) != 3:
        raise ValueError(f"a CNN takes images of shape (C, H, W), got input_shape {tuple(input_shape)}; "
                         "build the data loader with as_images=True")
    channels, height, width = input_shape
    pad = (kernel_size - 1) // 2
    network = Network()
    for filters in conv_channels:
        network.add(ConvLayer(channels, filters, kernel_size, pad, init=init,
                              input_grad=network.numLayer > 0))
        network.add(ReLULayer())
        network.add(MaxPoolingLayer(2))
        channels = filters
        height, width = (height + 2 * pad - kernel_size + 1) // 2, (width + 2 * pad - kernel_size + 1) // 2
        if height < 1 or width < 1:
            raise ValueError(f"{len(conv_channels)} convolution blocks shrink {tuple(input_shape)} images "
                             "to nothing; use fewer blocks")
    num_features = channels * height * width
    network.add(ReshapeLayer((channels, height, width), (num_features,)))
    for hidden in hidden_sizes:
        network.add(FCLayer(num_features, hidden, init=init))
        network.add(ReLULayer())
        num_features = hidden
    network.add(FCLayer(num_features, num_output, init=init))
    return network
