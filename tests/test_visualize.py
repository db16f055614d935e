"""Curves for the report: headless plotting, saving, the moving average, atomic writes."""

import os

import matplotlib

matplotlib.use('Agg')

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fileio import atomic_write  # noqa: E402
from visualize import moving_average, plot_loss_and_acc, plot_training_loss  # noqa: E402


def test_plot_loss_and_acc_draws_one_line_per_label_and_saves(tmp_path):
    curves = {'SGD': [[0.9, 0.5, 0.4], [0.7, 0.85, 0.88]],
              'SGD with momentum': [[0.6, 0.3, 0.25], [0.8, 0.9, 0.92]]}
    path = tmp_path / 'figures' / 'curves.png'
    fig = plot_loss_and_acc(curves, save_path=path)
    assert fig is not None  # Agg cannot show, so the figure is returned
    ax_loss, ax_acc = fig.axes
    assert ax_loss.get_xlabel() == 'Epoch' and ax_loss.get_ylabel() == 'Loss'
    assert ax_acc.get_ylabel() == 'Accuracy'
    assert [line.get_label() for line in ax_acc.get_lines()] == ['SGD', 'SGD with momentum']
    assert list(ax_loss.get_lines()[1].get_ydata()) == [0.6, 0.3, 0.25]
    assert list(ax_loss.get_lines()[0].get_xdata()) == [1, 2, 3]
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert [p.name for p in path.parent.iterdir()] == ['curves.png']  # no temporary file left


def test_plot_loss_and_acc_rejects_malformed_input():
    with pytest.raises(ValueError, match='at least one'):
        plot_loss_and_acc({})
    with pytest.raises(ValueError, match="'bad' must be \\[loss_list, acc_list\\]"):
        plot_loss_and_acc({'bad': [[1.0, 2.0], [0.5]]})


def test_moving_average_against_hand_values():
    assert np.allclose(moving_average([1, 2, 3, 4, 5], 2), [1.5, 2.5, 3.5, 4.5])
    assert np.allclose(moving_average([1, 2, 3, 4, 5], 3), [2, 3, 4])
    assert np.allclose(moving_average([1, 2], 5), [1, 2])  # too short: unchanged


def test_plot_training_loss_shows_raw_and_smoothed():
    ax = plot_training_loss(np.linspace(2, 0, 100) + np.sin(np.arange(100)), window=10, label='lr 0.01')
    raw, smooth = ax.get_lines()
    assert len(raw.get_ydata()) == 100 and len(smooth.get_ydata()) == 91
    assert smooth.get_label() == 'lr 0.01 (moving average of 10)'


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / 'results.json'
    path.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_write(path, 'w') as f:
            f.write('half')
            raise RuntimeError('interrupted')
    assert path.read_text() == 'old'
    assert [p.name for p in tmp_path.iterdir()] == ['results.json']
    with atomic_write(path, 'w') as f:
        f.write('new')
    assert path.read_text() == 'new'
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask, 'outputs get ordinary file permissions'
