"""Checkpoints (checkpoint.py): save a model and its training, load it in
another process, resume training exactly where it stopped."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from checkpoint import load_checkpoint, load_model, read_checkpoint, save_checkpoint
from layers import predict, state_dict
from solver import Solver

REPO = Path(__file__).resolve().parents[1]

# Two trainings whose every random part must survive the save: the homework
# model with momentum; an MLP with dropout, batch norm, augmentation and a
# plateau schedule (which reads the history and its own last value).
CASES = {
    'softmax regression': {},
    'mlp with dropout, batch norm, augmentation, plateau': dict(
        hidden_sizes=[16], dropout=0.2, normalization='batch', augment={'shift': 1},
        lr_schedule='plateau', plateau_threshold=0.5, learning_rate=0.05),
}


def cfg_of(root, **cfg):
    return dict(data_root=str(root), verbose=False, batch_size=50, seed=0, **cfg)


def command_line(cfg):
    """solver.py flags for a cfg of CASES."""
    args = []
    for key, value in cfg.items():
        if key == 'hidden_sizes':
            args += ['--hidden_sizes'] + [str(h) for h in value]
        elif key == 'augment':
            args += ['--augment', json.dumps(value)]
        elif key != 'verbose':
            args += [f'--{key}', str(value)]
    return args


def three_epochs_saved_then_two_in_a_fresh_process_equal_five_straight(tiny_mnist, tmp_path, case):
    straight = Solver(cfg_of(tiny_mnist, max_epoch=5, **CASES[case]))
    straight.train()

    first = Solver(cfg_of(tiny_mnist, max_epoch=3, checkpoint=tmp_path / 'three.npz', **CASES[case]))
    first.train()
    resumed_path = tmp_path / 'five.npz'
    flags = command_line(cfg_of(tiny_mnist, max_epoch=5, **CASES[case]))
    result = subprocess.run([sys.executable, 'solver.py', '--quiet', '--resume', str(tmp_path / 'three.npz'),
                             '--checkpoint', str(resumed_path)] + flags,
                            cwd=REPO, capture_output=True, text=True,
                            env=dict(os.environ, OPENBLAS_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr

    meta, arrays, _ = read_checkpoint(resumed_path)
    expected = state_dict(straight.model)
    assert sorted(arrays) == sorted(expected)
    for key in expected:
        assert arrays[key].dtype == expected[key].dtype, key
        assert np.array_equal(arrays[key], expected[key]), \
            f"{key}: largest difference {np.max(np.abs(arrays[key] - expected[key]))}"
    assert len(meta['history']['train_loss']) == 5
    for key in ('train_loss', 'val_loss', 'learning_rate', 'iter_loss'):
        assert meta['history'][key] == straight.history[key], key


# One test per assignment's model (not a parametrised test): a handout keeps
# only the tests of the code it holds.
@pytest.mark.solution('softmax')
def test_homework_model_resumed_in_a_fresh_process_equals_five_epochs_straight(tiny_mnist, tmp_path):
    three_epochs_saved_then_two_in_a_fresh_process_equal_five_straight(tiny_mnist, tmp_path, 'softmax regression')


@pytest.mark.solution('mlp')
def test_mlp_resumed_in_a_fresh_process_equals_five_epochs_straight(tiny_mnist, tmp_path):
    three_epochs_saved_then_two_in_a_fresh_process_equal_five_straight(
        tiny_mnist, tmp_path, 'mlp with dropout, batch norm, augmentation, plateau')


@pytest.mark.solution('softmax')
def test_a_checkpoint_loads_into_the_same_architecture_only(tiny_mnist, tmp_path):
    solver = Solver(cfg_of(tiny_mnist, max_epoch=1))
    solver.train()
    (tmp_path / 'out').mkdir()
    path = tmp_path / 'out' / 'model.npz'
    solver.save_checkpoint(path)
    solver.save_checkpoint(path)                               # over an existing checkpoint
    assert os.listdir(tmp_path / 'out') == ['model.npz'], "written atomically: no temporary file is left"
    with np.load(path, allow_pickle=False) as saved:          # arrays and JSON text only
        assert json.loads(str(saved['meta']))['architecture'][0]['layer'] == 'SoftmaxCrossEntropyLoss'

    model, meta = load_model(path)
    images = solver.test_loader.dataset.images[:20]
    assert np.array_equal(predict(model, images), predict(solver.model, images))
    assert meta['cfg']['max_epoch'] == 1
    import visualize                                          # a notebook draws the loaded model
    visualize.plot_weight_templates(visualize.first_layer_weights(model), tmp_path / 'templates.png')
    assert (tmp_path / 'templates.png').stat().st_size > 0

    mlp = Solver(cfg_of(tiny_mnist, max_epoch=1, hidden_sizes=[8])).model
    with pytest.raises(ValueError, match=r"another architecture: SoftmaxCrossEntropyLoss\(784x10\); "
                                         r"this model is FCLayer\(784x8\) -> ReLULayer -> FCLayer\(8x10\)"):
        load_checkpoint(path, mlp)


@pytest.mark.solution('softmax')
def test_resume_refuses_other_settings_and_early_stopping(tiny_mnist, tmp_path):
    path = str(tmp_path / 'run.npz')
    Solver(cfg_of(tiny_mnist, max_epoch=1, checkpoint=path)).train()
    with pytest.raises(ValueError, match=r"other settings \(learning_rate\)"):
        Solver(cfg_of(tiny_mnist, max_epoch=2, resume=path, learning_rate=0.5))
    with pytest.raises(ValueError, match="early stopping"):
        Solver(cfg_of(tiny_mnist, max_epoch=2, resume=path, early_stopping=2))
    with pytest.raises(ValueError, match="not a checkpoint"):
        (tmp_path / 'junk.npz').write_bytes(b'not a zip')
        read_checkpoint(tmp_path / 'junk.npz')


@pytest.mark.solution('softmax')
def test_save_and_load_by_hand_keep_the_optimiser_state(tmp_path):
    from layers import FCLayer, Network
    from optimizer import SGD

    rng = np.random.default_rng(0)
    network = Network([FCLayer(4, 3), FCLayer(3, 2)])
    optimizer = SGD(network, 0.1, momentum=0.9)
    for layer in network.layerList:
        layer.grad_W, layer.grad_b = rng.normal(size=layer.W.shape), rng.normal(size=layer.b.shape)
    optimizer.step()
    save_checkpoint(tmp_path / 'c.npz', network, optimizer, note='by hand')

    copy = Network([FCLayer(4, 3), FCLayer(3, 2)])
    copy_optimizer = SGD(copy, 0.1, momentum=0.9)
    assert load_checkpoint(tmp_path / 'c.npz', copy, copy_optimizer)['note'] == 'by hand'
    for mine, theirs in zip(network.layerList, copy.layerList):
        theirs.grad_W, theirs.grad_b = mine.grad_W, mine.grad_b
    optimizer.step()
    copy_optimizer.step()
    for mine, theirs in zip(network.layerList, copy.layerList):
        assert np.array_equal(mine.W, theirs.W) and np.array_equal(mine.b, theirs.b)
