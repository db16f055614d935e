"""Drawing the report's pages with matplotlib (no LaTeX, no browser).

Every page is one A4 matplotlib Figure, laid out from the top down by a
`Page`: headings, wrapped paragraphs, a table, the student's analysis box,
then a block of plots of a fixed size. What does not fit flows onto a
continuation page, "(continued)": a long contents list, or an analysis
longer than its box. PdfPages collects the pages into one PDF.

A block of plots is drawn once per content: it is saved as a PNG named by a
hash of all it shows (the runs' numbers, this drawing code, the font) in the
figure cache, and placed on the page as an image. A rerun whose numbers did
not change (only the analysis text did) reuses the PNG instead of drawing
the plots again. The same PNG goes to figures/ beside the PDF.

Chinese: lines are wrapped by width (a CJK character is two columns wide)
and drawn with the CJK font visualize.py found; where the system has none,
Chinese text is replaced by a note and the writer's `notices` say once how
to get a font, rather than drawing empty boxes.
"""

import hashlib
import io
import json
import math
import textwrap
import unicodedata
from pathlib import Path

import matplotlib

matplotlib.use('Agg')      # files only: the report never opens a window

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import visualize  # noqa: E402
from fileio import atomic_write  # noqa: E402
from visualize import save_figure  # noqa: E402

A4 = (8.27, 11.69)          # inches, portrait
MARGIN = 0.6                # inches on every side
TEXT_SIZE = 9.5             # points
WRAP = 90                   # columns per line of body text at TEXT_SIZE
LINE = TEXT_SIZE * 1.45 / 72   # inches per line of body text
PLOT_HEIGHT = 5.3           # inches of the block of plots of an experiment's page
PLOTS_WIDTH = A4[0] - 0.1   # inches: a block of plots spans the page
PLOT_DPI = 200              # pixels per inch of a block of plots


def code_hash(*paths):
    """16 hex digits of a hash of these source files: a figure cache key part
    that changes when the code that draws the figure does."""
    return hashlib.sha256(b''.join(Path(path).read_bytes() for path in paths)).hexdigest()[:16]


# The drawing code (plots.py draws the blocks): a change to it draws every block of plots again.
DRAWING_CODE = code_hash(visualize.__file__, __file__, Path(__file__).with_name('plots.py'))


# ---------------------------------------------------------------------------
# Lines of text
# ---------------------------------------------------------------------------

def _wide(char):
    """A character that takes two columns (CJK ideographs, kana, full-width forms)."""
    return unicodedata.east_asian_width(char) in 'WF'


def text_width(text):
    """Width of text in columns: 2 for a wide (CJK) character, 1 for the others."""
    return sum(2 if _wide(char) else 1 for char in text)


def _tokens(paragraph):
    """Words, single wide characters (a line may break between any two) and ' '."""
    word = ''
    for char in paragraph:
        if char.isspace() or _wide(char):
            if word:
                yield word
                word = ''
            yield ' ' if char.isspace() else char
        else:
            word += char
    if word:
        yield word


def wrap_lines(text, width):
    """The lines of text (paragraphs separated by '\n') wrapped to at most
    `width` columns (text_width): words stay whole unless longer than a line;
    Chinese, which has no spaces, breaks between characters."""
    lines = []
    for paragraph in text.split('\n'):
        if not any(_wide(char) for char in paragraph):
            lines += textwrap.wrap(paragraph, width) or ['']
            continue
        line = ''
        for token in _tokens(paragraph):
            if token == ' ':
                line += ' ' if line and not line.endswith(' ') else ''
            elif not line.strip() or text_width(line + token) <= width:
                line += token
            else:
                lines.append(line.rstrip())
                line = token
            while text_width(line) > width:              # a word longer than a line
                cut = max(k for k in range(1, len(line) + 1) if text_width(line[:k]) <= width)
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line.rstrip())
    return lines


# ---------------------------------------------------------------------------
# A page
# ---------------------------------------------------------------------------

