"""Loss and accuracy curves for the report.

plot_loss_and_acc({label: [loss_list, acc_list]}) draws one line per label,
per epoch, as in the original homework framework. It works without a screen
(matplotlib falls back to its Agg backend) and can save the figure to a file.
"""

import logging
import os

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from fileio import save_figure
from layers import parameter_slots
from callbacks import LayerStatistics, LiveCurves  # noqa: F401 (training callbacks, found here too)

# ---------------------------------------------------------------------------
# Chinese text in figures
# ---------------------------------------------------------------------------

# Fonts with Chinese glyphs, most common first: Linux (Noto / Source Han,
# WenQuanYi, Droid), Windows (Microsoft YaHei, SimHei), macOS (PingFang, Heiti).
CJK_FONTS = ('Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'WenQuanYi Micro Hei',
             'WenQuanYi Zen Hei', 'Microsoft YaHei', 'SimHei', 'PingFang SC', 'Hiragino Sans GB',
             'Heiti SC', 'STHeiti', 'Droid Sans Fallback', 'AR PL UMing CN', 'Arial Unicode MS')
CJK_FONT_FILES = ('notosanscjk', 'sourcehansans', 'wqy-microhei', 'wqy-zenhei', 'msyh', 'simhei',
                  'pingfang', 'droidsansfallback', 'uming')
NO_CJK_FONT = ("Chinese text cannot be drawn: this computer has no font with Chinese characters. "
               "Install one, e.g. 'sudo apt install fonts-noto-cjk' (Debian, Ubuntu; or the smaller "
               "fonts-wqy-microhei), 'sudo dnf install google-noto-sans-cjk-fonts' (Fedora); "
               "Windows and macOS have one. Then run again.")


def cjk_font():
    """The name of an installed font with Chinese glyphs, or None.

    Looks in matplotlib's font list first, then among the system's font
    files (a font installed after matplotlib built its list), adding it."""
    from matplotlib import font_manager
    known = {font.name for font in font_manager.fontManager.ttflist}
    found = next((name for name in CJK_FONTS if name in known), None)
    if found is None:
        for path in font_manager.findSystemFonts():
            if any(part in os.path.basename(path).lower().replace('_', '') for part in CJK_FONT_FILES):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        known = {font.name for font in font_manager.fontManager.ttflist}
        found = next((name for name in CJK_FONTS if name in known), None)
    return found


def use_cjk_font():
    """Let figures draw Chinese: the CJK font becomes the fallback of the
    default font (matplotlib takes each glyph from the first font of
    rcParams['font.family'] that has it). Returns the font's name, or None
    when the system has none (see NO_CJK_FONT)."""
    name = cjk_font()
    if name is not None:
        families = [family for family in plt.rcParams['font.family'] if family != name]
        plt.rcParams['font.family'] = families + [name]
        # A CJK font often has no bold face: matplotlib then uses the regular
        # one, and says so at every bold title; the regular face is fine.
        logging.getLogger('matplotlib.font_manager').setLevel(logging.ERROR)
    return name


# Figures of the notebooks and of the report draw Chinese where the system can.
CJK_FONT = use_cjk_font()


def has_cjk(text):
    """True if text holds a CJK ideograph, kana, hangul or full-width punctuation."""
    return any('\u2e80' <= char <= '\u9fff' or '\uac00' <= char <= '\ud7af' or '\uff00' <= char <= '\uffef'
               for char in text)


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


# ---------------------------------------------------------------------------
# Pictures of a model and of the training recipe (notes §4.4). Every function
# draws one Figure, saves it when save_path is given and returns it.
# ---------------------------------------------------------------------------

def _finish(fig, save_path, dpi=120):
    fig.tight_layout()
    if save_path is not None:
        save_figure(fig, save_path, dpi=dpi)
    return fig


def _grid_shape(count, max_cols=10):
    cols = min(count, max_cols)
    return (count + cols - 1) // cols, cols


