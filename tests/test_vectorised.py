"""Self-checks for the mlp assignment: the TODO code must be vectorised
(test_vectorised_cnn.py does the same for the cnn assignment).

The numbers are checked by test_layers.py and test_criteria.py; here we check that no Python loop runs once per sample of a
batch, or once per output row or pixel of an image (testkit/vectorised.py
says how). Loops over a fixed number of things are fine: the layers of a
network, the parameters, the k·k offsets of a kernel.
"""

import numpy as np
import pytest

import layers
import loss
import optimizer
from testkit.vectorised import assert_vectorized

MLP_FILES = [layers.__file__, loss.__file__, optimizer.__file__]
RNG = np.random.default_rng(0)
X, DELTA, LABELS = RNG.normal(size=(40, 6)), RNG.normal(size=(40, 4)), RNG.integers(0, 4, size=40)


def forward_backward(make_layer, width):
    """make_run(n) for assert_vectorized: forward and backward of a new layer on n samples."""
    def make_run(n):
        layer = make_layer()

        def run():
            out = layer.forward(X[:n, :width].copy())
            layer.backward(DELTA[:n, :out.shape[1]].copy())
        return run
    return make_run


@pytest.mark.solution('mlp')
@pytest.mark.parametrize('name, make_layer, width', [
    ('FCLayer', lambda: layers.FCLayer(6, 4), 6),
    ('ReLULayer', layers.ReLULayer, 4),
    ('SigmoidLayer', layers.SigmoidLayer, 4),
])
def test_layer_forward_and_backward_are_vectorised(name, make_layer, width):
    assert_vectorized(forward_backward(make_layer, width), MLP_FILES, f'{name}.forward and backward')


@pytest.mark.solution('mlp')
@pytest.mark.parametrize('name', ['SoftmaxCrossEntropyLossLayer', 'EuclideanLossLayer'])
def test_criterion_forward_and_backward_are_vectorised(name):
    def make_run(n):
        criterion = getattr(loss, name)()
        return lambda: (criterion.forward(X[:n, :4].copy(), LABELS[:n]), criterion.backward())
    assert_vectorized(make_run, MLP_FILES, f'{name}.forward and backward')


@pytest.mark.solution('mlp')
def test_sgd_step_with_weight_decay_is_vectorised():
    def make_run(n):
        layer = layers.FCLayer(n, 3)          # W is (n, 3): a loop over its rows would grow
        layer.grad_W, layer.grad_b = np.ones_like(layer.W), np.ones_like(layer.b)
        sgd = optimizer.SGD(layers.Network([layer]), 0.1, momentum=0.9, weight_decay=0.01)
        sgd.step()                            # the first step creates the velocities
        return sgd.step
    assert_vectorized(make_run, MLP_FILES, 'SGD.step', what='rows of W')
