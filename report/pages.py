"""Drawing the report's pages with matplotlib (no LaTeX, no browser).

Every page is one A4 matplotlib Figure, laid out from the top down by a
`Page`: headings, wrapped paragraphs, a table, then a grid of plots in the
space that is left. PdfPages collects the pages into one PDF; the plots of
each page are also saved as a PNG file beside it (figures/).
"""

import textwrap

import matplotlib

matplotlib.use('Agg')      # files only: the report never opens a window

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from visualize import moving_average, plot_training_loss, save_figure  # noqa: E402

A4 = (8.27, 11.69)          # inches, portrait
MARGIN = 0.6                # inches on every side
TEXT_SIZE = 9.5             # points
WRAP = 94                   # characters per line of body text at TEXT_SIZE
LINE = TEXT_SIZE * 1.45 / 72   # inches per line of body text


class Page:
    """One A4 page, filled from the top: call add_* in reading order."""

    def __init__(self, title, number):
        self.title = title
        self.fig = plt.figure(figsize=A4)
        self.y = A4[1] - MARGIN          # inches from the bottom of the page
        self.fig.text(0.5, MARGIN / 2 / A4[1], f'{number}', ha='center', va='center',
                      fontsize=8, color='0.4')
        self.plot_box = None

    def _fy(self, inches):
        return inches / A4[1]

    def space_left(self):
        return self.y - MARGIN

    def heading(self, text, size=14, gap=0.12):
        if self.y < A4[1] - MARGIN - 0.01:      # not the first line: leave a little space
            self.y -= 0.12
        self.fig.text(MARGIN / A4[0], self._fy(self.y), text, fontsize=size,
                      fontweight='bold', va='top')
        self.y -= size * 1.5 / 72 + gap

    def paragraph(self, text, size=TEXT_SIZE, bullet=False, color='black', gap=0.06,
                  family=None):
        """Wrapped text; bullet=True indents it under a '•'."""
        width = int(WRAP * TEXT_SIZE / size) - (3 if bullet else 0)
        lines = textwrap.wrap(text, width) or ['']
        x = MARGIN / A4[0]
        if bullet:
            self.fig.text(x, self._fy(self.y), '•', fontsize=size, va='top')
            x += 0.18 / A4[0]
        self.fig.text(x, self._fy(self.y), '\n'.join(lines), fontsize=size, va='top',
                      color=color, linespacing=1.3, family=family)
        self.y -= len(lines) * size * 1.45 / 72 + gap

    def analysis_box(self, title, text, placeholder=False, min_lines=4, max_lines=14):
        """A framed box: a bold title line, then `text` wrapped inside it (the
        student's analysis; shown grey and italic when it is the placeholder).
        At least min_lines of room, so there is space to write by hand on a
        printout; text beyond max_lines is cut with a note."""
        size = TEXT_SIZE
        width = int(WRAP * TEXT_SIZE / size) - 4
        title_lines = textwrap.wrap(title, width)
        lines = [line for paragraph in text.split('\n')
                 for line in (textwrap.wrap(paragraph, width) or [''])]
        if len(lines) > max_lines:
            lines = lines[:max_lines - 1] + ['[... cut: keep each analysis to about '
                                             f'{max_lines} lines]']
        line_h = size * 1.45 / 72
        height = (len(title_lines) + max(len(lines), min_lines)) * line_h + 0.2
        left, right = MARGIN / A4[0], 1 - MARGIN / A4[0]
        self.fig.patches.append(Rectangle(
            (left, self._fy(self.y - height)), right - left, self._fy(height),
            transform=self.fig.transFigure, fill=False, edgecolor='0.35', linewidth=0.8))
        x = left + 0.1 / A4[0]
        self.fig.text(x, self._fy(self.y - 0.08), '\n'.join(title_lines), fontsize=size,
                      fontweight='bold', va='top', linespacing=1.3)
        self.fig.text(x, self._fy(self.y - 0.08 - len(title_lines) * line_h), '\n'.join(lines),
                      fontsize=size, va='top', linespacing=1.3,
                      color='0.45' if placeholder else 'black',
                      style='italic' if placeholder else 'normal')
        self.y -= height + 0.08

    def table(self, header, rows, col_widths=None, size=8, gap=0.2):
        """A table with a shaded header row; header cells may contain '\\n'."""
        header_lines = max(h.count('\n') + 1 for h in header)
        row_h, head_h = 0.2, 0.16 * header_lines + 0.06
        height = head_h + row_h * len(rows)
        width = A4[0] - 2 * MARGIN
        ax = self.fig.add_axes([MARGIN / A4[0], self._fy(self.y - height),
                                width / A4[0], self._fy(height)])
        ax.axis('off')
        if col_widths is None:
            col_widths = [1.0] * len(header)
        total = float(sum(col_widths))
        col_widths = [w / total for w in col_widths]
        table = ax.table(cellText=[header] + rows, colWidths=col_widths,
                         loc='upper left', cellLoc='center', bbox=[0, 0, 1, 1])
        table.auto_set_font_size(False)
        table.set_fontsize(size)
        for (row, col), cell in table.get_celld().items():
            cell.set_edgecolor('0.75')
            cell.set_linewidth(0.5)
            cell.set_height((head_h if row == 0 else row_h) / height)
            if row == 0:
                cell.set_facecolor('0.9')
                cell.set_text_props(fontweight='bold')
        # bbox=[0,0,1,1] spreads rows evenly; fix the y positions by hand so the
        # header can be taller than the body rows.
        y = 1.0
        for row in range(len(rows) + 1):
            h = (head_h if row == 0 else row_h) / height
            y -= h
            for col in range(len(header)):
                table[row, col].set_y(y)
        self.y -= height + gap

    def plots(self, nrows, ncols, height=None, **gridspec):
        """A grid of axes in the rest of the page (or `height` inches of it)."""
        height = self.space_left() if height is None else height
        bottom = self.y - height
        gs = self.fig.add_gridspec(nrows, ncols, left=(MARGIN + 0.25) / A4[0],
                                   right=1 - MARGIN / A4[0], top=self._fy(self.y - 0.25),
                                   bottom=self._fy(bottom + 0.35),
                                   hspace=gridspec.pop('hspace', 0.45),
                                   wspace=gridspec.pop('wspace', 0.3), **gridspec)
        self.plot_box = Bbox.from_extents(0.05, bottom, A4[0] - 0.05, self.y)
        self.y = bottom
        return gs


