"""tools/grade.py on a crafted class: correct, written for the original
framework, wrong gradient, loop-based, crashing, hanging, missing file, noisy
(prints megabytes, writes outside its folder) and an unsafe zip. One grading run (in parallel, short time limits)
is shared by all the checks below. Instructor-only: not in the handouts."""

import csv
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / 'hidden'))
from test_original_framework import ORIGINAL_LOSS, ORIGINAL_OPTIMIZER  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The notebook and the full-MNIST test take most of a grading run; they are
# graded like the others in real use, left out here to keep the suite fast.
KEYWORD = 'not notebook and not 92_percent'
TIME_LIMIT, TEST_TIMEOUT = 20, 2  # generous for a loaded machine; the hanging one uses all 20 s

LOSS = (REPO / 'loss.py').read_text()
OPTIMIZER = (REPO / 'optimizer.py').read_text()


def edited(text, old, new):
    assert old in text, f"the reference changed; update the crafted submission ({old!r})"
    return text.replace(old, new, 1)


def make_class(folder):
    """The crafted submissions: {name: what they should get}."""
    folder.mkdir()

    def write_folder(name, files):
        (folder / name).mkdir()
        for file_name, text in files.items():
            (folder / name / file_name).write_text(text)

    write_folder('correct', {'loss.py': LOSS, 'optimizer.py': OPTIMIZER})
    # loss.py and optimizer.py as a student of the original homework framework wrote them
    write_folder('original_framework', {'loss.py': textwrap.dedent(ORIGINAL_LOSS),
                                        'optimizer.py': textwrap.dedent(ORIGINAL_OPTIMIZER)})
    # a zip whose files sit in a sub-folder, with twice the right grad_W
    wrong = edited(LOSS, "        self.grad_W, self.grad_b = affine_grads(self.Input, delta)\n",
                   "        self.grad_W, self.grad_b = affine_grads(self.Input, delta)\n"
                   "        self.grad_W = 2 * self.grad_W\n")
    with zipfile.ZipFile(folder / 'wrong_gradient.zip', 'w') as zf:
        zf.writestr('wrong_gradient/loss.py', wrong)
        zf.writestr('wrong_gradient/optimizer.py', OPTIMIZER)
    # right numbers, but the loss is summed in a Python loop over the samples
    looped = edited(LOSS, "        loss, self.prob = softmax_cross_entropy(logits, labels)\n",
                    "        _, self.prob = softmax_cross_entropy(logits, labels)\n"
                    "        shifted = logits - logits.max(axis=1, keepdims=True)\n"
                    "        log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))\n"
                    "        loss = 0.0\n"
                    "        for n in range(len(labels)):\n"
                    "            loss -= float(log_prob[n, labels[n]]) / len(labels)\n")
    write_folder('loop_based', {'loss.py': looped, 'optimizer.py': OPTIMIZER})
    crashing = edited(LOSS, "        delta = softmax_cross_entropy_backward(self.prob, self.labels)\n",
                      "        import os\n        os._exit(3)\n")
    write_folder('crashing', {'loss.py': crashing, 'optimizer.py': OPTIMIZER})
    hanging = edited(LOSS, "        match_dtype(self, Input)\n",
                     "        match_dtype(self, Input)\n        while True:\n            pass\n")
    write_folder('hanging', {'loss.py': hanging, 'optimizer.py': OPTIMIZER})
    write_folder('missing_file', {'optimizer.py': OPTIMIZER})
    noisy = edited(LOSS, "        match_dtype(self, Input)\n",
                   "        match_dtype(self, Input)\n"
                   "        if not getattr(type(self), 'noisy', False):  # 20 MB, once per process\n"
                   "            type(self).noisy = True\n"
                   "            print('x' * 20_000_000, flush=True)\n"
                   "        import os\n"
                   "        for place in ('../../escaped.txt', os.path.expanduser('~/escaped.txt')):\n"
                   "            with open(place, 'w') as f:\n"
                   "                f.write('was here')\n")
    write_folder('noisy', {'loss.py': noisy, 'optimizer.py': OPTIMIZER})
    with zipfile.ZipFile(folder / 'traversal.zip', 'w') as zf:
        zf.writestr('loss.py', LOSS)
        zf.writestr('../../evil.py', 'print("owned")')
    (folder / 'notes.txt').write_text('not a submission')