class Page:
    """One page of the report, filled from the top: call its methods in
    reading order. When something does not fit, the page continues on a new
    sheet (a PDF page headed "<title> (continued)")."""

    def __init__(self, writer, title, number):
        self.writer = writer
        self.title = title
        self.plot_png = None          # the PNG bytes of its block of plots
        self.overflow = []            # (box title, lines) to continue after the page
        self._new_sheet(number)

    def _new_sheet(self, number):
        self.number = number
        self.fig = plt.figure(figsize=A4)
        self.y = A4[1] - MARGIN          # inches from the bottom of the page
        self.fig.text(0.5, MARGIN / 2 / A4[1], f'{number}', ha='center', va='center',
                      fontsize=8, color='0.4')

    def _fy(self, inches):
        return inches / A4[1]

    def space_left(self):
        return self.y - MARGIN

    def at_top(self):
        return self.y > A4[1] - MARGIN - 0.01

    def ensure(self, height):
        """Continue on a new sheet unless `height` inches fit below."""
        if height > self.space_left() + 1e-9 and not self.at_top():
            self.writer.continue_page(self)

    def heading(self, text, size=14, gap=0.12):
        """Bold text, wrapped to the width of the page."""
        lines = wrap_lines(self.writer.printable(text), int(WRAP * TEXT_SIZE / size * 0.92))
        space = 0 if self.at_top() else 0.12         # not the first line: a little space
        height = space + len(lines) * size * 1.45 / 72 + gap
        self.ensure(height)
        if not self.at_top():
            self.y -= space
        self.fig.text(MARGIN / A4[0], self._fy(self.y), '\n'.join(lines), fontsize=size,
                      fontweight='bold', va='top', linespacing=1.25)
        self.y -= len(lines) * size * 1.45 / 72 + gap

    def paragraph(self, text, size=TEXT_SIZE, bullet=False, color='black', gap=0.06,
                  family=None):
        """Wrapped text; bullet=True indents it under a '•'."""
        width = int(WRAP * TEXT_SIZE / size) - (3 if bullet else 0)
        lines = wrap_lines(self.writer.printable(text), width)
        self.ensure(len(lines) * size * 1.45 / 72 + gap)
        x = MARGIN / A4[0]
        if bullet:
            self.fig.text(x, self._fy(self.y), '•', fontsize=size, va='top')
            x += 0.18 / A4[0]
        self.fig.text(x, self._fy(self.y), '\n'.join(lines), fontsize=size, va='top',
                      color=color, linespacing=1.3, family=family)
        self.y -= len(lines) * size * 1.45 / 72 + gap

    def analysis_box(self, title, text, placeholder=False, min_lines=4, reserve=0.0):
        """A framed box: a bold title line, then `text` wrapped inside it (the
        student's analysis; shown grey and italic when it is the placeholder).

        At least min_lines of room, so there is space to write by hand on a
        printout. The box takes the space left above `reserve` inches (what
        the page still has to hold); lines beyond it continue in a box on a
        continuation page after this one. Returns the number of lines moved
        there (0 when the text fits)."""
        width = WRAP - 4
        title_lines = wrap_lines(self.writer.printable(title), width)
        lines = wrap_lines(self.writer.printable(text), width)
        room = math.floor((self.space_left() - reserve - 0.28) / LINE) - len(title_lines)
        room = max(room, min_lines)
        moved = []
        if len(lines) > room:
            lines, moved = lines[:room - 1], lines[room - 1:]
            lines.append(f'(continued on page {self.number + 1})')
            self.overflow.append((title + ' (continued)', moved))
        self._box(title_lines, lines, max(len(lines), min_lines), placeholder)
        return len(moved)

    def _box(self, title_lines, lines, num_lines, placeholder=False):
        height = (len(title_lines) + num_lines) * LINE + 0.2
        left, right = MARGIN / A4[0], 1 - MARGIN / A4[0]
        self.fig.patches.append(Rectangle(
            (left, self._fy(self.y - height)), right - left, self._fy(height),
            transform=self.fig.transFigure, fill=False, edgecolor='0.35', linewidth=0.8))
        x = left + 0.1 / A4[0]
        self.fig.text(x, self._fy(self.y - 0.08), '\n'.join(title_lines), fontsize=TEXT_SIZE,
                      fontweight='bold', va='top', linespacing=1.3)
        self.fig.text(x, self._fy(self.y - 0.08 - len(title_lines) * LINE), '\n'.join(lines),
                      fontsize=TEXT_SIZE, va='top', linespacing=1.3,
                      color='0.45' if placeholder else 'black',
                      style='italic' if placeholder else 'normal')
        self.y -= height + 0.08

    def continue_box(self, title, lines):
        """The rest of an analysis, in boxes filling continuation sheets."""
        title_lines = wrap_lines(title, WRAP - 4)
        while lines:
            self.writer.continue_page(self)
            room = max(1, math.floor((self.space_left() - 0.28) / LINE) - len(title_lines))
            shown, lines = lines[:room], lines[room:]
            self._box(title_lines, shown, len(shown))

    @staticmethod
    def table_height(header, rows):
        header_lines = max(h.count('\n') + 1 for h in header)
        return 0.16 * header_lines + 0.06 + 0.2 * len(rows)

    def table(self, header, rows, col_widths=None, size=8, gap=0.2):
        """A table with a shaded header row; header cells may contain '\\n'."""
        header_lines = max(h.count('\n') + 1 for h in header)
        row_h, head_h = 0.2, 0.16 * header_lines + 0.06
        height = head_h + row_h * len(rows)
        self.ensure(height + gap)
        width = A4[0] - 2 * MARGIN
        ax = self.fig.add_axes([MARGIN / A4[0], self._fy(self.y - height),
                                width / A4[0], self._fy(height)])
        ax.axis('off')
        if col_widths is None:
            col_widths = [1.0] * len(header)
        total = float(sum(col_widths))
        col_widths = [w / total for w in col_widths]
        cells = [[self.writer.printable(str(cell)) for cell in row] for row in [header] + rows]
        table = ax.table(cellText=cells, colWidths=col_widths,
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

    def plots(self, nrows, ncols, draw, content, height=PLOT_HEIGHT, **gridspec):
        """A block of nrows x ncols plots, `height` inches tall, the width of
        the page: draw(fig, gridspec) draws them. `content` (JSON-ready: the
        numbers the plots show) names the block in the figure cache, so the
        same content is drawn once (see plots_png)."""
        self.ensure(height)
        png, drawn = plots_png(self.writer.figure_cache, nrows, ncols, draw, content, height,
                               **gridspec)
        if drawn:
            self.writer.plots_drawn += 1
        else:
            self.writer.plots_reused += 1
        ax = self.fig.add_axes([0.05 / A4[0], self._fy(self.y - height), PLOTS_WIDTH / A4[0],
                                self._fy(height)])
        ax.imshow(plt.imread(io.BytesIO(png)), aspect='auto', interpolation='none')
        ax.axis('off')
        self.plot_png = png
        self.y -= height


def plots_png(figure_cache, nrows, ncols, draw, content, height=PLOT_HEIGHT, **gridspec):
    """The PNG of a block of nrows x ncols plots, PLOTS_WIDTH x `height`
    inches: draw(fig, gridspec) draws them. Returns (png bytes, drawn), drawn
    False when the block was taken from figure_cache (a folder, or None).

    The file in figure_cache is named by a hash of `content` (JSON-ready: the
    numbers the plots show), the layout, the drawing code, matplotlib and the
    font, so the same block is drawn once: by a page, or ahead of it while
    other runs still train (make_report.py).
    """
    width = PLOTS_WIDTH
    key = hashlib.sha256(json.dumps(
        [content, nrows, ncols, gridspec, width, height, PLOT_DPI, DRAWING_CODE,
         matplotlib.__version__, list(plt.rcParams['font.family'])],
        sort_keys=True, default=str).encode()).hexdigest()[:24]
    path = None if figure_cache is None else Path(figure_cache) / f'plots-{key}.png'
    if path is not None and path.exists():
        return path.read_bytes(), False
    fig, gs = block_figure(nrows, ncols, height, **gridspec)
    draw(fig, gs)
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=PLOT_DPI)
    plt.close(fig)
    png = buffer.getvalue()
    if path is not None:
        with atomic_write(path, 'wb') as f:
            f.write(png)
    return png, True


