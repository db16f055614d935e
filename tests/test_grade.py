"""tools/grade.py on a crafted class, hostile students included.

Honest submissions (correct, written for the original framework, wrong
gradient, loop-based, crashing, hanging, missing file, noisy, zipped with
its virtual environment) and hostile ones (forged results by every route,
delegating to the handout's stubs, leaking hidden material into messages,
an escaped child process, a two-process memory hog) plus awkward names,
archives and links. The class is graded once, as two shards (--shard 1/2
and 2/2, --jobs 2 each) merged with --merge, and every check below reads the
merged result. Limits are generous; the hanging submissions are stopped by
them whatever the machine's load. A second class attacks the grader and each
other (a constants thief, a /proc reader, a saboteur, malformed results, a
sleeper that cancels its alarm) and is graded in one run where children are
isolated (bubblewrap or user namespaces; skipped with the reason elsewhere).
Instructor-only: not in the handouts.
"""

import csv
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import grade
from hidden.test_original_framework import ORIGINAL_LOSS, ORIGINAL_OPTIMIZER

REPO = Path(__file__).resolve().parents[1]

TIME_LIMIT, CHECK_TIMEOUT, MEMORY_MB = 40, 10, 700
OPTIMIZER = (REPO / 'optimizer.py').read_text()
MANIFEST = json.loads((REPO / 'tools' / 'assignments.json').read_text())
POINTS = MANIFEST['assignments']['softmax']['checks']
OPTIMIZER_CHECKS = {'momentum', 'plain_sgd_and_frozen', 'vectorised_step', 'hidden_momentum_many_steps',
                    'hidden_original_loss_with_your_sgd'}

# A complete loss.py that needs nothing but NumPy (what a good student hands in).
LOSS = textwrap.dedent('''\
    """ Softmax Cross-Entropy Loss Layer """

    import numpy as np

    EPS = 1e-11


    class SoftmaxCrossEntropyLoss(object):

        def __init__(self, num_input, num_output, trainable=True):
            self.num_input = num_input
            self.num_output = num_output
            self.trainable = trainable
            self.XavierInit()

        def forward(self, Input, labels):
            # @@forward
            self.W, self.b = self.W.astype(Input.dtype, copy=False), self.b.astype(Input.dtype, copy=False)
            self.Input, self.labels = Input, labels
            logits = Input @ self.W + self.b
            shifted = logits - logits.max(axis=1, keepdims=True)
            log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            self.prob = np.exp(log_prob)
            loss = -log_prob[np.arange(len(labels)), labels].mean()
            acc = np.mean(logits.argmax(axis=1) == labels)
            return float(loss), float(acc)

        def gradient_computing(self):
            # @@gradient
            delta = self.prob.copy()
            delta[np.arange(len(self.labels)), self.labels] -= 1
            delta /= len(self.labels)
            self.grad_W = self.Input.T @ delta
            self.grad_b = delta.sum(axis=0, keepdims=True)

        def XavierInit(self):
            std = (2 / (self.num_input + self.num_output)) ** 0.5 * 2 ** 0.5
            self.W = np.random.normal(0, std, (self.num_input, self.num_output))
            self.b = np.random.normal(0, std, (1, self.num_output))
''')
HANDOUT_LOSS = None  # filled by the fixture (the handout's loss.py: every TODO raises)


def edited(text, old, new):
    assert old in text, f"the crafted submission no longer matches ({old!r})"
    return text.replace(old, new, 1)


def at(marker, code, text=LOSS):
    """LOSS with `code` inserted at a '# @@marker' line (at its indentation)."""
    line = next(line for line in text.split('\n') if line.strip() == f'# @@{marker}')
    indent = line[:len(line) - len(line.lstrip())]
    return edited(text, line, textwrap.indent(textwrap.dedent(code), indent).rstrip('\n'))


HIDDEN_LEAK = '''
    import base64, glob, os, sys
    if getattr(type(self), 'leaked', False):      # the second call crashes: the output is shown too
        os._exit(3)
    type(self).leaked = True
    texts, frame = [], sys._getframe()
    while frame is not None:                       # the request the child program received
        request = frame.f_locals.get('request')
        if isinstance(request, dict):
            texts += [check['source'] for check in request['checks']]
        frame = frame.f_back
    venv_root = os.path.dirname(os.path.dirname(os.path.dirname(sys.executable)))
    for path in glob.glob(os.path.join(venv_root, 'tests', 'hidden', '*.py')) + \\
            glob.glob(os.path.join(venv_root, 'loss.py')):
        texts.append(open(path).read())            # the instructor's folder, found from the interpreter
    blob = '\\n'.join(texts)
    print(blob)
    print(base64.b64encode(blob.encode()).decode())
    raise ValueError(blob[:3000] + ' ' + base64.b64encode(blob.encode()).decode()[:500])
'''

FORGE_FILES = '''
    import json, os, sys
    import numpy as np
    frame, names = sys._getframe(), []
    while frame is not None:
        request = frame.f_locals.get('request')
        if isinstance(request, dict):
            names = [check['id'] for check in request['checks']]
        frame = frame.f_back
    os.makedirs('grader-out', exist_ok=True)
    with open('grader-out/progress', 'a') as f:
        for name in names:                          # every check "ran" and "passed"
            np.savez(f'grader-out/{name}.npz', passed=np.ones(1), loss=np.zeros(1))
            f.write(f'start {name}\\nend {name}\\n')
    with open('results.jsonl', 'a') as f:           # the old grader's results file
        for name in names:
            f.write(json.dumps({'kind': 'result', 'nodeid': name, 'outcome': 'passed'}) + '\\n')
    os._exit(0)
'''

PATCH_PROBE = '''
import __main__
import numpy as _np


def _everything_passes(check_id, outputs):   # the child's result writer, replaced
    _np.savez(f'grader-out/{check_id}.npz', passed=_np.ones(1))


__main__._save_outputs = _everything_passes
__main__.json.dump = lambda *args, **kwargs: None    # errors are never written
try:
    import _pytest.reports                      # and pytest's reports, if pytest were there
    _pytest.reports.TestReport.outcome = 'passed'
except ImportError:
    pass
'''

ESCAPE = '''
import os as _os
import subprocess as _subprocess
_subprocess.Popen(['sleep', '401'], start_new_session=True)     # holds the output pipe open
if _os.fork() == 0:                                               # a double fork, new session, empty env
    _os.setsid()
    if _os.fork() == 0:
        _os.execve('/bin/sleep', ['sleep', '402'], {})
    _os._exit(0)
'''

