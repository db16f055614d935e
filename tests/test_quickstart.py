"""tools/quickstart.py: every documented command runs under the thread policy."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
import quickstart  # noqa: E402


@pytest.fixture
def calls(monkeypatch):
    recorded = []
    monkeypatch.setattr(quickstart, 'ensure_environment', lambda: None)
    monkeypatch.setattr(quickstart.subprocess, 'call',
                        lambda args, cwd, env: recorded.append((args, env)) or 0)
    return recorded


@pytest.mark.parametrize('command, expected', [
    ('notebook', ['-m', 'notebook', 'runner.ipynb']),
    ('report', ['report/make_report.py', '--quick']),
    ('submit', ['tools/submit.py', '--quick']),
    ('test', ['-m', 'pytest', '--quick']),
])
def test_commands_run_with_one_blas_thread_unless_set(calls, monkeypatch, command, expected):
    for name in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        monkeypatch.delenv(name, raising=False)
    extra = [] if command == 'notebook' else ['--quick']
    assert quickstart.main([command] + extra) == 0
    args, env = calls[-1]
    assert args[1:] == expected
    assert env['OPENBLAS_NUM_THREADS'] == env['OMP_NUM_THREADS'] == env['MKL_NUM_THREADS'] == '1'
    # A thread count you set yourself wins.
    monkeypatch.setenv('OPENBLAS_NUM_THREADS', '2')
    quickstart.main([command] + extra)
    assert calls[-1][1]['OPENBLAS_NUM_THREADS'] == '2'


def test_unknown_command_prints_the_usage():
    with pytest.raises(SystemExit) as info:
        quickstart.main(['zip'])
    for command in ('train', 'test', 'notebook', 'report', 'submit'):
        assert f'quickstart.py {command}' in str(info.value)
