""" Softmax Cross-Entropy Loss Layer """

import numpy as np

from layers import check_batch, match_dtype, xavier_init

# a small number to prevent dividing by zero, maybe useful for you
EPS = 1e-11


class SoftmaxCrossEntropyLoss(object):
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
        ### BEGIN SOLUTION softmax
        # The shared maths of layers.py, imported here so that the student copy,
        # where these helpers are stubs, does not import them at all.
        from layers import accuracy, affine_forward, softmax_cross_entropy

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
        from layers import affine_grads, softmax_cross_entropy_backward

        delta = softmax_cross_entropy_backward(self.prob, self.labels)
        self.grad_W, self.grad_b = affine_grads(self.Input, delta)
        ### END SOLUTION
        ############################################################################

    def XavierInit(self):
        """
        Initialize the weigths
        """
        self.W, self.b = xavier_init(self.num_input, self.num_output)
