"""Run a project notebook headless, as a student runs it, with fast settings.

The notebook's one cell tagged 'parameters' sets its defaults; the fast
settings go into a new cell right after it, so the notebook's own code runs
unchanged. Used by the notebook tests (nbformat and nbclient come with jupyter).
"""

from pathlib import Path

import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')

REPO = Path(__file__).resolve().parents[1]
# The kernel's start-up warnings (e.g. about its local TCP connection) say
# nothing about the student's code; errors still show.
KERNEL_QUIET = ['--IPKernelApp.log_level=ERROR']


def execute_with_settings(name, settings, timeout=600):
    """Execute REPO/name with `settings` (Python code) run after its parameters
    cell. Returns (printed text of the code cells, number of figures shown).
    A cell that raises fails the test in one line naming the cell and the error."""
    notebook = nbformat.read(REPO / name, as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells) if 'parameters' in cell.metadata.get('tags', [])]
    assert len(tagged) == 1, f"{name} needs exactly one cell tagged 'parameters'"
    notebook.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(settings))

    client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name='python3',
                                     resources={'metadata': {'path': str(REPO)}},
                                     extra_arguments=KERNEL_QUIET)
    try:
        client.execute()
        failure = None
    except nbclient.exceptions.CellExecutionError as error:
        # One line: the cell and the error (a TODO left, a wrong shape), not the
        # kernel's colour-coded traceback; open the notebook to see the rest.
        cell = next((i for i, c in enumerate(notebook.cells) if c.cell_type == 'code'
                     and any(o.get('output_type') == 'error' for o in c.outputs)), None)
        where = 'a cell' if cell is None else f'cell {cell - (cell > tagged[0])}'   # numbered as in the file
        message = (error.evalue or '').strip().splitlines()
        failure = f"{name} stopped in {where}: {error.ename}: {message[0] if message else ''}"
    if failure:
        pytest.fail(failure, pytrace=False)       # outside the except: no chained traceback

    outputs = [output for cell in notebook.cells if cell.cell_type == 'code' for output in cell.outputs]
    text = ''.join(output.get('text', '') for output in outputs)
    figures = sum('image/png' in output.get('data', {}) for output in outputs)
    return text, figures
