"""runner.ipynb executed headless, as a student runs it, with a fast setting."""

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')

REPO = Path(__file__).resolve().parents[1]

# One epoch per run and two settings per sweep instead of the notebook's
# defaults. The learning rate 1e300 overflows to NaN in the first batch: a
# diverging setting must be recorded and must not stop the later sections.
FAST_SETTINGS = """
max_epoch = 1
learning_rates = [0.01, 1e300]
batch_sizes = [100, 1000]
"""

ANSI_ESCAPE = re.compile(r'\x1b\[[0-9;]*m')


def outputs_text(cell):
    return ''.join(output.get('text', '') for output in cell.get('outputs', []))


def execute(notebook):
    """Run the notebook; a failing cell fails the test with one short, plain
    line (the exception and the cell), not a page of coloured traceback."""
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name='python3',
                                     resources={'metadata': {'path': str(REPO)}},
                                     extra_arguments=['--IPKernelApp.log_level=ERROR'])   # no start-up noise
    try:
        client.execute()
        return
    except nbclient.exceptions.CellExecutionError as error:
        failed = next((i for i, cell in enumerate(notebook.cells)
                       if any(o.get('output_type') == 'error' for o in cell.get('outputs', []))),
                      None)
        first_line = (notebook.cells[failed].source.splitlines() or [''])[0] if failed else ''
        message = f'{error.ename}: {ANSI_ESCAPE.sub("", str(error.evalue))}'
    # Outside the except block, so that no chained traceback is printed.
    pytest.fail(f'runner.ipynb stopped in cell {failed} ({first_line!r}) with {message}', pytrace=False)


@pytest.mark.solution('softmax')
def test_runner_notebook_executes_headless(monkeypatch, mnist_subset):
    # Started without any thread setting, the notebook applies the policy itself.
    for name in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        monkeypatch.delenv(name, raising=False)
    notebook = nbformat.read(REPO / 'runner.ipynb', as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells) if 'parameters' in cell.metadata.get('tags', [])]
    assert len(tagged) == 1, "runner.ipynb needs exactly one cell tagged 'parameters'"
    notebook.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(
        FAST_SETTINGS + f"data_root = {str(mnist_subset)!r}   # a tenth of MNIST (conftest)\n"))

    execute(notebook)

    text = [outputs_text(cell) for cell in notebook.cells if cell.cell_type == 'code']
    everything = ''.join(text)
    assert 'OPENBLAS_NUM_THREADS=1' in text[0] and 'OpenBLAS uses 1 thread' in text[0], text[0]
    assert 'NumPy was imported before' not in everything
    assert sum('Final test accuracy' in t for t in text) == 2
    sweep = next(t for t in text if 'learning rate' in t)
    assert 'learning rate 0.01    validation accuracy' in sweep, sweep
    assert 'learning rate 1e+300  diverged' in sweep, sweep
    assert 'test accuracy' not in sweep, f'the sweep must not print test accuracy: {sweep}'
    assert 'batch size 1000' in everything, 'the sections after a diverged run must still run'
    assert re.search(r'batch size 1000 .* s per epoch, [0-9.]+ s of CPU', everything), 'CPU time, which load cannot flip'
    figures = [output for cell in notebook.cells if cell.cell_type == 'code'
               for output in cell.outputs if 'image/png' in output.get('data', {})]
    assert len(figures) == 3, f"expected the three curve figures, got {len(figures)}"