def block_figure(nrows, ncols, height=PLOT_HEIGHT, **gridspec):
    """(figure, GridSpec) of a block of nrows x ncols plots, PLOTS_WIDTH x height inches."""
    width = PLOTS_WIDTH
    fig = plt.figure(figsize=(width, height))
    gs = fig.add_gridspec(nrows, ncols, left=(MARGIN + 0.2) / width,
                          right=1 - (MARGIN - 0.05) / width, top=1 - 0.3 / height,
                          bottom=0.5 / height, hspace=gridspec.pop('hspace', 0.45),
                          wspace=gridspec.pop('wspace', 0.3), **gridspec)
    return fig, gs


class ReportWriter:
    """Collects pages into a PDF and remembers their titles and figure files.

    figure_cache: the folder of the blocks of plots already drawn (None:
    draw every one). cjk_font: the font for Chinese text (None: there is
    none; Chinese text is replaced by a note and `notices` says so once)."""

    def __init__(self, pdf_file, figure_dir, metadata, page_png_dir=None, figure_cache=None,
                 cjk_font=visualize.CJK_FONT):
        self.pdf = PdfPages(pdf_file, metadata=metadata)
        self.figure_dir = figure_dir
        self.page_png_dir = page_png_dir   # also save every whole page as a PNG here
        self.figure_cache = figure_cache
        self.cjk_font = cjk_font
        self.pages = []          # titles, in order
        self.figures = []        # PNG file names, relative to the output folder
        self.notices = []        # what the console should say once (no Chinese font)
        self.plots_drawn = self.plots_reused = 0

    def printable(self, text):
        """text, or a note in its place when it holds Chinese the system has no font for."""
        if self.cjk_font is not None or not visualize.has_cjk(text):
            return text
        if visualize.NO_CJK_FONT not in self.notices:
            self.notices.append(visualize.NO_CJK_FONT)
        return ('[Chinese text not shown: this computer has no Chinese font. Install one '
                '(see the message of make_report.py) and make the report again.]')

    def new_page(self, title):
        self.pages.append(title)
        return Page(self, title, len(self.pages))

    def _save_sheet(self, page):
        self.pdf.savefig(page.fig, dpi=PLOT_DPI)
        if self.page_png_dir is not None:
            save_figure(page.fig, Path(self.page_png_dir) / f'page-{len(self.pages):02d}.png', dpi=80)
        plt.close(page.fig)

    def continue_page(self, page):
        """Save the page's sheet so far and give it a new one."""
        self._save_sheet(page)
        self.pages.append(f'{page.title} (continued)')
        page._new_sheet(len(self.pages))
        page.fig.text(MARGIN / A4[0], page._fy(page.y), f'{page.title} (continued)',
                      fontsize=8, color='0.4', va='top')
        page.y -= 0.3

    def finish_page(self, page, figure_name=None):
        """Add the page to the PDF (and its continuation pages, if its analysis
        was too long); save its plots as figures/<figure_name>.png."""
        if figure_name and page.plot_png is not None:
            path = Path(self.figure_dir) / f'{figure_name}.png'
            if not (path.exists() and path.read_bytes() == page.plot_png):
                with atomic_write(path, 'wb') as f:
                    f.write(page.plot_png)
            self.figures.append(f'{Path(self.figure_dir).name}/{path.name}')
        overflow, page.overflow = page.overflow, []
        for title, lines in overflow:
            page.continue_box(title, lines)
        self._save_sheet(page)

    def close(self):
        self.pdf.close()
