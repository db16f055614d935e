"""The student's path through a fresh handout: its README, its folder, the
first test run, and the handout command started with the wrong Python.

Instructor-only (it builds handouts with tools/handout.py, which students do not get).
"""

import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
import handout  # noqa: E402

pytest.importorskip('nbformat')


@pytest.fixture(scope='module')
def softmax_handout(tmp_path_factory):
    out = tmp_path_factory.mktemp('release') / 'softmax'
    handout.make_handout(REPO, out, 'softmax')
    return out


def test_assignment_blocks_are_kept_only_for_their_assignments():
    text = ('intro\n<!-- BEGIN ASSIGNMENT mlp -->\nthe MLP\n<!-- END ASSIGNMENT -->\n'
            '<!-- BEGIN INSTRUCTORS -->\ngrading\n<!-- END INSTRUCTORS -->\nend\n')
    assert handout.strip_instructor_notes(text, 'softmax') == 'intro\nend\n'
    assert handout.strip_instructor_notes(text, 'mlp') == 'intro\nthe MLP\nend\n'
    with pytest.raises(handout.HandoutError, match='never closed'):
        handout.strip_instructor_notes('<!-- BEGIN ASSIGNMENT mlp -->\nx\n', 'mlp')


def test_handout_readmes_describe_that_handout(softmax_handout):
    readme = (softmax_handout / 'README.md').read_text()
    report_readme = (softmax_handout / 'report' / 'README.md').read_text()
    # Features that need the mlp assignment's code crash in the softmax handout (stubs).
    for promise in ('tools/bench.py', 'MLP 784-256-10', 'The MLP homework'):
        assert promise not in readme, f'the softmax handout README still promises {promise!r}'
    assert 'test_report.py' not in report_readme
    # Every file the two READMEs name is in the handout.
    names = set(re.findall(r'`((?:[\w.-]+/)*[\w.-]+\.(?:py|ipynb|md|json|pdf))\b', readme + report_readme))
    generated = {'report/report.pdf', 'report.pdf', 'results.json', 'analysis.md', 'report/analysis.md',
                 'outputs/history.json'}
    missing = sorted(name for name in names - generated
                     if not (softmax_handout / name).exists() and not (softmax_handout / 'report' / name).exists())
    assert not missing, f'the handout READMEs name files the handout lacks: {missing}'


def test_submit_in_a_handout_packs_that_assignments_files(softmax_handout):
    spec = importlib.util.spec_from_file_location('handout_submit', softmax_handout / 'tools' / 'submit.py')
    submit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(submit)                  # the handout's own tools/submit.py
    assert submit.assignment_files(softmax_handout) == ('softmax', ['loss.py', 'optimizer.py',
                                                                    'runner.ipynb'])


def test_handout_folder_is_readable_and_has_a_gitignore(softmax_handout):
    assert stat.S_IMODE(softmax_handout.stat().st_mode) == 0o755
    ignored = (softmax_handout / '.gitignore').read_text().split()
    for entry in ('.venv/', '__pycache__/', 'report/cache/', 'submission*.zip'):
        assert entry in ignored


def test_first_test_run_lists_the_todos_on_its_first_screen(softmax_handout):
    env = dict(os.environ, COLUMNS='80', OPENBLAS_NUM_THREADS='1', MPLBACKEND='Agg')
    result = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider',
                             'tests/test_loss.py', 'tests/test_optimizer.py', 'tests/test_notebook.py'],
                            cwd=softmax_handout, env=env, capture_output=True, text=True, timeout=600)
    lines = result.stdout.splitlines()
    first_screen = '\n'.join(lines[:24])
    for file, function in (('loss.py', 'SoftmaxCrossEntropyLoss.forward'),
                           ('loss.py', 'SoftmaxCrossEntropyLoss.gradient_computing'),
                           ('optimizer.py', 'SGD.update')):
        assert re.search(rf'{re.escape(file)}\s+{re.escape(function)}', first_screen), first_screen
    assert 'Next step: write SoftmaxCrossEntropyLoss.forward in loss.py' in first_screen
    assert '\x1b[' not in result.stdout, 'raw colour codes in the output'
    assert 'NotImpleme...' not in result.stdout and '...' not in '\n'.join(
        line for line in lines if line.startswith('FAILED'))
    assert len(lines) < 60, f'{len(lines)} lines for failures that all have one cause each'
    failed = [line for line in lines if line.startswith('FAILED')]
    assert any('test_runner_notebook_executes_headless' in line for line in failed)
    one_liners = [line for line in lines if re.match(r'TODO \S+ is not written yet', line)]
    assert len(one_liners) == len(failed), 'each failure caused by a TODO is one line'


