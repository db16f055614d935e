"""Graded checks of the mlp assignment (layers.py, loss.py, optimizer.py).

The child functions use the course's layer API: FCLayer(num_input,
num_output) with W, b, forward(Input), backward(delta) -> delta below and
grad_W, grad_b; ReLULayer(), SigmoidLayer(); the criteria
SoftmaxCrossEntropyLossLayer() and EuclideanLossLayer() with
forward(logit, gt) -> loss (sets .acc) and backward() -> dE/dlogit;
Network(layers); SGD(model, learning_rate, momentum, weight_decay). Every
parameter is set from the inputs, so the checks do not depend on how a
student initialises. Expected values come from the reference.
"""

import numpy as np

from checks import (VECTORISED_HELPERS, Check, CheckFailed, close, compare_all, compare_vectorised, image_mean,
                    mnist)
from checks.softmax import EPOCHS, TRAIN_SUBSET


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def layer_inputs(rng):
    n, d, m = int(rng.integers(5, 20)), 7, 4
    x = rng.normal(size=(n, d))
    x[np.abs(x) < 1e-3] = 0.5          # no input on the kink of ReLU
    return {'x': x, 'W': rng.normal(scale=0.3, size=(d, m)), 'b': rng.normal(scale=0.3, size=(1, m)),
            'delta_out': rng.normal(size=(n, m)), 'delta_x': rng.normal(size=(n, d)),
            'labels': rng.integers(0, m, size=n)}


def network_inputs(rng, sizes=(6, 5, 4, 3)):
    n = int(rng.integers(6, 16))
    inputs = {'x': rng.normal(size=(n, sizes[0])), 'labels': rng.integers(0, sizes[-1], size=n)}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        inputs[f'W{i}'] = rng.normal(scale=0.5, size=(a, b))
        inputs[f'b{i}'] = rng.normal(scale=0.5, size=(1, b))
    return inputs


def decay_inputs(rng, steps=4):
    inputs = network_inputs(rng)
    for i in range(3):
        inputs[f'grad_W{i}'] = rng.normal(size=(steps,) + inputs[f'W{i}'].shape)
        inputs[f'grad_b{i}'] = rng.normal(size=(steps,) + inputs[f'b{i}'].shape)
    inputs.update(learning_rate=np.array(rng.uniform(0.01, 0.3)), momentum=np.array(rng.uniform(0.5, 0.95)),
                  weight_decay=np.array(rng.uniform(0.001, 0.1)))
    return inputs


def vectorised_inputs(rng, large=40):
    return {'sizes': np.array([8, large]), 'x': rng.normal(size=(large, 6)), 'delta': rng.normal(size=(large, 4)),
            'labels': rng.integers(0, 4, size=large), 'W': rng.normal(scale=0.5, size=(6, 4)),
            'b': rng.normal(scale=0.5, size=(1, 4)), 'W_rows': rng.normal(size=(large, 3))}


def training_inputs(rng, root, hidden=64):
    images, labels, _, _ = mnist(root)
    chosen = rng.choice(len(images), TRAIN_SUBSET, replace=False)
    return {'images': images[chosen], 'labels': labels[chosen].astype(np.uint8),
            'W0': rng.normal(scale=(2 / 784) ** 0.5, size=(784, hidden)), 'b0': np.zeros((1, hidden)),
            'W1': rng.normal(scale=(1 / hidden) ** 0.5, size=(hidden, 10)), 'b1': np.zeros((1, 10)),
            'orders': np.stack([rng.permutation(TRAIN_SUBSET) for _ in range(EPOCHS)]),
            'learning_rate': np.array(0.1), 'momentum': np.array(0.9), 'weight_decay': np.array(5e-4)}


# ---------------------------------------------------------------------------
# Child functions
# ---------------------------------------------------------------------------

def fc_child(inputs, modules):
    import numpy as np
    W, b = inputs['W'], inputs['b']
    layer = modules.layers.FCLayer(W.shape[0], W.shape[1])
    layer.W, layer.b = W.copy(), b.copy()
    output = layer.forward(inputs['x'])
    below = layer.backward(inputs['delta_out'])
    return {'FCLayer.forward output': np.asarray(output, dtype=np.float64),
            'FCLayer.backward delta for the layer below': np.asarray(below, dtype=np.float64),
            'FCLayer.grad_W': np.asarray(layer.grad_W, dtype=np.float64),
            'FCLayer.grad_b': np.asarray(layer.grad_b, dtype=np.float64)}