@pytest.fixture(scope='module')
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('grading')
    make_class(tmp / 'submissions')
    scratch = tmp / 'scratch'  # the grader's temporary folders (and what escapes them) go here
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch))
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'grade.py'), str(tmp / 'submissions'), '--out',
         str(tmp / 'out' / 'grades.csv'), '--time-limit', str(TIME_LIMIT), '--test-timeout',
         str(TEST_TIMEOUT), '--keyword', KEYWORD, '--jobs', '2'],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp / 'out' / 'grades.csv', newline='') as f:
        rows = {row['student']: row for row in csv.DictReader(f)}
    feedback = {path.stem: path.read_text() for path in (tmp / 'out' / 'grades-feedback').iterdir()}
    return {'rows': rows, 'feedback': feedback, 'tmp': tmp, 'stdout': result.stdout}


def score(row):
    return float(row['score']), float(row['max_score'])


def test_every_submission_gets_a_row_and_a_feedback_file(graded):
    names = {'correct', 'original_framework', 'wrong_gradient', 'loop_based', 'crashing', 'hanging', 'missing_file', 'noisy',
             'traversal'}
    assert set(graded['rows']) == names
    assert set(graded['feedback']) == names
    assert not list((graded['tmp'] / 'out').glob('*.tmp')), "atomic writes left temporary files"


def test_correct_and_noisy_submissions_score_full_marks(graded):
    for name in ('correct', 'original_framework', 'noisy'):
        got, maximum = score(graded['rows'][name])
        assert got == maximum > 0, graded['feedback'][name]
    # what the noisy one wrote outside its folder stayed in the grader's scratch space
    assert not (graded['tmp'] / 'submissions' / 'escaped.txt').exists()
    assert not (REPO / 'escaped.txt').exists()


def test_wrong_gradient_fails_the_gradient_checks_with_an_actionable_message(graded):
    row, text = graded['rows']['wrong_gradient'], graded['feedback']['wrong_gradient']
    assert row['tests/test_loss.py::test_gradients_match_numerical_gradient_float64'] == '0'
    assert row['tests/test_loss.py::test_forward_against_hand_computation'] == '2'
    assert row['tests/test_optimizer.py::test_momentum_against_hand_computation'] == '2'
    assert 'SoftmaxCrossEntropyLoss.grad_W (analytic vs numerical gradient): relative error' in text
    assert 'first differing index' in text
    assert 0 < score(row)[0] < score(row)[1]


def test_loop_based_loses_only_the_vectorisation_point(graded):
    row, text = graded['rows']['loop_based'], graded['feedback']['loop_based']
    got, maximum = score(row)
    assert got == maximum - 1, text
    assert row['tests/test_selfcheck.py::test_forward_is_vectorised'] == '0'
    assert 'SoftmaxCrossEntropyLoss.forward is not vectorised' in text and 'loss.py line' in text


def test_crashing_and_hanging_submissions_are_contained(graded):
    crash, crash_text = graded['rows']['crashing'], graded['feedback']['crashing']
    assert crash['status'] == 'crashed'
    assert 'crashed during this test (exit code 3)' in crash_text
    assert score(crash)[0] < score(crash)[1]
    hang, hang_text = graded['rows']['hanging'], graded['feedback']['hanging']
    assert hang['status'] == 'time limit'
    assert score(hang)[0] < score(hang)[1]
    assert f'took longer than {TEST_TIMEOUT} s' in hang_text


def test_missing_file_is_graded_as_the_handout_version(graded):
    row, text = graded['rows']['missing_file'], graded['feedback']['missing_file']
    assert 'loss.py was not in your submission: graded the handout version' in text
    assert 'SoftmaxCrossEntropyLoss.forward is not implemented yet' in text
    # optimizer tests still count; no test of loss.py passes with the handout's loss.py
    assert row['tests/test_optimizer.py::test_momentum_against_hand_computation'] == '2'
    assert row['tests/test_loss.py::test_forward_against_hand_computation'] == '0'
    assert 0 < score(row)[0] < score(row)[1]


def test_unsafe_zip_is_refused_unopened(graded):
    row, text = graded['rows']['traversal'], graded['feedback']['traversal']
    assert row['status'] == 'invalid submission' and score(row)[0] == 0
    assert "unsafe path '../../evil.py'" in text
    assert not (graded['tmp'] / 'evil.py').exists()


def test_feedback_names_hidden_tests_but_never_shows_their_code(graded):
    hidden_source = (REPO / 'tests' / 'hidden' / 'test_hidden_softmax.py').read_text()
    code_lines = [line.strip() for line in hidden_source.splitlines() if len(line.strip()) >= 20]
    text = graded['feedback']['wrong_gradient']
    assert '[hidden] tests/hidden/test_hidden_softmax.py::test_forward_and_gradients_on_random_batches' in text
    assert 'grad_W for a batch of' in text  # the first line of the hidden message
    for feedback in graded['feedback'].values():
        for line in code_lines:
            assert line not in feedback, f"hidden test code in feedback: {line}"
