""" Optimizer Class

An optimizer holds the model and, at every step(), changes each trainable
parameter in place using its gradient (notes §2.5.4, §4.1). The base class
Optimizer does the bookkeeping once:
- it visits every trainable parameter of the model (parameters() below),
- it adds weight decay to the gradient of weights (never of biases),
- it keeps one state dict per parameter (velocity, squared-gradient caches,
  ...), keyed by the layer object and the parameter's name, so the state
  follows the parameter whatever is frozen, added or reordered.
A new optimiser is a subclass that writes its update rule, update(), and
nothing else. state_dict() / load_state_dict() save and restore the
per-parameter state for a checkpoint. The learning-rate and momentum
schedules are training callbacks (callbacks.py).
"""

import numpy as np

from layers import parameter_slots, trainable_layers  # noqa: F401 (trainable_layers: re-exported)


# ---------------------------------------------------------------------------
# Parameters, as an optimizer sees them
# ---------------------------------------------------------------------------

def parameters(model):
    """Yield (layer, name, param, grad) for every trainable parameter of the model
    (layers.parameter_slots names them).

    param is the array `layer.<name>` and grad the array `layer.grad_<name>`;
    a missing or misshapen gradient is explained.
    """
    for _, layer, name in parameter_slots(model, trainable_only=True):
        param = getattr(layer, name)
        grad = getattr(layer, 'grad_' + name, None)
        where = f"{type(layer).__name__}.grad_{name}"
        if grad is None:
            raise RuntimeError(f"{where} is not set: compute the gradients "
                               "(model.gradient_computing() or backward()) before optimizer.step()")
        if np.shape(grad) != np.shape(param):
            raise ValueError(f"{where} has shape {np.shape(grad)} but {name} has shape "
                             f"{np.shape(param)}; a gradient must have its parameter's shape")
        yield layer, name, param, grad


def is_weight(layer, name):
    """Weight decay applies to the parameters a layer lists in weight_names
    (its weights W), never to biases or normalisation parameters."""
    return name in getattr(layer, 'weight_names', ('W',))


# ---------------------------------------------------------------------------
# The shared structure of every optimiser
# ---------------------------------------------------------------------------

class Optimizer(object):
    """Base class: step() visits every trainable parameter and calls update().

    Subclasses implement update(param, grad, state), which changes param in
    place; state is this parameter's own dict, empty at the first step.
    """

    def __init__(self, model, learning_rate, weight_decay=0.0):
        self.model = model
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.state = {}  # (layer, parameter name) -> that parameter's state dict

    def step(self):
        """One backpropagation step, update weights layer by layer"""
        for layer, name, param, grad in parameters(self.model):
            if self.weight_decay and is_weight(layer, name):
                ############################################################################
                # TODO: Put your code here
                # Add weight decay (L2 regularisation, lambda = self.weight_decay) to the
                # gradient of this weight: E + lambda/2 ||W||^2 has the gradient grad + lambda W.
                ### BEGIN SOLUTION mlp
                grad = grad + self.weight_decay * param
                ### END SOLUTION
                ############################################################################
            first_step = (layer, name) not in self.state
            before = param.copy() if first_step else None
            self.update(param, grad, self.state.setdefault((layer, name), {}))
            if first_step:
                check_changed_in_place(self, layer, name, param, before, grad)

    def update(self, param, grad, state):
        raise NotImplementedError(f"{type(self).__name__} must implement update(param, grad, state)")

    def state_dict(self):
        """A copy of the per-parameter state, {'<parameter key>/<entry>': array}
        (e.g. '0.W/v', the velocity of the first layer's W), for a checkpoint."""
        arrays = {}
        for key, layer, name in parameter_slots(self.model, trainable_only=True):
            for entry, value in self.state.get((layer, name), {}).items():
                arrays[f'{key}/{entry}'] = np.array(value, copy=True)
        return arrays

    def load_state_dict(self, arrays):
        """Give every parameter the state saved by state_dict(); 0-d arrays (Adam's
        step count t) become Python numbers again."""
        self.state = {}
        for key, layer, name in parameter_slots(self.model, trainable_only=True):
            prefix = key + '/'
            state = {entry[len(prefix):]: (value.item() if np.ndim(value) == 0 else np.array(value, copy=True))
                     for entry, value in arrays.items() if entry.startswith(prefix)}
            if state:
                self.state[(layer, name)] = state


def check_changed_in_place(optimizer, layer, name, param, before, grad):
    """After a parameter's first update: a non-zero gradient must have changed
    the layer's array itself. `param = param + v` inside update() only points
    the local name param at a new array; the layer keeps the old one."""
    if optimizer.learning_rate > 0 and np.any(grad) and np.array_equal(param, before):
        raise RuntimeError(
            f"{type(optimizer).__name__}.update did not change {type(layer).__name__}.{name}: the parameter is "
            f"rebound, not updated in place. Write param += v (in place), not param = param + v, which "
            f"gives the local name param a new array that the layer never sees")


