"""The homework model, SoftmaxCrossEntropyLoss: the original API, its values
against hand computations, its gradients against finite differences."""

import math

import numpy as np
import pytest

import loss as loss_module
from testkit.gradients import assert_close, check_gradient, no_float_errors
from loss import SoftmaxCrossEntropyLoss
from optimizer import SGD


def make_model(num_input=6, num_output=4, seed=0):
    np.random.seed(seed)
    return SoftmaxCrossEntropyLoss(num_input, num_output)


def test_original_api():
    model = SoftmaxCrossEntropyLoss(784, 10)
    assert loss_module.EPS == 1e-11
    assert (model.num_input, model.num_output, model.trainable) == (784, 10, True)
    assert model.W.shape == (784, 10) and model.b.shape == (1, 10)
    assert SoftmaxCrossEntropyLoss(3, 2, trainable=False).trainable is False


def test_xavier_init_std_and_reproducibility():
    model = make_model(784, 10, seed=3)
    expected_std = math.sqrt(2 / (784 + 10)) * math.sqrt(2)
    assert np.std(model.W) == pytest.approx(expected_std, rel=0.03)
    assert abs(np.mean(model.W)) < 0.01
    again = make_model(784, 10, seed=3)
    assert np.array_equal(model.W, again.W) and np.array_equal(model.b, again.b)


@pytest.mark.solution('softmax')
def test_forward_against_hand_computation():
    model = make_model(2, 3)
    model.W = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
    model.b = np.array([[0.0, 0.0, 1.0]])
    Input = np.array([[1.0, 1.0], [0.0, -1.0]])
    labels = np.array([1, 0])
    # logits: [1, 2, 0] and [0, -2, 1]
    ce0 = -math.log(math.exp(2) / (math.exp(1) + math.exp(2) + math.exp(0)))
    ce1 = -math.log(math.exp(0) / (math.exp(0) + math.exp(-2) + math.exp(1)))
    loss, acc = model.forward(Input, labels)
    assert isinstance(loss, float) and isinstance(acc, float)
    # rel=1e-9, not tighter: log(prob + EPS), as the original homework suggests, is off by ~EPS/prob
    assert loss == pytest.approx((ce0 + ce1) / 2, rel=1e-9)
    assert acc == 0.5  # sample 0 right (class 1), sample 1 wrong (predicts 2)


@pytest.mark.solution('softmax')
def test_gradients_match_numerical_gradient_float64():
    model = make_model(6, 4)
    rng = np.random.default_rng(1)
    Input = rng.normal(size=(8, 6))
    labels = rng.integers(0, 4, size=8).astype(np.uint8)

    def f():
        return model.forward(Input, labels)[0]

    f()
    model.gradient_computing()
    assert model.grad_W.shape == model.W.shape and model.grad_b.shape == model.b.shape
    check_gradient(f, model.W, model.grad_W.copy(), "SoftmaxCrossEntropyLoss.grad_W", rtol=1e-7)
    check_gradient(f, model.b, model.grad_b.copy(), "SoftmaxCrossEntropyLoss.grad_b", rtol=1e-7)


@pytest.mark.solution('softmax')
def test_gradient_is_a_batch_average():
    # The same batch written twice has the same mean loss and mean gradient.
    model = make_model()
    rng = np.random.default_rng(2)
    Input, labels = rng.normal(size=(5, 6)), rng.integers(0, 4, size=5)
    loss_once, _ = model.forward(Input, labels)
    model.gradient_computing()
    grad_W, grad_b = model.grad_W.copy(), model.grad_b.copy()
    loss_twice, _ = model.forward(np.vstack([Input, Input]), np.concatenate([labels, labels]))
    model.gradient_computing()
    assert loss_twice == pytest.approx(loss_once, rel=1e-12)
    assert_close(model.grad_W, grad_W, "grad_W of a doubled batch", rtol=1e-10)
    assert_close(model.grad_b, grad_b, "grad_b of a doubled batch", rtol=1e-10)


@pytest.mark.solution('softmax')
def test_extreme_logits_give_finite_loss_and_gradients():
    model = make_model()
    model.W *= 1e5
    Input = np.random.default_rng(3).normal(size=(4, 6))
    with no_float_errors("SoftmaxCrossEntropyLoss with logits around 1e5",
                         "Where exp() overflows (inf / inf is NaN), subtract each row's maximum from the "
                         "logits before exp(): the softmax does not change. Where log() divides by zero, "
                         "a probability underflowed to 0: take the log of the softmax as "
                         "shifted - log(sum(exp(shifted))), or log(prob + EPS) as the original homework does."):
        loss, acc = model.forward(Input, np.array([0, 1, 2, 3]))
        model.gradient_computing()
    # Every sample is wrong by a huge margin. A log-softmax gives a loss in the millions;
    # log(prob + EPS), the original homework's idiom, caps it at -ln(1e-11) = 25.3. Both are fine.
    assert acc == 0.0 and math.isfinite(loss) and loss > 20
    assert np.all(np.isfinite(model.grad_W)) and np.all(np.isfinite(model.grad_b))


@pytest.mark.solution('softmax')
def test_float32_training_keeps_float32_parameters():
    """Not graded (0 points in tools/assignments.json): float64 is slower, not wrong."""
    model = make_model()
    Input = np.random.default_rng(4).normal(size=(3, 6)).astype(np.float32)
    loss, acc = model.forward(Input, np.array([0, 1, 2]))
    model.gradient_computing()
    SGD(model, learning_rate=0.1, momentum=0.9).step()
    for name in ('W', 'b'):
        dtype = getattr(model, name).dtype
        assert dtype == np.float32, (
            f"{name} became {dtype} while training on float32 data: something upcasts to float64 "
            f"(for example np.eye(C) is float64; np.eye(C, dtype=Input.dtype) is not). "
            f"Training is then about twice as slow, but not wrong.")


def test_wrong_shapes_get_a_clear_error():
    model = make_model(784, 10)
    with pytest.raises(ValueError, match=r"expects Input of shape \(batch_size, 784\), got \(4, 28, 28\)\. "
                                         r"Flatten the images first"):
        model.forward(np.zeros((4, 28, 28)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="4 inputs but 5 labels"):
        model.forward(np.zeros((4, 784)), np.zeros(5, dtype=int))