MEMORY_HOG = '''
    import os, time
    if not getattr(type(self), 'hogging', False):
        type(self).hogging = True
        for _ in range(2):                       # two processes of 450 MB each: 900 MB together
            if os.fork() == 0:
                block = bytearray(450 * 2 ** 20)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                time.sleep(600)
                os._exit(0)
        time.sleep(600)
'''


def make_class(folder, handout_loss):
    """The crafted submissions."""
    folder.mkdir()

    def write_folder(name, files):
        (folder / name).mkdir()
        for file_name, text in files.items():
            (folder / name / file_name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name / file_name).write_text(text)

    # honest
    write_folder('correct', {'loss.py': LOSS, 'optimizer.py': OPTIMIZER})
    write_folder('original_framework', {'loss.py': textwrap.dedent(ORIGINAL_LOSS),
                                        'optimizer.py': textwrap.dedent(ORIGINAL_OPTIMIZER)})
    wrong = edited(LOSS, "self.grad_W = self.Input.T @ delta", "self.grad_W = 2 * self.Input.T @ delta")
    with zipfile.ZipFile(folder / 'wrong_gradient.zip', 'w') as zf:
        zf.writestr('wrong_gradient/loss.py', wrong)
        zf.writestr('wrong_gradient/optimizer.py', OPTIMIZER)
    looped = edited(LOSS, "loss = -log_prob[np.arange(len(labels)), labels].mean()",
                    "loss = 0.0\n        for n in range(len(labels)):\n"
                    "            loss -= float(log_prob[n, labels[n]]) / len(labels)")
    write_folder('loop_based', {'loss.py': looped, 'optimizer.py': OPTIMIZER})
    # the usual stable softmax, then log(prob): -inf where a probability underflows to 0
    log_of_prob = edited(LOSS, "log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))",
                         "log_prob = np.log(np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True))")
    write_folder('log_of_prob', {'loss.py': log_of_prob, 'optimizer.py': OPTIMIZER})
    write_folder('crashing', {'loss.py': at('gradient', 'import os\nos._exit(3)\n'), 'optimizer.py': OPTIMIZER})
    write_folder('hanging', {'loss.py': at('forward', '''
        import os, signal, time
        if not os.path.exists('hung-once'):        # the first call hangs, ignoring the check's alarm
            open('hung-once', 'w').close()
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            time.sleep(10 ** 6)
        '''),
                             'optimizer.py': OPTIMIZER})
    write_folder('missing_file', {'optimizer.py': OPTIMIZER})
    write_folder('noisy', {'loss.py': at('forward', '''
        if not getattr(type(self), 'noisy', False):   # 20 MB of output, once per process
            type(self).noisy = True
            print('x' * 20_000_000, flush=True)
        import os
        for place in ('../../escaped.txt', os.path.expanduser('~/escaped.txt')):
            with open(place, 'w') as f:
                f.write('was here')
        '''), 'optimizer.py': OPTIMIZER})
    write_folder('with_venv', {'loss.py': LOSS, 'optimizer.py': OPTIMIZER, '.venv/lib/big.bin': 'x' * 2 ** 20,
                               '.venv/lib/loss.py': 'raise SystemExit', 'data/train-images-idx3-ubyte': 'x',
                               '__pycache__/loss.cpython-311.pyc': 'x'})
    (folder / 'zip_in_folder').mkdir()             # a course site's export: a folder with the student's zip
    with zipfile.ZipFile(folder / 'zip_in_folder' / 'submission-softmax.zip', 'w') as zf:
        zf.writestr('loss.py', LOSS)
        zf.writestr('optimizer.py', OPTIMIZER)
    with zipfile.ZipFile(folder / 'traversal.zip', 'w') as zf:
        zf.writestr('loss.py', LOSS)
        zf.writestr('../../evil.py', 'print("owned")')
    # hostile: forged results, delegation, leaks, escapes, memory
    write_folder('forge_results_files', {'loss.py': textwrap.dedent(FORGE_FILES) + handout_loss,
                                         'optimizer.py': handout_optimizer()})
    write_folder('forge_patched_writer', {'loss.py': PATCH_PROBE + handout_loss, 'optimizer.py': handout_optimizer()})
    write_folder('exit_at_import', {'loss.py': 'import os\nos._exit(0)\n' + handout_loss,
                                    'optimizer.py': handout_optimizer()})
    write_folder('delegating', {'loss.py': (REPO / 'loss.py').read_text(), 'optimizer.py': OPTIMIZER})
    write_folder('leaking', {'loss.py': at('forward', HIDDEN_LEAK),
                             'optimizer.py': OPTIMIZER})
    write_folder('escaped_child', {'loss.py': ESCAPE + LOSS, 'optimizer.py': OPTIMIZER})
    write_folder('memory_hog', {'loss.py': at('forward', MEMORY_HOG), 'optimizer.py': OPTIMIZER})
    # names and formats
    for name in ('张三', '李四', 'a b', 'a_b', '=2+3', '@SUM(A1)'):
        write_folder(name, {'loss.py': LOSS, 'optimizer.py': OPTIMIZER})
    with tarfile.open(folder / 'tarred.tar.gz', 'w:gz') as tf:
        tf.add(folder / 'correct' / 'loss.py', arcname='loss.py')
    (folder / 'linked').symlink_to(folder / 'correct', target_is_directory=True)
    (folder / 'notes.txt').write_text('not a submission')


HANDOUT = {}


def handout_optimizer():
    return HANDOUT['optimizer.py']


def sleeping(seconds):
    """Pids of the `sleep <seconds>` processes alive now."""
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                cmdline = Path(f'/proc/{entry}/cmdline').read_bytes()
                status = Path(f'/proc/{entry}/stat').read_text()
            except OSError:
                continue
            if cmdline.split(b'\0')[:2] == [b'sleep', str(seconds).encode()] and ') Z' not in status:
                found.append(int(entry))
    return found


