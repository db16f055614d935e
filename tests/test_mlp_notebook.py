"""mlp.ipynb executed headless, as a student runs it, with a fast setting."""

import pytest

from notebooks import execute_with_settings

# One epoch per run and two candidates instead of the notebook's 20 epochs
# and four, on a tenth of MNIST (conftest's mnist_subset).
FAST_SETTINGS = """
max_epoch = 1
candidates = [dict(learning_rate=lr, weight_decay=0.0, momentum=0.9, batch_size=100) for lr in (0.01, 0.1)]
"""


@pytest.mark.solution('mlp')
def test_mlp_notebook_executes_headless(mnist_subset):
    text, figures = execute_with_settings('mlp.ipynb', FAST_SETTINGS + f"data_root = {str(mnist_subset)!r}\n")
    for variant in ('Euclidean + Sigmoid', 'Euclidean + ReLU', 'Softmax CE + Sigmoid', 'Softmax CE + ReLU'):
        assert text.count(variant) == 2, variant            # the course's table and the tuned one
    assert 'best on validation' in text and 'two hidden layers: val' in text
    assert 'logistic regression, 0 vs 1: test accuracy' in text and 'diverged' not in text
    assert figures == 3, f"expected three curve figures, got {figures}"


# Every run diverges within its first batches: the notebook must go on and say so.
DIVERGING_SETTINGS = """
max_epoch = 1
course = dict(course, learning_rate=1e4)
candidates = [dict(learning_rate=1e4, weight_decay=0.0, momentum=0.9, batch_size=100)]
"""


@pytest.mark.solution('mlp')
def test_mlp_notebook_survives_runs_that_diverge():
    text, figures = execute_with_settings('mlp.ipynb', DIVERGING_SETTINGS)
    assert 'diverged:' in text and 'best on validation' in text and 'two hidden layers: val nan' in text
    assert 'no run finished an epoch: nothing to plot' in text and figures == 0
