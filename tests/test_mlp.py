"""The MLP through the Solver: cfg keys that describe a network, a ready
Network and criterion handed over, and the accuracy of a 784-256-10 MLP on
the shipped MNIST. Part of the 'mlp' assignment, so not in the softmax handout."""

from pathlib import Path

import numpy as np
import pytest

import layers
from loss import EuclideanLossLayer, SoftmaxCrossEntropyLoss
from solver import MODELS, Solver, validate_cfg

MNIST = Path(__file__).resolve().parents[1] / 'data'


def quiet_cfg(data_root, **overrides):
    cfg = dict(data_root=str(data_root), max_epoch=3, batch_size=32, learning_rate=0.05,
               momentum=0.9, verbose=False)
    cfg.update(overrides)
    return cfg


def test_the_model_is_chosen_by_name_from_one_registry(tiny_mnist):
    assert validate_cfg({})['model'] == 'softmax_regression'
    assert validate_cfg({'hidden_sizes': [8]})['model'] == 'mlp'
    assert isinstance(Solver(quiet_cfg(tiny_mnist)).model, SoftmaxCrossEntropyLoss)
    assert set(MODELS) >= {'softmax_regression', 'mlp'}
    with pytest.raises(ValueError, match=r"cfg\['model'\] = 'resnet' is not valid.*Valid names: .*mlp"):
        validate_cfg({'model': 'resnet'})


@pytest.mark.parametrize('key, value, accepts', [
    ('activation', 'elu', 'one of relu, sigmoid, tanh'),
    ('loss', 'hinge', 'one of softmax_cross_entropy, euclidean, sigmoid_cross_entropy'),
    ('init', 'he', 'one of course, gaussian, xavier, msra'),
    ('weight_decay', -0.1, 'a number >= 0'),
    ('optimizer', 'adamw', 'Valid names: '),
])
def test_network_cfg_keys_are_explained(key, value, accepts):
    with pytest.raises(ValueError, match=f"cfg\\['{key}'\\] = .* is not valid: expected .*{accepts}"):
        validate_cfg({key: value})


def test_cfg_describes_the_network(tiny_mnist):
    solver = Solver(quiet_cfg(tiny_mnist, hidden_sizes=[32, 16], activation='sigmoid', loss='euclidean',
                              init='xavier', weight_decay=1e-4))
    network = solver.model.network
    assert [type(layer).__name__ for layer in network.layerList] == \
        ['FCLayer', 'SigmoidLayer', 'FCLayer', 'SigmoidLayer', 'FCLayer']
    assert [layer.init for layer in network.layerList[::2]] == ['xavier'] * 3
    assert isinstance(solver.model.criterion, EuclideanLossLayer)
    assert solver.optimizer.weight_decay == 1e-4


@pytest.mark.solution('mlp')
def test_hidden_sizes_train_an_mlp(tiny_mnist):
    solver = Solver(quiet_cfg(tiny_mnist, hidden_sizes=[32]))
    solver.train()
    assert [type(layer).__name__ for layer in solver.model.network.layerList] == \
        ['FCLayer', 'ReLULayer', 'FCLayer']
    assert solver.test()[1] >= 0.9


@pytest.mark.solution('mlp')
def test_a_ready_network_and_criterion_can_be_handed_over(tiny_mnist):
    np.random.seed(0)
    network = layers.Network()
    network.add(layers.FCLayer(784, 32, 'sigmoid'))
    network.add(layers.SigmoidLayer())
    network.add(layers.FCLayer(32, 10, 'sigmoid'))
    solver = Solver(quiet_cfg(tiny_mnist, learning_rate=0.2), network=network, criterion=EuclideanLossLayer())
    assert solver.model.network is network
    solver.train()
    assert solver.test()[1] >= 0.8
    with pytest.raises(ValueError, match="without a network"):
        Solver(quiet_cfg(tiny_mnist), criterion=EuclideanLossLayer())


@pytest.mark.solution('mlp')
def test_mlp_on_the_real_mnist_test_set():
    """A 784-256-10 ReLU MLP, 2 epochs on the 55000 training images: >= 97% on
    the 10000 test images (20 epochs reach about 98%: see README, MLP)."""
    solver = Solver({'data_root': str(MNIST), 'hidden_sizes': [256], 'learning_rate': 0.1,
                     'max_epoch': 2, 'verbose': False})
    solver.train()
    test_loss, test_acc = solver.test()
    assert len(solver.test_loader.dataset) == 10000
    assert test_acc >= 0.97, f"test accuracy {test_acc:.4f} of the MLP after 2 epochs, expected >= 0.97"