@pytest.fixture(scope='module')
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('grading')
    import assignment_files
    assignment_files.make_handout(REPO, tmp / 'handout', 'softmax')
    HANDOUT.update({name: (tmp / 'handout' / name).read_text() for name in ('loss.py', 'optimizer.py')})
    make_class(tmp / 'submissions', HANDOUT['loss.py'])
    scratch = tmp / 'scratch'  # the grader's temporary folders (and what escapes them) go here
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch))
    common = [str(tmp / 'submissions'), '--time-limit', str(TIME_LIMIT), '--check-timeout', str(CHECK_TIMEOUT),
              '--memory-limit', str(MEMORY_MB), '--jobs', '2']
    logs = []
    for shard in ('1/2', '2/2'):
        out = tmp / f'shard{shard[0]}' / 'grades.csv'
        result = subprocess.run([sys.executable, str(REPO / 'tools' / 'grade.py'), *common, '--shard', shard,
                                 '--out', str(out)], capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        logs.append(result.stdout)
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'grade.py'), '--merge',
                             str(tmp / 'shard1' / 'grades.csv'), str(tmp / 'shard2' / 'grades.csv'),
                             '--out', str(tmp / 'out' / 'grades.csv')], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp / 'out' / 'grades.csv', newline='', encoding='utf-8') as f:
        rows = {row['student']: row for row in csv.DictReader(f)}
    summary = json.loads((tmp / 'out' / 'grades-summary.json').read_text(encoding='utf-8'))
    feedback = {name: (tmp / 'out' / 'grades-feedback' / file_name).read_text(encoding='utf-8')
                for name, file_name in summary['feedback'].items()}
    return {'rows': rows, 'feedback': feedback, 'tmp': tmp, 'logs': logs, 'summary': summary,
            'summary_text': (tmp / 'out' / 'grades-summary.txt').read_text(encoding='utf-8')}


def score(row):
    return float(row['score']), float(row['max_score'])


FULL = sum(POINTS.values())
NAMES = {'correct', 'original_framework', 'wrong_gradient', 'loop_based', 'log_of_prob', 'crashing', 'hanging',
         'missing_file', 'noisy', 'with_venv', 'traversal', 'forge_results_files', 'forge_patched_writer', 'exit_at_import',
         'delegating', 'leaking', 'escaped_child', 'memory_hog', 'zip_in_folder', '张三', '李四', 'a b', 'a_b', "'=2+3",
         "'@SUM(A1)", 'tarred', 'linked'}


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_every_submission_gets_one_row_and_one_feedback_file(graded):
    assert set(graded['rows']) == NAMES
    assert len(graded['feedback']) == len(NAMES)
    files = sorted(graded['summary']['feedback'].values())
    assert len(set(f.casefold() for f in files)) == len(files)       # no feedback overwritten
    assert {'张三.txt', '李四.txt', 'a_b.txt', 'a_b-2.txt'} <= set(files)
    assert '张三' in graded['feedback']['张三'] and 'Student: 李四' in graded['feedback']['李四']
    assert not list((graded['tmp'] / 'out').rglob('*.tmp')), "atomic writes left temporary files"


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_formula_names_are_neutralised_in_the_csv(graded):
    text = (graded['tmp'] / 'out' / 'grades.csv').read_text(encoding='utf-8')
    assert "\n'=2+3," in text and "\n'@SUM(A1)," in text
    assert not any(line.startswith(('=', '+', '-', '@')) for line in text.splitlines())


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_honest_complete_submissions_score_full_marks(graded):
    for name in ('correct', 'original_framework', 'noisy', 'with_venv', 'zip_in_folder', '张三', '李四', 'a b', 'a_b',
                 "'=2+3"):
        assert score(graded['rows'][name]) == (FULL, FULL), graded['feedback'][name.lstrip("'")]
    # what the noisy one wrote outside its folder stayed in the grader's scratch space
    assert not (graded['tmp'] / 'submissions' / 'escaped.txt').exists()
    assert not (REPO / 'escaped.txt').exists()


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_wrong_gradient_fails_the_gradient_checks_with_an_actionable_message(graded):
    row, text = graded['rows']['wrong_gradient'], graded['feedback']['wrong_gradient']
    assert row['gradients'] == '0' and row['batch_average'] == '0' and row['hidden_random_batches'] == '0'
    assert row['forward'] == str(POINTS['forward']) and row['momentum'] == str(POINTS['momentum'])
    assert 'grad_W of batch 0: relative error' in text and 'first differing index' in text
    assert '[hidden] hidden_random_batches' in text and 'grad_W for a batch of' in text
    assert 0 < score(row)[0] < FULL


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_loop_based_loses_only_the_vectorisation_point(graded):
    row, text = graded['rows']['loop_based'], graded['feedback']['loop_based']
    assert score(row)[0] == FULL - POINTS['vectorised_forward'], text
    assert row['vectorised_forward'] == '0'
    assert 'SoftmaxCrossEntropyLoss.forward is not vectorised' in text and 'loss.py line' in text


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_log_of_an_underflowed_probability_loses_the_extreme_logits_point_and_is_told_why(graded):
    row, text = graded['rows']['log_of_prob'], graded['feedback']['log_of_prob']
    assert score(row)[0] == FULL - POINTS['extreme_logits'], text
    assert 'FloatingPointError: divide by zero encountered in log' in text and '(raised in loss.py, line' in text
    assert 'a probability underflowed to 0: use a log-softmax' in text


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_crashing_and_hanging_submissions_are_contained(graded):
    crash, crash_text = graded['rows']['crashing'], graded['feedback']['crashing']
    assert crash['status'] == 'crashed'
    assert 'ended during this check (exit code 3)' in crash_text
    assert crash['forward'] == str(POINTS['forward']) and crash['gradients'] == '0'
    assert crash['momentum'] == str(POINTS['momentum'])     # the checks after the crashes ran in new processes
    hang, hang_text = graded['rows']['hanging'], graded['feedback']['hanging']
    assert hang['status'] == 'time limit' and hang['forward'] == '0'        # it was stopped ...
    assert 'took longer than' in hang_text
    assert score(hang)[0] == FULL - POINTS['forward']                    # ... and the other checks ran


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_missing_file_is_graded_as_the_handout_version(graded):
    row, text = graded['rows']['missing_file'], graded['feedback']['missing_file']
    assert 'loss.py was not in your submission: graded the handout version' in text
    assert 'SoftmaxCrossEntropyLoss.forward is not implemented yet' in text
    assert row['momentum'] == str(POINTS['momentum']) and row['forward'] == '0'


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_unsafe_zip_archives_and_links_are_refused_with_a_reason(graded):
    for name, reason in (('traversal', "unsafe path '../../evil.py'"), ('tarred', 'a .tar.gz archive'),
                         ('linked', 'symbolic link')):
        row = graded['rows'][name]
        assert row['status'] == 'invalid submission' and score(row)[0] == 0
        assert reason in row['notes'] and reason in graded['feedback'][name]
    assert not (graded['tmp'] / 'evil.py').exists()


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_forged_results_earn_nothing(graded):
    for name in ('forge_results_files', 'forge_patched_writer', 'exit_at_import'):
        assert score(graded['rows'][name])[0] == 0, graded['feedback'][name]
    assert graded['rows']['exit_at_import']['status'] == 'exited early'
    assert 'os._exit' in graded['feedback']['exit_at_import']


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_delegating_to_the_handout_stubs_earns_only_the_optimizer(graded):
    row = graded['rows']['delegating']
    assert score(row)[0] == sum(POINTS[c] for c in OPTIMIZER_CHECKS), graded['feedback']['delegating']
    assert row['forward'] == '0' and "is part of the 'mlp' assignment" in graded['feedback']['delegating']


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_no_hidden_or_reference_material_reaches_any_feedback(graded):
    secret = set()
    for path in (REPO / 'tests' / 'hidden').glob('*.py'):
        secret |= {line.strip() for line in path.read_text().splitlines() if len(line.strip()) >= 20}
    from checks import load_checks
    for check in load_checks('softmax', REPO):
        if check.hidden:
            secret |= {line.strip() for line in check.child_source().splitlines() if len(line.strip()) >= 20}
    import assignment_files
    secret |= {line for line in assignment_files.solution_lines(REPO, assignment_files.load_manifest())
               if len(line) >= 20}
    text = graded['feedback']['leaking']
    assert graded['rows']['leaking']['status'] == 'crashed' and 'End of the output' in text
    for name, feedback in graded['feedback'].items():
        for line in secret:
            assert line not in feedback, f"{name}: secret line in feedback: {line}"
        assert not grade.LONG_TOKEN.search(feedback.replace('_', '')), f"{name}: an encoded blob in feedback"
    assert not any(line in graded['summary_text'] for line in secret)


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_escaped_processes_are_killed_and_grading_finishes(graded):
    assert score(graded['rows']['escaped_child']) == (FULL, FULL), graded['feedback']['escaped_child']
    assert sleeping(401) == [] and sleeping(402) == []


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_memory_limit_covers_the_submission_as_a_whole(graded):
    row = graded['rows']['memory_hog']
    assert row['status'] == 'memory limit', graded['feedback']['memory_hog']
    assert f'more than {MEMORY_MB} MB' in graded['feedback']['memory_hog']
    assert row['forward'] == '0'


