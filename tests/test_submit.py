"""tools/submit.py: the zip holds exactly what to hand in, and says what is wrong."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUBMIT = REPO / 'tools' / 'submit.py'

TODO_LINE = "        raise NotImplementedError('SGD.step is not implemented yet: replace this raise')\n"


def make_project(root, notebook_outputs=True, todo=False, report=True):
    """A student's folder: their files, plus everything that must stay out."""
    (root / 'tools').mkdir(parents=True)
    (root / 'pytest.ini').write_text('[pytest]\n')     # its own project, wherever the folder is
    for name in ('threads.py', 'fileio.py'):
        shutil.copy(REPO / name, root / name)
    shutil.copy(SUBMIT, root / 'tools' / 'submit.py')
    (root / 'loss.py').write_text('class SoftmaxCrossEntropyLoss:\n    pass\n')
    (root / 'optimizer.py').write_text('class SGD:\n    def step(self):\n'
                                       + (TODO_LINE if todo else '        pass\n'))
    cell = {'cell_type': 'code', 'metadata': {}, 'source': 'print(1)', 'execution_count': 1,
            'outputs': [{'output_type': 'stream', 'name': 'stdout', 'text': '1\n'}]
            if notebook_outputs else []}
    (root / 'runner.ipynb').write_text(json.dumps({'cells': [cell], 'metadata': {},
                                                   'nbformat': 4, 'nbformat_minor': 5}))
    if report:
        (root / 'report').mkdir()
        (root / 'report' / 'report.pdf').write_bytes(b'%PDF-1.4 test report')
    # What a zip of the whole folder would drag along.
    for junk in ('data/train-images-idx3-ubyte.gz', '.venv/bin/python', '__pycache__/loss.cpython-311.pyc',
                 'report/cache/run-abc.json', '.ipynb_checkpoints/runner-checkpoint.ipynb'):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_bytes(b'x' * 1000)
    return root


def submit(root, *args):
    return subprocess.run([sys.executable, str(root / 'tools' / 'submit.py'), '--no-check', *args],
                          cwd=root, capture_output=True, text=True, timeout=120)


def test_zip_holds_exactly_the_files_to_hand_in(tmp_path):
    root = make_project(tmp_path / 'hw')
    result = submit(root)
    assert result.returncode == 0, result.stdout + result.stderr
    out = root / 'submission-softmax.zip'
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ['loss.py', 'optimizer.py', 'report/report.pdf',
                                              'runner.ipynb']
    for name in ('loss.py', 'optimizer.py', 'runner.ipynb', 'report/report.pdf', str(out)):
        assert name in result.stdout, f'{name} not listed in: {result.stdout}'
    assert 'KB' in result.stdout or 'bytes' in result.stdout
    assert 'WARNING' not in result.stdout
    # Written atomically: nothing but the zip is left beside it.
    assert not [p for p in root.iterdir() if p.name.endswith('.tmp')]


def test_warns_about_a_todo_an_unrun_notebook_and_a_missing_report(tmp_path):
    root = make_project(tmp_path / 'hw', notebook_outputs=False, todo=True, report=False)
    result = submit(root)
    assert result.returncode == 1
    text = result.stdout
    assert 'optimizer.py:3: SGD.step still raises NotImplementedError' in text, text
    assert 'runner.ipynb has no outputs' in text, text
    assert 'no PDF report' in text and 'quickstart.py report' in text, text
    with zipfile.ZipFile(root / 'submission-softmax.zip') as archive:
        assert sorted(archive.namelist()) == ['loss.py', 'optimizer.py', 'runner.ipynb']


def test_notebook_that_stopped_with_an_error_is_reported(tmp_path):
    root = make_project(tmp_path / 'hw')
    notebook = json.loads((root / 'runner.ipynb').read_text())
    notebook['cells'][0]['outputs'] = [{'output_type': 'error', 'ename': 'NotImplementedError',
                                        'evalue': 'SGD.step is not implemented yet', 'traceback': []}]
    (root / 'runner.ipynb').write_text(json.dumps(notebook))
    result = submit(root, '--report', str(root / 'report' / 'report.pdf'))
    assert 'runner.ipynb stopped with NotImplementedError' in result.stdout, result.stdout


def test_self_check_result_is_printed(tmp_path):
    root = make_project(tmp_path / 'hw')
    (root / 'tests').mkdir()
    (root / 'tests' / 'test_ok.py').write_text('def test_ok():\n    assert True\n')
    (root / 'tests' / 'test_notebook.py').write_text('def test_nb():\n    assert False\n')
    result = subprocess.run([sys.executable, str(root / 'tools' / 'submit.py')], cwd=root,
                            capture_output=True, text=True, timeout=300)
    assert 'self-check: 1 passed' in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0
    (root / 'tests' / 'test_bad.py').write_text('def test_bad():\n    assert False\n')
    result = subprocess.run([sys.executable, str(root / 'tools' / 'submit.py')], cwd=root,
                            capture_output=True, text=True, timeout=300)
    assert 'self-check FAILED: 1 failed, 1 passed' in result.stdout, result.stdout
    assert result.returncode == 1


def test_reference_repository_packs_the_assignment_asked_for(tmp_path):
    import submit as submit_module
    reference = tmp_path / 'reference'
    (reference / 'tools').mkdir(parents=True)
    (reference / 'tools' / 'assignments.json').write_text(json.dumps({
        'default_assignment': 'softmax', 'assignments': {'softmax': {'student_files': ['loss.py']},
                                                         'cnn': {'student_files': ['im2col.py', 'cnn.ipynb']}}}))
    assert submit_module.assignment_files(reference, 'cnn') == ('cnn', ['im2col.py', 'cnn.ipynb'])
    assert submit_module.assignment_files(reference) == ('softmax', ['loss.py'])
    with pytest.raises(SystemExit, match="Unknown assignment 'rnn'"):
        submit_module.assignment_files(reference, 'rnn')
    handout = make_project(tmp_path / 'mlp-handout')
    (handout / 'tools' / 'submission.json').write_text(json.dumps({'assignment': 'mlp', 'files': ['loss.py']}))
    assert submit_module.assignment_files(handout) == ('mlp', ['loss.py'])
    with pytest.raises(SystemExit, match="handout of the 'mlp' assignment, not of 'cnn'"):
        submit_module.assignment_files(handout, 'cnn')
