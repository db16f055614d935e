"""The MLP path: SGD over every layer of a Network, and the Solver training an
MLP (cfg hidden_sizes). Part of the 'mlp' assignment, so not in the softmax
handout."""

import numpy as np
import pytest

import layers
from gradcheck import assert_close
from optimizer import SGD
from solver import Solver

pytestmark = pytest.mark.solution('mlp')


def test_every_layer_of_a_network_has_its_own_velocity():
    np.random.seed(0)
    model = layers.build_mlp(3, [2], 2)
    fc1, fc2 = model.layers[0], model.layers[2]
    start = {'W1': fc1.W.copy(), 'W2': fc2.W.copy()}
    sgd = SGD(model, learning_rate=0.1, momentum=0.5)
    for step, scale in enumerate((1.0, 3.0)):
        for layer in (fc1, fc2):
            layer.grad_W = np.full_like(layer.W, scale * (1 if layer is fc1 else -1))
            layer.grad_b = np.zeros_like(layer.b)
        sgd.step()
    # fc1: v1 = -0.1, v2 = -0.05 - 0.3 = -0.35 -> moved by -0.45; fc2 the opposite
    assert_close(fc1.W, start['W1'] - 0.45, "first layer W after two steps", rtol=1e-12)
    assert_close(fc2.W, start['W2'] + 0.45, "second layer W after two steps", rtol=1e-12)
    assert sorted(sgd.velocity) == ['0.W', '0.b', '1.W', '1.b']


def test_hidden_sizes_train_an_mlp(tiny_mnist):
    solver = Solver(dict(data_root=str(tiny_mnist), max_epoch=3, batch_size=32, learning_rate=0.05,
                         momentum=0.9, hidden_sizes=[32], verbose=False))
    solver.train()
    assert [type(layer).__name__ for layer in solver.model.layers] == ['FCLayer', 'ReLU', 'FCLayer']
    assert solver.test()[1] >= 0.9