@pytest.mark.slow   # grading the crafted class takes half a minute: CI runs it with the slow tests
def test_class_summary_names_what_to_reteach(graded):
    text = graded['summary_text']
    assert 'gradients (3 points): ' in text and 'fail (' in text
    counts = graded['summary']['counts']['gradients']
    assert counts['graded'] == len(NAMES) and counts['failed'] >= 3
    for name in NAMES:   # anonymised: no student name in the summary
        if len(name) > 3 and name not in ('correct', 'hanging', 'crashing'):
            assert name not in text


def test_shards_are_a_deterministic_partition():
    subs = [(f's{i}', None, None) for i in range(7)]
    shards = [grade.shard_of(subs, (i, 3)) for i in (1, 2, 3)]
    assert sorted(sum(shards, [])) == sorted(subs)
    assert shards == [grade.shard_of(list(reversed(subs)), (i, 3)) for i in (1, 2, 3)]


def test_scrub_withholds_quotes_and_cuts_encoded_blobs():
    secret = {'v=self.momentum*v-self.learning_rate*grad'}
    assert 'withheld' in grade.scrub('oops: v = self.momentum * v - self.learning_rate * grad', secret)
    assert grade.scrub('x' * 10 + ' ' + 'QUJD' * 30, secret) == 'x' * 10 + ' [...]'
    assert grade.scrub('\x1b[31mred\x1b[0m', secret) == 'red'


def test_process_guard_kills_escaped_processes_without_blocking_on_their_pipe(tmp_path):
    import process_guard
    code = textwrap.dedent('''
        import os, subprocess
        subprocess.Popen(['sleep', '403'], start_new_session=True)   # keeps our stdout open
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execve('/bin/sleep', ['sleep', '404'], {})        # no token in its environment
            os._exit(0)
        print('bye')
    ''')
    result = process_guard.run_contained([sys.executable, '-c', code], cwd=tmp_path,
                                         env={'PATH': os.environ['PATH']}, time_limit=60)
    assert result['returncode'] == 0 and result['stopped'] is None and 'bye' in result['output']
    assert sleeping(403) == [] and sleeping(404) == []


def test_process_guard_stops_a_run_at_its_time_limit(tmp_path):
    import process_guard
    result = process_guard.run_contained([sys.executable, '-c', 'import time; time.sleep(1000)'], cwd=tmp_path,
                                         env={'PATH': os.environ['PATH']}, time_limit=3)
    assert result['stopped'] == 'time limit' and result['returncode'] is None


@pytest.mark.parametrize('assignment', sorted(MANIFEST['assignments']))
def test_every_assignment_has_hidden_checks_the_untouched_handout_fails(assignment):
    import handout
    from checks import load_checks
    assert any(check.hidden for check in load_checks(assignment, REPO))
    assert handout.validate_checks(REPO, assignment, log=lambda *args: None) == []


def test_the_assignment_is_read_from_the_submission_and_a_mismatch_names_both(tmp_path):
    submissions = tmp_path / 'submissions'
    (submissions / 'bob').mkdir(parents=True)
    with zipfile.ZipFile(submissions / 'bob' / 'submission-mlp.zip', 'w') as zf:
        zf.writestr('layers.py', 'x = 1\n')
    (submissions / 'carol' / 'tools').mkdir(parents=True)
    (submissions / 'carol' / 'tools' / 'submission.json').write_text('{"assignment": "mlp"}')
    manifest = grade.af.load_manifest(REPO / 'tools' / 'assignments.json')
    found = grade.find_submissions(submissions, log=None)
    assert grade.class_assignment(manifest, None, found) == 'mlp'
    with pytest.raises(grade.af.HandoutError, match="--assignment softmax, but 2 submission.*'mlp' assignment"):
        grade.class_assignment(manifest, 'softmax', found)
    (submissions / 'dave').mkdir()
    (submissions / 'dave' / 'submission-cnn.zip').write_bytes(b'')
    with pytest.raises(grade.af.HandoutError, match="several assignments: 'cnn' .*'mlp'"):
        grade.class_assignment(manifest, None, grade.find_submissions(submissions, log=None))


