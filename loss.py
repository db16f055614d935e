"""Losses: the homework model and the loss layers of a network.

Every loss of the framework (notes §1 and §2.3.1):
1. the maths, written once: one-hot targets, the stable log-softmax, the
   softmax cross-entropy, the squared (Euclidean) error, the sigmoid
   cross-entropy, and accuracy;
2. the homework model SoftmaxCrossEntropyLoss: a linear layer and the softmax
   cross-entropy in one object, with the original homework API;
3. the criteria (loss layers) without parameters that end a Network:
   SoftmaxCrossEntropyLossLayer, EuclideanLossLayer and
   SigmoidCrossEntropyLossLayer. Each has
       loss = criterion.forward(logit, gt)   # a float; also sets .loss and .acc
       delta = criterion.backward()          # dE/dlogit, the shape of logit

Letters: N batch size, C classes. Labels are (N,) integer class ids or
(N, C) one-hot rows.
"""

import numpy as np

from layers import Model, check_batch, match_dtype, xavier_init

# a small number to prevent dividing by zero, maybe useful for you
EPS = 1e-11


# ---------------------------------------------------------------------------
# 1. The maths
# ---------------------------------------------------------------------------

def one_hot(labels, num_classes, dtype=np.float64):
    """Targets as a one-hot (1-of-K) table (notes §1.2.1).

    Inputs:
    - labels: (N,) integer class ids in [0, C), or already (N, C) one-hot rows
    - num_classes: C
    Returns t: (N, C) of the given dtype
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        if labels.shape[1] != num_classes:
            raise ValueError(f"one-hot labels have {labels.shape[1]} columns, "
                             f"expected one per class ({num_classes})")
        return labels.astype(dtype, copy=False)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be (N,) integer class ids or (N, {num_classes}) one-hot "
                         f"rows; got shape {labels.shape} and dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}); got values from "
                         f"{labels.min()} to {labels.max()}")
    return np.eye(num_classes, dtype=dtype)[labels]


def class_ids(labels):
    """(N,) class ids from (N,) ids or (N, C) one-hot rows."""
    labels = np.asarray(labels)
    return labels.argmax(axis=1) if labels.ndim == 2 else labels


def log_softmax(logits):
    """Row-wise log of the softmax, computed stably.

    softmax is unchanged when a constant is subtracted from a row, so we
    subtract the row maximum first: exp() then never overflows, and
    log(sum(exp)) stays finite even for logits of 1e4.

    Inputs:
    - logits: (N, C) class scores
    Returns log_prob: (N, C), log P(y = k | x) of every class
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits):
    """Row-wise softmax, P(y = k | x) = exp(z_k) / sum_j exp(z_j) (notes §1.2.3).

    Inputs:
    - logits: (N, C) class scores
    Returns prob: (N, C), each row sums to 1
    """
    return np.exp(log_softmax(logits))


