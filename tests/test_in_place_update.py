"""An update that rebinds the parameter (`param = param + v`) instead of
changing it in place is named at the first step, whatever test or notebook
reaches it first."""

import numpy as np
import pytest

from layers import FCLayer, Network
from optimizer import SGD


class RebindingSGD(SGD):
    """The mistake: the new value goes to a new array, the layer keeps the old one."""

    def update(self, param, grad, state):
        v = state.get('v', np.zeros_like(param))
        v = self.momentum * v - self.learning_rate * grad
        param = param + v          # noqa: F841  (the mistake under test)
        state['v'] = v


def network_with_gradients(grad_value):
    net = Network()
    net.add(FCLayer(3, 2))
    layer = net.layerList[0]
    layer.grad_W = np.full_like(layer.W, grad_value)
    layer.grad_b = np.full_like(layer.b, grad_value)
    return net


def test_rebinding_the_parameter_is_named_at_the_first_step():
    with pytest.raises(RuntimeError, match=r"RebindingSGD.update did not change FCLayer.W: the parameter is "
                                           r"rebound, not updated in place. Write param \+= v"):
        RebindingSGD(network_with_gradients(1.0), learning_rate=0.1, momentum=0.9).step()


def test_a_zero_gradient_or_learning_rate_leaves_the_parameter_alone_without_complaint():
    net = network_with_gradients(0.0)
    W = net.layerList[0].W.copy()
    RebindingSGD(net, learning_rate=0.1, momentum=0.9).step()      # nothing to change: no verdict
    RebindingSGD(network_with_gradients(1.0), learning_rate=0.0).step()
    assert np.array_equal(net.layerList[0].W, W)


def test_the_check_runs_at_the_first_step_only():
    net = network_with_gradients(1.0)
    optimizer = RebindingSGD(net, learning_rate=0.1)
    optimizer.state = {(layer, name): {} for layer in net.layerList for name in ('W', 'b')}   # past step one
    optimizer.step()                                               # no copy, no check after the first step
