"""Grade a class: run the public and hidden tests of an assignment on every submission.

    python tools/grade.py SUBMISSIONS_DIR --out grades.csv
    python tools/grade.py SUBMISSIONS_DIR --out grades.csv --assignment softmax --jobs 4

SUBMISSIONS_DIR holds one folder or one .zip per student, named after the
student, with the files of the handout the student edited (for softmax:
loss.py, optimizer.py, runner.ipynb). Other files are ignored; a file found
in a single sub-folder (alice.zip -> alice/loss.py) is found too.

For every submission the grader
1. reads the student's files without running anything: zips are read in
   memory, members with absolute paths, '..', or links are refused, nothing
   is ever unpickled;
2. makes a fresh temporary copy of the reference framework (public and
   hidden tests included, instructor tools excluded) and overlays the
   student's files; a file the student did not hand in is replaced by its
   handout version (a TODO that raises NotImplementedError), never by the
   reference;
3. runs pytest on it in its own process, with cwd, HOME and TMPDIR set to the
   copy, a time limit per test and for the whole run, a cap on file sizes
   and memory, and a small pytest plugin (tools/_grading_plugin.py) that
   writes each test's result to a file outside the copy as it happens. If
   the process crashes, the tests not yet run are run again in a new
   process, without the one that crashed;
4. gives each test marked @pytest.mark.solution(<assignment>) its points
   from tools/assignments.json.

The reference itself is graded first, the same way; it must score full
marks, and its list of tests is the list every submission is scored on.
Submissions are graded in parallel, one process per available core.

Output: the CSV (one row per student, one column per test) and a feedback
file per student (feedback folder beside the CSV) with each test's name,
points and message. Hidden tests are shown by name with the first line of
their message only, never their code.

What this does NOT protect against: submissions run with your user's
rights. Malicious code could read the hidden tests from its copy, overwrite
its own result file, or touch any file you can write. Grade untrusted
submissions inside a container or as an unprivileged user.
"""

import argparse
import concurrent.futures
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path, PurePosixPath

TOOLS = Path(__file__).resolve().parent
for folder in (TOOLS.parent, TOOLS):   # the framework's modules, and tools/handout.py
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import handout  # noqa: E402  (tools/handout.py: manifest, file lists, regions)
from fileio import atomic_write  # noqa: E402  (temporary file, then rename)

PLUGIN = TOOLS / '_grading_plugin.py'
MAX_FILE_BYTES = 5 * 2 ** 20          # one submitted file
MAX_ZIP_BYTES = 100 * 2 ** 20         # everything in one zip, uncompressed
MAX_OUTPUT_BYTES = 64 * 2 ** 20       # any file the tests write (RLIMIT_FSIZE)
MEMORY_LIMIT_BYTES = 4 * 2 ** 30      # address space of the test process (RLIMIT_AS)
MAX_RUNS = 4                          # pytest runs per submission (restarts after crashes)
PUBLIC_MESSAGE_CHARS = 1500
HIDDEN_MESSAGE_CHARS = 300


class SubmissionError(Exception):
    """The submission cannot be read (unsafe or broken zip, ...); scored 0."""


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def available_cores():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def safe_name(name):
    """A student name usable as a file name."""
    return re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('._') or 'student'


# ---------------------------------------------------------------------------
# Reading a submission (never executing or unpickling it)
# ---------------------------------------------------------------------------

def _check_member_name(name):
    path = PurePosixPath(name.replace('\\', '/'))
    if name.startswith(('/', '\\')) or re.match(r'^[A-Za-z]:', name) or '..' in path.parts:
        raise SubmissionError(f"the zip contains the unsafe path {name!r} (absolute or with '..'); "
                              f"it was not opened. Zip only your files and submit again.")
    return path.as_posix()