class SGD(Optimizer):
    """Stochastic gradient descent with classical momentum (notes §2.5.4, §4.1).

        v = momentum * v - learning_rate * (grad + weight_decay * W)
        param += v            (in place: the layer's own array changes)

    The velocity v of every parameter starts at zero; momentum = 0 is plain
    SGD, param -= learning_rate * grad. Weight decay (L2) applies to
    weights only, as in the course's MLP solution. Works for the homework's
    single-layer model and for a Network alike.

    nesterov=True: Nesterov momentum, param += momentum * v - learning_rate * grad
    with the new v (the gradient at the look-ahead point, in CS231n's form).
    """

    def __init__(self, model, learning_rate, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(model, learning_rate, weight_decay)
        if nesterov and not momentum:
            raise ValueError("nesterov=True needs momentum > 0: Nesterov momentum looks ahead along the velocity")
        self.momentum = momentum
        self.nesterov = nesterov

    def update(self, param, grad, state):
        """Update one parameter in place; state['v'] is its velocity (previous update)."""
        # param is e.g. layer.W, grad is layer.grad_W; v is this parameter's velocity
        v = state['v'] if 'v' in state else np.zeros_like(param)

        ############################################################################
        # TODO: Put your code here
        # Compute the new update v of this parameter from its gradient, with momentum.
        # param is the parameter (layer.W or layer.b), grad its gradient
        # (layer.grad_W or layer.grad_b) and v its previous update (zeros at the first step).
        # Set v to the new update (it is kept for the next step) and change param
        # in place (param += ...), so that the layer sees the new value.

        # Weight update with momentum
        # param +=

        # # Weight update without momentum
        # param += -self.learning_rate * grad
        ### BEGIN SOLUTION softmax mlp
        # v = momentum * v - learning_rate * grad, computed in place: no new
        # arrays of the parameter's size at every step
        v *= self.momentum
        v -= self.learning_rate * grad
        param += v
        ### END SOLUTION
        ############################################################################

        if self.nesterov:
            # Nesterov momentum (CS231n's form): the step looks ahead along the
            # new velocity, momentum * v - learning_rate * grad, instead of v.
            param += (self.momentum - 1) * v - self.learning_rate * grad

        state['v'] = v


# ---------------------------------------------------------------------------
# Adaptive optimisers (notes §4.1). Each one is its update rule and nothing
# else: Optimizer.step() finds the parameters, adds weight decay to the
# gradients of weights only, and hands every parameter its own `state` dict
# (empty at the first step), in which the rule keeps its running sums.
# ---------------------------------------------------------------------------

class Adagrad(Optimizer):
    """Adagrad (notes §4.1.2): a learning rate per parameter entry that shrinks
    with the squared gradients seen so far,

        c = c + g^2
        param = param - learning_rate * g / sqrt(c + eps)

    with eps inside the root, as in the notes. c only grows, so the steps
    keep shrinking (the weakness RMSProp fixes).
    """

    def __init__(self, model, learning_rate, eps=1e-8, weight_decay=0.0):
        super().__init__(model, learning_rate, weight_decay)
        self.eps = eps

    def update(self, param, grad, state):
        c = state.setdefault('c', np.zeros_like(param))
        c += grad * grad
        param -= self.learning_rate * grad / np.sqrt(c + self.eps)


class RMSProp(Optimizer):
    """RMSProp (notes §4.1.3): Adagrad with a forgetting factor gamma,

        c = gamma * c + (1 - gamma) * g^2
        param = param - learning_rate * g / sqrt(c + eps)

    so c tracks the recent squared gradients instead of growing for ever.
    """

    def __init__(self, model, learning_rate, gamma=0.9, eps=1e-8, weight_decay=0.0):
        super().__init__(model, learning_rate, weight_decay)
        self.gamma = gamma
        self.eps = eps

    def update(self, param, grad, state):
        c = state.setdefault('c', np.zeros_like(param))
        c *= self.gamma
        c += (1 - self.gamma) * grad * grad
        param -= self.learning_rate * grad / np.sqrt(c + self.eps)


class Adam(Optimizer):
    """Adam (notes §4.1.4): momentum (m) and RMSProp (c) together,

        m = beta1 * m + (1 - beta1) * g
        c = beta2 * c + (1 - beta2) * g^2
        m_t = m / (1 - beta1^t),  c_t = c / (1 - beta2^t)      (bias correction)
        param = param - learning_rate * m_t / sqrt(c_t + eps)

    t counts this parameter's steps from 1. m and c start at zero, so
    without the correction the first steps would be too small;
    bias_correction=False gives the notes' simple form with m and c as they are.
    """

    def __init__(self, model, learning_rate, beta1=0.9, beta2=0.999, eps=1e-8,
                 bias_correction=True, weight_decay=0.0):
        super().__init__(model, learning_rate, weight_decay)
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.bias_correction = bias_correction

    def update(self, param, grad, state):
        m = state.setdefault('m', np.zeros_like(param))
        c = state.setdefault('c', np.zeros_like(param))
        state['t'] = t = state.get('t', 0) + 1
        m *= self.beta1
        m += (1 - self.beta1) * grad
        c *= self.beta2
        c += (1 - self.beta2) * grad * grad
        if self.bias_correction:
            m_t, c_t = m / (1 - self.beta1 ** t), c / (1 - self.beta2 ** t)
        else:
            m_t, c_t = m, c
        param -= self.learning_rate * m_t / np.sqrt(c_t + self.eps)


# The schedules are training callbacks (callbacks.py); they are found here too.
from callbacks import (HalveOnPlateau, InverseTimeDecay, MomentumSchedule, Schedule,  # noqa: E402,F401
                       StepDecay)
