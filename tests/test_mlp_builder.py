"""One MLP builder (layers.build_mlp), the course's: the notebook, the report
(through Solver cfgs) and the Solver build the same network for the same
setting, so they print the same numbers."""

import json
from pathlib import Path

import numpy as np
import pytest

from layers import FCLayer, build_mlp
from loss import EuclideanLossLayer
from solver import Solver

REPO = Path(__file__).resolve().parents[1]
COURSE = dict(learning_rate=0.001, weight_decay=0.1, momentum=0.0, batch_size=50)


@pytest.mark.solution('mlp')
@pytest.mark.parametrize('activation', ['sigmoid', 'relu'])
def test_the_cfg_mlp_is_the_course_network_and_the_notebooks(tiny_mnist, activation):
    common = dict(COURSE, data_root=str(tiny_mnist), max_epoch=1, seed=0, verbose=False)
    from_cfg = Solver(dict(common, hidden_sizes=[128], activation=activation, loss='euclidean'))

    # The course's layers, FCLayer(784, 128) and FCLayer(128, 10) with their
    # defaults, drawn from the same seed.
    np.random.seed(0)
    course = [FCLayer(784, 128), FCLayer(128, 10)]
    initial = from_cfg.model.state_dict()
    assert sorted(initial) == ['0.W', '0.b', '2.W', '2.b']
    for index, layer in zip((0, 2), course):
        assert np.array_equal(initial[f'{index}.W'], layer.W) and np.array_equal(initial[f'{index}.b'], layer.b)

    # The notebook's way: build the network (np.random.seed(0) first) and hand it to the Solver.
    np.random.seed(0)
    by_hand = Solver(common, network=build_mlp(784, [128], 10, activation), criterion=EuclideanLossLayer())
    from_cfg.train()
    by_hand.train()
    assert by_hand.history['val_acc'] == from_cfg.history['val_acc']
    for key, array in from_cfg.model.state_dict().items():
        assert np.array_equal(array, by_hand.model.state_dict()[key]), key


def test_the_notebook_builds_its_networks_with_build_mlp():
    cells = json.loads((REPO / 'mlp.ipynb').read_text(encoding='utf-8'))['cells']
    builder = [''.join(cell['source']) for cell in cells if 'def build_network' in ''.join(cell['source'])]
    assert len(builder) == 1
    assert 'build_mlp(784, hidden_sizes, 10, activation)' in builder[0] and 'network.add(' not in builder[0]