class ReportWriter:
    """Collects pages into a PDF and remembers their titles and figure files."""

    def __init__(self, pdf_file, figure_dir, metadata, png_dpi=110, page_png_dir=None):
        self.pdf = PdfPages(pdf_file, metadata=metadata)
        self.figure_dir = figure_dir
        self.page_png_dir = page_png_dir   # also save every whole page as a PNG here
        self.png_dpi = png_dpi
        self.pages = []          # titles, in order
        self.figures = []        # PNG file names, relative to the output folder

    def new_page(self, title):
        self.pages.append(title)
        return Page(title, len(self.pages))

    def finish_page(self, page, figure_name=None):
        """Add the page to the PDF; save its plots as figures/<figure_name>.png."""
        if figure_name and page.plot_box is not None:
            path = self.figure_dir / f'{figure_name}.png'
            save_figure(page.fig, path, dpi=self.png_dpi, bbox_inches=page.plot_box)
            self.figures.append(f'{self.figure_dir.name}/{path.name}')
        self.pdf.savefig(page.fig, dpi=200)       # dpi of the rasterized parts only
        if self.page_png_dir is not None:
            save_figure(page.fig, self.page_png_dir / f'page-{len(self.pages):02d}.png', dpi=80)
        plt.close(page.fig)

    def close(self):
        self.pdf.close()


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------

