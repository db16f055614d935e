"""testkit: a failed comparison shows the message, not the helper's source."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FAILING_TEST = '''
import numpy as np
from testkit.gradients import assert_close, check_gradient

def test_padding_bug():
    expected = np.arange(12.0).reshape(3, 4)
    got = expected.copy()
    got[1, 2] += 1.0
    assert_close(got, expected, 'dx')

def test_wrong_gradient():
    x = np.linspace(-1.0, 1.0, 5)
    check_gradient(lambda: float(np.sum(x ** 2)), x, 3 * x, 'dx')
'''


def run_failing_tests(tmp_path):
    (tmp_path / 'test_failing.py').write_text(textwrap.dedent(FAILING_TEST))
    (tmp_path / 'pytest.ini').write_text('[pytest]\n')
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', 'test_failing.py'],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return result.stdout


def failure_section(output, name):
    """The lines pytest prints for one failed test (between its ___ header and the next)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('_') and f' {name} ' in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(('_', '='))), len(lines))
    return lines[start:end]


def test_a_failed_comparison_prints_array_error_and_index_not_the_helpers_source(tmp_path):
    output = run_failing_tests(tmp_path)
    assert '2 failed' in output, output
    for name in ('test_padding_bug', 'test_wrong_gradient'):
        section = failure_section(output, name)
        text = '\n'.join(section)
        assert 'dx' in text and 'relative error' in text and 'first differing index' in text, text
        # the helpers' own lines (their bodies) are hidden: only the test's source and the message
        assert 'np.maximum(np.abs(actual)' not in text and 'def assert_close' not in text, text
        assert len(section) < 25, f'{len(section)} lines for one failed comparison:\n{text}'
    assert 'first differing index (1, 2): got 7, expected 6' in output