def activations_child(inputs, modules):
    import numpy as np
    out = {}
    for name in ('ReLULayer', 'SigmoidLayer'):
        layer = getattr(modules.layers, name)()
        out[f'{name}.forward output'] = np.asarray(layer.forward(inputs['x'].copy()), dtype=np.float64)
        out[f'{name}.backward delta'] = np.asarray(layer.backward(inputs['delta_x'].copy()), dtype=np.float64)
    return out


def criteria_child(inputs, modules):
    import numpy as np
    logit, labels = inputs['x'][:, :4].copy(), inputs['labels']
    out = {}
    for name in ('SoftmaxCrossEntropyLossLayer', 'EuclideanLossLayer'):
        for form, gt in (('class ids', labels), ('one-hot rows', np.eye(4)[labels])):
            criterion = getattr(modules.loss, name)()
            loss = criterion.forward(logit, gt)
            out[f'{name} loss ({form})'] = float(loss)
            out[f'{name} acc ({form})'] = float(criterion.acc)
            out[f'{name} backward ({form})'] = np.asarray(criterion.backward(), dtype=np.float64)
    return out


def build_network(inputs, modules, activations=('ReLULayer', 'SigmoidLayer')):
    """FC - ReLU - FC - Sigmoid - FC with the parameters of the inputs (a helper of the children)."""
    layers = []
    for i in range(len(activations) + 1):
        W, b = inputs[f'W{i}'], inputs[f'b{i}']
        fc = modules.layers.FCLayer(W.shape[0], W.shape[1])
        fc.W, fc.b = W.copy(), b.copy()
        layers.append(fc)
        if i < len(activations):
            layers.append(getattr(modules.layers, activations[i])())
    return modules.layers.Network(layers), [layer for layer in layers if hasattr(layer, 'W')]


def network_gradients(network, fcs, criterion, x, targets):
    """The criterion's loss on network(x) and the gradients of the FC layers
    `fcs` after one backward pass (a helper of the children)."""
    import numpy as np
    loss = criterion.forward(network.forward(x), targets)
    network.backward(criterion.backward())
    out = {'loss': float(loss)}
    for i, fc in enumerate(fcs):
        out[f'grad_W of FC layer {i + 1}'] = np.asarray(fc.grad_W, dtype=np.float64)
        out[f'grad_b of FC layer {i + 1}'] = np.asarray(fc.grad_b, dtype=np.float64)
    return out


def network_child(inputs, modules):
    network, fcs = build_network(inputs, modules)  # noqa: F821  (helpers of the check)
    return network_gradients(network, fcs, modules.loss.SoftmaxCrossEntropyLossLayer(),  # noqa: F821
                             inputs['x'], inputs['labels'])


def decay_child(inputs, modules):
    import numpy as np
    network, fcs = build_network(inputs, modules)  # noqa: F821
    held = [(fc.W, fc.b) for fc in fcs]
    optimizer = modules.optimizer.SGD(network, float(inputs['learning_rate']), float(inputs['momentum']),
                                      weight_decay=float(inputs['weight_decay']))
    out = {}
    for step in range(len(inputs['grad_W0'])):
        for i, fc in enumerate(fcs):
            fc.grad_W, fc.grad_b = inputs[f'grad_W{i}'][step].copy(), inputs[f'grad_b{i}'][step].copy()
        optimizer.step()
        for i, fc in enumerate(fcs):
            out[f'W of FC layer {i + 1} after step {step + 1}'] = np.array(fc.W, dtype=np.float64)
            out[f'b of FC layer {i + 1} after step {step + 1}'] = np.array(fc.b, dtype=np.float64)
    for i, (W, b) in enumerate(held):
        out[f'the W array of FC layer {i + 1} held before training, after the steps'] = np.array(W, dtype=np.float64)
    return out


