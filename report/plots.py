"""The plots of an experiment's page: a 2 x 2 block of panels on a matplotlib figure.

pages.Page.plots gives draw(fig, gs) a figure and a 2 x 2 GridSpec; these
functions fill them:

- plot_single_run (one run, e.g. the default settings): loss and accuracy
  per epoch, training and validation, and the per-batch training loss with
  its moving average (notes §4.4, step 6);
- plot_comparison (runs that differ in one setting): validation accuracy and
  training loss per epoch, the per-batch training loss, and either the final
  accuracy against the swept value or the training time.

No legend covers data. The legend of the runs (or of training and
validation) is drawn once, above the panels, and a run has the same colour
in every panel (legend_above_the_panels). A panel with a legend of its own
gets headroom above its data for it (legend_above_the_data).
"""

import matplotlib.pyplot as plt
import numpy as np

from visualize import moving_average, plot_training_loss

LEGEND_SIZE = 7             # points
RUNS_PER_LEGEND_ROW = 5     # the runs' legend above the panels: at most this many per row

# A run with more per-batch losses than this (batch 10: 5500 per epoch, 55000 in all) is
# drawn as its moving average only: its raw curve, noisy and dense, would
# cover the whole panel and hide the other runs.
MAX_RAW_POINTS = 6000


