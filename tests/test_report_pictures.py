"""The report's page of pictures of the momentum run (report/model_pictures.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import make_tiny_mnist

REPO_ROOT = Path(__file__).resolve().parents[1]

import make_report  # noqa: E402
import model_pictures  # noqa: E402
import solver  # noqa: E402

TITLE = model_pictures.TITLE


def experiments(with_momentum=True):
    chosen = [make_report.Experiment('default', make_report.SECTION_A, 'Default', label='default')]
    if with_momentum:
        chosen.append(make_report.Experiment('momentum', make_report.SECTION_B, 'Momentum',
                                             vary='momentum', values=[0.0, 0.9]))
    return chosen


def args(data, root):
    return ['--quick', '--data-root', str(data), '--out-dir', str(root / 'out'),
            '--cache-dir', str(root / 'cache')]


@pytest.mark.solution('softmax')
def test_page_of_the_momentum_run_is_drawn_and_its_weights_cached(tmp_path, monkeypatch):
    data = make_tiny_mnist(tmp_path / 'mnist', n_train=240, n_test=40)
    results = make_report.main(args(data, tmp_path), experiments=experiments())
    momentum_page = results['pages'].index(f'{make_report.SECTION_B}: Momentum')
    assert results['pages'][momentum_page + 1] == TITLE        # right after the momentum page
    pictures = [name for name in results['figures'] if name.split('-', 1)[1] in
                ('templates.png', 'confusion.png', 'misclassified.png')]
    assert len(pictures) == 3
    for name in pictures:
        assert (tmp_path / 'out' / name).read_bytes()[:4] == b'\x89PNG'

    # The cached weights are those of the run: the same test accuracy as its record.
    label, key = model_pictures.find_run(results)
    assert label == 'momentum = 0.9'
    weights = tmp_path / 'cache' / f'weights-{key}.npz'
    with np.load(weights, allow_pickle=False) as saved:
        W, b = saved['W'], saved['b']
    assert W.shape == (784, 10) and b.shape == (1, 10)
    test_set = solver.Solver({'data_root': str(data), 'verbose': False}).test_loader.dataset
    predicted = (test_set.images @ W + b).argmax(axis=1)
    assert np.mean(predicted == test_set.labels) == results['runs'][key]['test_acc']

    # A rerun trains nothing: the weights come from the cache.
    def no_training(*a, **k):
        raise AssertionError('a cached rerun must not train')
    monkeypatch.setattr(solver.Solver, 'train', no_training)
    record = json.loads((tmp_path / 'cache' / f'run-{key}.json').read_text())
    _, model = model_pictures.trained_model(record, tmp_path / 'cache')
    assert np.array_equal(model.W, W) and np.array_equal(model.b, b)

    # The pictures and the page's numbers are cached too: a rerun only places them.
    def no_drawing(*a, **k):
        raise AssertionError('a cached rerun must not draw the pictures again')
    monkeypatch.setattr(model_pictures, 'trained_model', no_drawing)
    monkeypatch.setattr(model_pictures.visualize, 'plot_confusion_matrix', no_drawing)
    numbers, files = model_pictures.prepare(record, tmp_path / 'cache')
    assert numbers['test_acc'] == results['runs'][key]['test_acc']
    assert numbers['n_test'] == 40 and 0 <= numbers['mistakes'] <= 40
    for name in model_pictures.PICTURES:
        assert files[name].read_bytes() == (tmp_path / 'out' / next(
            f for f in pictures if f.endswith(f'-{name}.png'))).read_bytes()


def test_no_page_without_a_momentum_run(tmp_path):
    results = {'experiments': [{'name': 'default', 'runs': [{'label': 'default', 'value': None,
                                                            'key': 'abc'}]}]}
    assert model_pictures.find_run(results) is None
    assert model_pictures.write_page(None, results, {}, tmp_path) is None   # nothing drawn
    assert not list(tmp_path.iterdir())