def _list_zip(path):
    """{relative path: loader} of the regular files of a zip, checked for safety."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise SubmissionError(f"{path.name} is not a readable zip file ({error})") from None
    members, total = {}, 0
    for info in infos:
        name = _check_member_name(info.filename)
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise SubmissionError(f"the zip contains a symbolic link ({info.filename!r}); it was not opened")
        total += info.file_size
        if total > MAX_ZIP_BYTES:
            raise SubmissionError(f"the zip unpacks to more than {MAX_ZIP_BYTES // 2 ** 20} MB; it was not opened")
        if not info.is_dir():
            members[name] = info

    def loader(info):
        if info.file_size > MAX_FILE_BYTES:
            raise SubmissionError(f"{info.filename} is larger than {MAX_FILE_BYTES // 2 ** 20} MB")
        try:
            with zipfile.ZipFile(path) as zf:
                return zf.read(info)
        except (zipfile.BadZipFile, OSError, RuntimeError) as error:  # corrupt or encrypted
            raise SubmissionError(f"cannot read {info.filename} from the zip ({error})") from None
    return {name: (lambda info=info: loader(info)) for name, info in members.items()}


def _list_folder(path):
    files = {}
    for folder, dirs, names in os.walk(path):  # os.walk does not follow links to folders
        for name in names:
            full = Path(folder) / name
            rel = full.relative_to(path).as_posix()
            if full.is_symlink() or not full.is_file():
                continue

            def loader(full=full):
                if full.stat().st_size > MAX_FILE_BYTES:
                    raise SubmissionError(f"{full.name} is larger than {MAX_FILE_BYTES // 2 ** 20} MB")
                return full.read_bytes()
            files[rel] = loader
    return files


def read_submission(path, spec):
    """({student file: bytes}, [notes]) from a submission folder or zip."""
    path = Path(path)
    members = _list_zip(path) if path.suffix.lower() == '.zip' else _list_folder(path)
    members = {name: load for name, load in members.items()
               if not name.startswith('__MACOSX/') and not PurePosixPath(name).name.startswith('._')}
    files, notes = {}, []
    for wanted in spec['student_files']:
        candidates = sorted((n for n in members if n == wanted or n.endswith('/' + wanted)),
                            key=lambda n: (n.count('/'), n))
        if not candidates:
            continue
        if len(candidates) > 1:
            notes.append(f"several {wanted} found; graded {candidates[0]}")
        files[wanted] = members[candidates[0]]()
    return files, notes


# ---------------------------------------------------------------------------
# Running the tests in a sandbox copy
# ---------------------------------------------------------------------------

def build_sandbox(root, manifest, dest):
    """Copy the reference (hidden tests included, instructor tools and large
    data excluded) into dest."""
    for rel in handout.list_files(root, manifest, include_hidden=True,
                                  extra_exclude=manifest['not_in_grading_sandbox']):
        target = Path(dest) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(root) / rel, target)


def _limit_resources():  # runs in the child, before pytest starts (POSIX)
    import resource
    for limit, value in ((resource.RLIMIT_FSIZE, MAX_OUTPUT_BYTES), (resource.RLIMIT_AS, MEMORY_LIMIT_BYTES),
                         (resource.RLIMIT_CORE, 0)):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(limit, (value, value))


def _kill_group(process):
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        if os.name == 'posix':
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()


def _read_records(path):
    records = []
    with contextlib.suppress(FileNotFoundError):
        with open(path, encoding='utf-8', errors='replace') as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a line cut by a kill
    return records


class OutputTail:
    """Drain a pipe in a thread, keeping only the last `keep` bytes: a test
    process that prints gigabytes costs neither memory nor disk."""

    def __init__(self, pipe, keep=4000):
        self.pipe, self.keep, self.data, self.total = pipe, keep, b'', 0
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        with contextlib.suppress(OSError, ValueError):
            for chunk in iter(lambda: self.pipe.read1(65536), b''):
                self.total += len(chunk)
                self.data = (self.data + chunk)[-self.keep:]

    def finish(self, timeout=5):
        self.thread.join(timeout)
        with contextlib.suppress(OSError):
            self.pipe.close()
        text = self.data.decode('utf-8', errors='replace')
        if self.total > self.keep:
            text = f"[... {self.total - self.keep} earlier bytes of output not kept ...]\n" + text
        return text


def run_pytest(folder, results_dir, assignment, student_files, time_limit, test_timeout, keyword=None):
    """Run pytest in `folder` with the grading plugin; never raises for a bad submission.

    Returns {'status': 'ok' | 'time limit' | 'crashed', 'tests': {nodeid: record},
             'collected': [nodeids in order], 'collect_errors': [...], 'output': tail}.
    """
    folder, results_dir = Path(folder), Path(results_dir)
    plugin_dir = results_dir / 'plugin'
    plugin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PLUGIN, plugin_dir / PLUGIN.name)
    (folder / 'tmp').mkdir(exist_ok=True)
    env = {
        'PATH': os.environ.get('PATH', ''), 'HOME': str(folder), 'USERPROFILE': str(folder),
        'TMPDIR': str(folder / 'tmp'), 'TEMP': str(folder / 'tmp'), 'TMP': str(folder / 'tmp'),
        'PYTHONPATH': str(plugin_dir), 'PYTHONDONTWRITEBYTECODE': '1', 'PYTHONHASHSEED': '0',
        'PYTHONIOENCODING': 'utf-8', 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1',
        'OPENBLAS_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1',
        'GRADER_ASSIGNMENT': assignment or '', 'GRADER_TEST_TIMEOUT': str(test_timeout),
        'GRADER_STUDENT_FILES': os.pathsep.join(Path(f).name for f in student_files),
    }
    if 'SYSTEMROOT' in os.environ:  # Windows needs it to start Python
        env['SYSTEMROOT'] = os.environ['SYSTEMROOT']
    # --capture=no: printed output goes to the pipe drained by OutputTail instead of
    # pytest's capture files, which a chatty submission could grow without bound
    # (the capsys fixture still works).
    command = [sys.executable, '-m', 'pytest', '-p', '_grading_plugin', '-p', 'no:cacheprovider',
               '-q', '--tb=no', '--capture=no', '--color=no', '--continue-on-collection-errors']
    if keyword:
        command += ['-k', keyword]

    deadline = time.monotonic() + time_limit
    tests, collected, collect_errors, tags = {}, None, [], {}
    status, output = 'ok', ''
    for attempt in range(MAX_RUNS):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            status = 'crashed' if status == 'crashed' else 'time limit'
            break
        results = results_dir / f'results-{attempt}.jsonl'
        skip = results_dir / f'skip-{attempt}.txt'
        skip.write_text('\n'.join(tests), encoding='utf-8')
        process = subprocess.Popen(
            command, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=dict(env, GRADER_RESULTS=str(results), GRADER_SKIP=str(skip)),
            start_new_session=(os.name == 'posix'),
            preexec_fn=_limit_resources if os.name == 'posix' else None)
        reader = OutputTail(process.stdout)
        try:
            returncode, timed_out = process.wait(timeout=remaining), False
        except subprocess.TimeoutExpired:
            returncode, timed_out = None, True
        _kill_group(process)  # also ends anything the tests left running
        process.wait()
        output = reader.finish()

        started = None
        for record in _read_records(results):
            if record['kind'] == 'collected' and collected is None:
                collected = [t['nodeid'] for t in record['tests']]
                tags = {t['nodeid']: t['tags'] for t in record['tests']}
            elif record['kind'] == 'collect_error' and attempt == 0:
                collect_errors.append(record)
            elif record['kind'] == 'start':
                started = record['nodeid']
            elif record['kind'] == 'result':
                record['tags'] = tags.get(record['nodeid'], []) if collected is not None else []
                tests[record['nodeid']] = record
                started = None
        if timed_out:
            status = 'crashed' if status == 'crashed' else 'time limit'  # the first problem is the news
            if started:
                tests[started] = {'nodeid': started, 'outcome': 'failed', 'exception': 'TimeLimit',
                                  'tags': tags.get(started, []),
                                  'message': f"the time limit of the whole run ({time_limit:g} s) was "
                                             f"reached during this test; the tests after it were not run"}
            break
        if returncode in (0, 1, 5):  # pytest: all passed / some failed / nothing to run
            break
        status = 'crashed'
        if started is None or collected is None:
            break  # crashed outside a test (e.g. while importing); nothing to resume
        tests[started] = {'nodeid': started, 'outcome': 'failed', 'exception': 'Crash',
                          'tags': tags.get(started, []),
                          'message': f"the test process crashed during this test (exit code {returncode}); "
                                     f"the other tests were run again in a new process"}
        if all(nodeid in tests for nodeid in collected):
            break
    return {'status': status, 'tests': tests, 'collected': collected or [],
            'collect_errors': collect_errors, 'output': output}


def grade_files(root, manifest, assignment, files, time_limit=None, test_timeout=None, keep=False,
                keyword=None):
    """Run the grading tests on one set of student files; returns run_pytest's dict
    plus 'used' ({student file: 'submitted' | 'handout version' | 'missing'})."""
    spec = manifest['assignments'][assignment]
    time_limit = time_limit or spec['time_limit']
    test_timeout = test_timeout or spec['test_timeout']
    workspace = Path(tempfile.mkdtemp(prefix=f'grade-{assignment}-'))
    try:
        sandbox, results = workspace / 'work', Path(tempfile.mkdtemp(prefix='results-', dir=workspace))
        sandbox.mkdir()
        build_sandbox(root, manifest, sandbox)
        used = {}
        known = set(manifest['assignments'])
        for name in spec['student_files']:
            target = sandbox / name
            if name in files:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(files[name])
                used[name] = 'submitted'
            elif (Path(root) / name).is_file():
                text, _, _ = handout.handout_text(root, name, assignment, known)
                if text is None:
                    target.unlink(missing_ok=True)
                    used[name] = 'missing'
                else:
                    target.write_text(text, encoding='utf-8')
                    used[name] = 'handout version' if name in spec['graded_files'] else 'missing'
            else:
                used[name] = 'missing'
        run = run_pytest(sandbox, results, assignment, spec['student_files'], time_limit, test_timeout,
                         keyword)
        run['used'] = used
        return run
    finally:
        if not keep:
            shutil.rmtree(workspace, ignore_errors=True)


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------

def points_of(nodeid, spec):
    """Points of a test: the longest matching prefix in spec['points'], else default_points."""
    best, points = -1, spec['default_points']
    for prefix, value in spec['points'].items():
        if nodeid == prefix or (nodeid.startswith(prefix) and nodeid[len(prefix)] in ':/['):
            if len(prefix) > best:
                best, points = len(prefix), value
    return points


def hidden_source_lines(root, manifest):
    """Lines of the hidden tests, to keep them out of any feedback message."""
    lines = set()
    for path in (Path(root) / manifest['hidden_tests_dir']).rglob('*.py'):
        for line in path.read_text(encoding='utf-8', errors='replace').splitlines():
            line = line.strip()
            if len(line) >= 20:
                lines.add(line)
    return lines


def is_hidden(nodeid, manifest):
    return nodeid.startswith(manifest['hidden_tests_dir'].rstrip('/') + '/')


def feedback_message(record, hidden, secret_lines):
    """What a student may see of a test's failure."""
    message = record.get('message') or ''
    exception = record.get('exception')
    if hidden:
        first = message.strip().split('\n')[0] if message.strip() else ''
        if any(line in message for line in secret_lines):
            first = '(message withheld: it quotes the hidden test)'
        message = first[:HIDDEN_MESSAGE_CHARS]
    else:
        message = message[:PUBLIC_MESSAGE_CHARS]
    text = f"{exception}: {message}" if exception and not message.startswith(exception) else message
    if record.get('where'):
        text += f"\n(raised in {record['where']})"
    return text.strip()


