"""cnn.ipynb executed headless, as a student runs it, with one epoch."""

import re

import pytest

from notebooks import execute_with_settings

FAST_SETTINGS = """
max_epoch = 1
course = dict(course, batch_size=100)
"""


@pytest.mark.slow   # an epoch of the CNN on the whole MNIST (half a minute): python -m pytest -m slow
@pytest.mark.solution('cnn', 'mlp')
def test_cnn_notebook_executes_headless():
    text, figures = execute_with_settings('cnn.ipynb', FAST_SETTINGS, timeout=900)
    assert 'times faster' in text and 'Final test accuracy' in text
    assert re.search(r's per training epoch, [0-9.]+ s of CPU per epoch', text), 'timings by CPU time, which load cannot flip'
    accuracy = float(text.split('Final test accuracy ')[1].split()[0])
    assert accuracy >= 0.95, f"one epoch of the course's CNN reached only {accuracy}"
    # curves, filters, feature maps, and the dropout curves when layers.py has a DropoutLayer
    assert figures in (3, 4), f"expected 3 or 4 figures, got {figures}"
