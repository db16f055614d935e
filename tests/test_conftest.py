"""tests/conftest.py: plain `pytest` runs under the project's thread policy."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_plain_pytest_applies_the_thread_policy_before_numpy_loads():
    env = {k: v for k, v in os.environ.items()
           if k not in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
    result = subprocess.run([sys.executable, '-m', 'pytest', '--collect-only', '-p', 'no:cacheprovider',
                             'tests/test_augment.py'], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    header = next(line for line in result.stdout.splitlines() if line.startswith('threads: '))
    assert header.startswith('threads: OPENBLAS_NUM_THREADS=1 (the project default)'), header
    assert 'NumPy was imported before' not in result.stdout + result.stderr
