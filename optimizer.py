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
nothing else.
"""

import numpy as np

from layers import param_names_of, trainable_layers


# ---------------------------------------------------------------------------
# Parameters, as an optimizer sees them
# ---------------------------------------------------------------------------

def parameters(model):
    """Yield (layer, name, param, grad) for every trainable parameter of the model.

    param is the array `layer.<name>` and grad the array `layer.grad_<name>`;
    a missing or misshapen gradient is explained.
    """
    for layer in trainable_layers(model):
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
        # Calculate diff_W and diff_b using layer.grad_W and layer.grad_b.
        # You need to add momentum to this.
        # In this loop, param is the parameter (layer.W or layer.b), grad its gradient
        # (layer.grad_W or layer.grad_b) and v its previous update (diff_W or diff_b).
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


# ---------------------------------------------------------------------------
# Schedules (notes §2.5.2, §2.5.4): how the learning rate (or the momentum)
# changes during training. A schedule is a Solver callback. Most change the
# value between epochs (unit 'epoch': on_epoch_end sets the value of the next
# epoch); the notes' a / (b + t) counts iterations (unit 'iteration':
# on_batch_end sets the value of the next update). The value itself is
# `value(t, current, history)`, a plain function of t (epochs or iterations
# done, from 0), the current value and the history of finished epochs, so it
# can be checked by hand.
# ---------------------------------------------------------------------------

class Schedule(object):
    """Base class. `attribute` names the optimiser attribute it drives; `unit`
    says what t counts: 'epoch' or 'iteration' (updates)."""
    attribute = 'learning_rate'
    unit = 'epoch'

    def value(self, t, current, history):
        """The value to use once t epochs (or iterations) are done (t = 0, 1, ...)."""
        raise NotImplementedError

    def start(self, optimizer, history):
        """Set the value of t = 0 (called once, before training)."""
        self._set(optimizer, 0, history)

    def on_epoch_end(self, solver, epoch):
        """Called after epoch `epoch` (from 0) and its validation."""
        if self.unit == 'epoch':
            self._set(solver.optimizer, epoch + 1, solver.history)

    def on_batch_end(self, solver, iterations):
        """Called after every update; `iterations` counts the updates done so far."""
        if self.unit == 'iteration':
            self._set(solver.optimizer, iterations, solver.history)

    def _set(self, optimizer, t, history):
        setattr(optimizer, self.attribute, self.value(t, getattr(optimizer, self.attribute), history))


class StepDecay(Schedule):
    """Multiply the learning rate by `factor` (halve it, by default) every
    `step_size` epochs: lr(epoch) = initial * factor ** (epoch // step_size)."""

    def __init__(self, initial, step_size, factor=0.5):
        self.initial, self.step_size, self.factor = initial, step_size, factor

    def value(self, epoch, current, history):
        return self.initial * self.factor ** (epoch // self.step_size)


class HalveOnPlateau(Schedule):
    """Halve the learning rate when the objective on the held-out (validation)
    split changed by less than `threshold` between the last two epochs
    (notes §2.5.2). A rise counts as no improvement, so it halves as well:

        lr <- factor * lr   if history[monitor][-2] - history[monitor][-1] < threshold
    """

    def __init__(self, threshold=1e-3, factor=0.5, monitor='val_loss'):
        self.threshold, self.factor, self.monitor = threshold, factor, monitor

    def value(self, epoch, current, history):
        values = history.get(self.monitor, [])
        if len(values) >= 2 and values[-2] - values[-1] < self.threshold:
            return current * self.factor
        return current


class InverseTimeDecay(Schedule):
    """lr(t) = a / (b + t) at iteration t (notes §2.5.2): a fixes the size, b
    (in iterations) when the decay becomes noticeable: after b updates the
    rate is half the first. InverseTimeDecay.from_initial(lr0, b) sets
    a = lr0 * b, so that the first update uses lr0. With batches of 100 and
    55000 training images an epoch is 550 iterations."""
    unit = 'iteration'

    def __init__(self, a, b):
        self.a, self.b = a, b

    @classmethod
    def from_initial(cls, initial, b):
        return cls(initial * b, b)

    def value(self, t, current, history):
        return self.a / (self.b + t)


class MomentumSchedule(Schedule):
    """The notes' momentum strategy (§2.5.4): momentum `before` (0.5) until
    epoch `switch_epoch`, when learning has become stable, then `after` (0.9)."""
    attribute = 'momentum'

    def __init__(self, switch_epoch, before=0.5, after=0.9):
        self.switch_epoch, self.before, self.after = switch_epoch, before, after

    def value(self, epoch, current, history):
        return self.before if epoch < self.switch_epoch else self.after