def plot_weight_templates(W, save_path=None, image_shape=(28, 28), class_names=None):
    """The homework model's weights as one image per class (notes §1.3).

    The score of class k is sum_i W[i, k] x_i: column k is a template that
    the image is compared with. Red pixels raise the score, blue lower it;
    one colour scale, symmetric around 0, for all classes.
    Inputs:
    - W: (D, C) weights with D = rows * cols, e.g. (784, 10)
    - image_shape: (rows, cols) of one image
    Returns the Figure; axes[k] shows W[:, k].reshape(image_shape).
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] != int(np.prod(image_shape)):
        raise ValueError(f"W must be (D, C) with D = {int(np.prod(image_shape))} pixels "
                         f"(image_shape {image_shape}); got {W.shape}")
    num_classes = W.shape[1]
    names = class_names or [str(k) for k in range(num_classes)]
    rows, cols = _grid_shape(num_classes, max_cols=5)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.75 * rows + 0.3), squeeze=False)
    limit = np.abs(W).max() or 1.0
    for k, ax in enumerate(axes.flat):
        ax.axis('off')
        if k < num_classes:
            image = ax.imshow(W[:, k].reshape(image_shape), cmap='RdBu_r', vmin=-limit, vmax=limit)
            ax.set_title(f'class {names[k]}', fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.7, label='weight')
    fig.suptitle('Weights of each class as an image (red: raises the score)', fontsize=10)
    if save_path is not None:
        save_figure(fig, save_path, dpi=120, bbox_inches='tight')
    return fig


def first_layer_weights(model):
    """The weights W of a model's first layer that has any (the homework model's W).

    Returns W: (D, M) for a fully connected layer, (C_out, C_in, k, k) for a
    convolution.
    """
    for _, layer, name in parameter_slots(model):
        if name == 'W':
            return layer.W
    raise ValueError(f"{type(model).__name__} has no layer with weights W")


def plot_weight_grid(W, save_path=None, image_shape=(28, 28), max_units=64, title=None):
    """First-layer weights as a grid of small images, one per unit or filter.

    Inputs:
    - W: (D, M) fully connected weights, column j reshaped to image_shape, or
      (C_out, C_in, k, k) convolution filters: one image per output channel
      (RGB when C_in is 3, otherwise the mean over the input channels).
    - max_units: show at most this many units (the first ones)
    Each image is scaled to its own range (the pattern matters, not the size).
    Returns the Figure; axes[j] shows unit j.
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim == 2:
        if W.shape[0] != int(np.prod(image_shape)):
            raise ValueError(f"W of shape {W.shape} does not have one row per pixel of "
                             f"image_shape {image_shape}")
        units = W.T.reshape(-1, *image_shape)[:max_units]            # (M, rows, cols)
        what = 'hidden unit'
    elif W.ndim == 4:
        filters = W[:max_units]
        units = (filters.transpose(0, 2, 3, 1) if W.shape[1] == 3     # (M, k, k, 3) RGB
                 else filters.mean(axis=1))                           # (M, k, k)
        what = 'filter'
    else:
        raise ValueError(f"W must be (D, M) or (C_out, C_in, k, k); got shape {W.shape}")
    rows, cols = _grid_shape(len(units), max_cols=8)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.3 * rows + 0.4), squeeze=False)
    for j, ax in enumerate(axes.flat):
        ax.axis('off')
        if j >= len(units):
            continue
        unit = units[j]
        if unit.ndim == 3:           # RGB: each filter scaled to [0, 1]
            low, high = unit.min(), unit.max()
            ax.imshow((unit - low) / (high - low or 1.0))
        else:
            limit = np.abs(unit).max() or 1.0
            ax.imshow(unit, cmap='RdBu_r', vmin=-limit, vmax=limit)
        ax.set_title(f'{what} {j}', fontsize=6)
    fig.suptitle(title or f'First-layer weights, one image per {what}', fontsize=10)
    return _finish(fig, save_path)


def confusion_matrix(true_labels, predicted_labels, num_classes):
    """counts[i, j] = number of samples of class i predicted as class j, (C, C) int."""
    true_labels = np.asarray(true_labels, dtype=np.int64)
    predicted_labels = np.asarray(predicted_labels, dtype=np.int64)
    if true_labels.shape != predicted_labels.shape:
        raise ValueError(f"{len(true_labels)} true labels but {len(predicted_labels)} predictions")
    flat = np.bincount(true_labels * num_classes + predicted_labels, minlength=num_classes ** 2)
    return flat.reshape(num_classes, num_classes)


