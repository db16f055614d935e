""" Optimizer Class """

import numpy as np

from layers import parameters


class SGD(object):
    """Stochastic gradient descent with classical momentum (notes §2.5.4, §4.1).

        v = momentum * v - learning_rate * grad
        param = param + v

    The velocity v of every parameter starts at zero; momentum = 0 is plain
    SGD, param = param - learning_rate * grad. Works for the homework's
    single-layer model and for a Network alike: it visits every trainable
    parameter `name` of every layer together with its gradient `grad_<name>`.
    """

    def __init__(self, model, learning_rate, momentum=0.0):
        self.model = model
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.velocity = {}  # parameter key -> its velocity v (zero until the first step)

    def step(self):
        """One backpropagation step, update weights layer by layer"""

        for key, param, grad in parameters(self.model):
            # param is e.g. layer.W, grad is layer.grad_W; v is this parameter's velocity
            v = self.velocity[key] if key in self.velocity else np.zeros_like(param)

            ############################################################################
            # TODO: Put your code here
            # Calculate diff_W and diff_b using layer.grad_W and layer.grad_b.
            # You need to add momentum to this.
            # The loop visits W and b in turn: param is the parameter, grad its gradient
            # and v its previous update (diff_W or diff_b). Set v to the new update (it is
            # kept for the next step) and change param in place (param += ...).

            # Weight update with momentum
            # param +=

            # # Weight update without momentum
            # param += -self.learning_rate * grad
            ### BEGIN SOLUTION softmax mlp
            v = self.momentum * v - self.learning_rate * grad
            param += v
            ### END SOLUTION
            ############################################################################

            self.velocity[key] = v