def score(run, expected, spec, manifest, secret_lines=()):
    """Per-test results of one run against the expected test list (the reference's)."""
    errors = {e['nodeid']: e['message'] for e in run['collect_errors']}
    rows = []
    for nodeid in expected:
        record = run['tests'].get(nodeid)
        hidden = is_hidden(nodeid, manifest)
        if record is None:
            culprit = next((m for f, m in errors.items() if f and nodeid.startswith(f + '::')), None)
            if culprit is not None:
                reason = "the test file could not be imported: " + culprit
                if hidden:
                    reason = "the test file could not be imported: " + culprit.strip().split('\n')[-1][:200]
            elif run['status'] == 'time limit':
                reason = "not run: the time limit of the whole run was reached before it"
            elif run['status'] == 'crashed':
                reason = "not run: the test process crashed before it (see the output below)"
            else:
                reason = "not run (is the test still marked for this assignment?)"
            record = {'outcome': 'failed', 'message': reason}
        max_points = points_of(nodeid, spec)
        passed = record['outcome'] == 'passed'
        rows.append({'nodeid': nodeid, 'hidden': hidden, 'outcome': record['outcome'],
                     'points': max_points if passed else 0, 'max_points': max_points,
                     'message': '' if passed else feedback_message(record, hidden, secret_lines)})
    return rows