def test_a_renamed_zip_is_recognised_by_the_files_only_its_assignment_has(tmp_path):
    # A course site that renames every hand-in to <student>.zip loses the
    # submission-<assignment> name: layers.py (mlp) or im2col.py (cnn) still tell.
    manifest = grade.af.load_manifest(REPO / 'tools' / 'assignments.json')
    for assignment, files in (('mlp', ['layers.py', 'loss.py', 'optimizer.py']), ('cnn', ['im2col.py']),
                              ('softmax', ['loss.py', 'optimizer.py', 'runner.ipynb'])):
        submissions = tmp_path / assignment
        submissions.mkdir()
        with zipfile.ZipFile(submissions / 'bob.zip', 'w') as zf:
            for name in files:
                zf.writestr(name, 'x = 1\n')
        found = grade.find_submissions(submissions, log=None)
        assert grade.class_assignment(manifest, None, found) == assignment
    (tmp_path / 'both').mkdir()
    (tmp_path / 'both' / 'eve').mkdir()
    for name in ('layers.py', 'im2col.py'):      # files of two assignments: not a guess, the default
        (tmp_path / 'both' / 'eve' / name).write_text('x = 1\n')
    assert grade.assignment_from_files(tmp_path / 'both' / 'eve', manifest) is None


def test_gradescope_mode_writes_results_json(tmp_path):
    (tmp_path / 'submission').mkdir()
    (tmp_path / 'submission' / 'loss.py').write_text(LOSS)
    (tmp_path / 'submission' / 'optimizer.py').write_text(OPTIMIZER)
    results = tmp_path / 'results' / 'results.json'
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'grade.py'), '--gradescope',
                             str(tmp_path / 'submission'), '--results', str(results), '--checks', 'momentum'],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(results.read_text())
    assert data['score'] == data['max_score'] == POINTS['momentum'] + POINTS['hidden_momentum_many_steps']
    assert {t['name'] for t in data['tests']} == {'momentum', '[hidden] hidden_momentum_many_steps'}
    for test in data['tests']:
        assert set(test) == {'name', 'score', 'max_score', 'output', 'visibility'}
        assert test['visibility'] == ('after_due_date' if 'hidden' in test['name'] else 'visible')
    assert 'Score: ' in data['output']


def test_cut_at_word_ends_at_a_sentence_or_a_word():
    text = "the values differ. The expected value: a count of the samples in the batch"
    assert grade.cut_at_word(text, 200) == text
    assert grade.cut_at_word(text, 24) == "the values differ. ..."
    cut = grade.cut_at_word(text, 60)
    assert cut.endswith(' ...') and text.startswith(cut[:-4]) and text[len(cut) - 4] == ' '
    assert grade.cut_at_word('x' * 50, 10) == 'x' * 10 + ' ...'


def test_grade_runs_with_a_python_without_numpy_or_nbformat(tmp_path):
    """`python3 tools/grade.py ...` as the README writes it: a Python without NumPy re-runs the
    command through the project's environment (QUICKSTART_VENV, else .venv); nbformat is not needed."""
    (tmp_path / 'submissions' / 'alice').mkdir(parents=True)
    (tmp_path / 'submissions' / 'alice' / 'loss.py').write_text(LOSS)
    (tmp_path / 'submissions' / 'alice' / 'optimizer.py').write_text(edited(
        OPTIMIZER, "v *= self.momentum\n        v -= self.learning_rate * grad\n        param += v",
        "v = self.momentum * v - self.learning_rate * grad\n        param = param + v"))
    system_python = Path(sys.base_prefix) / 'bin' / 'python3'
    if sys.prefix == sys.base_prefix or not system_python.exists():
        pytest.skip("needs the tests to run in a virtual environment (its base Python plays the system's)")
    without = ("import runpy, sys; sys.modules['numpy'] = None; sys.modules['nbformat'] = None; "
               "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    command = [str(system_python), '-c', without, str(REPO / 'tools' / 'grade.py'), str(tmp_path / 'submissions'),
               '--out', str(tmp_path / 'grades.csv'), '--checks', 'momentum']
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, QUICKSTART_VENV=sys.prefix))
    assert result.returncode == 0, result.stdout + result.stderr
    feedback = (tmp_path / 'grades-feedback' / 'alice.txt').read_text()
    # param = param + v: the first failure the student reads names the cause
    first = feedback.split('FAILED', 1)[1].split('\n')[1]
    assert 'in place' in first and ('unchanged' in first or 'did not change' in first), feedback
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, QUICKSTART_VENV=str(tmp_path / 'no-venv')))
    assert result.returncode != 0 and 'tools/quickstart.py test' in result.stderr


# ---------------------------------------------------------------------------
# A class that attacks the grader and each other, graded in one run (isolated modes only)
# ---------------------------------------------------------------------------

CONSTANTS_THIEF = '''

import gc as _gc


def _stolen(name):
    """A string constant `name` anywhere in this process (a check's globals, a request, a frame)."""
    for obj in _gc.get_objects():
        if isinstance(obj, dict):
            try:
                value = obj.get(name)
            except Exception:
                continue
            if isinstance(value, str) and 'class ' in value:
                return value
    return None


_Handout = {cls}


class {cls}(_Handout):
    def __new__(cls, *args, **kwargs):
        source = _stolen({constant!r})
        if source:                                 # a complete solution: use it
            namespace = {{}}
            exec(source, namespace)
            return namespace[{cls!r}](*args, **kwargs)
        return super().__new__(cls)
'''

PROC_READER = '''
import importlib.util as _util
import os as _os
import sys as _sys


def _reference_folder():
    """The instructor's folder: from any process's working folder or command line, or its known path."""
    places = [{repo!r}]
    for pid in _os.listdir('/proc'):
        if pid.isdigit():
            try:
                places.append(_os.readlink(f'/proc/{{pid}}/cwd'))
                places += [_os.path.dirname(a) for a in open(f'/proc/{{pid}}/cmdline', 'rb').read().decode(
                    errors='replace').split('\\0') if a.startswith('/')]
            except OSError:
                pass
    for place in places:
        for folder in (place, _os.path.dirname(place)):
            try:
                if 'BEGIN SOLUTION' in open(_os.path.join(folder, {module!r}), encoding='utf-8').read():
                    return folder
            except OSError:
                pass
    return None


_folder = _reference_folder()
if _folder:                                        # the reference solution, loaded in place of ours
    _sys.path.insert(0, _folder)
    for _name in ('layers', 'loss', 'optimizer'):
        _sys.modules.pop(_name, None)
    _spec = _util.spec_from_file_location('_reference', _os.path.join(_folder, {module!r}))
    _reference = _util.module_from_spec(_spec)
    _spec.loader.exec_module(_reference)
    globals().update({{k: v for k, v in vars(_reference).items() if not k.startswith('__')}})
'''

