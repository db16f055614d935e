"""cnn.ipynb executed headless, as a student runs it, with one epoch."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')

REPO = Path(__file__).resolve().parents[1]

FAST_SETTINGS = """
max_epoch = 1
course = dict(course, batch_size=100)
"""


def outputs_text(cell):
    return ''.join(output.get('text', '') for output in cell.get('outputs', []))


@pytest.mark.solution('cnn', 'mlp')
def test_cnn_notebook_executes_headless():
    notebook = nbformat.read(REPO / 'cnn.ipynb', as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells) if 'parameters' in cell.metadata.get('tags', [])]
    assert len(tagged) == 1, "cnn.ipynb needs exactly one cell tagged 'parameters'"
    notebook.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(FAST_SETTINGS))

    nbclient.NotebookClient(notebook, timeout=900, kernel_name='python3',
                            resources={'metadata': {'path': str(REPO)}}).execute()

    text = ''.join(outputs_text(cell) for cell in notebook.cells if cell.cell_type == 'code')
    assert 'times faster' in text and 'Final test accuracy' in text
    accuracy = float(text.split('Final test accuracy ')[1].split()[0])
    assert accuracy >= 0.95, f"one epoch of the course's CNN reached only {accuracy}"
    figures = [output for cell in notebook.cells if cell.cell_type == 'code'
               for output in cell.outputs if 'image/png' in output.get('data', {})]
    # curves, filters, feature maps, and the dropout curves when layers.py has a DropoutLayer
    assert len(figures) in (3, 4), f"expected 3 or 4 figures, got {len(figures)}"