def grade_reference(root, manifest, assignment, time_limit=None, test_timeout=None, keyword=None):
    """Grade the reference's own student files: the expected test list and full marks."""
    spec = manifest['assignments'][assignment]
    files = {name: (Path(root) / name).read_bytes() for name in spec['student_files']
             if (Path(root) / name).is_file()}
    run = grade_files(root, manifest, assignment, files, time_limit, test_timeout, keyword=keyword)
    rows = score(run, run['collected'], spec, manifest)
    for error in run['collect_errors']:
        rows.append({'nodeid': error['nodeid'], 'hidden': False, 'outcome': 'failed', 'points': 0,
                     'max_points': 0, 'message': 'collection error: ' + error['message']})
    return {'run': run, 'tests': rows, 'score': sum(r['points'] for r in rows),
            'max_score': sum(r['max_points'] for r in rows)}


# ---------------------------------------------------------------------------
# The class
# ---------------------------------------------------------------------------

def find_submissions(folder):
    """[(student name, path)] for the folders and zips in folder, sorted by name."""
    found, seen = [], set()
    for entry in sorted(Path(folder).iterdir()):
        if entry.name.startswith(('.', '__MACOSX')) or entry.is_symlink():
            continue
        if entry.is_dir():
            name = entry.name
        elif entry.suffix.lower() == '.zip':
            name = entry.stem
        else:
            continue
        if name in seen:
            name = entry.name
        seen.add(name)
        found.append((name, entry))
    return found


