"""Loss and accuracy curves for the report.

plot_loss_and_acc({label: [loss_list, acc_list]}) draws one line per label,
per epoch, as in the original homework framework. It works without a screen
(matplotlib falls back to its Agg backend) and can save the figure to a file.
"""

import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from fileio import atomic_write


def save_figure(fig, path, **kwargs):
    """Save a matplotlib figure atomically; the format follows the file's extension."""
    fmt = os.path.splitext(os.fspath(path))[1].lstrip('.') or 'png'
    with atomic_write(path, 'wb') as f:
        fig.savefig(f, format=fmt, **kwargs)


def _can_show():
    """True when figures can be displayed (a window or a notebook), not when
    matplotlib renders to files only (Agg, pdf, svg, ...)."""
    return matplotlib.get_backend().lower() not in {'agg', 'pdf', 'ps', 'svg', 'cairo', 'template'}


def moving_average(values, window):
    """Moving average over `window` points, for noisy per-batch losses (notes §4.4, step 6).

    values: (T,) sequence; returns (T - window + 1,) averages, or the values
    unchanged when there are fewer than `window` of them.
    """
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) < window:
        return values
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    return (cumsum[window:] - cumsum[:-window]) / window


def plot_loss_and_acc(loss_and_acc_dict, save_path=None, show=None):
    """Per-epoch loss and accuracy curves, one line per label.

    Inputs:
    - loss_and_acc_dict: {label: [loss_list, acc_list]}, each list one value
      per epoch (what Solver.train() returns)
    - save_path: optional file name (.png, .pdf, .svg) to save the figure to
    - show: display the figure; by default only where a display is available
    Returns the matplotlib Figure (two panels: loss and accuracy) when it is
    not shown, None when it is (so that a notebook cell shows it only once).
    """
    if not loss_and_acc_dict:
        raise ValueError("plot_loss_and_acc needs at least one {label: [loss_list, acc_list]} entry")
    for label, curves in loss_and_acc_dict.items():
        if len(curves) != 2 or len(curves[0]) != len(curves[1]):
            raise ValueError(f"entry {label!r} must be [loss_list, acc_list] of equal length")

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for label, (loss_list, acc_list) in loss_and_acc_dict.items():
        epochs = np.arange(1, len(loss_list) + 1)
        ax_loss.plot(epochs, loss_list, '-s', markersize=4, label=label)
        ax_acc.plot(epochs, acc_list, '-s', markersize=4, label=label)

    for ax, name in ((ax_loss, 'Loss'), (ax_acc, 'Accuracy')):
        ax.set_xlabel('Epoch')
        ax.set_ylabel(name)
        ax.set_title(f'Training {name.lower()}')
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()

    if save_path is not None:
        save_figure(fig, save_path, dpi=150)
    if show if show is not None else _can_show():
        plt.show()
        return None
    return fig


def plot_training_loss(iter_losses, window=50, ax=None, label=None):
    """Per-batch training loss, raw (faint) and its moving average (notes §4.4, step 6).

    Inputs:
    - iter_losses: (T,) loss of every batch, e.g. solver.history['iter_loss']
    - window: batches per moving-average point
    Returns the matplotlib Axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    iterations = np.arange(1, len(iter_losses) + 1)
    line, = ax.plot(iterations, iter_losses, alpha=0.25, linewidth=0.8,
                    label=f'{label} (raw)' if label else 'raw')
    smooth = moving_average(iter_losses, window)
    ax.plot(iterations[len(iterations) - len(smooth):], smooth, color=line.get_color(),
            label=f'{label} (moving average of {window})' if label else f'moving average of {window}')
    ax.set_xlabel('Iteration (batch)')
    ax.set_ylabel('Training loss')
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_learning_rate(histories, ax=None):
    """The learning rate used in each epoch (a schedule's effect, notes §2.5.2).

    Inputs:
    - histories: {label: history}, each history a Solver.history with a
      per-epoch 'learning_rate' list
    Returns the matplotlib Axes (log scale, epochs counted from 1).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for label, history in histories.items():
        rates = history['learning_rate']
        ax.step(np.arange(1, len(rates) + 1), rates, where='mid', label=label)
    ax.set_yscale('log')
    ax.set_xlabel('Epoch')
    ax.set_ylabel('Learning rate')
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
