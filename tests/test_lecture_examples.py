"""The lecture's first models built from the framework's layers (notes §1.1):
linear and polynomial regression with the squared error, and binary logistic
regression with L2 weight decay on MNIST 0 vs 1. mlp.ipynb runs the same."""

from pathlib import Path

import numpy as np
import pytest

import layers
from dataloader import build_dataloader
from loss import EuclideanLossLayer, SigmoidCrossEntropyLossLayer
from optimizer import SGD

MNIST = Path(__file__).resolve().parents[1] / 'data'


def fit(network, criterion, x, t, learning_rate, steps, momentum=0.9, weight_decay=0.0):
    """Full-batch gradient descent: the same three beats as the Solver."""
    optimizer = SGD(network, learning_rate, momentum, weight_decay)
    for _ in range(steps):
        loss = criterion.forward(network.forward(x), t)
        network.backward(criterion.backward())
        optimizer.step()
    return loss


def polynomial_features(x, degree):
    """(N,) -> (N, degree): the columns x, x^2, ..., x^degree (notes §1.1.2)."""
    return x[:, None] ** np.arange(1, degree + 1)


@pytest.mark.solution('mlp')
def test_linear_regression_recovers_the_line():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=200)
    t = (0.5 + 2.0 * x + rng.normal(0, 0.05, size=200))[:, None]   # y = 0.5 + 2x + noise
    np.random.seed(0)
    network = layers.Network([layers.FCLayer(1, 1, init='gaussian')])
    fit(network, EuclideanLossLayer(), x[:, None], t, learning_rate=0.1, steps=300)
    fc = network.layerList[0]
    assert fc.W[0, 0] == pytest.approx(2.0, abs=0.02) and fc.b[0, 0] == pytest.approx(0.5, abs=0.02)


@pytest.mark.solution('mlp')
def test_polynomial_regression_matches_least_squares():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=300)
    true = np.array([1.0, 2.0, -3.0, 0.5])            # 1 + 2x - 3x^2 + 0.5x^3
    t = (true[0] + polynomial_features(x, 3) @ true[1:] + rng.normal(0, 0.05, size=300))[:, None]
    features = polynomial_features(x, 3)
    np.random.seed(0)
    network = layers.Network([layers.FCLayer(3, 1, init='gaussian')])
    fit(network, EuclideanLossLayer(), features, t, learning_rate=0.5, steps=3000)
    fc = network.layerList[0]
    learned = np.concatenate([fc.b[0], fc.W[:, 0]])
    design = np.hstack([np.ones((300, 1)), features])
    least_squares = np.linalg.lstsq(design, t[:, 0], rcond=None)[0]
    np.testing.assert_allclose(learned, least_squares, atol=2e-3,
                               err_msg="gradient descent on the squared error must reach the least-squares fit")
    np.testing.assert_allclose(learned, true, atol=0.1, err_msg="the fit must recover the curve's coefficients")


@pytest.mark.solution('mlp')
def test_binary_logistic_regression_with_l2_on_mnist_zeros_and_ones():
    def zeros_and_ones(mode, count):
        dataset = build_dataloader(str(MNIST), 1, 100, mode=mode).dataset
        keep = np.flatnonzero(dataset.labels <= 1)[:count]
        return dataset.images[keep], dataset.labels[keep]

    x, t = zeros_and_ones('train', 2000)
    x_test, t_test = zeros_and_ones('test', 10000)
    np.random.seed(0)
    network = layers.Network([layers.FCLayer(784, 1, init='gaussian')])
    criterion = SigmoidCrossEntropyLossLayer()
    loss = fit(network, criterion, x, t, learning_rate=0.1, steps=100, weight_decay=1e-3)
    assert loss < 0.05
    criterion.forward(network.forward(x_test), t_test)
    assert len(t_test) == 2115                        # every 0 and 1 of the MNIST test set
    assert criterion.acc >= 0.995, f"test accuracy {criterion.acc:.4f} on 0 vs 1"
