"""Graded checks of the softmax homework (SoftmaxCrossEntropyLoss and SGD with momentum).

Each check's child function calls the homework API only (the original
framework's): SoftmaxCrossEntropyLoss(num_input, num_output) with W, b,
forward(Input, labels) -> (loss, acc), gradient_computing() -> grad_W,
grad_b; SGD(model, learning_rate, momentum).step(). Parameters are set
explicitly from the inputs, so the checks do not depend on how a student
initialises them. Expected values come from the reference (see
tools/checks/__init__.py), never from numbers written here.
"""

import numpy as np

from checks import (VECTORISED_HELPERS, Check, CheckFailed, close, compare_all, compare_vectorised, image_mean,
                    mnist)

# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def random_batches(rng, shapes):
    """{x<i>, labels<i>, W<i>, b<i>} for batches of the given (n, d, c).

    W and b are small (std 0.1), so that no class probability is tiny: a loss
    written as log(prob + EPS), as the original homework suggests, is then
    within 1e-9 of the exact one, and the rtol of 1e-8 used below holds for
    every draw, not just most."""
    inputs = {}
    for i, (n, d, c) in enumerate(shapes):
        inputs[f'x{i}'] = rng.normal(size=(n, d))
        inputs[f'labels{i}'] = rng.integers(0, c, size=n).astype(np.uint8)
        inputs[f'W{i}'] = rng.normal(scale=0.1, size=(d, c))
        inputs[f'b{i}'] = rng.normal(scale=0.1, size=(1, c))
    return inputs


def extreme_inputs(rng):
    """A batch whose logits x @ (1e5 W) + b put every label on the smallest logit:
    every sample wrong by a huge margin."""
    inputs = random_batches(rng, [(4, 6, 4)])
    logits = inputs['x0'] @ (inputs['W0'] * 1e5) + inputs['b0']
    inputs['labels0'] = logits.argmin(axis=1).astype(np.uint8)
    return inputs


def batch_inputs(rng):
    return random_batches(rng, [(1, 5, 3), (int(rng.integers(10, 40)), 12, 6), (64, 30, 10)])


# ---------------------------------------------------------------------------
# Child functions (run in the child on the student's modules, here on the reference's)
# ---------------------------------------------------------------------------


def forward_child(inputs, modules):
    import numpy as np
    out, i = {}, 0
    while f'x{i}' in inputs:
        W, b = inputs[f'W{i}'], inputs[f'b{i}']
        model = modules.loss.SoftmaxCrossEntropyLoss(W.shape[0], W.shape[1])
        model.W, model.b = W.copy(), b.copy()
        loss, acc = model.forward(inputs[f'x{i}'], inputs[f'labels{i}'])
        out[f'loss of batch {i}'], out[f'accuracy of batch {i}'] = float(loss), float(acc)
        out[f'forward of batch {i} returns floats'] = isinstance(loss, float) and isinstance(acc, float)
        i += 1
    return out


def gradients_child(inputs, modules):
    import numpy as np
    out, i = {}, 0
    while f'x{i}' in inputs:
        W, b = inputs[f'W{i}'], inputs[f'b{i}']
        model = modules.loss.SoftmaxCrossEntropyLoss(W.shape[0], W.shape[1])
        model.W, model.b = W.copy(), b.copy()
        model.forward(inputs[f'x{i}'], inputs[f'labels{i}'])
        model.gradient_computing()
        out[f'grad_W of batch {i}'] = np.asarray(model.grad_W, dtype=np.float64)
        out[f'grad_b of batch {i}'] = np.asarray(model.grad_b, dtype=np.float64)
        i += 1
    return out


def doubled_batch_child(inputs, modules):
    import numpy as np
    W, b, x, labels = inputs['W0'], inputs['b0'], inputs['x0'], inputs['labels0']
    model = modules.loss.SoftmaxCrossEntropyLoss(W.shape[0], W.shape[1])
    model.W, model.b = W.copy(), b.copy()
    loss, _ = model.forward(np.vstack([x, x]), np.concatenate([labels, labels]))
    model.gradient_computing()
    return {'loss of a batch written twice': float(loss),
            'grad_W of a batch written twice': np.asarray(model.grad_W, dtype=np.float64),
            'grad_b of a batch written twice': np.asarray(model.grad_b, dtype=np.float64)}


