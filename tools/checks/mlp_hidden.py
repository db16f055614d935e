"""Hidden checks of the mlp assignment: cases the public checks leave out (a
deeper network with the activations in another order and the Euclidean
criterion, a batch of one sample, weight decay without momentum). Their names
appear in the feedback; their code is sent to the child at run time only."""

import numpy as np

from checks import Check, compare_all, mlp


def one_sample_inputs(rng):
    """layer inputs for a batch of a single sample (n = 1)."""
    inputs = mlp.layer_inputs(rng)
    return {key: value[:1] if key in ('x', 'delta_out', 'delta_x', 'labels') else value
            for key, value in inputs.items()}


def one_sample_child(inputs, modules):
    out = dict(fc_child(inputs, modules))            # noqa: F821  (helpers of the check)
    out.update(activations_child(inputs, modules))   # noqa: F821
    return out


def deeper_network_child(inputs, modules):
    """FC-Sigmoid-FC-ReLU-FC-ReLU-FC with the Euclidean criterion on one-hot targets."""
    import numpy as np
    network, fcs = build_network(inputs, modules,  # noqa: F821  (helpers of the check)
                                 activations=('SigmoidLayer', 'ReLULayer', 'ReLULayer'))
    targets = np.eye(inputs['W3'].shape[1])[inputs['labels']]
    return network_gradients(network, fcs, modules.loss.EuclideanLossLayer(),  # noqa: F821
                             inputs['x'], targets)


def decay_without_momentum_inputs(rng):
    inputs = mlp.decay_inputs(rng, steps=6)
    inputs['momentum'] = np.array(0.0)
    return inputs


def checks(root):
    return [
        Check('hidden_deeper_network', "a 4-layer network (Sigmoid, ReLU, ReLU) with the Euclidean criterion: "
                                       "loss and gradients",
              lambda rng: mlp.network_inputs(rng, sizes=(9, 8, 7, 6, 4)), deeper_network_child,
              compare_all(rtol=1e-7, atol=1e-12), hidden=True,
              helpers=[mlp.build_network, mlp.network_gradients]),
        Check('hidden_one_sample_batch', "FCLayer, ReLULayer and SigmoidLayer on a batch of one sample",
              one_sample_inputs, one_sample_child, compare_all(rtol=1e-8, atol=1e-12), hidden=True,
              helpers=[mlp.fc_child, mlp.activations_child]),
        Check('hidden_weight_decay_without_momentum', "SGD with weight decay and momentum 0 over 6 steps, in place",
              decay_without_momentum_inputs, mlp.decay_child, mlp.compare_decay, hidden=True,
              helpers=[mlp.build_network]),
    ]