def smoothing_window(num_points):
    """Moving-average window for a per-batch curve: about 1% of its points, at least 5."""
    return max(5, num_points // 100)


def _use_log_scale(values):
    values = [v for v in values if v is not None and np.isfinite(v) and v > 0]
    return len(values) >= 2 and max(values) / min(values) > 50


def _legend_label(entry):
    return entry['label'] + (' (diverged)' if entry['summary']['status'] == 'diverged' else '')


# ---------------------------------------------------------------------------
# Legends that cover no data
# ---------------------------------------------------------------------------

def legend_above_the_panels(fig, gs, handles, labels, caption=None):
    """One legend for every panel of the grid gs, in a band above them.

    The band is taken from the top of the grid (the panels become shorter,
    the block keeps its size); `caption`, if given, is a line of small text
    under the legend (e.g. how the per-batch curves are averaged)."""
    renderer = fig.canvas.get_renderer()
    centre = (gs.left + gs.right) / 2
    legend = fig.legend(handles, labels, loc='upper center', bbox_to_anchor=(centre, 1),
                        ncol=min(len(labels), RUNS_PER_LEGEND_ROW), fontsize=LEGEND_SIZE + 1,
                        frameon=False, handlelength=2.5, columnspacing=1.5)
    band_bottom = legend.get_window_extent(renderer).y0 / fig.bbox.height      # figure fraction
    if caption:
        text = fig.text(centre, band_bottom, caption, ha='center', va='top', fontsize=LEGEND_SIZE,
                        color='0.3')
        band_bottom = text.get_window_extent(renderer).y0 / fig.bbox.height
    # The panels' titles keep the 0.3 inch they had above the grid.
    gs.update(top=min(gs.top, band_bottom - 0.3 / fig.get_figheight()))


def legend_above_the_data(ax, corners=('upper right', 'upper left'), **legend_options):
    """The panel's legend in one of its top corners, with the y axis raised,
    if need be, so that the data under the legend (lines, bars, their labels)
    stays below it. Of `corners`, the one that needs the least raising wins."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    panel = ax.get_window_extent(renderer)
    gap = 6 * fig.dpi / 72                                    # 6 points between data and legend
    log = ax.get_yscale() == 'log'
    scale, unscale = (np.log10, lambda v: 10 ** v) if log else (float, float)
    bottom, top = (scale(v) for v in ax.get_ylim())
    best = None
    for corner in corners:
        legend = ax.legend(loc=corner, fontsize=LEGEND_SIZE, **legend_options)
        box = legend.get_window_extent(renderer)
        free = 1 - (box.height + gap) / panel.height          # of the height, below the legend
        under = _data_top(ax, box.x0, box.x1, renderer)       # display units
        # That height as a value on the y axis, then the top that puts it at `free`.
        highest = bottom + (top - bottom) * (under - panel.y0) / panel.height
        needed = max(top, bottom + (highest - bottom) / free)
        if best is None or needed < best[0]:
            best = (needed, corner)
    legend = ax.legend(loc=best[1], fontsize=LEGEND_SIZE, **legend_options)
    ax.set_ylim(unscale(bottom), unscale(best[0]))
    return legend


def line_points(line):
    """(P, 2) display positions of a drawn line: its vertices and, for a line of
    fewer than 1000 (whose segments can be long), 20 points along each segment."""
    xy = line.get_xydata()
    if 1 < len(xy) < 1000:
        steps = np.linspace(0, 1, 21)[:, None, None]
        xy = (xy[:-1] + steps * (xy[1:] - xy[:-1])).reshape(-1, 2)
    points = line.get_transform().transform(xy)
    return points[np.isfinite(points).all(axis=1)]


def _data_top(ax, x0, x1, renderer):
    """The highest point (display units) of the panel's lines, bars and texts
    between the display x positions x0 and x1; -inf when there is none."""
    tops = [-np.inf]
    for line in ax.get_lines():
        points = line_points(line)
        under = points[(points[:, 0] >= x0) & (points[:, 0] <= x1), 1]
        if len(under):
            tops.append(under.max())
    for artist in list(ax.patches) + list(ax.texts):
        box = artist.get_window_extent(renderer)
        if box.x1 > x0 and box.x0 < x1 and box.height > 0:
            tops.append(box.y1)
    return max(tops)


# ---------------------------------------------------------------------------
# Panels
# ---------------------------------------------------------------------------

def plot_epoch_curves(ax, entries, key, ylabel, title, percent=False):
    """One line per run of history[key] against the epoch; x marks where a run
    diverged. No legend (legend_above_the_panels names the runs)."""
    all_values = []
    for entry in entries:
        values = np.asarray(entry['record']['history'][key], dtype=float)
        if percent:
            values = 100 * values
        epochs = np.arange(1, len(values) + 1)
        line, = ax.plot(epochs, values, '-o', markersize=3, label=_legend_label(entry))
        if entry['summary']['status'] == 'diverged' and len(values):
            ax.plot(epochs[-1], values[-1], 'x', color=line.get_color(), markersize=9)
        all_values += list(values)
    if not percent and _use_log_scale(all_values):
        ax.set_yscale('log')
    ax.set_xlabel('Epoch')
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)


def plot_batch_losses(ax, entries):
    """Per-batch training loss of several runs against the epoch: raw (faint,
    for runs of at most MAX_RAW_POINTS batches) and moving average (notes §4.4,
    step 6). The x axis is in epochs, so runs with different batch sizes
    (different numbers of updates per epoch) line up.

    Returns a caption for the panel: the averaging windows and the runs
    whose raw curve is not drawn."""
    all_values, windows, not_raw = [], [], []
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for index, entry in enumerate(entries):
        losses = np.asarray(entry['record']['history']['iter_loss'], dtype=float)
        if not len(losses):
            continue
        x = np.arange(1, len(losses) + 1) / entry['summary']['updates_per_epoch']
        window = smoothing_window(len(losses))
        color = colors[index % len(colors)]       # the same colour as in the other panels
        if len(losses) <= MAX_RAW_POINTS:
            # Drawn as an image inside the PDF (rasterized) to keep the file
            # small; the moving average stays a vector line.
            ax.plot(x, losses, color=color, alpha=0.15, linewidth=0.6, rasterized=True)
        else:
            not_raw.append(entry['label'])
        smooth = moving_average(losses, window)
        line, = ax.plot(x[len(x) - len(smooth):], smooth, color=color, linewidth=1.3,
                        label=_legend_label(entry))
        if entry['summary']['status'] == 'diverged':      # the last finite loss before NaN
            ax.plot(x[-1], losses[-1], 'x', color=line.get_color(), markersize=9)
        all_values += list(losses)
        windows.append(window)
    if _use_log_scale(all_values):
        ax.set_yscale('log')
    ax.set_xlabel('Epoch (per-batch points)')
    ax.set_ylabel('Training loss')
    ax.set_title('Training loss per batch: raw (faint) and moving average', fontsize=10)
    ax.grid(alpha=0.3)
    caption = ('Per-batch loss: moving average of '
               + (f'{windows[0]} batches' if len(set(windows)) == 1
                  else f"{', '.join(map(str, windows))} batches (1% of each run's)"))
    if not_raw:
        caption += f"; raw curve not drawn (too dense) for {', '.join(not_raw)}"
    return caption + '.'


def plot_accuracy_vs_value(ax, entries, vary):
    """Final validation and test accuracy against the swept value.

    The x axis is logarithmic for values spread over more than a factor 20,
    linear otherwise; when two values would still sit too close for their
    labels (momentum 0.9 and 0.99 on a linear axis from 0), the values are
    placed evenly, in order, and the axis label says so."""
    values = [e['value'] for e in entries]
    log_scale = min(values) > 0 and max(values) / min(values) >= 20
    evenly = _ticks_crowded(values, log_scale)
    order = sorted(set(values))
    position = (lambda v: order.index(v)) if evenly else (lambda v: v)

    finished = [e for e in entries if e['summary']['final_val_acc'] is not None
                and e['summary']['status'] != 'diverged']
    xs = [position(e['value']) for e in finished]
    ax.plot(xs, [100 * e['summary']['final_val_acc'] for e in finished], '-o',
            label='validation (last epoch)')
    ax.plot(xs, [100 * e['summary']['test_acc'] for e in finished], '-s', label='test')
    for e in finished:
        if e['summary']['status'] == 'unstable':
            ax.annotate('unstable', (position(e['value']), 100 * e['summary']['final_val_acc']),
                        textcoords='offset points', xytext=(0, 6), ha='center', fontsize=7)
    diverged = [e for e in entries if e['summary']['status'] == 'diverged']
    if diverged:
        low = ax.get_ylim()[0]
        ax.plot([position(e['value']) for e in diverged], [low] * len(diverged), 'rx',
                markersize=9, label='diverged')
    if log_scale and not evenly:
        ax.set_xscale('log')
    ax.set_xticks([position(v) for v in values])
    ax.set_xticklabels([f'{v:g}' for v in values], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel(f'{vary} (evenly spaced, not to scale)' if evenly else vary)
    ax.set_ylabel('Accuracy (%)')
    ax.set_title(f'Final accuracy against {vary}', fontsize=10)
    ax.grid(alpha=0.3)
    legend_above_the_data(ax, ncol=2)


def _ticks_crowded(values, log_scale, min_gap=0.12):
    """True when two neighbouring values are closer than min_gap of the
    axis width (on a log axis if log_scale)."""
    positions = np.log(np.asarray(values, dtype=float)) if log_scale \
        else np.asarray(values, dtype=float)
    positions = np.unique(positions)
    if len(positions) < 2:
        return False
    positions = (positions - positions[0]) / (positions[-1] - positions[0])
    return bool(np.min(np.diff(positions)) < min_gap)


def plot_timing(ax, entries):
    """Bars: median seconds per epoch, and seconds of training to reach the target."""
    labels = [e['label'] for e in entries]
    per_epoch = [e['summary']['sec_per_epoch'] or 0 for e in entries]
    to_target = [e['summary']['seconds_to_target'] for e in entries]
    x = np.arange(len(entries))
    ax.bar(x - 0.2, per_epoch, width=0.4, label='one epoch (median, CPU time)')
    ax.bar(x + 0.2, [t or 0 for t in to_target], width=0.4,
           label=f"to reach {100 * entries[0]['summary']['val_target']:g}% validation accuracy")
    for xi, t in zip(x, to_target):
        if t is None:
            ax.text(xi + 0.2, 0, 'never', ha='center', va='bottom', fontsize=7, rotation=90)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel('Training time (CPU s)')
    ax.set_title('Training time (CPU seconds of the run)', fontsize=10)
    ax.grid(alpha=0.3, axis='y')
    legend_above_the_data(ax)


# ---------------------------------------------------------------------------
# The blocks of an experiment's page
# ---------------------------------------------------------------------------

def plot_single_run(fig, gs, entry):
    """(a): loss and accuracy per epoch (training and validation), and the
    per-batch training loss with its moving average, on the 2 x 2 grid gs of fig."""
    history = entry['record']['history']
    epochs = np.arange(1, len(history['train_loss']) + 1)
    for column, key, name in ((0, 'loss', 'Loss'), (1, 'acc', 'Accuracy (%)')):
        ax = fig.add_subplot(gs[0, column])
        scale = 100 if key == 'acc' else 1
        ax.plot(epochs, scale * np.asarray(history['train_' + key]), '-o', markersize=3)
        ax.plot(epochs, scale * np.asarray(history['val_' + key]), '-s', markersize=3)
        ax.set_xlabel('Epoch')
        ax.set_ylabel(name)
        ax.set_title(f"{name.split(' ')[0]} per epoch", fontsize=10)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    legend_above_the_panels(fig, gs, ax.get_lines(),      # the same two styles in both panels
                            ['training (mean over the epoch)', 'validation (end of the epoch)'])
    ax_batch = fig.add_subplot(gs[1, :])
    losses = history['iter_loss']
    plot_training_loss(losses, window=smoothing_window(len(losses)), ax=ax_batch,
                       label='training loss')
    ax_batch.set_title('Training loss per batch: raw and moving average (notes §4.4, step 6)',
                       fontsize=10)
    legend_above_the_data(ax_batch, ncol=2)


def plot_comparison(fig, gs, entries, vary, summary_plot):
    """(b), (c): four panels comparing the runs of one experiment, on the 2 x 2 grid gs of fig."""
    ax_acc = fig.add_subplot(gs[0, 0])
    plot_epoch_curves(ax_acc, entries, 'val_acc', 'Accuracy (%)', 'Validation accuracy per epoch',
                      percent=True)
    plot_epoch_curves(fig.add_subplot(gs[0, 1]), entries, 'train_loss', 'Loss',
                      'Training loss (mean over each epoch)')
    caption = plot_batch_losses(fig.add_subplot(gs[1, 0]), entries)
    run_lines = [line for line in ax_acc.get_lines() if not line.get_label().startswith('_')]
    legend_above_the_panels(fig, gs, run_lines, [line.get_label() for line in run_lines], caption)
    # The fourth panel after the band is taken: its legend's headroom depends on its height.
    ax = fig.add_subplot(gs[1, 1])
    numeric = all(isinstance(e['value'], (int, float)) and not isinstance(e['value'], bool)
                  for e in entries)
    if summary_plot == 'accuracy' and numeric and len(entries) >= 2:
        plot_accuracy_vs_value(ax, entries, vary)
    else:
        plot_timing(ax, entries)