def test_handout_command_outside_the_venv_says_which_python(tmp_path):
    # A copy of the tool with no .venv beside it, started by a Python without nbformat.
    copy = tmp_path / 'course'
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(
        '.git', '.venv', 'venv', 'data', '__pycache__', '.pytest_cache', 'cache', 'quick', 'outputs'))
    code = ("import runpy, sys; sys.modules['nbformat'] = None; "
            f"sys.argv = ['handout.py', '--assignment', 'softmax', {str(tmp_path / 'out')!r}]; "
            f"runpy.run_path({str(copy / 'tools' / 'handout.py')!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert 'ModuleNotFoundError' not in result.stderr
    assert "needs the project's Python environment" in result.stderr
    venv = os.environ.get('QUICKSTART_VENV', '.venv')     # where quickstart.py makes it
    assert 'quickstart.py' in result.stderr and venv in result.stderr


# ---------------------------------------------------------------------------
# Every assignment's handout: its own files, tests and README
# ---------------------------------------------------------------------------

HANDOUT_SHAPE = {
    # assignment: (notebook, files it must hold, files it must not hold, zip)
    'softmax': ('runner.ipynb', {'loss.py', 'optimizer.py', 'layers.py', 'augment.py'},
                {'mlp.ipynb', 'cnn.ipynb', 'im2col.py', 'techniques.ipynb', 'tools/bench.py',
                 'report/training_techniques.py', 'tests/test_mlp.py', 'tests/test_conv.py'}, 'submission-softmax.zip'),
    'mlp': ('mlp.ipynb', {'layers.py', 'loss.py', 'optimizer.py', 'techniques.ipynb'},
            {'runner.ipynb', 'cnn.ipynb', 'im2col.py', 'tests/test_conv.py', 'tests/test_cnn.py',
             'tests/test_notebook.py'}, 'submission-mlp.zip'),
    'cnn': ('cnn.ipynb', {'im2col.py', 'layers.py', 'tests/test_conv.py'},
            {'runner.ipynb', 'mlp.ipynb', 'tests/test_mlp.py', 'tests/test_notebook.py'}, 'submission-cnn.zip'),
}


@pytest.fixture(scope='module')
def handouts(tmp_path_factory):
    made = {}
    for name in HANDOUT_SHAPE:
        made[name] = tmp_path_factory.mktemp('handouts') / name
        handout.make_handout(REPO, made[name], name)
    return made


@pytest.mark.parametrize('assignment', list(HANDOUT_SHAPE))
def test_each_handout_holds_only_what_its_assignment_needs(handouts, assignment):
    folder = handouts[assignment]
    notebook, must, must_not, _ = HANDOUT_SHAPE[assignment]
    present = {p.relative_to(folder).as_posix() for p in folder.rglob('*') if p.is_file()}
    assert {notebook} | must <= present
    assert not must_not & present, sorted(must_not & present)
    # The tests of the code a handout does not hold are not shipped (rather than skipped).
    holds = {assignment, *handout.released_solutions(handout.load_manifest(), assignment)}
    for test_file in sorted((folder / 'tests').glob('test_*.py')):
        text = test_file.read_text()
        assert handout.drop_tests_needing(text, holds) == text, f'{test_file.name} ships tests of other assignments'


@pytest.mark.parametrize('assignment', list(HANDOUT_SHAPE))
def test_each_handout_readme_walks_its_own_assignment(handouts, assignment):
    folder = handouts[assignment]
    notebook, _, _, zip_name = HANDOUT_SHAPE[assignment]
    readme = (folder / 'README.md').read_text()
    for section in ('## Quick start', '### For students', '## 快速开始'):
        assert readme.count(section) == 1, section
    assert notebook in readme and zip_name in readme
    for other, (other_notebook, _, _, other_zip) in HANDOUT_SHAPE.items():
        if other != assignment:
            assert other_zip not in readme, f'the {assignment} README names {other_zip}'
    assert '--assignment' not in readme                      # the reference's option, not the handout's
    assert 'a test proves it' not in readme                  # hidden tests are not shipped
    # English and Chinese quick starts give the same commands in the same order.
    english = readme[readme.index('## Quick start'):readme.index('### For students')]
    chinese = readme[readme.index('## 快速开始'):]
    chinese = chinese[:chinese.index('```', chinese.index('```') + 3)]       # its command block
    order = re.compile(r'^python3 tools/quickstart\.py (\w+)', re.M)
    assert order.findall(english) == order.findall(chinese) == ['test', 'train', 'notebook', 'report', 'submit']
    # Every file the README names is in the handout.
    named = set(re.findall(r'`((?:[\w.-]+/)*[\w.-]+\.(?:py|ipynb))`', readme))
    assert not {n for n in named if not (folder / n).exists()}, 'the README names files the handout lacks'
