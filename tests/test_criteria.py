"""The losses of loss.py without parameters: the maths (softmax, cross-entropy,
squared error, sigmoid cross-entropy) against hand computations, and the
course's criteria (SoftmaxCrossEntropyLossLayer, EuclideanLossLayer,
SigmoidCrossEntropyLossLayer) against finite differences in float64."""

import math

import numpy as np
import pytest

import loss
from testkit.gradients import assert_close, check_gradient, no_float_errors

rng = np.random.default_rng(0)

SOFTMAX_ADVICE = ("exp() of a large logit overflows to inf and inf / inf is NaN. Subtract each row's "
                  "maximum before exp() (softmax does not change), and take the log of the softmax as "
                  "shifted - log(sum(exp(shifted))) rather than log(prob), which is -inf where prob "
                  "underflows to 0.")


def test_softmax_hand_values_and_stability():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    e = np.exp([1.0, 2.0, 3.0])
    assert_close(loss.softmax(logits), [e / e.sum(), [1 / 3] * 3], "softmax")
    # shift invariance and no overflow for logits far beyond exp's range
    huge = np.array([[1e4, 1e4 - 1.0, -1e4]])
    with no_float_errors("softmax of logits around 1e4", SOFTMAX_ADVICE):
        prob = loss.softmax(huge)
    assert_close(prob, [[1 / (1 + math.e ** -1), 1 / (1 + math.e), 0.0]], "softmax of huge logits", atol=1e-300)


@pytest.mark.solution('mlp')
def test_cross_entropy_hand_values():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    labels = np.array([2, 0])
    e = np.exp([1.0, 2.0, 3.0])
    expected = (-math.log(e[2] / e.sum()) + math.log(3)) / 2
    value, prob = loss.softmax_cross_entropy(logits, labels)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-12)
    # one-hot labels give the same loss as class ids
    assert loss.softmax_cross_entropy(logits, np.eye(3)[labels])[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.solution('mlp')
def test_cross_entropy_is_finite_for_extreme_logits():
    logits = np.array([[1e4, -1e4], [-1e4, 1e4]])
    with no_float_errors("softmax cross-entropy of logits +-1e4", SOFTMAX_ADVICE):
        value, prob = loss.softmax_cross_entropy(logits, np.array([1, 1]))
        delta = loss.softmax_cross_entropy_backward(prob, np.array([1, 1]))
    # sample 0 is wrong by a margin of 2e4, sample 1 right: mean loss 1e4
    assert value == pytest.approx(1e4)
    assert np.all(np.isfinite(delta))


def test_accuracy_and_one_hot():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert loss.accuracy(logits, np.array([1, 0, 0, 1])) == 0.5
    assert loss.accuracy(logits, np.eye(2)[[1, 0, 1, 0]]) == 1.0
    assert_close(loss.one_hot(np.array([2, 0], dtype=np.uint8), 3), [[0, 0, 1], [1, 0, 0]], "one_hot")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        loss.one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="integer class ids"):
        loss.one_hot(np.array([0.5, 1.0]), 3)


@pytest.mark.solution('mlp')
def test_euclidean_loss_hand_values():
    y = np.array([[1.0, 0.0], [0.5, 0.5]])
    t = np.array([[0.0, 1.0], [0.0, 1.0]])
    # 1/2 * (1 + 1) = 1 and 1/2 * (0.25 + 0.25) = 0.25; mean over the batch 0.625
    assert loss.euclidean_loss(y, t) == pytest.approx(0.625, rel=1e-12)
    assert_close(loss.euclidean_loss_backward(y, t), (y - t) / 2, "euclidean_loss_backward")


def test_sigmoid_cross_entropy_hand_values_and_extremes():
    z, t = np.array([[0.0], [2.0]]), np.array([[1.0], [0.0]])
    h = 1 / (1 + math.exp(-2.0))
    assert loss.sigmoid_cross_entropy(z, t) == pytest.approx((math.log(2) - math.log(1 - h)) / 2, rel=1e-12)
    with np.errstate(over='raise', invalid='raise', divide='raise'):
        assert loss.sigmoid_cross_entropy(np.array([[1000.0]]), np.array([[0.0]])) == pytest.approx(1000.0)


def labels_in_both_forms(n, c):
    ids = rng.integers(0, c, size=n)
    return [ids, np.eye(c)[ids]]


@pytest.mark.solution('mlp')
@pytest.mark.parametrize('criterion_class', [loss.SoftmaxCrossEntropyLossLayer, loss.EuclideanLossLayer])
@pytest.mark.parametrize('form', ['class ids', 'one-hot'])
def test_criteria_backward_matches_numerical_gradient(criterion_class, form):
    logit = rng.normal(size=(5, 4))
    gt = labels_in_both_forms(5, 4)[form == 'one-hot']
    criterion = criterion_class()
    value = criterion.forward(logit, gt)
    assert isinstance(value, float) and criterion.loss == value
    analytic = criterion.backward()
    assert analytic.shape == logit.shape
    check_gradient(lambda: criterion_class().forward(logit, gt), logit, analytic, criterion_class.__name__)


def test_sigmoid_criterion_backward_matches_numerical_gradient():
    logit = rng.normal(size=(6, 1))
    gt = np.array([0, 1, 1, 0, 1, 0])
    criterion = loss.SigmoidCrossEntropyLossLayer()
    criterion.forward(logit, gt)
    check_gradient(lambda: loss.SigmoidCrossEntropyLossLayer().forward(logit, gt), logit,
                   criterion.backward(), "SigmoidCrossEntropyLossLayer")


@pytest.mark.solution('mlp')
def test_criteria_set_loss_acc_and_the_course_accu():
    logit = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    gt = np.array([0, 1, 1])
    for criterion in (loss.SoftmaxCrossEntropyLossLayer(), loss.EuclideanLossLayer()):
        value = criterion.forward(logit, gt)
        assert criterion.loss == value
        assert criterion.acc == pytest.approx(2 / 3) and criterion.accu == criterion.acc
    sigmoid = loss.SigmoidCrossEntropyLossLayer()
    sigmoid.forward(np.array([[2.0], [-1.0], [0.5]]), np.array([1, 1, 0]))
    assert sigmoid.acc == pytest.approx(1 / 3)


def test_criteria_explain_bad_input():
    with pytest.raises(ValueError, match="one label per row"):
        loss.SoftmaxCrossEntropyLossLayer().forward(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"logit of shape \(batch_size, 1\)"):
        loss.SigmoidCrossEntropyLossLayer().forward(np.zeros((3, 2)), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="labels 0 or 1"):
        loss.SigmoidCrossEntropyLossLayer().forward(np.zeros((2, 1)), np.array([0, 2]))
