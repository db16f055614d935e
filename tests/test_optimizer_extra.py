"""The lecture's other optimisers (notes §4.1) and the schedules (§2.5.2, §2.5.4),
each over several steps against values worked out by hand from its formula."""

import math

import numpy as np
import pytest

from layers import BatchNormLayer
from optimizer import (SGD, Adagrad, Adam, HalveOnPlateau, InverseTimeDecay, MomentumSchedule, RMSProp,
                       StepDecay)


class TwoParameterModel(object):
    """A homework-style single layer: a weight W and a bias b, 1x1 each."""
    param_names = ('W', 'b')
    weight_names = ('W',)
    trainable = True

    def __init__(self, W=1.0, b=-2.0):
        self.W = np.array([[W]])
        self.b = np.array([[b]])


def run(optimizer, model, grads_W, grads_b=None):
    """Apply one step per gradient; returns W after every step."""
    grads_b = grads_b if grads_b is not None else [1.0] * len(grads_W)   # eps = 0 needs g != 0
    trace = []
    for g_W, g_b in zip(grads_W, grads_b):
        model.grad_W = np.array([[g_W]])
        model.grad_b = np.array([[g_b]])
        optimizer.step()
        trace.append(model.W[0, 0])
    return trace


def test_adagrad_by_hand():
    # eta = 0.1, eps = 0; gradients 2, 1, -2:
    # c = 4 -> W = 1 - 0.1 * 2 / 2 = 0.9
    # c = 5 -> W = 0.9 - 0.1 / sqrt(5) = 0.855278640
    # c = 9 -> W = 0.855278640 + 0.2 / 3 = 0.921945307
    model = TwoParameterModel(W=1.0)
    trace = run(Adagrad(model, 0.1, eps=0.0), model, [2.0, 1.0, -2.0])
    assert trace == pytest.approx([0.9, 0.9 - 0.1 / math.sqrt(5), 0.9 - 0.1 / math.sqrt(5) + 0.2 / 3], abs=1e-12)
    # eps sits inside the root: with g = 0.001 and eps = 1e-6, c + eps = 2e-6
    model = TwoParameterModel(W=0.0)
    run(Adagrad(model, 1.0, eps=1e-6), model, [1e-3])
    assert model.W[0, 0] == pytest.approx(-1e-3 / math.sqrt(2e-6), rel=1e-12)


def test_rmsprop_by_hand():
    # eta = 0.01, gamma = 0.9, eps = 0; gradients 1, 1, 2:
    # c = 0.1          -> W = 1 - 0.01 / sqrt(0.1)
    # c = 0.19         -> W -= 0.01 / sqrt(0.19)
    # c = 0.171 + 0.4 = 0.571 -> W -= 0.02 / sqrt(0.571)
    model = TwoParameterModel(W=1.0)
    trace = run(RMSProp(model, 0.01, gamma=0.9, eps=0.0), model, [1.0, 1.0, 2.0])
    w1 = 1 - 0.01 / math.sqrt(0.1)
    w2 = w1 - 0.01 / math.sqrt(0.19)
    w3 = w2 - 0.02 / math.sqrt(0.571)
    assert trace == pytest.approx([w1, w2, w3], abs=1e-12)


def test_adam_by_hand_with_and_without_bias_correction():
    # eta = 0.1, beta1 = 0.5, beta2 = 0.75, eps = 0; gradients 1, -1, 2.
    # t=1: m = 0.5,  c = 0.25;        m_t = 1,     c_t = 1        -> W = 1 - 0.1 = 0.9
    # t=2: m = -0.25, c = 0.4375;     m_t = -1/3,  c_t = 1        -> W = 0.9 + 0.1/3
    # t=3: m = 0.875, c = 1.328125;   m_t = 1,     c_t = 1.328125 / 0.578125 = 2.297297...
    model = TwoParameterModel(W=1.0)
    trace = run(Adam(model, 0.1, beta1=0.5, beta2=0.75, eps=0.0), model, [1.0, -1.0, 2.0])
    w2 = 0.9 + 0.1 / 3
    w3 = w2 - 0.1 * 1.0 / math.sqrt(1.328125 / 0.578125)
    assert trace == pytest.approx([0.9, w2, w3], abs=1e-12)
    # the notes' simple form: the same m and c, no division by (1 - beta^t)
    model = TwoParameterModel(W=1.0)
    trace = run(Adam(model, 0.1, beta1=0.5, beta2=0.75, eps=0.0, bias_correction=False), model,
                [1.0, -1.0, 2.0])
    s1 = 1 - 0.1 * 0.5 / math.sqrt(0.25)
    s2 = s1 + 0.1 * 0.25 / math.sqrt(0.4375)
    s3 = s2 - 0.1 * 0.875 / math.sqrt(1.328125)
    assert trace == pytest.approx([s1, s2, s3], abs=1e-12)


def test_adam_counts_steps_per_parameter_and_keeps_states_apart():
    first, second = TwoParameterModel(W=1.0), TwoParameterModel(W=1.0)
    opt = Adam(first, 0.1, eps=0.0)
    run(opt, first, [3.0])
    assert first.W[0, 0] == pytest.approx(0.9, abs=1e-12), "first Adam step is -lr * sign(g)"
    # a second, fresh optimiser on another model starts its own state
    run(Adam(second, 0.1, eps=0.0), second, [-5.0])
    assert second.W[0, 0] == pytest.approx(1.1, abs=1e-12)


