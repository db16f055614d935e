"""Hidden checks of the softmax homework (the grading equivalents of
tests/hidden/): their names appear in the feedback, their code never leaves
the grader (it is sent to the child process at run time only)."""

import ast
from pathlib import Path

from checks import Check, compare_all, softmax   # softmax: the public checks' inputs, children, comparisons


def original_framework_files(root):
    """ORIGINAL_LOSS and ORIGINAL_OPTIMIZER, the original framework's loss.py and
    optimizer.py as a student wrote them (tests/hidden/test_original_framework.py),
    read without importing the test module."""
    path = Path(root) / 'tests' / 'hidden' / 'test_original_framework.py'
    found = {}
    for node in ast.parse(path.read_text(encoding='utf-8')).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in ('ORIGINAL_LOSS', 'ORIGINAL_OPTIMIZER'):
                    found[target.id] = node.value.value
    return found


def forward_and_gradients_child(inputs, modules):
    import numpy as np
    out, i = {}, 0
    while f'x{i}' in inputs:
        W, b = inputs[f'W{i}'], inputs[f'b{i}']
        model = modules.loss.SoftmaxCrossEntropyLoss(W.shape[0], W.shape[1])
        model.W, model.b = W.copy(), b.copy()
        loss, acc = model.forward(inputs[f'x{i}'], inputs[f'labels{i}'])
        model.gradient_computing()
        n = len(inputs[f'labels{i}'])
        out[f'loss for a batch of {n}'], out[f'accuracy for a batch of {n}'] = float(loss), float(acc)
        out[f'grad_W for a batch of {n}'] = np.asarray(model.grad_W, dtype=np.float64)
        out[f'grad_b for a batch of {n}'] = np.asarray(model.grad_b, dtype=np.float64)
        i += 1
    return out


def with_original_loss_child(inputs, modules):
    import types
    original = types.ModuleType('original_loss')
    exec(ORIGINAL_LOSS, original.__dict__)  # noqa: F821  (a constant of the check)

    class Mixed(object):
        loss, optimizer = original, modules.optimizer
    return training_child(inputs, Mixed)  # noqa: F821  (a helper of the check)


def with_original_optimizer_child(inputs, modules):
    import types
    original = types.ModuleType('original_optimizer')
    exec(ORIGINAL_OPTIMIZER, original.__dict__)  # noqa: F821

    class Mixed(object):
        loss, optimizer = modules.loss, original
    return training_child(inputs, Mixed)  # noqa: F821


def checks(root):
    original = original_framework_files(root)
    return [
        Check('hidden_random_batches', "forward and gradients on batches of 13, 1 and 64 samples",
              lambda rng: softmax.random_batches(rng, [(13, 7, 5), (1, 3, 2), (64, 20, 10)]),
              forward_and_gradients_child, compare_all(rtol=1e-8, atol=1e-14), hidden=True),
        Check('hidden_momentum_many_steps', "SGD with momentum over 8 steps on a wider model",
              lambda rng: softmax.momentum_inputs(rng, steps=8, shape=(9, 5)), softmax.momentum_child,
              softmax.compare_momentum, hidden=True),
        Check('hidden_original_loss_with_your_sgd',
              "your optimizer.py trains the original framework's SoftmaxCrossEntropyLoss",
              lambda rng: softmax.training_inputs(rng, root), with_original_loss_child,
              softmax.compare_training(root, "the original framework's loss.py with your optimizer.py"),
              hidden=True, constants={'ORIGINAL_LOSS': original['ORIGINAL_LOSS']},
              helpers=[softmax.training_child]),
        Check('hidden_original_sgd_with_your_loss',
              "your loss.py trains with the original framework's SGD",
              lambda rng: softmax.training_inputs(rng, root), with_original_optimizer_child,
              softmax.compare_training(root, "your loss.py with the original framework's optimizer.py"),
              hidden=True, constants={'ORIGINAL_OPTIMIZER': original['ORIGINAL_OPTIMIZER']},
              helpers=[softmax.training_child]),
    ]