def plot_confusion_matrix(true_labels, predicted_labels, num_classes=10, save_path=None,
                          class_names=None, title='Confusion matrix'):
    """Confusion matrix (rows: true class, columns: predicted) and per-class accuracy.

    The colour of cell (i, j) is the fraction of class i predicted as j (each
    row sums to 1); the number in it is the count. The right panel shows the
    accuracy of each class, the diagonal divided by the row sum.
    Inputs: true_labels, predicted_labels: (N,) integer classes.
    Returns the Figure; its first axes' image holds the row fractions.
    """
    counts = confusion_matrix(true_labels, predicted_labels, num_classes)
    per_class = counts.sum(axis=1)
    fractions = counts / np.maximum(per_class, 1)[:, None]
    class_acc = np.diag(counts) / np.maximum(per_class, 1)
    names = class_names or [str(k) for k in range(num_classes)]

    fig, (ax, ax_acc) = plt.subplots(1, 2, figsize=(10, 4.6), gridspec_kw={'width_ratios': [3, 1.4]})
    ax.imshow(fractions, cmap='Blues', vmin=0, vmax=1)
    for i in range(num_classes):           # one label per cell: C * C texts, not per sample
        for j in range(num_classes):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha='center', va='center', fontsize=7,
                        color='white' if fractions[i, j] > 0.5 else 'black')
    ax.set_xticks(range(num_classes))
    ax.set_xticklabels(names)
    ax.set_yticks(range(num_classes))
    ax.set_yticklabels(names)
    ax.set_xlabel('Predicted class')
    ax.set_ylabel('True class')
    overall = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f'{title} (accuracy {100 * overall:.2f}%, {counts.sum()} images)', fontsize=10)

    ax_acc.barh(range(num_classes), 100 * class_acc, color='tab:blue')
    ax_acc.set_yticks(range(num_classes))
    ax_acc.set_yticklabels(names)
    ax_acc.invert_yaxis()                  # class 0 at the top, as in the matrix
    ax_acc.set_xlim(min(100 * class_acc.min() - 5, 90) if num_classes else 0, 100)
    ax_acc.set_xlabel('Accuracy (%)')
    ax_acc.set_title('Per-class accuracy', fontsize=10)
    for k, acc in enumerate(class_acc):
        ax_acc.text(100 * acc, k, f' {100 * acc:.1f}', va='center', ha='right', fontsize=7,
                    color='white')
    ax_acc.grid(alpha=0.3, axis='x')
    return _finish(fig, save_path)