# Weight decay is added in Optimizer.step, a region of the mlp assignment.
@pytest.mark.solution('mlp')
@pytest.mark.parametrize('make', [
    lambda m: SGD(m, 0.1, momentum=0.9, weight_decay=0.5),
    lambda m: Adagrad(m, 0.1, weight_decay=0.5),
    lambda m: RMSProp(m, 0.1, weight_decay=0.5),
    lambda m: Adam(m, 0.1, weight_decay=0.5),
], ids=['SGD', 'Adagrad', 'RMSProp', 'Adam'])
def test_weight_decay_touches_weights_only(make):
    model = TwoParameterModel(W=2.0, b=3.0)
    bn = BatchNormLayer(2)
    bn.gamma, bn.beta = np.array([1.5, 2.0]), np.array([0.5, -0.5])
    bn.running_mean, bn.running_var = np.array([0.3, -0.2]), np.array([2.0, 0.5])

    class Pair(object):                       # a two-layer model for the optimiser
        layers = layerList = [model, bn]
    optimizer = make(Pair())
    for _ in range(3):
        model.grad_W, model.grad_b = np.zeros((1, 1)), np.zeros((1, 1))
        bn.grad_gamma, bn.grad_beta = np.zeros(2), np.zeros(2)
        optimizer.step()
    assert model.W[0, 0] < 2.0, "weight decay must shrink W when its gradient is 0"
    assert model.b[0, 0] == 3.0, "weight decay must never touch a bias"
    assert np.array_equal(bn.gamma, [1.5, 2.0]) and np.array_equal(bn.beta, [0.5, -0.5]), \
        "weight decay must never touch gamma or beta"
    assert np.array_equal(bn.running_mean, [0.3, -0.2]) and np.array_equal(bn.running_var, [2.0, 0.5]), \
        "running statistics are layer state, not parameters: the optimiser must never touch them"


@pytest.mark.solution('mlp')
def test_sgd_weight_decay_by_hand():
    # g_total = g + wd * W: W = 2, g = 0, wd = 0.5, lr = 0.1 -> W = 2 - 0.1 * 1 = 1.9; then 1.9 - 0.095
    model = TwoParameterModel(W=2.0)
    trace = run(SGD(model, 0.1, weight_decay=0.5), model, [0.0, 0.0])
    assert trace == pytest.approx([1.9, 1.805], abs=1e-12)


@pytest.mark.solution('softmax')     # builds on the momentum update of SGD
def test_nesterov_by_hand():
    # eta = 0.1, mu = 0.9; gradients 1, 1:
    # v1 = -0.1;  W += mu * v1 - eta * g = -0.09 - 0.1 = -0.19   -> W = 0.81
    # v2 = -0.09 - 0.1 = -0.19;  W += 0.9 * -0.19 - 0.1 = -0.271 -> W = 0.539
    model = TwoParameterModel(W=1.0)
    trace = run(SGD(model, 0.1, momentum=0.9, nesterov=True), model, [1.0, 1.0])
    assert trace == pytest.approx([0.81, 0.539], abs=1e-12)
    with pytest.raises(ValueError, match='nesterov'):
        SGD(model, 0.1, momentum=0.0, nesterov=True)


# ---------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------

def test_step_decay_halves_every_k_epochs():
    schedule = StepDecay(0.8, step_size=2)
    assert [schedule.value(e, None, {}) for e in range(7)] == [0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1]


def test_inverse_time_decay_is_a_over_b_plus_t():
    schedule = InverseTimeDecay(a=1.0, b=4.0)
    assert [schedule.value(t, None, {}) for t in range(4)] == pytest.approx([0.25, 0.2, 1 / 6, 1 / 7])
    assert InverseTimeDecay.from_initial(0.1, 5).value(0, None, {}) == pytest.approx(0.1)
    assert InverseTimeDecay.from_initial(0.1, 5).value(5, None, {}) == pytest.approx(0.05)
    assert InverseTimeDecay.unit == 'iteration'       # the notes count t in iterations


def test_halve_on_plateau_follows_the_validation_objective():
    schedule = HalveOnPlateau(threshold=0.01)
    history = {'val_loss': []}
    rates, lr = [], 0.1
    # changes: -0.2 (improves), -0.005 (below threshold), +0.03 (worse), -0.1 (improves)
    for loss in [1.0, 0.8, 0.795, 0.825, 0.725]:
        history['val_loss'].append(loss)
        lr = schedule.value(len(history['val_loss']), lr, history)
        rates.append(lr)
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.025])


def test_momentum_schedule_and_callback_drive_the_optimiser():
    schedule = MomentumSchedule(switch_epoch=2)
    model = TwoParameterModel()
    optimizer = SGD(model, 0.1, momentum=0.9)

    class FakeSolver(object):
        history = {}
    solver = FakeSolver()
    solver.optimizer = optimizer
    schedule.start(solver)
    seen = [optimizer.momentum]
    for epoch in range(3):
        schedule.on_epoch_end(solver, epoch)
        seen.append(optimizer.momentum)
    assert seen == [0.5, 0.5, 0.9, 0.9]
    lr_schedule = StepDecay(0.1, 1)
    lr_schedule.on_epoch_end(solver, 0)
    assert optimizer.learning_rate == pytest.approx(0.05)