# What vectorised_child traces: (label, what the size counts).
VECTORISED_PARTS = [('FCLayer.forward and backward', 'samples in the batch'),
                    ('ReLULayer.forward and backward', 'samples in the batch'),
                    ('SigmoidLayer.forward and backward', 'samples in the batch'),
                    ('SoftmaxCrossEntropyLossLayer.forward and backward', 'samples in the batch'),
                    ('EuclideanLossLayer.forward and backward', 'samples in the batch'),
                    ('SGD.step with momentum and weight decay', 'rows of W')]


def vectorised_child(inputs, modules):
    """Line counts of layers.py, loss.py and optimizer.py for a small and a
    large batch, one part at a time (the helper traced()), with the value
    of each large run."""
    import os
    import numpy as np
    files = [os.path.abspath(m.__file__) for m in (modules.layers, modules.loss, modules.optimizer)]
    x, delta, labels, W, b = inputs['x'], inputs['delta'], inputs['labels'], inputs['W'], inputs['b']

    def layer_run(layer, n, width):
        """forward then backward of `layer` on n samples; the value: output,
        delta below and the parameter gradients (if any)."""
        result = {}

        def run():
            result['out'] = layer.forward(x[:n, :width].copy())
            result['below'] = layer.backward(delta[:n, :result['out'].shape[1]].copy())
        grads = lambda: [layer.grad_W, layer.grad_b] if hasattr(layer, 'grad_W') else []  # noqa: E731
        return run, lambda: np.concatenate([np.ravel(a) for a in [result['out'], result['below']] + grads()])

    def fc(n):
        layer = modules.layers.FCLayer(W.shape[0], W.shape[1])
        layer.W, layer.b = W.copy(), b.copy()
        return layer_run(layer, n, W.shape[0])

    def activation(name):
        return lambda n: layer_run(getattr(modules.layers, name)(), n, 4)

    def criterion(name):
        def make(n):
            layer, result = getattr(modules.loss, name)(), {}

            def run():
                result['loss'] = layer.forward(x[:n, :4].copy(), labels[:n])
                result['grad'] = layer.backward()
            return run, lambda: np.append(np.ravel(result['grad']), float(result['loss']))
        return make

    def step(n):
        layer = modules.layers.FCLayer(n, 3)          # W is (n, 3): a loop over its rows would grow
        layer.W, layer.b = inputs['W_rows'][:n].copy(), np.zeros((1, 3))
        layer.grad_W, layer.grad_b = np.ones_like(layer.W), np.ones_like(layer.b)
        optimizer = modules.optimizer.SGD(modules.layers.Network([layer]), 0.1, 0.9, weight_decay=0.01)
        optimizer.step()                               # the first step creates the velocities
        return optimizer.step, lambda: np.array(layer.W)

    makers = [fc, activation('ReLULayer'), activation('SigmoidLayer'), criterion('SoftmaxCrossEntropyLossLayer'),
              criterion('EuclideanLossLayer'), step]
    out = {}
    for (label, _), make in zip(VECTORISED_PARTS, makers):  # noqa: F821  (a constant of the check)
        out[f'line counts: {label}'], out[f'value: {label}'] = traced(make, files, inputs['sizes'])  # noqa: F821
    return out


def mlp_training_child(inputs, modules):
    """784-64-10 with ReLU, softmax cross-entropy, SGD with momentum and weight decay."""
    import numpy as np
    images = inputs['images'].astype(np.float32) / 255
    images -= images.mean(axis=1, keepdims=True)
    labels = inputs['labels']
    network, fcs = build_network({k: v.astype(np.float32) for k, v in inputs.items() if k[0] in 'Wb'},  # noqa: F821
                                 modules, activations=('ReLULayer',))
    criterion = modules.loss.SoftmaxCrossEntropyLossLayer()
    optimizer = modules.optimizer.SGD(network, float(inputs['learning_rate']), float(inputs['momentum']),
                                      weight_decay=float(inputs['weight_decay']))
    losses = []
    for order in inputs['orders']:
        for start in range(0, len(order), 100):
            index = order[start:start + 100]
            losses.append(float(criterion.forward(network.forward(images[index]), labels[index])))
            network.backward(criterion.backward())
            optimizer.step()
    out = {'batch losses': np.array(losses)}
    for i, fc in enumerate(fcs):
        out[f'W{i}'], out[f'b{i}'] = np.asarray(fc.W, dtype=np.float64), np.asarray(fc.b, dtype=np.float64)
    return out


