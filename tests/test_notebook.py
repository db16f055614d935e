"""runner.ipynb executed headless, as a student runs it, with a fast setting."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')

REPO = Path(__file__).resolve().parents[1]

# One epoch per run and two settings per sweep instead of the notebook's defaults.
FAST_SETTINGS = """
max_epoch = 1
learning_rates = [0.01, 0.1]
batch_sizes = [100, 1000]
"""


def outputs_text(cell):
    return ''.join(output.get('text', '') for output in cell.get('outputs', []))


@pytest.mark.solution('softmax')
def test_runner_notebook_executes_headless():
    notebook = nbformat.read(REPO / 'runner.ipynb', as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells) if 'parameters' in cell.metadata.get('tags', [])]
    assert len(tagged) == 1, "runner.ipynb needs exactly one cell tagged 'parameters'"
    notebook.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(FAST_SETTINGS))

    nbclient.NotebookClient(notebook, timeout=300, kernel_name='python3',
                            resources={'metadata': {'path': str(REPO)}}).execute()

    text = [outputs_text(cell) for cell in notebook.cells if cell.cell_type == 'code']
    assert sum('Final test accuracy' in t for t in text) == 2
    assert sum('learning rate' in t for t in text) == 1 and 'batch size 1000' in ''.join(text)
    figures = [output for cell in notebook.cells if cell.cell_type == 'code'
               for output in cell.outputs if 'image/png' in output.get('data', {})]
    assert len(figures) == 3, f"expected the three curve figures, got {len(figures)}"