def plot_misclassified(images, true_labels, probabilities, save_path=None, max_images=24,
                       image_shape=(28, 28), class_names=None):
    """The misclassified images the model was most confident about.

    Inputs:
    - images: (N, D) inputs, D = rows * cols
    - true_labels: (N,) classes
    - probabilities: (N, C) the model's class probabilities
    - max_images: show at most this many, most confident mistakes first
    Returns the Figure; each axes' title is "true t, predicted p (confidence)".
    The indices shown are in fig.misclassified_indices.
    """
    images = np.asarray(images)
    true_labels = np.asarray(true_labels)
    probabilities = np.asarray(probabilities)
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    wrong = np.flatnonzero(predicted != true_labels)
    shown = wrong[np.argsort(-confidence[wrong], kind='stable')][:max_images]
    names = class_names or [str(k) for k in range(probabilities.shape[1])]

    rows, cols = _grid_shape(max(len(shown), 1), max_cols=8)
    fig, axes = plt.subplots(rows, cols, figsize=(1.35 * cols, 1.55 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for ax, index in zip(axes.flat, shown):
        ax.imshow(images[index].reshape(image_shape), cmap='gray_r')
        ax.set_title(f'true {names[true_labels[index]]}, pred {names[predicted[index]]}\n'
                     f'({100 * confidence[index]:.0f}%)', fontsize=7)
    if not len(shown):
        axes.flat[0].text(0.5, 0.5, 'no misclassified images', ha='center', va='center')
    fig.suptitle(f'{len(wrong)} of {len(true_labels)} images misclassified; the '
                 f'{len(shown)} most confident mistakes', fontsize=10)
    fig.misclassified_indices = shown
    return _finish(fig, save_path)


def plot_lr_range(result, save_path=None):
    """Recipe step 3: final training loss against the learning rate (log scale).

    Inputs: result with .learning_rates, .losses (inf where the run
    diverged), .initial_loss, .suggested_range (tools.recipe.LRRangeResult).
    Returns the Figure; its first line is (learning_rates, loss) of the
    runs that did not diverge.
    """
    lrs = np.asarray(result.learning_rates, dtype=np.float64)
    losses = np.asarray(result.losses, dtype=np.float64)
    finite = np.isfinite(losses)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(lrs[finite], losses[finite], '-o', label=f'loss after {result.num_batches} batches')
    if (~finite).any():
        top = losses[finite].max() if finite.any() else 1.0
        ax.plot(lrs[~finite], np.full((~finite).sum(), top), 'rx', markersize=9, label='diverged')
    if result.initial_loss is not None:
        ax.axhline(result.initial_loss, color='0.5', linestyle='--', label='first batch')
    if result.suggested_range:
        ax.axvspan(*result.suggested_range, color='tab:green', alpha=0.15, label='suggested range')
    ax.set_xscale('log')
    ax.set_xlabel('Learning rate')
    ax.set_ylabel('Training loss')
    ax.set_title('Learning-rate range test (notes §4.4, step 3)', fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, save_path)


def plot_search_results(trials, keys, save_path=None):
    """Recipe step 4: validation accuracy against each hyper-parameter, one point per trial.

    Inputs:
    - trials: result dicts with 'cfg', 'round' ('coarse' or 'fine') and
      'val_acc' (None for a diverged trial, not drawn)
    - keys: the hyper-parameters to plot against, one panel each
    Log-scaled axes for learning rate, weight decay and batch size; momentum
    is plotted against 1 - momentum (log), where the search sampled it.
    Returns the Figure; in panel i, the points of round r are (value, 100 * val_acc).
    """
    fig, axes = plt.subplots(1, len(keys), figsize=(3.3 * len(keys), 3.4), squeeze=False)
    finished = [t for t in trials if t['val_acc'] is not None]
    best = max(finished, key=lambda t: t['val_acc']) if finished else None
    for ax, key in zip(axes.flat, keys):
        for round_name, marker in (('coarse', 'o'), ('fine', 's')):
            chosen = [t for t in finished if t['round'] == round_name]
            x = [1 - t['cfg'][key] if key == 'momentum' else t['cfg'][key] for t in chosen]
            ax.scatter(x, [100 * t['val_acc'] for t in chosen], marker=marker, s=22, alpha=0.75,
                       label=f"{round_name} ({chosen[0]['cfg']['max_epoch']} epochs)"
                       if chosen else round_name)
        if best is not None:
            x = 1 - best['cfg'][key] if key == 'momentum' else best['cfg'][key]
            ax.scatter([x], [100 * best['val_acc']], marker='*', s=160, color='red',
                       label='best', zorder=3)
        if key == 'batch_size':          # powers of two, written out
            ax.set_xscale('log', base=2)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter('%d'))
        else:
            ax.set_xscale('log')
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel('1 - momentum' if key == 'momentum' else key)
        ax.set_ylabel('Validation accuracy (%)')
        ax.grid(alpha=0.3)
        if finished:       # the interesting part: not the diverged or hopeless trials
            accs = sorted(100 * t['val_acc'] for t in finished)
            ax.set_ylim(max(accs[len(accs) // 4] - 3, 0), min(accs[-1] + 1, 100.5))
    axes.flat[0].legend(fontsize=7)
    fig.suptitle('Random search: validation accuracy against each hyper-parameter', fontsize=10)
    return _finish(fig, save_path)


def plot_layer_statistics(statistics, save_path=None, step_name='Iteration'):
    """Per-layer statistics of one or more networks, one line per network.

    Inputs:
    - statistics: {label: LayerStatistics (or its history dict)}
    Panels: (1) std of each layer's input at the first record (log scale),
    (2) its mean, (3) the gradient norm of each layer at the first record
    (solid) and at the last (dashed), (4) the probe loss over training.
    Layer 1 is the layer nearest the input.
    Returns the Figure; in panels 1 and 3 the first line of network i is
    (layer numbers, values of its first record).
    """
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    ax_std, ax_mean, ax_grad, ax_loss = axes.flat
    for label, stats in statistics.items():
        history = getattr(stats, 'history', stats)
        first = {key: np.asarray(history[key][0]) for key in ('act_mean', 'act_std', 'grad_norm')}
        layer_numbers = np.arange(1, len(first['act_std']) + 1)
        line, = ax_std.plot(layer_numbers, first['act_std'], '-o', markersize=4, label=label)
        color = line.get_color()
        ax_mean.plot(layer_numbers, first['act_mean'], '-o', markersize=4, color=color, label=label)
        ax_grad.plot(layer_numbers, first['grad_norm'], '-o', markersize=4, color=color,
                     label=f'{label} (step {history["step"][0]})')
        ax_grad.plot(layer_numbers, history['grad_norm'][-1], '--', color=color,
                     label=f'{label} (step {history["step"][-1]})')
        ax_loss.plot(history['step'], history['loss'], '-', color=color, label=label)
    for ax, ylabel, title, log in (
            (ax_std, 'Std of the layer input', 'Spread of the activations at the start', True),
            (ax_mean, 'Mean of the layer input', 'Mean of the activations at the start', False),
            (ax_grad, '||dE/dW||', 'Gradient norm per layer: start (solid), end (dashed)', True),
            (ax_loss, 'Loss on the probe batch', 'Loss during training', False)):
        if log:
            ax.set_yscale('log')
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in (ax_std, ax_mean, ax_grad):
        ax.set_xlabel('Layer (1 = next to the input)')
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax_loss.set_xlabel(step_name)
    return _finish(fig, save_path)
