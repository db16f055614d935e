"""Hidden tests of the softmax homework: not in the student handout, run by
tools/grade.py. Students see their names and the first line of their
messages only, so every check states its failure in that first line."""

import numpy as np
import pytest

from loss import SoftmaxCrossEntropyLoss
from optimizer import SGD
from testkit.gradients import assert_close

pytestmark = pytest.mark.solution('softmax')


def reference(Input, W, b, labels):
    """Loss, accuracy and gradients written out independently of the framework."""
    logits = Input @ W + b
    logits = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    n = len(labels)
    loss = -np.mean(np.log(prob[np.arange(n), labels]))
    acc = np.mean(prob.argmax(axis=1) == labels)
    delta = prob.copy()
    delta[np.arange(n), labels] -= 1
    delta /= n
    return loss, acc, Input.T @ delta, delta.sum(axis=0, keepdims=True)


@pytest.mark.parametrize('n, d, c', [(13, 7, 5), (1, 3, 2), (64, 20, 10)])
def test_forward_and_gradients_on_random_batches(n, d, c):
    rng = np.random.default_rng(n)
    np.random.seed(n)
    model = SoftmaxCrossEntropyLoss(d, c)
    Input, labels = rng.normal(size=(n, d)), rng.integers(0, c, size=n).astype(np.uint8)
    loss, acc, grad_W, grad_b = reference(Input, model.W, model.b, labels.astype(int))
    got_loss, got_acc = model.forward(Input, labels)
    model.gradient_computing()
    assert_close(got_loss, loss, f"loss for a batch of {n}", rtol=1e-9)
    assert_close(got_acc, acc, f"accuracy for a batch of {n}", rtol=1e-12)
    assert_close(model.grad_W, grad_W, f"grad_W for a batch of {n}", rtol=1e-8, atol=1e-14)
    assert_close(model.grad_b, grad_b, f"grad_b for a batch of {n}", rtol=1e-8, atol=1e-14)


def test_momentum_over_many_steps_on_arrays():
    rng = np.random.default_rng(5)
    np.random.seed(5)
    model = SoftmaxCrossEntropyLoss(4, 3)
    W, b = model.W.copy(), model.b.copy()
    vW, vb = np.zeros_like(W), np.zeros_like(b)
    optimizer = SGD(model, learning_rate=0.05, momentum=0.8)
    for step in range(5):
        model.grad_W, model.grad_b = rng.normal(size=W.shape), rng.normal(size=b.shape)
        vW = 0.8 * vW - 0.05 * model.grad_W
        vb = 0.8 * vb - 0.05 * model.grad_b
        W, b = W + vW, b + vb
        optimizer.step()
        assert_close(model.W, W, f"W after step {step + 1}", rtol=1e-10)
        assert_close(model.b, b, f"b after step {step + 1}", rtol=1e-10)
