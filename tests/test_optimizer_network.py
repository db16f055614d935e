"""Optimizers over every layer of a Network: per-parameter state that follows
the parameter, weight decay on weights only, against the course's formula
    v = momentum * v - learning_rate * (dE/dW + weight_decay * W);  W += v
computed by hand over several steps."""

import numpy as np
import pytest

import layers
from testkit.gradients import assert_close
from loss import SoftmaxCrossEntropyLossLayer
from optimizer import SGD, Optimizer, parameters, trainable_layers


def two_layer_network():
    np.random.seed(0)
    return layers.Network([layers.FCLayer(3, 2), layers.ReLULayer(), layers.FCLayer(2, 2)])


def set_gradients(network, scale, fc1=None, fc2=None):
    fc1, fc2 = fc1 or network.layerList[0], fc2 or network.layerList[2]
    for layer, sign in ((fc1, 1), (fc2, -1)):
        layer.grad_W = np.full_like(layer.W, sign * scale)
        layer.grad_b = np.full_like(layer.b, 0.5 * scale)


@pytest.mark.solution('mlp')
def test_every_layer_of_a_network_has_its_own_velocity():
    network = two_layer_network()
    fc1, fc2 = network.layerList[0], network.layerList[2]
    start = {'W1': fc1.W.copy(), 'W2': fc2.W.copy()}
    sgd = SGD(network, learning_rate=0.1, momentum=0.5)
    for scale in (1.0, 3.0):
        set_gradients(network, scale)
        sgd.step()
    # fc1: v1 = -0.1, v2 = -0.05 - 0.3 = -0.35 -> moved by -0.45; fc2 the opposite
    assert_close(fc1.W, start['W1'] - 0.45, "first layer W after two steps", rtol=1e-12)
    assert_close(fc2.W, start['W2'] + 0.45, "second layer W after two steps", rtol=1e-12)


@pytest.mark.solution('mlp')
def test_weight_decay_against_the_formula_over_several_steps():
    network = two_layer_network()
    lr, gamma, lam = 0.1, 0.9, 0.01
    expected = {id(layer): {name: getattr(layer, name).copy() for name in ('W', 'b')}
                for layer in trainable_layers(network)}
    velocity = {key: {'W': 0.0, 'b': 0.0} for key in expected}
    sgd = SGD(network, learning_rate=lr, momentum=gamma, weight_decay=lam)
    for scale in (1.0, -2.0, 0.5, 4.0):
        set_gradients(network, scale)
        for layer in trainable_layers(network):
            p, v = expected[id(layer)], velocity[id(layer)]
            # weights: the L2 term lam * W joins the gradient; biases are never decayed
            v['W'] = gamma * v['W'] - lr * (layer.grad_W + lam * p['W'])
            v['b'] = gamma * v['b'] - lr * layer.grad_b
            p['W'] = p['W'] + v['W']
            p['b'] = p['b'] + v['b']
        sgd.step()
    for index, layer in enumerate(trainable_layers(network)):
        for name in ('W', 'b'):
            assert_close(getattr(layer, name), expected[id(layer)][name],
                         f"layer {index} {name} after 4 steps with weight decay", rtol=1e-12)


@pytest.mark.solution('mlp')
def test_weight_decay_leaves_the_layers_gradients_as_they_are():
    # step() reads grad_W; it must not write into it. 'grad += lam * W' changes
    # the layer's own gradient array, so grad_W no longer is dE/dW after the step
    # (a gradient plot or check made afterwards would show the decayed one).
    network = two_layer_network()
    set_gradients(network, 1.0)
    before = [layer.grad_W.copy() for layer in trainable_layers(network)]
    SGD(network, learning_rate=0.1, momentum=0.9, weight_decay=0.5).step()
    for index, (layer, grad_W) in enumerate(zip(trainable_layers(network), before)):
        assert np.array_equal(layer.grad_W, grad_W), (
            f"layer {index}: step() changed layer.grad_W. Add the weight decay to a new array "
            f"(grad = grad + lambda * W), not in place (grad += ...), which writes into the layer's gradient")


