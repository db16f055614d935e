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
            self.update(param, grad, self.state.setdefault((layer, name), {}))

    def update(self, param, grad, state):
        raise NotImplementedError(f"{type(self).__name__} must implement update(param, grad, state)")


class SGD(Optimizer):
    """Stochastic gradient descent with classical momentum (notes §2.5.4, §4.1).

        v = momentum * v - learning_rate * (grad + weight_decay * W)
        param = param + v

    The velocity v of every parameter starts at zero; momentum = 0 is plain
    SGD, param = param - learning_rate * grad. Weight decay (L2) applies to
    weights only, as in the course's MLP solution. Works for the homework's
    single-layer model and for a Network alike.
    """

    def __init__(self, model, learning_rate, momentum=0.0, weight_decay=0.0):
        super().__init__(model, learning_rate, weight_decay)
        self.momentum = momentum

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

        state['v'] = v