def smoothing_window(num_points):
    """Moving-average window for a per-batch curve: about 1% of its points, at least 5."""
    return max(5, num_points // 100)


def _use_log_scale(values):
    values = [v for v in values if v is not None and np.isfinite(v) and v > 0]
    return len(values) >= 2 and max(values) / min(values) > 50


def _legend_label(entry):
    return entry['label'] + (' (diverged)' if entry['summary']['status'] == 'diverged' else '')


def plot_epoch_curves(ax, entries, key, ylabel, title, percent=False):
    """One line per run of history[key] against the epoch; x marks where a run diverged."""
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
    ax.legend(fontsize=7)


# A run with more per-batch losses than this (batch 10: 5500 per epoch, 55000 in all) is
# drawn as its moving average only: its raw curve, noisy and dense, would
# cover the whole panel and hide the other runs.
MAX_RAW_POINTS = 6000


def plot_batch_losses(ax, entries):
    """Per-batch training loss of several runs against the epoch: raw (faint,
    for runs of at most MAX_RAW_POINTS batches) and moving average (notes §4.4,
    step 6). The x axis is in epochs, so runs with different batch sizes
    (different numbers of updates per epoch) line up."""
    all_values = []
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for index, entry in enumerate(entries):
        losses = np.asarray(entry['record']['history']['iter_loss'], dtype=float)
        if not len(losses):
            continue
        x = np.arange(1, len(losses) + 1) / entry['summary']['updates_per_epoch']
        window = smoothing_window(len(losses))
        color = colors[index % len(colors)]       # the same colour as in the other panels
        raw = len(losses) <= MAX_RAW_POINTS
        if raw:
            # Drawn as an image inside the PDF (rasterized) to keep the file
            # small; the moving average stays a vector line.
            ax.plot(x, losses, color=color, alpha=0.15, linewidth=0.6, rasterized=True)
        smooth = moving_average(losses, window)
        line, = ax.plot(x[len(x) - len(smooth):], smooth, color=color, linewidth=1.3,
                        label=f"{_legend_label(entry)} (avg of {window}"
                              + ('' if raw else '; raw not drawn') + ')')
        if entry['summary']['status'] == 'diverged':      # the last finite loss before NaN
            ax.plot(x[-1], losses[-1], 'x', color=line.get_color(), markersize=9)
        all_values += list(losses)
    if _use_log_scale(all_values):
        ax.set_yscale('log')
    ax.set_xlabel('Epoch (per-batch points)')
    ax.set_ylabel('Training loss')
    ax.set_title('Training loss per batch: raw (faint) and moving average', fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


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
    ax.legend(fontsize=7)


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
    ax.bar(x - 0.2, per_epoch, width=0.4, label='one epoch (median)')
    ax.bar(x + 0.2, [t or 0 for t in to_target], width=0.4,
           label=f"to reach {100 * entries[0]['summary']['val_target']:g}% validation accuracy")
    for xi, t in zip(x, to_target):
        if t is None:
            ax.text(xi + 0.2, 0, 'never', ha='center', va='bottom', fontsize=7, rotation=90)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel('Training time (s)')
    ax.set_title('Training time', fontsize=10)
    ax.grid(alpha=0.3, axis='y')
    ax.legend(fontsize=7)


def plot_single_run(page, entry):
    """(a): loss and accuracy per epoch (training and validation), and the
    per-batch training loss with its moving average."""
    gs = page.plots(2, 2)
    history = entry['record']['history']
    epochs = np.arange(1, len(history['train_loss']) + 1)
    ax_loss = page.fig.add_subplot(gs[0, 0])
    ax_acc = page.fig.add_subplot(gs[0, 1])
    for ax, key, name in ((ax_loss, 'loss', 'Loss'), (ax_acc, 'acc', 'Accuracy (%)')):
        scale = 100 if key == 'acc' else 1
        ax.plot(epochs, scale * np.asarray(history['train_' + key]), '-o', markersize=3,
                label='training (mean over the epoch)')
        ax.plot(epochs, scale * np.asarray(history['val_' + key]), '-s', markersize=3,
                label='validation (end of the epoch)')
        ax.set_xlabel('Epoch')
        ax.set_ylabel(name)
        ax.set_title(f"{name.split(' ')[0]} per epoch", fontsize=10)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7)
    ax_batch = page.fig.add_subplot(gs[1, :])
    losses = history['iter_loss']
    plot_training_loss(losses, window=smoothing_window(len(losses)), ax=ax_batch,
                       label='training loss')
    ax_batch.set_title('Training loss per batch: raw and moving average (notes §4.4, step 6)',
                       fontsize=10)
    ax_batch.legend(fontsize=7)


def plot_comparison(page, entries, vary, summary_plot):
    """(b), (c): four panels comparing the runs of one experiment."""
    gs = page.plots(2, 2)
    plot_epoch_curves(page.fig.add_subplot(gs[0, 0]), entries, 'val_acc', 'Accuracy (%)',
                      'Validation accuracy per epoch', percent=True)
    plot_epoch_curves(page.fig.add_subplot(gs[0, 1]), entries, 'train_loss', 'Loss',
                      'Training loss (mean over each epoch)')
    plot_batch_losses(page.fig.add_subplot(gs[1, 0]), entries)
    ax = page.fig.add_subplot(gs[1, 1])
    numeric = all(isinstance(e['value'], (int, float)) and not isinstance(e['value'], bool)
                  for e in entries)
    if summary_plot == 'accuracy' and numeric and len(entries) >= 2:
        plot_accuracy_vs_value(ax, entries, vary)
    else:
        plot_timing(ax, entries)