# ---------------------------------------------------------------------------
# Trusted comparisons
# ---------------------------------------------------------------------------

def compare_decay(got, expected, inputs):
    held = sorted(k for k in expected if 'held before' in k)
    for key in sorted((k for k in expected if k not in held), key=lambda k: (int(k.split()[-1]), k)):
        close(got[key], expected[key], key, rtol=1e-9, atol=1e-12)
    for key in held:
        try:
            close(got[key], expected[key], key, rtol=1e-9, atol=1e-12)
        except CheckFailed as failure:
            raise CheckFailed(f"{failure} -- the optimizer must change the parameters in place") from None


def mlp_accuracy(params, root):
    _, _, images, labels = mnist(root)
    hidden = np.maximum(image_mean(images) @ params['W0'] + params['b0'], 0)
    return float(np.mean((hidden @ params['W1'] + params['b1']).argmax(axis=1) == labels))


def compare_training(root):
    def compare(got, expected, inputs):
        for key in ('W0', 'b0', 'W1', 'b1'):
            if got[key].shape != expected[key].shape or not np.all(np.isfinite(got[key])):
                raise CheckFailed(f"the trained {key} has shape {got[key].shape} or is not finite")
        accuracy, reference = mlp_accuracy(got, root), mlp_accuracy(expected, root)
        bar = min(0.88, reference - 0.02)
        if accuracy < bar:
            raise CheckFailed(f"after {EPOCHS} epochs on {TRAIN_SUBSET} MNIST images, the grader computed a test "
                              f"accuracy of {accuracy:.4f} for your trained network, below the bar of {bar:.4f} "
                              f"(the reference reaches {reference:.4f} on the same run)")
        for key in ('W0', 'W1'):
            drift = float(np.linalg.norm(got[key] - expected[key]) / np.linalg.norm(expected[key]))
            if drift > 0.05:
                raise CheckFailed(f"the trained {key} differs from the reference's on the same run by {drift:.1%} "
                                  f"(relative norm; at most 5% expected)")
    return compare


def checks(root):
    """The checks of the mlp assignment, for the reference folder `root`."""
    return [
        Check('fc_layer', "FCLayer: forward, backward (delta below, grad_W, grad_b)",
              layer_inputs, fc_child, compare_all(rtol=1e-8, atol=1e-12)),
        Check('activations', "ReLULayer and SigmoidLayer: forward and backward",
              layer_inputs, activations_child, compare_all(rtol=1e-8, atol=1e-12)),
        Check('criteria', "SoftmaxCrossEntropyLossLayer and EuclideanLossLayer: loss, acc, backward",
              layer_inputs, criteria_child, compare_all(rtol=1e-8, atol=1e-12)),
        Check('network_gradients', "a 3-layer network's gradients (FC-ReLU-FC-Sigmoid-FC, softmax cross-entropy)",
              network_inputs, network_child, compare_all(rtol=1e-7, atol=1e-12),
              helpers=[build_network, network_gradients]),
        Check('weight_decay', "SGD with momentum and weight decay over 4 steps on a network, in place",
              decay_inputs, decay_child, compare_decay, helpers=[build_network]),
        Check('vectorised', "no Python loop over the samples in the layers and criteria, nor over the rows of W "
                            "in SGD.step", vectorised_inputs, vectorised_child,
              compare_vectorised(['layers.py', 'loss.py', 'optimizer.py'],
                                 [(label, what, 'sizes') for label, what in VECTORISED_PARTS]),
              constants={'VECTORISED_PARTS': VECTORISED_PARTS}, helpers=VECTORISED_HELPERS),
        Check('mnist_mlp_training', "a short MLP training run on MNIST; the grader computes the test accuracy",
              lambda rng: training_inputs(rng, root), mlp_training_child, compare_training(root),
              helpers=[build_network]),
    ]