SABOTEUR = '''
import glob as _glob
import os as _os
import signal as _signal
import socket as _socket
import threading as _threading
import time as _time

import numpy as _np

_TARGETS = {targets!r}


def _sabotage():
    while True:
        for pattern in ('/**/grader-out/*.npz', '/**/outputs/*.npz'):       # classmates' and the reference's results
            for path in _glob.glob(pattern, recursive=True):
                try:
                    with _np.load(path) as data:
                        arrays = {{k: data[k] * 1.5 for k in data.files}}
                    _np.savez(path, **arrays)
                except Exception:
                    pass
        for folder in _TARGETS:                                              # the reference, the grader's outputs
            try:
                with open(_os.path.join(folder, 'sabotage-was-here.py'), 'w') as f:
                    f.write('raise SystemExit("sabotaged")\\n')
            except OSError:
                pass
        for pid in _os.listdir('/proc'):                                     # stop the grader and the siblings
            if pid.isdigit() and int(pid) not in (_os.getpid(), 1):
                try:
                    _os.kill(int(pid), _signal.SIGSTOP)
                except OSError:
                    pass
        # a network interface besides loopback would let it reach the network (checked without sending anything)
        if [name for _, name in _socket.if_nameindex() if name != 'lo']:
            open('network-reached', 'w').close()
        _time.sleep(0.2)


_threading.Thread(target=_sabotage, daemon=True).start()
'''

REPLACE_WRITER = '''
import __main__ as _main
import os as _os
{body}
_main._save_outputs = _write
'''

FIFO_WRITER = '''
def _write(path, outputs):                        # the results "file" is a FIFO: a reader would block
    _os.makedirs('grader-out', exist_ok=True)
    if not _os.path.exists('grader-out/progress'):
        _os.mkfifo('grader-out/progress')
    _os.mkfifo(path)
'''

DEV_ZERO_WRITER = '''
def _write(path, outputs):                        # the results file is endless
    _os.symlink('/dev/zero', path)
'''

BOMB_WRITER = '''
import io as _io
import zipfile as _zipfile
import numpy as _np
_bombed = []


def _write(path, outputs):
    """The first check's results: right names and headers, then 128 MB of zeros per array (deflated to
    about 128 KB each); the other checks' results are honest."""
    with _zipfile.ZipFile(path, 'w', _zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for key, value in outputs.items():
            array = _np.asarray(value)
            with zf.open(key + '.npy', 'w', force_zip64=True) as member:
                header = _io.BytesIO()
                _np.lib.format.write_array(header, array)
                member.write(header.getvalue())
                if not _bombed:
                    for _ in range(8):
                        member.write(bytes(2 ** 24))
    _bombed.append(path)
'''

ALARM_CANCELLING_SLEEPER = '''
    import os, signal, time
    if not os.path.exists('slept-once'):           # the first call cancels its alarm and sleeps, looking busy
        open('slept-once', 'w').close()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        while True:
            with open('grader-out/progress', 'a') as f:
                f.write('start forward\\n')
            time.sleep(0.1)
'''


def _isolation_or_skip(tmp_path):
    import sandbox
    try:
        isolation = sandbox.detect(sys.executable, REPO, tmp_path)
    except RuntimeError as error:
        pytest.skip(f"no isolation mode works here: {error}")
    if not isolation.isolated:
        pytest.skip(f"neither bubblewrap nor user namespaces work here (mode '{isolation.mode}'): "
                    f"a hostile class would reach the grader")
    return isolation.mode


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('hostile')
    mode = _isolation_or_skip(tmp)
    import assignment_files
    assignment_files.make_handout(REPO, tmp / 'handout', 'softmax')
    handout = {name: (tmp / 'handout' / name).read_text() for name in ('loss.py', 'optimizer.py')}
    scratch, out = tmp / 'scratch', tmp / 'out'
    scratch.mkdir()
    folder = tmp / 'submissions'

    def write(name, loss, optimizer):
        (folder / name).mkdir(parents=True)
        (folder / name / 'loss.py').write_text(loss)
        (folder / name / 'optimizer.py').write_text(optimizer)

    write('honest', LOSS, OPTIMIZER)
    write('untouched_handout', handout['loss.py'], handout['optimizer.py'])
    write('constants_thief',
          handout['loss.py'] + CONSTANTS_THIEF.format(cls='SoftmaxCrossEntropyLoss', constant='ORIGINAL_LOSS'),
          handout['optimizer.py'] + CONSTANTS_THIEF.format(cls='SGD', constant='ORIGINAL_OPTIMIZER'))
    write('proc_reader', handout['loss.py'] + PROC_READER.format(repo=str(REPO), module='loss.py'),
          handout['optimizer.py'] + PROC_READER.format(repo=str(REPO), module='optimizer.py'))
    write('saboteur', SABOTEUR.format(targets=[str(REPO), str(REPO / 'tests' / 'hidden'), str(out), str(scratch),
                                               str(folder / 'honest')]) + LOSS, OPTIMIZER)
    write('fifo_results', REPLACE_WRITER.format(body=FIFO_WRITER) + LOSS, OPTIMIZER)
    write('dev_zero_results', REPLACE_WRITER.format(body=DEV_ZERO_WRITER) + LOSS, OPTIMIZER)
    write('decompression_bomb', REPLACE_WRITER.format(body=BOMB_WRITER) + LOSS, OPTIMIZER)
    write('alarm_cancelling_sleeper', at('forward', ALARM_CANCELLING_SLEEPER), OPTIMIZER)
    before = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=all', '--ignored'], cwd=REPO,
                            capture_output=True, text=True).stdout
    submitted = sorted(p.relative_to(folder).as_posix() for p in folder.rglob('*'))
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'grade.py'), str(folder), '--out',
                             str(out / 'grades.csv'), '--jobs', '2', '--time-limit', str(TIME_LIMIT),
                             '--check-timeout', str(CHECK_TIMEOUT), '--memory-limit', str(MEMORY_MB)],
                            capture_output=True, text=True, env=dict(os.environ, TMPDIR=str(scratch)), timeout=600)
    after = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=all', '--ignored'], cwd=REPO,
                           capture_output=True, text=True).stdout
    assert result.returncode == 0, result.stdout + result.stderr
    with open(out / 'grades.csv', newline='', encoding='utf-8') as f:
        rows = {row['student']: row for row in csv.DictReader(f)}
    feedback = {name: (out / 'grades-feedback' / f'{name}.txt').read_text(encoding='utf-8') for name in rows}
    return {'rows': rows, 'feedback': feedback, 'log': result.stdout, 'mode': mode, 'tmp': tmp,
            'repo_changed': before != after, 'submitted': submitted,
            'left': sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob('*')
                           if not p.relative_to(tmp).as_posix().startswith(('handout', 'submissions', 'out/'))
                           and p.relative_to(tmp).as_posix() not in ('out', 'scratch'))}


