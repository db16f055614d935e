"""tools/quickstart.py: every documented command runs under the thread policy,
does its assignment's job, and opens Jupyter as root."""

import json
from pathlib import Path

import pytest

import quickstart

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def calls(monkeypatch):
    recorded = []
    monkeypatch.setattr(quickstart, 'ensure_environment', lambda: None)
    monkeypatch.setattr(quickstart, 'running_as_root', lambda: False)
    monkeypatch.setattr(quickstart.subprocess, 'call',
                        lambda args, cwd, env: recorded.append((args, env)) or 0)
    return recorded


@pytest.mark.parametrize('command, expected', [
    ('notebook', ['-m', 'notebook', 'runner.ipynb']),
    ('report', ['report/make_report.py', '--quick']),
    ('submit', ['tools/submit.py', '--assignment', 'softmax', '--quick']),
    ('test', ['-m', 'pytest', '--quick']),
])
def test_commands_run_with_one_blas_thread_unless_set(calls, monkeypatch, command, expected):
    monkeypatch.setattr(quickstart, 'handout_assignment', lambda root=None: None)   # as in the reference
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


def handout_folder(tmp_path, assignment):
    (tmp_path / 'tools').mkdir()
    (tmp_path / 'tools' / 'submission.json').write_text(json.dumps({'assignment': assignment, 'files': []}))
    return tmp_path


@pytest.mark.parametrize('assignment, notebook, model_flag', [
    ('softmax', 'runner.ipynb', None),
    ('mlp', 'mlp.ipynb', '--hidden_sizes'),
    ('cnn', 'cnn.ipynb', '--model'),
])
def test_a_handout_does_its_own_assignments_job(calls, monkeypatch, tmp_path, assignment, notebook, model_flag):
    monkeypatch.setattr(quickstart, 'ROOT', handout_folder(tmp_path, assignment))
    monkeypatch.setattr(quickstart, 'OUTPUTS', tmp_path / 'outputs')
    quickstart.main(['notebook'])
    assert calls[-1][0][1:] == ['-m', 'notebook', notebook]
    quickstart.main(['train', '--max_epoch', '1'])
    train = calls[-1][0]
    assert train[1] == 'solver.py' and train[-2:] == ['--max_epoch', '1']     # yours come last and win
    assert (model_flag in train) if model_flag else not ({'--hidden_sizes', '--model'} & set(train))
    if assignment == 'cnn':
        assert train[train.index('--model') + 1] == 'cnn'
    quickstart.main(['submit'])
    assert calls[-1][0][1:] == ['tools/submit.py']          # the handout's submission.json names the files
    with pytest.raises(SystemExit, match=f"handout of the '{assignment}' assignment"):
        quickstart.main(['train', '--assignment', 'mlp' if assignment != 'mlp' else 'cnn'])


def test_the_reference_repository_chooses_with_an_argument(calls, monkeypatch):
    monkeypatch.setattr(quickstart, 'handout_assignment', lambda root=None: None)
    quickstart.main(['notebook', '--assignment', 'cnn'])
    assert calls[-1][0][1:] == ['-m', 'notebook', 'cnn.ipynb']
    quickstart.main(['submit', '--assignment=mlp', '--no-check'])
    assert calls[-1][0][1:] == ['tools/submit.py', '--assignment', 'mlp', '--no-check']
    quickstart.main(['notebook'])
    assert calls[-1][0][1:] == ['-m', 'notebook', 'runner.ipynb']          # softmax by default
    with pytest.raises(SystemExit, match="Unknown assignment 'rnn'"):
        quickstart.main(['train', '--assignment', 'rnn'])


def test_notebook_as_root_passes_allow_root_and_says_so(calls, monkeypatch, capsys):
    monkeypatch.setattr(quickstart, 'handout_assignment', lambda root=None: None)
    monkeypatch.setattr(quickstart, 'running_as_root', lambda: True)
    quickstart.main(['notebook'])
    assert calls[-1][0][1:] == ['-m', 'notebook', 'runner.ipynb', '--allow-root']
    assert 'Running as root' in capsys.readouterr().out
    quickstart.main(['notebook', '--allow-root'])               # given once, not twice
    assert calls[-1][0].count('--allow-root') == 1