def extreme_child(inputs, modules):
    import numpy as np
    W, b, x, labels = inputs['W0'] * 1e5, inputs['b0'], inputs['x0'], inputs['labels0']
    model = modules.loss.SoftmaxCrossEntropyLoss(W.shape[0], W.shape[1])
    model.W, model.b = W.copy(), b.copy()
    try:
        with np.errstate(over='raise', invalid='raise', divide='raise'):
            loss, acc = model.forward(x, labels)
            model.gradient_computing()
    except FloatingPointError as error:      # say how to avoid it; the traceback still names the line
        error.args = (f"{error}. Where exp() overflows, subtract each row's maximum first (notes §1.3); "
                      "where log() divides by zero, a probability underflowed to 0: use a log-softmax, "
                      "shifted - log(sum(exp(shifted))), or log(prob + EPS)",)
        raise
    return {'loss': float(loss), 'accuracy': float(acc),
            'grad_W': np.asarray(model.grad_W, dtype=np.float64),
            'grad_b': np.asarray(model.grad_b, dtype=np.float64)}


def float32_child(inputs, modules):
    import numpy as np
    W, b = inputs['W0'], inputs['b0']
    model = modules.loss.SoftmaxCrossEntropyLoss(W.shape[0], W.shape[1])
    model.W, model.b = W.astype(np.float32), b.astype(np.float32)
    model.forward(inputs['x0'].astype(np.float32), inputs['labels0'])
    model.gradient_computing()
    modules.optimizer.SGD(model, 0.1, 0.9).step()
    return {'W is float32': model.W.dtype == np.float32, 'b is float32': model.b.dtype == np.float32}


def momentum_child(inputs, modules):
    import numpy as np
    W, b = inputs['W'], inputs['b']
    model = modules.loss.SoftmaxCrossEntropyLoss(W.shape[0], W.shape[1])
    model.W, model.b = W.copy(), b.copy()
    W_held, b_held = model.W, model.b   # what a caller holding the arrays sees
    optimizer = modules.optimizer.SGD(model, float(inputs['learning_rate']), float(inputs['momentum']))
    out = {}
    for step in range(len(inputs['grad_W'])):
        model.grad_W, model.grad_b = inputs['grad_W'][step].copy(), inputs['grad_b'][step].copy()
        optimizer.step()
        out[f'model.W after step {step + 1}'] = np.array(model.W, dtype=np.float64)
        out[f'model.b after step {step + 1}'] = np.array(model.b, dtype=np.float64)
    out['the W array held before training, after the steps'] = np.array(W_held, dtype=np.float64)
    out['the b array held before training, after the steps'] = np.array(b_held, dtype=np.float64)
    return out


def plain_and_frozen_child(inputs, modules):
    import numpy as np
    W, b = inputs['W'], inputs['b']
    out = {}
    for trainable in (True, False):
        model = modules.loss.SoftmaxCrossEntropyLoss(W.shape[0], W.shape[1], trainable=trainable)
        model.W, model.b = W.copy(), b.copy()
        optimizer = modules.optimizer.SGD(model, float(inputs['learning_rate']), 0.0)
        for step in range(2):
            model.grad_W, model.grad_b = inputs['grad_W'][step].copy(), inputs['grad_b'][step].copy()
            optimizer.step()
        what = 'momentum 0' if trainable else 'a model with trainable=False'
        out[f'W after 2 steps with {what}'] = np.array(model.W, dtype=np.float64)
        out[f'b after 2 steps with {what}'] = np.array(model.b, dtype=np.float64)
    return out


def vectorised_child(inputs, modules):
    """Line counts of loss.py and optimizer.py for a small and a large size
    (testkit.vectorised's method, through the helper traced()); also the
    value of the large run, so that only correct code can pass."""
    import os
    import numpy as np
    what, label = str(inputs['what']), str(inputs['label'])
    files = [os.path.abspath(modules.loss.__file__), os.path.abspath(modules.optimizer.__file__)]
    x, labels = inputs['x'], inputs['labels']

    def make_run(size):
        if what == 'step':
            model = modules.loss.SoftmaxCrossEntropyLoss(size, 3)   # W is (size, 3)
            model.W, model.b = x[:size, :3].copy(), x[:1, :3].copy()
            model.grad_W, model.grad_b = np.ones_like(model.W), np.ones_like(model.b)
            optimizer = modules.optimizer.SGD(model, 0.1, 0.9)
            optimizer.step()
            return optimizer.step, lambda: np.array(model.W)
        model = modules.loss.SoftmaxCrossEntropyLoss(x.shape[1], 4)
        model.W, model.b = inputs['W'].copy(), inputs['b'].copy()
        if what == 'forward':
            result = {}
            return (lambda: result.update(loss=model.forward(x[:size], labels[:size])[0])), \
                lambda: np.array(result['loss'])
        model.forward(x[:size], labels[:size])
        return model.gradient_computing, lambda: np.array(model.grad_W)

    counts, value = traced(make_run, files, inputs['sizes'])  # noqa: F821  (a helper of the check)
    return {f'line counts: {label}': counts, f'value: {label}': value}