@pytest.mark.slow   # the hostile class takes about a minute: CI runs it with the slow tests
def test_hostile_class_is_graded_and_the_honest_classmate_keeps_full_marks(hostile):
    assert f"Isolation of student code: {hostile['mode']}" in hostile['log']
    assert len(hostile['rows']) == 9
    assert score(hostile['rows']['honest']) == (FULL, FULL), hostile['feedback']['honest']
    assert not any(row['status'] == 'grader error' for row in hostile['rows'].values())


@pytest.mark.slow   # the hostile class takes about a minute: CI runs it with the slow tests
def test_thieves_score_no_more_than_the_untouched_handout(hostile):
    baseline = score(hostile['rows']['untouched_handout'])[0]
    for name in ('constants_thief', 'proc_reader'):
        assert score(hostile['rows'][name])[0] <= baseline, hostile['feedback'][name]


@pytest.mark.slow   # the hostile class takes about a minute: CI runs it with the slow tests
def test_nothing_a_child_writes_leaves_its_sandbox(hostile):
    assert not hostile['repo_changed'], "the reference repository changed while grading"
    assert hostile['left'] == [], f"files outside the sandboxes after grading: {hostile['left']}"
    folder = hostile['tmp'] / 'submissions'
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob('*')) == hostile['submitted']
    assert sorted(p.name for p in (hostile['tmp'] / 'out').iterdir()) == [
        'grades-feedback', 'grades-summary.json', 'grades-summary.txt', 'grades.csv']
    assert not list(hostile['tmp'].rglob('sabotage-was-here.py')) and not list(hostile['tmp'].rglob('network-*'))


@pytest.mark.slow   # the hostile class takes about a minute: CI runs it with the slow tests
def test_malformed_results_fail_their_checks_with_a_reason(hostile):
    for name, reason in (('fifo_results', 'not a regular file'), ('dev_zero_results', 'not a regular file'),
                         ('decompression_bomb', 'bytes of data, expected')):
        assert reason in hostile['feedback'][name], hostile['feedback'][name]
    bomb = hostile['rows']['decompression_bomb']
    # the first check of each child process is bombed; the others are the honest code's
    assert bomb['forward'] == '0' and bomb['gradients'] == str(POINTS['gradients']), \
        hostile['feedback']['decompression_bomb']
    assert score(hostile['rows']['fifo_results'])[0] == score(hostile['rows']['dev_zero_results'])[0] == 0


@pytest.mark.slow   # the hostile class takes about a minute: CI runs it with the slow tests
def test_the_grader_times_each_check_itself(hostile):
    row, text = hostile['rows']['alarm_cancelling_sleeper'], hostile['feedback']['alarm_cancelling_sleeper']
    assert row['status'] == 'time limit' and row['forward'] == '0' and 'took longer than' in text
    assert score(row)[0] == FULL - POINTS['forward'], text    # the grader stopped it, and the rest ran


@pytest.mark.slow   # the hostile class takes about a minute: CI runs it with the slow tests
def test_grader_memory_stays_low(hostile):
    line = next(line for line in hostile['log'].splitlines() if line.startswith('Peak memory: grader'))
    grader_mb = float(line.split('grader ')[1].split(' MB')[0])
    assert grader_mb < 1024, line


@pytest.mark.parametrize('mode', ['bwrap', 'namespaces'])
def test_an_interpreter_below_tmp_runs_in_the_sandbox(tmp_path, mode):
    # A clone under /tmp has its .venv there; the sandbox's private /tmp must not hide it.
    import sandbox
    import venv
    assert str(tmp_path).startswith('/tmp/')
    venv.EnvBuilder(with_pip=False).create(tmp_path / 'venv')
    site = next((tmp_path / 'venv' / 'lib').glob('python*/site-packages'))
    (site / 'project.pth').write_text(os.path.dirname(os.path.dirname(np.__file__)) + '\n')   # this NumPy
    python = str(tmp_path / 'venv' / 'bin' / 'python')
    try:
        sandbox.detect(sys.executable, REPO, tmp_path, wanted=mode)
    except RuntimeError as error:
        pytest.skip(str(error))
    isolation = sandbox.detect(python, REPO, tmp_path, wanted=mode)   # must not fail for the venv alone
    folder = tmp_path / 'sandbox'
    folder.mkdir()
    result = subprocess.run(isolation.command([python, '-I', '-c', 'import numpy; print(numpy.ones(2).sum())'],
                                              folder), cwd=folder, capture_output=True, text=True, timeout=120,
                            **isolation.prepare(folder))
    assert result.returncode == 0 and result.stdout.strip() == '2.0', result.stderr


@pytest.mark.parametrize('mode', ['bwrap', 'namespaces'])
def test_a_sandboxed_child_sees_only_its_folder(tmp_path, mode):
    import sandbox
    try:
        isolation = sandbox.detect(sys.executable, REPO, tmp_path, wanted=mode)
    except RuntimeError as error:
        pytest.skip(str(error))
    folder = tmp_path / 'sandbox'
    folder.mkdir()
    code = textwrap.dedent(f'''
        import os, socket
        seen = {{'repo': os.path.exists({str(REPO / 'loss.py')!r}) or os.path.exists({str(REPO / 'tests')!r}),
                'parent': os.path.exists({str(tmp_path / 'sandbox.root')!r}) or os.path.exists({str(tmp_path)!r}),
                'processes': len([p for p in os.listdir('/proc') if p.isdigit()])}}
        open('mine.txt', 'w').write('ok')
        for path in ('/usr/sabotage', '/tmp/private'):
            try:
                open(path, 'w').close()
                seen[path] = 'written'
            except OSError:
                seen[path] = 'refused'
        # its own network namespace has loopback only (checked without sending anything)
        seen['network'] = bool([name for _, name in socket.if_nameindex() if name != 'lo'])
        print(seen)
    ''')
    result = subprocess.run(isolation.command([sys.executable, '-I', '-c', code], folder), cwd=folder,
                            capture_output=True, text=True, timeout=120, **isolation.prepare(folder))
    assert result.returncode == 0, result.stderr
    seen = eval(result.stdout)
    assert seen == {'repo': False, 'parent': False, 'processes': seen['processes'], 'network': False,
                    '/usr/sabotage': 'refused', '/tmp/private': 'written'}
    assert seen['processes'] <= 3            # its own PID namespace: no grader, no classmates
    assert (folder / 'mine.txt').read_text() == 'ok' and not (tmp_path / 'private').exists()