def grade_submission(root, manifest, assignment, name, path, time_limit, test_timeout, keep, keyword=None):
    """Read and run one submission; the scores are computed later, against the
    reference's test list (see rows_of)."""
    spec = manifest['assignments'][assignment]
    try:
        files, notes = read_submission(path, spec)
    except SubmissionError as error:
        return {'name': name, 'status': 'invalid submission', 'notes': [str(error)], 'run': None,
                'output': ''}
    run = grade_files(root, manifest, assignment, files, time_limit, test_timeout, keep, keyword)
    for student_file, how in run['used'].items():
        if how == 'handout version':
            notes.append(f"{student_file} was not in your submission: graded the handout version "
                         f"(its TODOs raise NotImplementedError)")
        elif how == 'missing':
            notes.append(f"{student_file} was not in your submission")
    return {'name': name, 'status': run['status'], 'notes': notes, 'run': run, 'output': run['output']}


def rows_of(result, expected, spec, manifest, secret):
    """Per-test rows of a graded submission (all failed if it could not be run)."""
    if result['run'] is None:
        return [{'nodeid': n, 'hidden': is_hidden(n, manifest), 'outcome': 'failed', 'points': 0,
                 'max_points': points_of(n, spec), 'message': 'not run: ' + result['status']}
                for n in expected]
    return score(result['run'], expected, spec, manifest, secret)


def feedback_text(result, assignment, spec):
    total = sum(r['points'] for r in result['rows'])
    maximum = sum(r['max_points'] for r in result['rows'])
    lines = [f"Assignment: {assignment} - {spec.get('title', '')}",
             f"Student: {result['name']}",
             f"Score: {total:g} / {maximum:g}",
             f"Status: {result['status']}", '']
    if result['notes']:
        lines += ['Notes:'] + [f"  - {note}" for note in result['notes']] + ['']
    lines.append('Tests ([hidden] tests are not in your handout; only their names and messages are shown):')
    for row in result['rows']:
        label = ('PASSED' if row['outcome'] == 'passed' else
                 'SKIPPED' if row['outcome'] == 'skipped' else 'FAILED')
        hidden = '[hidden] ' if row['hidden'] else ''
        lines.append(f"  {label:7s} {row['points']:g}/{row['max_points']:g}  {hidden}{row['nodeid']}")
        if row['message']:
            lines += ['            ' + line for line in row['message'].split('\n')]
    if result['status'] in ('crashed', 'time limit') and result.get('output'):
        tail = result['output'][-1500:]
        lines += ['', 'End of the test output:', tail]
    return '\n'.join(lines) + '\n'


