"""techniques.ipynb executed headless, as a student runs it, with a fast setting."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')

REPO = Path(__file__).resolve().parents[1]

# One epoch per run on a small MLP instead of the notebook's six epochs.
FAST_SETTINGS = """
max_epoch = 1
base = dict(hidden_sizes=[64], learning_rate=0.05, momentum=0.9, batch_size=100)
"""


def outputs_text(cell):
    return ''.join(output.get('text', '') for output in cell.get('outputs', []))


@pytest.mark.solution('mlp')
def test_techniques_notebook_executes_headless():
    notebook = nbformat.read(REPO / 'techniques.ipynb', as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells) if 'parameters' in cell.metadata.get('tags', [])]
    assert len(tagged) == 1, "techniques.ipynb needs exactly one cell tagged 'parameters'"
    notebook.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(FAST_SETTINGS))

    nbclient.NotebookClient(notebook, timeout=600, kernel_name='python3',
                            resources={'metadata': {'path': str(REPO)}}).execute()

    text = ''.join(outputs_text(cell) for cell in notebook.cells if cell.cell_type == 'code')
    for run in ('Adam, lr 0.001', 'inverse time, b = 1100 iterations', '512-512, batch norm + dropout 0.5',
                'random 24 x 24 crops, five crops'):
        assert run in text, run
    assert 'diverged' not in text
    figures = [output for cell in notebook.cells if cell.cell_type == 'code'
               for output in cell.outputs if 'image/png' in output.get('data', {})]
    assert len(figures) == 6, f"expected six figures (five comparisons and the learning rates), got {len(figures)}"