def accuracy(logits, labels):
    """Fraction of rows whose highest score is the true class (notes §1.2.7).

    Inputs:
    - logits: (N, C) class scores (or probabilities)
    - labels: (N,) integer class ids or (N, C) one-hot rows
    Returns acc: a Python float in [0, 1]
    """
    return float(np.mean(logits.argmax(axis=1) == class_ids(labels)))


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against the labels (notes §1.2.5).

    J = -1/N sum_n sum_k t_k^(n) ln P(y = k | x^(n)), computed from the
    log-softmax so that extreme logits give a finite loss.

    Inputs:
    - logits: (N, C) class scores
    - labels: (N,) integer class ids or (N, C) one-hot rows
    Returns (loss, prob): loss a Python float, prob (N, C) the softmax
    probabilities (kept by callers for the backward pass)
    """
    ############################################################################
    # TODO: Put your code here
    # Calculate the average cross-entropy loss over the minibatch, and the
    # softmax probabilities (keep them for the gradient).
    ### BEGIN SOLUTION mlp
    log_prob = log_softmax(logits)
    t = one_hot(labels, logits.shape[1], logits.dtype)
    loss = -np.sum(t * log_prob) / len(logits)
    return float(loss), np.exp(log_prob)
    ### END SOLUTION
    ############################################################################


def softmax_cross_entropy_backward(prob, labels):
    """Gradient of the mean cross-entropy with respect to the logits.

    For softmax with cross-entropy the local sensitivity of the output layer
    is delta = y - t (notes §2.3.4); the loss is a batch mean, hence the 1/N.

    Inputs:
    - prob: (N, C) softmax probabilities from the forward pass
    - labels: (N,) integer class ids or (N, C) one-hot rows
    Returns delta: (N, C) = dE/dlogits
    """
    ############################################################################
    # TODO: Put your code here
    # Calculate and return the gradient (have the same shape as logit)
    ### BEGIN SOLUTION mlp
    return (prob - one_hot(labels, prob.shape[1], prob.dtype)) / len(prob)
    ### END SOLUTION
    ############################################################################


def euclidean_loss(y, t):
    """Mean over the batch of the squared error 1/2 ||y - t||^2 (notes §2.3.1).

    Inputs:
    - y: (N, C) outputs of the network
    - t: (N, C) targets (one-hot rows for classification)
    Returns loss: a Python float
    """
    ############################################################################
    # TODO: Put your code here
    # Calculate the average (over the minibatch) of 1/2 * ||y - t||^2.
    ### BEGIN SOLUTION mlp
    return float(0.5 * np.sum((y - t) ** 2) / len(y))
    ### END SOLUTION
    ############################################################################


def euclidean_loss_backward(y, t):
    """dE/dy of euclidean_loss: (y - t) / N, the shape of y (N, C)."""
    ############################################################################
    # TODO: Put your code here
    # Calculate and return the gradient (have the same shape as logit)
    ### BEGIN SOLUTION mlp
    return (y - t) / len(y)
    ### END SOLUTION
    ############################################################################


def sigmoid(z):
    """1 / (1 + e^-z), written through tanh so that no exp() overflows."""
    return 0.5 * (1 + np.tanh(0.5 * z))


def sigmoid_cross_entropy(logits, t):
    """Mean binary cross-entropy of sigmoid(logits) against targets t in {0, 1}
    (notes §1.1, logistic regression):
        J = -1/N sum_n [t ln h + (1 - t) ln(1 - h)],  h = sigmoid(z).
    With ln h = -log(1 + e^-z) and ln(1 - h) = -log(1 + e^z), written with
    np.logaddexp(0, .) so that no exp() overflows:
        J = 1/N sum_n [t logaddexp(0, -z) + (1 - t) logaddexp(0, z)].

    Inputs:
    - logits: (N, 1) or (N,) scores z
    - t: targets of the same shape, 0 or 1
    Returns loss: a Python float
    """
    return float(np.mean(t * np.logaddexp(0, -logits) + (1 - t) * np.logaddexp(0, logits)))


# ---------------------------------------------------------------------------
# 2. The homework model
# ---------------------------------------------------------------------------

class SoftmaxCrossEntropyLoss(Model):
    """The homework model: a linear layer followed by softmax and cross-entropy.

    y = softmax(Input @ W + b), L = CrossEntropy(y, labels)   (notes §1.3)

    It is the model and the loss in one object, as in the original homework
    framework. The solver calls, for every batch:
        loss, acc = model.forward(images, labels)
        model.gradient_computing()
        optimizer.step()
    """

    def __init__(self, num_input, num_output, trainable=True):
        """
        Apply a linear layer to input X before computing softmax
        Parameters:
        num_input: number of input features
        num_output: number of output classes
        trainable: whether if this layer is trainable
        """

        self.num_input = num_input
        self.num_output = num_output
        self.trainable = trainable
        self.XavierInit()

    def forward(self, Input, labels):
        """
          Inputs: (minibatch)
          - Input: (batch_size, 784)
          - labels: the ground truth label, shape (batch_size, ),
            integer class ids in [0, num_output)
          Returns (loss, acc): the average cross-entropy loss and the average
          accuracy over the minibatch, as Python floats.
        """
        # A clear error for wrong shapes; W and b follow the dtype of the data (float32 when training).
        check_batch(self, Input, self.num_input, labels)
        match_dtype(self, Input)

        ############################################################################
        # TODO: Put your code here
        # Apply linear transformation (WX+b) to Input, and then
        # calculate the average accuracy and loss over the minibatch
        # Return the loss and acc, which will be used in solver.py
        # Hint: Maybe you need to save some arrays for gradient computing.
        # (Samples are rows here: the linear transformation is Input @ self.W + self.b,
        #  shapes (batch_size, 784) @ (784, 10) + (1, 10).)
        ### BEGIN SOLUTION softmax
        # The shared maths of layers.py and of this file: in the student copy
        # these helpers are stubs, so the student writes this part in full.
        from layers import affine_forward

        self.Input, self.labels = Input, labels
        logits = affine_forward(Input, self.W, self.b)
        loss, self.prob = softmax_cross_entropy(logits, labels)
        acc = accuracy(logits, labels)
        ### END SOLUTION
        ############################################################################

        return loss, acc

    def gradient_computing(self):
        """
        Computes the gradients of the average loss of the last forward() call:
        sets self.grad_W, shape (num_input, num_output), and self.grad_b,
        shape (1, num_output).
        """
        ############################################################################
        # TODO: Put your code here
        # Calculate the gradient of W and b.

        # self.grad_W =
        # self.grad_b =
        ### BEGIN SOLUTION softmax
        from layers import affine_grads

        delta = softmax_cross_entropy_backward(self.prob, self.labels)
        self.grad_W, self.grad_b = affine_grads(self.Input, delta)
        ### END SOLUTION
        ############################################################################

    def XavierInit(self):
        """
        Initialize the weights
        """
        self.W, self.b = xavier_init(self.num_input, self.num_output)

    def predict(self, Input):
        """Class scores Input @ W + b, shape (N, num_output), for a batch (N, num_input)."""
        # Written out rather than through layers.affine_forward, which is a
        # student region of the mlp assignment (a stub in the handouts).
        return Input @ self.W + self.b


# ---------------------------------------------------------------------------
# 3. Criteria: loss layers without parameters, for a Network
# ---------------------------------------------------------------------------

class Criterion(object):
    """Base of the loss layers: forward(logit, gt) -> float, backward() -> dE/dlogit.

    After forward, .loss holds the loss and .acc the accuracy of the batch
    (.accu too, the name the course's Euclidean skeleton used)."""

    def __init__(self):
        self.loss = 0.
        self.acc = 0.

    @property
    def accu(self):
        return self.acc

    @staticmethod
    def check(logit, gt):
        if np.ndim(logit) != 2:
            raise ValueError(f"a criterion expects logit of shape (batch_size, num_classes), got "
                             f"{np.shape(logit)}; put the last FCLayer before it")
        if len(gt) != len(logit):
            raise ValueError(f"{len(logit)} outputs but {len(gt)} labels; there must be one label per row")


class SoftmaxCrossEntropyLossLayer(Criterion):
    """Softmax followed by the mean cross-entropy (notes §1.2.5, §2.4: the
    softmax and its loss form one layer, since their joint gradient is simply
    y - t)."""

    def forward(self, logit, gt):
        """
          Inputs: (minibatch)
          - logit: forward results from the last FCLayer, shape (batch_size, C)
          - gt: the ground truth label, shape (batch_size,) class ids or (batch_size, C) one-hot
          Returns the average loss (a float); sets self.loss and self.acc.
        """
        self.check(logit, gt)
        self.gt = gt
        self.loss, self.prob = softmax_cross_entropy(logit, gt)
        self.acc = accuracy(logit, gt)
        return self.loss

    def backward(self):
        """dE/dlogit, shape (batch_size, C)."""
        return softmax_cross_entropy_backward(self.prob, self.gt)


class EuclideanLossLayer(Criterion):
    """The squared error, mean over the batch of 1/2 ||y - t||^2 (notes §2.3.1),
    with t the one-hot targets; the network's outputs y are used as they are."""

    def forward(self, logit, gt):
        """
          Inputs: (minibatch)
          - logit: forward results from the last FCLayer, shape (batch_size, C)
          - gt: the ground truth label, shape (batch_size,) class ids or (batch_size, C) one-hot
          Returns the average loss (a float); sets self.loss and self.acc.
        """
        self.check(logit, gt)
        self.logit, self.target = logit, one_hot(gt, logit.shape[1], logit.dtype)
        self.loss = euclidean_loss(logit, self.target)
        self.acc = accuracy(logit, gt)
        return self.loss

    def backward(self):
        """dE/dlogit, shape (batch_size, C)."""
        return euclidean_loss_backward(self.logit, self.target)


class SigmoidCrossEntropyLossLayer(Criterion):
    """Binary logistic regression's loss (notes §1.1): h = sigmoid(z) is the
    probability of class 1, and the gradient of the mean cross-entropy with
    respect to z is (h - t) / N, the same form as softmax's y - t.

    logit: (N, 1) scores; gt: (N,) or (N, 1) labels in {0, 1}. A prediction
    is class 1 when h > 0.5, i.e. z > 0."""

    def forward(self, logit, gt):
        self.check(logit, gt)
        if np.shape(logit)[1] != 1:
            raise ValueError(f"SigmoidCrossEntropyLossLayer expects one score per sample, logit of "
                             f"shape (batch_size, 1); got {np.shape(logit)}")
        t = np.asarray(gt, dtype=logit.dtype).reshape(-1, 1)
        if t.size and not np.all((t == 0) | (t == 1)):
            raise ValueError("SigmoidCrossEntropyLossLayer needs labels 0 or 1")
        self.logit, self.target = logit, t
        self.loss = sigmoid_cross_entropy(logit, t)
        self.acc = float(np.mean((logit > 0) == (t == 1)))
        return self.loss

    def backward(self):
        return (sigmoid(self.logit) - self.target) / len(self.logit)


CRITERIA = {
    'softmax_cross_entropy': SoftmaxCrossEntropyLossLayer,
    'euclidean': EuclideanLossLayer,
    'sigmoid_cross_entropy': SigmoidCrossEntropyLossLayer,
}
