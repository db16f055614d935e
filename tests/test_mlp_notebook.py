"""mlp.ipynb executed headless, as a student runs it, with a fast setting."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')

REPO = Path(__file__).resolve().parents[1]

# One epoch per run and two candidates instead of the notebook's 20 epochs and four.
FAST_SETTINGS = """
max_epoch = 1
candidates = [dict(learning_rate=lr, weight_decay=0.0, momentum=0.9, batch_size=100) for lr in (0.01, 0.1)]
"""


def outputs_text(cell):
    return ''.join(output.get('text', '') for output in cell.get('outputs', []))


@pytest.mark.solution('mlp')
def test_mlp_notebook_executes_headless():
    notebook = nbformat.read(REPO / 'mlp.ipynb', as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells) if 'parameters' in cell.metadata.get('tags', [])]
    assert len(tagged) == 1, "mlp.ipynb needs exactly one cell tagged 'parameters'"
    notebook.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(FAST_SETTINGS))

    nbclient.NotebookClient(notebook, timeout=600, kernel_name='python3',
                            resources={'metadata': {'path': str(REPO)}}).execute()

    text = ''.join(outputs_text(cell) for cell in notebook.cells if cell.cell_type == 'code')
    for variant in ('Euclidean + Sigmoid', 'Euclidean + ReLU', 'Softmax CE + Sigmoid', 'Softmax CE + ReLU'):
        assert text.count(variant) == 2, variant            # the course's table and the tuned one
    assert 'best on validation' in text and 'two hidden layers: val' in text
    assert 'logistic regression, 0 vs 1: test accuracy' in text and 'diverged' not in text
    figures = [output for cell in notebook.cells if cell.cell_type == 'code'
               for output in cell.outputs if 'image/png' in output.get('data', {})]
    assert len(figures) == 3, f"expected three curve figures, got {len(figures)}"
