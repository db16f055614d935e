"""The reference observations in runner.ipynb quote measured numbers; a full
run of the notebook must print every one of them.

Slow (the full notebook takes about half a minute) and instructor-only: the
observations cell is a solution region, "YOUR ANSWER HERE" in a handout.
Run it with: python -m pytest -m slow
"""

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_reference_observations_quote_the_numbers_of_a_full_run():
    notebook = nbformat.read(REPO / 'runner.ipynb', as_version=4)
    observations = next(cell.source for cell in notebook.cells
                        if cell.cell_type == 'markdown' and 'BEGIN SOLUTION' in cell.source)
    quoted = set(re.findall(r'(\d+\.\d)%', observations))
    assert len(quoted) >= 5, "the reference observations should quote the measured accuracies"

    nbclient.NotebookClient(notebook, timeout=600, kernel_name='python3',
                            resources={'metadata': {'path': str(REPO)}}).execute()
    printed = ''.join(output.get('text', '') for cell in notebook.cells if cell.cell_type == 'code'
                      for output in cell.outputs)
    measured = {f'{100 * float(value):.1f}' for value in re.findall(r'\b0\.\d{4}\b', printed)}
    missing = sorted(quoted - measured)
    assert not missing, (f"the observations quote {missing} (%), which no output of a full run prints; "
                         f"update the observations cell of runner.ipynb")
