"""SGD with momentum against values computed by hand from its formula,
v = momentum * v - learning_rate * grad; param += v (notes §2.5.4)."""

import numpy as np
import pytest

from optimizer import SGD


class OneParameterModel(object):
    """A homework-style model (W, b, grad_W, grad_b, trainable) with set gradients."""

    def __init__(self, W=1.0, b=-2.0, trainable=True):
        self.W = np.array([[W]])
        self.b = np.array([[b]])
        self.trainable = trainable


def run_steps(model, optimizer, grads):
    for grad_W, grad_b in grads:
        model.grad_W = np.array([[grad_W]])
        model.grad_b = np.array([[grad_b]])
        optimizer.step()


def test_keeps_the_original_attributes():
    model = OneParameterModel()
    sgd = SGD(model, 0.01, 0.9)
    assert (sgd.model, sgd.learning_rate, sgd.momentum) == (model, 0.01, 0.9)
    assert SGD(model, 0.5).momentum == 0.0


@pytest.mark.solution('softmax')
def test_momentum_against_hand_computation():
    model = OneParameterModel(W=1.0, b=-2.0)
    run_steps(model, SGD(model, learning_rate=0.1, momentum=0.9), [(1.0, 0.5), (2.0, 0.5), (-1.0, 0.0)])
    # W: v1 = -0.1            -> W = 0.9
    #    v2 = 0.9*-0.1 - 0.2  = -0.29  -> W = 0.61
    #    v3 = 0.9*-0.29 + 0.1 = -0.161 -> W = 0.449
    # b: v1 = -0.05           -> b = -2.05
    #    v2 = -0.045 - 0.05   = -0.095 -> b = -2.145
    #    v3 = -0.0855 - 0     = -0.0855 -> b = -2.2305
    assert model.W[0, 0] == pytest.approx(0.449, abs=1e-12)
    assert model.b[0, 0] == pytest.approx(-2.2305, abs=1e-12)


@pytest.mark.solution('softmax')
def test_zero_momentum_is_plain_sgd():
    model = OneParameterModel(W=1.0, b=0.0)
    run_steps(model, SGD(model, learning_rate=0.5, momentum=0.0), [(1.0, 2.0), (1.0, 2.0)])
    assert model.W[0, 0] == pytest.approx(0.0) and model.b[0, 0] == pytest.approx(-2.0)


@pytest.mark.solution('softmax')
def test_updates_in_place_and_skips_frozen_models():
    model = OneParameterModel()
    W_array = model.W
    run_steps(model, SGD(model, 0.1, 0.9), [(1.0, 1.0)])
    assert model.W is W_array and W_array[0, 0] != 1.0, (
        f"model.W is {model.W[0, 0]} after one step from 1.0: update the parameter in place "
        f"(param += ...); 'param = param + v' only gives the local name param a new array, "
        f"and the model never sees it")
    frozen = OneParameterModel(trainable=False)
    run_steps(frozen, SGD(frozen, 0.1, 0.9), [(1.0, 1.0)])
    assert frozen.W[0, 0] == 1.0 and frozen.b[0, 0] == -2.0


def test_step_before_gradients_says_what_to_do():
    with pytest.raises(RuntimeError, match="gradient_computing"):
        SGD(OneParameterModel(), 0.1).step()


def test_step_explains_a_misshapen_gradient():
    model = OneParameterModel()
    model.grad_W, model.grad_b = np.zeros((2, 1)), np.zeros((1, 1))
    with pytest.raises(ValueError, match=r"grad_W has shape \(2, 1\) but W has shape \(1, 1\)"):
        SGD(model, 0.1).step()