def training_child(inputs, modules):
    """The homework's training loop on MNIST images chosen by the grader."""
    import numpy as np
    images = inputs['images'].astype(np.float32) / 255
    images -= images.mean(axis=1, keepdims=True)          # the homework's 'image_mean' normalisation
    labels = inputs['labels']
    model = modules.loss.SoftmaxCrossEntropyLoss(784, 10)
    model.W, model.b = inputs['W'].astype(np.float32), inputs['b'].astype(np.float32)
    optimizer = modules.optimizer.SGD(model, float(inputs['learning_rate']), float(inputs['momentum']))
    batch = int(inputs['batch_size'])
    losses = []
    for order in inputs['orders']:                        # one permutation per epoch
        for start in range(0, len(order), batch):
            index = order[start:start + batch]
            loss, _ = model.forward(images[index], labels[index])
            model.gradient_computing()
            optimizer.step()
            losses.append(float(loss))
    return {'W': np.asarray(model.W, dtype=np.float64), 'b': np.asarray(model.b, dtype=np.float64),
            'batch losses': np.array(losses)}


# ---------------------------------------------------------------------------
# Trusted comparisons
# ---------------------------------------------------------------------------


def compare_forward(got, expected, inputs):
    for key in sorted(expected):
        if key.endswith('returns floats'):
            if not got[key]:
                raise CheckFailed("forward must return (loss, acc) as Python floats, e.g. float(loss)")
        elif key.startswith('accuracy'):
            close(got[key], expected[key], key, rtol=1e-12)
        else:
            # rtol 1e-8, not tighter: log(prob + EPS), as the original homework suggests, is off by ~EPS/prob
            close(got[key], expected[key], key, rtol=1e-8)


def compare_extreme(got, expected, inputs):
    loss = float(got['loss'])
    if not np.isfinite(loss) or loss < 20:
        raise CheckFailed(f"with logits of about 1e5 every sample is wrong by a huge margin: the loss must be "
                          f"finite and above 20, got {loss:.6g}. Subtract the row maximum before np.exp "
                          f"(notes §1.3), or use log(prob + EPS)")
    close(got['accuracy'], expected['accuracy'], 'accuracy', rtol=1e-12)
    close(got['grad_W'], expected['grad_W'], 'grad_W', rtol=1e-6, atol=1e-12)
    close(got['grad_b'], expected['grad_b'], 'grad_b', rtol=1e-6, atol=1e-12)


def compare_float32(got, expected, inputs):
    for key in sorted(expected):
        if not got[key]:
            raise CheckFailed(f"{key.split()[0]} became float64 while training on float32 data: something "
                              f"upcasts (e.g. np.eye(C) is float64). Training is then slower, but not wrong "
                              f"(this check has no points)")


def compare_momentum(got, expected, inputs):
    for key in sorted(expected):   # the cause first: a parameter that never changed was not updated in place
        start = inputs['W'] if 'model.W' in key or 'the W array' in key else inputs['b']
        if np.shape(got[key]) == start.shape and np.array_equal(got[key], start) \
                and not np.array_equal(expected[key], start):
            raise CheckFailed(f"{key}: unchanged -- the optimizer must change model.W and model.b in place "
                              f"(param += ...); param = param + ... binds a new array that the model never sees")
    held = [key for key in expected if 'held before' in key]
    for key in sorted((k for k in expected if k not in held), key=lambda k: (int(k.split()[-1]), k)):
        close(got[key], expected[key], key, rtol=1e-9, atol=1e-12)
    for key in sorted(held):
        try:
            close(got[key], expected[key], key, rtol=1e-9, atol=1e-12)
        except CheckFailed as failure:
            raise CheckFailed(f"{failure} -- the optimizer must change model.W and model.b in place "
                              f"(param += ...), not bind new arrays") from None


def vectorised_check(name, about, what, label, elements):
    """A check that `label` ('SGD.step', ...) has no Python loop over the `elements`."""
    def make_inputs(rng):
        return {'what': np.array(what), 'label': np.array(label), 'sizes': np.array([8, 40]),
                'x': rng.normal(size=(40, 6)), 'labels': rng.integers(0, 4, size=40),
                'W': rng.normal(scale=0.1, size=(6, 4)), 'b': rng.normal(scale=0.1, size=(1, 4))}
    return Check(name, about, make_inputs, vectorised_child,
                 compare_vectorised(['loss.py', 'optimizer.py'], [(label, elements, 'sizes')]),
                 helpers=VECTORISED_HELPERS)