def grade_class(root, submissions_dir, out_csv, assignment, feedback_dir=None, jobs=None,
                time_limit=None, test_timeout=None, keep=False, keyword=None, log=print):
    """Grade every submission; write the CSV and the feedback files. Returns the results."""
    root = Path(root).resolve()
    manifest = handout.load_manifest(root / 'tools' / 'assignments.json')
    spec = handout.check_assignment(manifest, assignment)
    submissions = find_submissions(submissions_dir)
    if not submissions:
        raise SystemExit(f"no submission folders or zips found in {submissions_dir}")
    jobs = jobs or available_cores()
    feedback_dir = Path(feedback_dir) if feedback_dir else Path(out_csv).with_name(Path(out_csv).stem + '-feedback')
    secret = hidden_source_lines(root, manifest)
    log(f"Grading {len(submissions)} submissions of '{assignment}' with {jobs} parallel jobs ...")

    # The reference runs in the pool beside the submissions: its test list and
    # full marks are checked before any score is computed.
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        reference_future = pool.submit(grade_reference, root, manifest, assignment, time_limit,
                                       test_timeout, keyword)
        futures = {pool.submit(grade_submission, root, manifest, assignment, name, path,
                               time_limit, test_timeout, keep, keyword): name for name, path in submissions}
        results = []
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            name = futures[future]
            try:
                result = future.result()
            except Exception as error:  # a grader bug must not lose the other students' grades
                result = {'name': name, 'status': f'grader error: {error!r}', 'notes': [], 'run': None,
                          'output': ''}
            results.append(result)
            log(f"[{done}/{len(submissions)}] {name}: graded ({result['status']})")
        reference = reference_future.result()
    if not reference['tests'] or reference['score'] != reference['max_score']:
        failing = [f"{r['nodeid']}: {r['message']}" for r in reference['tests'] if r['outcome'] != 'passed']
        raise SystemExit("the reference solution does not score full marks, so no grade was written:\n  "
                         + '\n  '.join(failing or ['no graded test found']))
    expected = [r['nodeid'] for r in reference['tests']]
    log(f"Reference: {reference['score']:g}/{reference['max_score']:g} over {len(expected)} tests")
    results.sort(key=lambda r: r['name'])
    for result in results:
        result['rows'] = rows_of(result, expected, spec, manifest, secret)
        total = sum(r['points'] for r in result['rows'])
        log(f"  {result['name']}: {total:g}/{reference['max_score']:g} ({result['status']})")

    with atomic_write(out_csv, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['student', 'score', 'max_score', 'percent', 'status', 'notes'] + expected)
        for result in results:
            total = sum(r['points'] for r in result['rows'])
            maximum = reference['max_score']
            writer.writerow([result['name'], f"{total:g}", f"{maximum:g}", f"{100 * total / maximum:.1f}",
                             result['status'], '; '.join(result['notes'])]
                            + [f"{r['points']:g}" for r in result['rows']])
    for result in results:
        with atomic_write(feedback_dir / f"{safe_name(result['name'])}.txt", 'w', encoding='utf-8') as f:
            f.write(feedback_text(result, assignment, spec))
    log(f"Wrote {out_csv} and {len(results)} feedback files in {feedback_dir}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     epilog="See the Instructors section of README.md.")
    parser.add_argument('submissions', help='folder with one folder or .zip per student')
    parser.add_argument('--out', required=True, help='the CSV of grades to write')
    parser.add_argument('--assignment', help='assignment name (default: default_assignment of the manifest)')
    parser.add_argument('--feedback', help='folder for the feedback files (default: <out>-feedback beside the CSV)')
    parser.add_argument('--jobs', type=int, default=None, help='parallel submissions (default: available cores)')
    parser.add_argument('--time-limit', type=float, default=None, help='seconds per submission (default: manifest)')
    parser.add_argument('--test-timeout', type=float, default=None, help='seconds per test (default: manifest)')
    parser.add_argument('-k', '--keyword', help="grade only the tests matching this pytest -k expression "
                        "(e.g. to regrade one test; the scores then cover those tests only)")
    parser.add_argument('--keep', action='store_true', help='keep the temporary sandboxes (debugging)')
    parser.add_argument('--root', default=str(handout.REPO), help='reference folder (default: this repository)')
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    try:
        manifest = handout.load_manifest(root / 'tools' / 'assignments.json')
        assignment = args.assignment or manifest.get('default_assignment') or next(iter(manifest['assignments']))
        handout.check_assignment(manifest, assignment)
    except handout.HandoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not Path(args.submissions).is_dir():
        print(f"error: {args.submissions} is not a folder", file=sys.stderr)
        return 2
    grade_class(root, args.submissions, args.out, assignment, args.feedback, args.jobs,
                args.time_limit, args.test_timeout, args.keep, args.keyword)
    return 0


if __name__ == '__main__':
    sys.exit(main())
