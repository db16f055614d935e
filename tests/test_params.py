"""The parameter registry (layers.py): every model names its parameters and
state one way; the optimiser, early stopping, checkpoints and pictures use it."""

from types import SimpleNamespace

import numpy as np
import pytest

import config
from layers import (BatchNormLayer, Classifier, FCLayer, Network, ReLULayer, load_state_dict, named_arrays,
                    parameter_slots, predict, state_dict)
from loss import SoftmaxCrossEntropyLoss, SoftmaxCrossEntropyLossLayer
from optimizer import SGD, Adam


def small_network():
    return Network([FCLayer(4, 3), BatchNormLayer(3), ReLULayer(), FCLayer(3, 2)])


def test_a_network_names_its_parameters_and_state_by_layer_index():
    network = small_network()
    assert list(network.params()) == ['0.W', '0.b', '1.gamma', '1.beta', '3.W', '3.b']
    assert network.params()['3.W'] is network.layerList[3].W, "params() gives the arrays themselves"
    assert list(network.state_dict()) == ['0.W', '0.b', '1.gamma', '1.beta', '1.running_mean',
                                          '1.running_var', '3.W', '3.b']
    network.layerList[1].trainable = False
    assert [key for key, _, _ in parameter_slots(network, trainable_only=True)] == ['0.W', '0.b', '3.W', '3.b']
    assert network.num_params() == 4 * 3 + 3 + 3 * 2 + 2


def test_state_dict_is_a_copy_and_load_state_dict_puts_it_back():
    network = small_network()
    saved = network.state_dict()
    saved_W = saved['0.W'].copy()
    network.layerList[0].W[...] = 7.0
    network.layerList[1].running_mean = np.full(3, 2.0)
    assert np.array_equal(saved['0.W'], saved_W), "the state dict must not share memory with the model"
    network.load_state_dict(saved)
    assert np.array_equal(network.layerList[0].W, saved_W)
    assert np.array_equal(network.layerList[1].running_mean, np.zeros(3))


def test_load_state_dict_names_missing_keys_and_wrong_shapes():
    network = small_network()
    saved = network.state_dict()
    del saved['3.b']
    with pytest.raises(ValueError, match=r"missing \['3.b'\]"):
        network.load_state_dict(saved)
    saved = network.state_dict()
    saved['0.W'] = np.zeros((5, 3))
    with pytest.raises(ValueError, match=r"0.W has shape \(5, 3\), but this model's is \(4, 3\)"):
        network.load_state_dict(saved)


@pytest.mark.solution('softmax')
def test_the_homework_model_has_the_registry_and_predict():
    np.random.seed(0)
    model = SoftmaxCrossEntropyLoss(6, 3)
    assert model.params() == {'W': model.W, 'b': model.b}
    assert model.params()['W'] is model.W
    x = np.random.default_rng(1).normal(size=(5, 6))
    labels = np.array([0, 2, 1, 1, 0])
    loss, _ = model.forward(x, labels)
    scores = model.predict(x)
    # Independent check: the cross-entropy of the predicted scores is forward's loss
    # (to 1e-7: a student's forward may take log(p + 1e-12), as the original homework does).
    log_p = scores - scores.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(-log_p[np.arange(5), labels].mean(), rel=1e-7)
    copy = SoftmaxCrossEntropyLoss(6, 3)
    copy.load_state_dict(model.state_dict())
    assert np.array_equal(copy.predict(x), scores)


def test_predict_of_an_original_homework_model_without_predict():
    model = SimpleNamespace(W=np.arange(6.0).reshape(3, 2), b=np.array([[1.0, -1.0]]))
    assert np.array_equal(predict(model, np.array([[1.0, 0.0, 2.0]])), [[9.0, 10.0]])
    assert list(named_arrays(model)) == ['W', 'b']
    assert list(state_dict(model)) == ['W', 'b']
    load_state_dict(model, {'W': np.zeros((3, 2)), 'b': np.zeros((1, 2))})
    assert not model.W.any()


@pytest.mark.solution('mlp')
def test_a_classifier_delegates_to_its_network():
    network = small_network()
    model = Classifier(network, SoftmaxCrossEntropyLossLayer())
    assert list(model.params()) == list(network.params())
    x = np.random.default_rng(0).normal(size=(4, 4))
    network.eval()
    assert np.array_equal(model.predict(x), network.forward(x))


@pytest.mark.solution('softmax')
def test_the_optimiser_state_follows_each_parameter_through_a_state_dict():
    rng = np.random.default_rng(0)
    network = Network([FCLayer(3, 2)])
    layer = network.layerList[0]
    optimizer = Adam(network, 0.1)
    layer.grad_W, layer.grad_b = rng.normal(size=(3, 2)), rng.normal(size=(1, 2))
    optimizer.step()
    saved = optimizer.state_dict()
    assert sorted(saved) == ['0.W/c', '0.W/m', '0.W/t', '0.b/c', '0.b/m', '0.b/t']
    assert np.allclose(saved['0.W/m'], 0.1 * layer.grad_W, rtol=1e-14), "m = (1 - beta1) g after one step"
    fresh = Adam(network, 0.1)
    fresh.load_state_dict(saved)
    assert fresh.state[(layer, 'W')]['t'] == 1 and isinstance(fresh.state[(layer, 'W')]['t'], int)

    sgd = SGD(network, 0.5, momentum=0.9)
    sgd.step()
    velocity = sgd.state_dict()['0.W/v']
    assert np.allclose(velocity, -0.5 * layer.grad_W), "v = -lr g at the first step (hand-computed)"


def test_every_optimiser_hyper_parameter_comes_from_the_cfg(tmp_path):
    model = Network([FCLayer(3, 2)])
    cfg = config.validate_cfg(dict(data_root=str(tmp_path), optimizer='adam', beta1=0.5, beta2=0.75,
                                   eps=1e-4, bias_correction=False, weight_decay=0.01))
    adam = config.OPTIMIZERS['adam'](model, cfg)
    assert (adam.beta1, adam.beta2, adam.eps, adam.bias_correction, adam.weight_decay) == (0.5, 0.75, 1e-4,
                                                                                           False, 0.01)
    cfg = config.validate_cfg(dict(data_root=str(tmp_path), optimizer='rmsprop', rmsprop_gamma=0.8, eps=1e-3))
    rmsprop = config.OPTIMIZERS['rmsprop'](model, cfg)
    assert (rmsprop.gamma, rmsprop.eps) == (0.8, 1e-3)
    assert config.OPTIMIZERS['adagrad'](model, cfg).eps == 1e-3
    with pytest.raises(ValueError, match=r"cfg\['beta1'\] = 1.5 is not valid"):
        config.validate_cfg(dict(data_root=str(tmp_path), beta1=1.5))