@pytest.mark.solution('mlp')
def test_weight_decay_alone_shrinks_weights_and_leaves_biases():
    network = two_layer_network()
    fc = network.layerList[0]
    W, b = fc.W.copy(), fc.b.copy()
    for layer in trainable_layers(network):
        layer.grad_W, layer.grad_b = np.zeros_like(layer.W), np.zeros_like(layer.b)
    SGD(network, learning_rate=0.5, weight_decay=0.2).step()
    assert_close(fc.W, W * (1 - 0.5 * 0.2), "W after one step of pure weight decay", rtol=1e-12)
    assert np.array_equal(fc.b, b), "weight decay must not touch the biases"


@pytest.mark.solution('mlp')
def test_a_frozen_layer_keeps_its_values_while_its_neighbours_train():
    network = two_layer_network()
    fc1, fc2 = network.layerList[0], network.layerList[2]
    sgd = SGD(network, learning_rate=0.1, momentum=0.9)
    set_gradients(network, 1.0)
    sgd.step()
    # Freeze the first layer after a step: the second keeps its own velocity.
    fc1.trainable = False
    frozen_W, W2 = fc1.W.copy(), fc2.W.copy()
    set_gradients(network, 1.0)
    sgd.step()
    assert np.array_equal(fc1.W, frozen_W), "a frozen layer must keep its values"
    # fc2: v1 = +0.1 (gradient -1), v2 = 0.09 + 0.1 = 0.19
    assert_close(fc2.W, W2 + 0.19, "second layer after its second step", rtol=1e-12)


@pytest.mark.solution('mlp')
def test_state_follows_the_parameter_when_layers_are_added_or_reordered():
    network = two_layer_network()
    fc1, fc2 = network.layerList[0], network.layerList[2]
    sgd = SGD(network, learning_rate=0.1, momentum=0.9)
    set_gradients(network, 1.0)
    sgd.step()
    # Put a new trainable layer first: the old layers keep their own velocities.
    new = layers.FCLayer(3, 3)
    network.layerList.insert(0, new)
    network.numLayer += 1
    new.grad_W, new.grad_b = np.zeros_like(new.W), np.zeros_like(new.b)
    W1, W2 = fc1.W.copy(), fc2.W.copy()
    set_gradients(network, 1.0, fc1, fc2)
    sgd.step()
    assert_close(fc1.W, W1 - 0.19, "first old layer keeps its velocity", rtol=1e-12)
    assert_close(fc2.W, W2 + 0.19, "second old layer keeps its velocity", rtol=1e-12)


@pytest.mark.solution('mlp')
def test_parameters_lists_trainable_layers_only_and_explains_missing_gradients():
    network = two_layer_network()
    model = layers.Classifier(network, SoftmaxCrossEntropyLossLayer())
    network.layerList[2].trainable = False  # freeze the output layer
    with pytest.raises(RuntimeError, match="gradient_computing"):
        list(parameters(model))
    model.forward(np.ones((1, 3)), np.array([1]))
    model.gradient_computing()
    assert [(layer, name) for layer, name, _, _ in parameters(model)] == \
        [(network.layerList[0], 'W'), (network.layerList[0], 'b')]


def test_a_new_optimizer_writes_only_its_update_rule():
    class SignDescent(Optimizer):
        def update(self, param, grad, state):
            state['steps'] = state.get('steps', 0) + 1
            param -= self.learning_rate * np.sign(grad)

    network = two_layer_network()
    fc1 = network.layerList[0]
    W = fc1.W.copy()
    optimizer = SignDescent(network, learning_rate=0.25, weight_decay=0.0)
    for _ in range(2):
        set_gradients(network, 1.0)
        optimizer.step()
    assert_close(fc1.W, W - 0.5, "two steps of sign descent", rtol=1e-12)
    assert optimizer.state[(fc1, 'W')] == {'steps': 2}
    with pytest.raises(NotImplementedError, match="must implement update"):
        Optimizer(network, 0.1).step()