def momentum_inputs(rng, steps=5, shape=(7, 4)):
    return {'W': rng.normal(size=shape), 'b': rng.normal(size=(1, shape[1])),
            'grad_W': rng.normal(size=(steps,) + shape), 'grad_b': rng.normal(size=(steps, 1, shape[1])),
            'learning_rate': np.array(rng.uniform(0.01, 0.5)), 'momentum': np.array(rng.uniform(0.5, 0.95))}


# ---------------------------------------------------------------------------
# MNIST, as the trusted side sees it
# ---------------------------------------------------------------------------

TRAIN_SUBSET, EPOCHS, BATCH = 6000, 2, 100


def training_inputs(rng, root):
    images, labels, _, _ = mnist(root)
    chosen = rng.choice(len(images), TRAIN_SUBSET, replace=False)
    return {'images': images[chosen], 'labels': labels[chosen].astype(np.uint8),
            'W': rng.normal(scale=0.01, size=(784, 10)), 'b': np.zeros((1, 10)),
            'orders': np.stack([rng.permutation(TRAIN_SUBSET) for _ in range(EPOCHS)]),
            'learning_rate': np.array(0.1), 'momentum': np.array(0.9), 'batch_size': np.array(BATCH)}


def test_accuracy(W, b, root):
    """Accuracy of softmax-regression parameters on the 10000 MNIST test images, computed here."""
    _, _, images, labels = mnist(root)
    return float(np.mean((image_mean(images) @ W + b).argmax(axis=1) == labels))


def compare_training(root, what='your loss.py and optimizer.py'):
    def compare(got, expected, inputs):
        for key in ('W', 'b'):
            if got[key].shape != expected[key].shape or not np.all(np.isfinite(got[key])):
                raise CheckFailed(f"the trained {key} has shape {got[key].shape} or is not finite")
        accuracy, reference = test_accuracy(got['W'], got['b'], root), test_accuracy(expected['W'], expected['b'], root)
        bar = min(0.85, reference - 0.02)
        if accuracy < bar:
            raise CheckFailed(f"after {EPOCHS} epochs on {TRAIN_SUBSET} MNIST images ({what}), the grader computed "
                              f"a test accuracy of {accuracy:.4f} for your trained W and b, below the bar of "
                              f"{bar:.4f} (the reference reaches {reference:.4f} on the same run)")
        drift = float(np.linalg.norm(got['W'] - expected['W']) / np.linalg.norm(expected['W']))
        if drift > 0.05:
            raise CheckFailed(f"the trained W differs from the reference's on the same run by {drift:.1%} "
                              f"(relative norm; at most 5% expected): the updates are not the homework's")
    return compare


def training_check(root):
    return Check('mnist_training', "a short training run on MNIST; the grader computes the test accuracy",
                 lambda rng: training_inputs(rng, root), training_child, compare_training(root))


def checks(root):
    """The checks of the softmax assignment, for the reference folder `root`."""
    return [
        Check('forward', "forward: loss and accuracy on random batches (1, ~25 and 64 samples)",
              batch_inputs, forward_child, compare_forward),
        Check('gradients', "gradient_computing: grad_W and grad_b on the same batches",
              batch_inputs, gradients_child, compare_all(rtol=1e-7, atol=1e-12)),
        Check('batch_average', "the loss and gradients of a batch written twice are those of the batch",
              lambda rng: random_batches(rng, [(7, 5, 3)]), doubled_batch_child, compare_all(rtol=1e-8, atol=1e-12)),
        Check('extreme_logits', "logits of about 1e5 give a finite loss and gradients (no overflow)",
              extreme_inputs, extreme_child, compare_extreme),
        Check('float32', "training on float32 data keeps W and b float32 (a hint, no points)",
              lambda rng: random_batches(rng, [(3, 6, 4)]), float32_child, compare_float32),
        Check('momentum', "SGD with momentum over 5 steps, parameters changed in place",
              momentum_inputs, momentum_child, compare_momentum),
        Check('plain_sgd_and_frozen', "momentum 0 is plain SGD; a model with trainable=False is left alone",
              lambda rng: momentum_inputs(rng, steps=2), plain_and_frozen_child, compare_all(rtol=1e-9, atol=1e-12)),
        vectorised_check('vectorised_forward', "forward has no Python loop over the samples", 'forward',
                         'SoftmaxCrossEntropyLoss.forward', 'samples in the batch'),
        vectorised_check('vectorised_gradient', "gradient_computing has no Python loop over the samples",
                         'gradient', 'SoftmaxCrossEntropyLoss.gradient_computing', 'samples in the batch'),
        vectorised_check('vectorised_step', "SGD.step has no Python loop over the entries of W", 'step',
                         'SGD.step', 'entries of W'),
        training_check(root),
    ]