def test_names_links_nested_zips_and_syntax_errors_are_reported_as_such(tmp_path):
    folder = tmp_path / 'submissions'
    for name in ('new\nline\x1b[31mred', 'linked_file', 'two_zips', 'broken'):
        (folder / name).mkdir(parents=True)
    (folder / 'new\nline\x1b[31mred' / 'optimizer.py').write_text(OPTIMIZER)
    (tmp_path / 'elsewhere.py').write_text(OPTIMIZER)
    (folder / 'linked_file' / 'optimizer.py').symlink_to(tmp_path / 'elsewhere.py')
    for zip_name in ('a.zip', 'b.zip'):
        with zipfile.ZipFile(folder / 'two_zips' / zip_name, 'w') as zf:
            zf.writestr('optimizer.py', OPTIMIZER)
    (folder / 'broken' / 'optimizer.py').write_text(OPTIMIZER + '\ndef oops(:\n')
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'grade.py'), str(folder), '--out',
                             str(tmp_path / 'out' / 'grades.csv'), '--checks', 'momentum', '--assignment', 'softmax'],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '\x1b' not in result.stdout and 'new\\nline\\x1b[31mred' in result.stdout
    text = (tmp_path / 'out' / 'grades.csv').read_text(encoding='utf-8')
    assert '\x1b' not in text and text.count('\n') == 5      # header + 4 rows: no raw newline in a name
    with open(tmp_path / 'out' / 'grades.csv', newline='', encoding='utf-8') as f:
        rows = {row['student']: row for row in csv.DictReader(f)}
    assert 'link ignored' in rows['linked_file']['notes'] and rows['linked_file']['momentum'] == '0'
    assert 'zip inside the submission: a.zip, b.zip' in rows['two_zips']['notes']
    assert rows['broken']['status'] == 'does not compile'
    assert 'optimizer.py does not compile: invalid syntax' in rows['broken']['notes']
    for path in (tmp_path / 'out' / 'grades-feedback').iterdir():
        assert '\x1b' not in path.read_text(encoding='utf-8')


def test_child_outputs_are_read_as_untrusted_data(tmp_path):
    import io
    import child_outputs
    expected = {'a': np.zeros(3), 'flag': np.array(True)}
    np.savez(tmp_path / 'good.npz', a=np.arange(3.0), flag=np.array(True))
    got = child_outputs.load_npz(str(tmp_path / 'good.npz'), expected)
    assert got['flag'].dtype == np.float64 and got['flag'] == 1.0       # booleans compare as numbers
    np.testing.assert_array_equal(got['a'], np.arange(3.0))

    def fails(path, message):
        with pytest.raises(child_outputs.OutputError, match=message):
            child_outputs.load_npz(str(path), expected)

    np.savez(tmp_path / 'names.npz', a=np.zeros(3))
    fails(tmp_path / 'names.npz', 'wrong names')
    np.savez(tmp_path / 'text.npz', a=np.array(['x']), flag=np.array(True))
    fails(tmp_path / 'text.npz', 'expected numbers')
    with zipfile.ZipFile(tmp_path / 'huge.npz', 'w') as zf:        # a header announcing 8 GB
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {'descr': '<f8', 'fortran_order': False, 'shape': (2 ** 30,)})
        zf.writestr('a.npy', header.getvalue())
        zf.writestr('flag.npy', header.getvalue())
    fails(tmp_path / 'huge.npz', 'larger than')
    (tmp_path / 'link.npz').symlink_to(tmp_path / 'good.npz')
    fails(tmp_path / 'link.npz', 'not a regular file')
    os.mkfifo(tmp_path / 'fifo.npz')
    fails(tmp_path / 'fifo.npz', 'not a regular file')
    fails(tmp_path / 'missing.npz', 'missing')
    (tmp_path / 'big.npz').write_bytes(b'\0' * (child_outputs.MAX_NPZ_BYTES + 1))
    fails(tmp_path / 'big.npz', 'larger than')


def test_handout_refuses_files_git_does_not_track(tmp_path):
    """What a child could write into the reference never reaches a release."""
    import handout
    subprocess.run(['git', 'init', '-q', str(tmp_path)], check=True)
    (tmp_path / 'loss.py').write_text('x = 1\n')
    (tmp_path / 'stray.py').write_text('raise SystemExit\n')
    subprocess.run(['git', '-C', str(tmp_path), 'add', 'loss.py'], check=True)
    assert handout.untracked_files(tmp_path, ['loss.py', 'stray.py']) == ['stray.py']
    assert handout.untracked_files(tmp_path / 'not-a-checkout', ['loss.py']) == []


def test_separate_user_mode_keeps_submissions_apart():
    """The fallback without namespaces, as root: each sandbox has its own throwaway user."""
    import tempfile
    import sandbox
    scratch = Path(tempfile.mkdtemp(prefix='separate-user-'))
    try:
        os.chmod(scratch, 0o711)
        try:
            isolation = sandbox.detect(sys.executable, REPO, scratch, wanted='separate user')
        except RuntimeError as error:
            pytest.skip(str(error))
        mine, other = scratch / 'mine', scratch / 'other'
        mine.mkdir()
        other.mkdir()
        (other / 'result.npz').write_bytes(b'honest')
        me, them = isolation.prepare(mine), isolation.prepare(other)
        assert me['user'] != them['user']
        code = textwrap.dedent(f'''
            import os
            tried = {{}}
            for name, attempt in (('write', lambda: open({str(other / 'result.npz')!r}, 'wb').write(b'x')),
                                  ('list', lambda: os.listdir({str(other)!r})),
                                  ('signal', lambda: os.kill({os.getpid()}, 0))):
                try:
                    attempt()
                    tried[name] = 'done'
                except OSError:
                    tried[name] = 'refused'
            open('mine.txt', 'w').write('ok')
            print(tried)
        ''')
        result = subprocess.run(isolation.command([sys.executable, '-I', '-c', code], mine), cwd=mine,
                                capture_output=True, text=True, timeout=120, **me)
        assert result.returncode == 0, result.stderr
        assert eval(result.stdout) == {'write': 'refused', 'list': 'refused', 'signal': 'refused'}
        assert (other / 'result.npz').read_bytes() == b'honest' and (mine / 'mine.txt').read_text() == 'ok'
    finally:
        import shutil
        shutil.rmtree(scratch, ignore_errors=True)


def test_a_results_folder_replaced_by_a_link_is_not_followed(tmp_path):
    import child_outputs
    (tmp_path / 'elsewhere').mkdir()
    np.savez(tmp_path / 'elsewhere' / 'r.npz', a=np.zeros(1))
    (tmp_path / 'grader-out').symlink_to(tmp_path / 'elsewhere')
    with pytest.raises(child_outputs.OutputError, match='not a folder'):
        child_outputs.open_folder(tmp_path / 'grader-out')
