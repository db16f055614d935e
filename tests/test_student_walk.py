"""The student's walk through each assignment's handout, by its README's
commands: make the handout, put a solution in (the reference's student
files), run `quickstart.py test`, `train` (one epoch) and `submit`; and, with
the typical mistake `param = param + v`, the first failure the student sees
names it. Slow (a few minutes): python -m pytest -m slow tests/test_student_walk.py

Instructor-only (it builds handouts with tools/handout.py).
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import handout
import pytest

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip('nbformat')
VENV = Path(sys.prefix)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (VENV / 'pyvenv.cfg').exists(),
                                 reason='quickstart.py needs a virtual environment to reuse (QUICKSTART_VENV)')]

MODEL_LINE = {'softmax': 'SoftmaxCrossEntropyLoss', 'mlp': 'FCLayer(784, 128', 'cnn': 'ConvLayer'}


def quickstart(folder, *args, timeout=900):
    env = dict(os.environ, QUICKSTART_VENV=str(VENV), OPENBLAS_NUM_THREADS='1', MPLBACKEND='Agg')
    return subprocess.run([sys.executable, 'tools/quickstart.py', *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=timeout)


# The reference's loss.py calls the mlp assignment's helpers, which the
# softmax handout stubs: a softmax student writes the model's maths in place.
SOFTMAX_LOSS = {
    'SoftmaxCrossEntropyLoss.forward': [
        'scores = Input @ self.W + self.b',
        'scores = scores - scores.max(axis=1, keepdims=True)',
        'log_prob = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))',
        'rows = np.arange(len(labels))',
        'loss = float(-log_prob[rows, labels].mean())',
        'acc = float((scores.argmax(axis=1) == labels).mean())',
        'self.saved = (Input, np.exp(log_prob), labels)'],
    'SoftmaxCrossEntropyLoss.gradient_computing': [
        'Input, prob, labels = self.saved',
        'delta = prob.copy()',
        'delta[np.arange(len(labels)), labels] -= 1',
        'delta /= len(labels)',
        'self.grad_W = Input.T @ delta',
        'self.grad_b = delta.sum(axis=0, keepdims=True)'],
}


def fill_todo(path, target, lines):
    """Replace the line that raises for `target` with `lines` at its indentation."""
    text = path.read_text().split('\n')
    at = [i for i, line in enumerate(text) if f"{target} is not implemented yet" in line]
    assert len(at) == 1, (path, target)
    indent = text[at[0]][:len(text[at[0]]) - len(text[at[0]].lstrip())]
    text[at[0]:at[0] + 1] = [indent + line for line in lines]
    path.write_text('\n'.join(text))


def filled_handout(tmp_path, assignment):
    """A handout holding a complete solution: the reference's student files
    (for softmax: its optimizer.py and the model's maths written in loss.py)."""
    folder = tmp_path / assignment
    handout.make_handout(REPO, folder, assignment)
    info = json.loads((folder / 'tools' / 'submission.json').read_text())
    for name in info['files']:
        if name.endswith('.py') and not (assignment == 'softmax' and name == 'loss.py'):
            shutil.copy(REPO / name, folder / name)
    if assignment == 'softmax':
        for target, lines in SOFTMAX_LOSS.items():
            fill_todo(folder / 'loss.py', target, lines)
    return folder


@pytest.mark.parametrize('assignment', ['softmax', 'mlp', 'cnn'])
def test_the_readme_commands_do_the_assignments_job(tmp_path, assignment):
    folder = filled_handout(tmp_path, assignment)
    tested = quickstart(folder, 'test', '-q', '-x', '-p', 'no:cacheprovider', '-m', 'not slow')
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert 'skipped: needs the code of' not in tested.stdout
    trained = quickstart(folder, 'train', '--max_epoch', '1')
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert f"Training the '{assignment}' assignment's model" in trained.stdout
    assert 'Final test accuracy' in trained.stdout and (folder / 'outputs' / 'curves.png').is_file()
    submitted = quickstart(folder, 'submit', '--no-check')
    zip_path = folder / f'submission-{assignment}.zip'
    assert zip_path.is_file(), submitted.stdout
    with zipfile.ZipFile(zip_path) as archive:
        packed = set(archive.namelist())
    info = json.loads((folder / 'tools' / 'submission.json').read_text())
    assert packed == set(info['files'])          # no report made here: submit warns and packs the rest
    assert 'no PDF report' in submitted.stdout


@pytest.mark.parametrize('assignment', ['softmax', 'mlp'])
def test_a_rebinding_update_is_the_first_failure_and_names_the_cause(tmp_path, assignment):
    folder = filled_handout(tmp_path, assignment)
    optimizer = folder / 'optimizer.py'
    text = optimizer.read_text()
    assert text.count('        param += v\n') == 1
    optimizer.write_text(text.replace('        param += v\n', '        param = param + v\n'))
    tested = quickstart(folder, 'test', '-x', '-p', 'no:cacheprovider', '-m', 'not slow')
    assert tested.returncode == 1
    failure = tested.stdout[tested.stdout.index('= FAILURES ='):]
    assert 'the parameter is rebound, not updated in place' in failure, failure[-3000:]
