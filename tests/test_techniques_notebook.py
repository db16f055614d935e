"""techniques.ipynb executed headless, as a student runs it, with a fast setting."""

import pytest

from notebooks import execute_with_settings

# One epoch per run on a small MLP instead of the notebook's six epochs, on
# a tenth of MNIST (conftest's mnist_subset).
FAST_SETTINGS = """
max_epoch = 1
base = dict(hidden_sizes=[64], learning_rate=0.05, momentum=0.9, batch_size=100)
"""


@pytest.mark.solution('mlp')
def test_techniques_notebook_executes_headless(mnist_subset):
    text, figures = execute_with_settings('techniques.ipynb',
                                          FAST_SETTINGS + f"data_root = {str(mnist_subset)!r}\n")
    for run in ('Adam, lr 0.001', 'inverse time, b = 1100 iterations', '512-512, batch norm + dropout 0.5',
                'random 24 x 24 crops, five crops'):
        assert run in text, run
    assert 'diverged' not in text
    assert figures == 6, f"expected six figures (five comparisons and the learning rates), got {figures}"


@pytest.mark.solution('mlp')
def test_techniques_notebook_survives_runs_that_diverge():
    # The base learning rate diverges; the runs that set their own rate still train.
    text, _ = execute_with_settings('techniques.ipynb', FAST_SETTINGS + "base = dict(base, learning_rate=1e4)\n")
    assert 'SGD, momentum 0.9, lr 0.05: diverged' in text and 'every run diverged: nothing to plot' in text
    assert 'Adam, lr 0.001' in text
