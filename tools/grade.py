"""Grade a class: run the graded checks of an assignment on every submission.

    python tools/grade.py SUBMISSIONS_DIR --out grades.csv
    python tools/grade.py SUBMISSIONS_DIR --out grades.csv --jobs 2 --shard 1/4
    python tools/grade.py --merge shard-*/grades.csv --out grades.csv
    python tools/grade.py --gradescope SUBMISSION --results results.json   (tools/run_autograder)

SUBMISSIONS_DIR holds one folder or one .zip per student, named after the
student (a folder may hold the student's zip), with the files of the
handout the student edited (for softmax: loss.py, optimizer.py,
runner.ipynb). Other files, a virtual environment, data files and caches
inside a submission are ignored; a file found in a single sub-folder
(alice.zip -> alice/loss.py) is found too.

How a verdict is reached (see tools/checks/__init__.py):
1. The submission is read without running anything: zips are read in memory,
   members with absolute paths or '..' are refused, links are ignored
   (and said so), nothing is unpickled; a .py file that does not compile
   gives the status 'does not compile'.
2. The grader draws every check's inputs from a seed chosen for this grading
   run, and computes the expected outputs by running the checks on the
   reference modules in its own process (reference code is trusted).
3. The student's code runs in child processes (tools/process_guard.py: every
   descendant tracked and killed, whole-submission memory limit, output
   drained by a thread), each in the submission's own sandbox
   (tools/sandbox.py: with bubblewrap or user namespaces it sees only its
   folder, read-only system and interpreter folders, a private /tmp, no
   network, its own PID namespace). The folder is a copy of the *handout*
   (every solution region in its student form; no reference solution,
   hidden test or unreleased assignment) with the student's graded files
   overlaid. The child program (tools/_probe_child.py) receives one check at
   a time on its standard input, the next only when the previous one ended;
   the checks that carry code of their own (the original framework's) run
   last, each alone in a fresh child. Nothing in the child's arguments or
   environment names the instructor's folder.
4. The grader times every check and the whole submission with its own clock.
   The child returns numbers only: an .npz read as untrusted data
   (tools/child_outputs.py: no link followed, regular files only, size caps,
   names and dtypes checked, decompression bounded); the grader compares them
   with the expected values, which never leave it, and writes the feedback
   itself. Free text from student code (exception messages, output) is
   truncated and scrubbed of anything matching hidden material or the
   reference solution.
A child that crashes during a check is restarted for the checks left; a
check over its time limit is stopped and the rest run in a new child.

Output: the CSV (one row per submission, one column of points per check;
cells that a spreadsheet would read as a formula are neutralised), a feedback
file per submission, and a class summary (for each check, the share of
students failing it and the most common failure message).

What each isolation mode protects, and what it does not: tools/sandbox.py
and the Instructors section of README.md. Where neither bubblewrap nor user
namespaces work, the grader says so once, loudly, and grades anyway.
"""

import argparse
import concurrent.futures
import contextlib
import csv
import json
import os
import re
import resource
import secrets
import shutil
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

TOOLS = Path(__file__).resolve().parent
for folder in (TOOLS.parent, TOOLS):   # the reference's modules, and tools/ (checks, ...)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# One BLAS thread unless the caller says otherwise (threads.py, standard library only), applied
# before NumPy is imported. Submissions are graded in parallel with --jobs instead.
from threads import apply_thread_policy, usable_cores  # noqa: E402

apply_thread_policy(quiet=True)


from quickstart import venv_python as project_python  # noqa: E402  (.venv, or $QUICKSTART_VENV; standard library only)


try:
    import numpy as np
except ModuleNotFoundError:   # started with a Python without NumPy (`python3 tools/grade.py ...`)
    if __name__ == '__main__':
        _venv_python = project_python()
        if _venv_python.exists() and Path(sys.prefix).resolve() != _venv_python.parents[1].resolve():
            os.execv(str(_venv_python), [str(_venv_python), str(Path(__file__).resolve())] + sys.argv[1:])
        sys.exit("error: the grader needs NumPy, and the project's Python environment was not found. Create it "
                 f"once with 'python3 tools/quickstart.py test', or run '{_venv_python} tools/grade.py ...'.")
    raise

import assignment_files as af  # noqa: E402  (manifest, handout machinery)
import child_outputs  # noqa: E402  (reading what a child wrote, as untrusted data)
import process_guard  # noqa: E402
import sandbox  # noqa: E402  (isolation of the child)
from checks import CheckFailed, load_checks  # noqa: E402
from fileio import atomic_write  # noqa: E402  (temporary file, then rename)

PROBE = TOOLS / '_probe_child.py'
MAX_FILE_BYTES = 5 * 2 ** 20          # one submitted file
MAX_ZIP_BYTES = 100 * 2 ** 20         # what is read from one zip, uncompressed (ignored folders excluded)
MAX_RUNS = 20                         # child processes per submission (restarts after crashes / stuck checks)
GRACE_SECONDS = 5                     # a check's own alarm fires first; the grader stops it after this
FILE_SIZE_LIMIT = 64 * 2 ** 20        # largest file a child may write
MAX_STATUS_LINES = 1000               # lines on a child's status pipe (the probe writes one per check, plus one)
MESSAGE_CHARS = 300                   # free text from student code, per check
OUTPUT_LINES, OUTPUT_LINE_CHARS = 12, 200   # end of the output shown when the run did not end normally
ARCHIVES = ('.tar', '.tar.gz', '.tgz', '.tar.bz2', '.tbz2', '.tar.xz', '.txz', '.gz', '.bz2', '.xz',
            '.rar', '.7z')
# Inside a submission: folders and files never read (a zipped virtual environment is not an error).
IGNORED_FOLDERS = {'.venv', 'venv', 'env', '__pycache__', '.ipynb_checkpoints', '.pytest_cache', '.git',
                   'data', 'node_modules', '.idea', '.vscode', '__MACOSX', 'outputs', 'cache', 'build'}
IGNORED_SUFFIXES = ('.pyc', '.pyo', '-ubyte', '-ubyte.gz', '.npz', '.npy', '.pkl', '.pt')


class SubmissionError(Exception):
    """The submission cannot be read (unsafe or broken zip, ...); scored 0."""


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def peak_memory_mb():
    """Peak resident memory (MB) of this process (ru_maxrss: KB on Linux, bytes on macOS)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value / 2 ** 20 if sys.platform == 'darwin' else value / 2 ** 10


def safe_name(name):
    """A student name usable as a file name (Unicode letters kept)."""
    return re.sub(r'[^\w.-]+', '_', name).strip('._') or 'student'


def unique_file_names(names):
    """{name: file stem}: safe_name, made unique (case-insensitively) with -2, -3, ..."""
    taken, out = set(), {}
    for name in names:
        base = safe_name(name)
        stem, n = base, 1
        while stem.casefold() in taken:
            n += 1
            stem = f"{base}-{n}"
        taken.add(stem.casefold())
        out[name] = stem
    return out


def printable(name):
    """A name as it may be shown: every control character (newline, escape, ...)
    written as a visible \\x.. / \\u.... escape instead of reaching a terminal or a file raw."""
    return ''.join(c if c.isprintable() else ascii(c)[1:-1] for c in str(name))


def csv_cell(value):
    """A CSV cell a spreadsheet shows as text: a leading = + - @ (or tab, CR) gets a quote mark."""
    text = str(value)
    return "'" + text if text[:1] in ('=', '+', '-', '@', '\t', '\r') else text


# ---------------------------------------------------------------------------
# Reading a submission (never executing or unpickling it)
# ---------------------------------------------------------------------------

def _ignored(rel):
    parts = PurePosixPath(rel).parts
    return (any(part in IGNORED_FOLDERS or part.endswith('.egg-info') for part in parts[:-1])
            or parts[-1].endswith(IGNORED_SUFFIXES) or parts[-1].startswith('._'))


def _check_member_name(name):
    path = PurePosixPath(name.replace('\\', '/'))
    if name.startswith(('/', '\\')) or re.match(r'^[A-Za-z]:', name) or '..' in path.parts:
        raise SubmissionError(f"the zip contains the unsafe path {name!r} (absolute or with '..'); "
                              f"it was not opened. Zip only your files and submit again.")
    return path.as_posix()


def _list_zip(path):
    """({relative path: loader} of the regular files of a zip, checked for safety,
    [relative paths of its symbolic links, which are never read])."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise SubmissionError(f"{path.name} is not a readable zip file ({error})") from None
    members, links, total = {}, [], 0
    for info in infos:
        name = _check_member_name(info.filename)
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            links.append(name)
            continue
        if info.is_dir() or _ignored(name):
            continue
        total += info.file_size
        if total > MAX_ZIP_BYTES:
            raise SubmissionError(f"the zip unpacks to more than {MAX_ZIP_BYTES // 2 ** 20} MB (a virtual "
                                  f"environment, data and caches not counted); it was not opened")
        members[name] = info

    def loader(info):
        if info.file_size > MAX_FILE_BYTES:
            raise SubmissionError(f"{info.filename} is larger than {MAX_FILE_BYTES // 2 ** 20} MB")
        try:
            with zipfile.ZipFile(path) as zf:
                return zf.read(info)
        except (zipfile.BadZipFile, OSError, RuntimeError) as error:  # corrupt or encrypted
            raise SubmissionError(f"cannot read {info.filename} from the zip ({error})") from None
    return {name: (lambda info=info: loader(info)) for name, info in members.items()}, links


def _list_folder(path):
    """({relative path: loader} of the regular files, [relative paths of links])."""
    files, links = {}, []
    for folder, dirs, names in os.walk(path):  # os.walk does not follow links to folders
        dirs[:] = [d for d in dirs if d not in IGNORED_FOLDERS and not d.endswith('.egg-info')]
        for name in names:
            full = Path(folder) / name
            rel = full.relative_to(path).as_posix()
            if full.is_symlink():
                links.append(rel)
            if full.is_symlink() or not full.is_file() or _ignored(rel):
                continue

            def loader(full=full):
                if full.stat().st_size > MAX_FILE_BYTES:
                    raise SubmissionError(f"{full.name} is larger than {MAX_FILE_BYTES // 2 ** 20} MB")
                return full.read_bytes()
            files[rel] = loader
    return files, links


def read_submission(path, spec):
    """({student file: bytes}, [notes]) from a submission folder or zip."""
    path = Path(path)
    members, links = _list_zip(path) if path.suffix.lower() == '.zip' else _list_folder(path)
    files, notes = {}, []
    zips = sorted(name for name in members if name.lower().endswith('.zip'))
    if path.is_dir() and len(zips) == 1 and not any(
            n == w or n.endswith('/' + w) for n in members for w in spec['student_files']):
        # a folder holding the student's zip (as course sites export them, or tools/submit.py's zip)
        notes.append(f"read {printable(zips[0])} in the folder")
        members, links = _list_zip(path / zips[0])
        zips = []
    for wanted in spec['student_files']:
        candidates = sorted((n for n in members if n == wanted or n.endswith('/' + wanted)),
                            key=lambda n: (n.count('/'), n))
        if not candidates:
            linked = [n for n in links if n == wanted or n.endswith('/' + wanted)]
            if linked:
                notes.append(f"{printable(linked[0])}: link ignored (the grader reads files, not symbolic "
                             f"links; submit the file itself)")
            elif zips:
                notes.append(f"{wanted} not found; zip inside the submission: {printable(', '.join(zips))} "
                             f"(not opened; submit one zip or a folder of files)")
            continue
        if len(candidates) > 1:
            notes.append(f"several {wanted} found; graded {candidates[0]}")
        files[wanted] = members[candidates[0]]()
    return files, notes


def find_submissions(folder, log=print):
    """[(name, path, problem or None)] for every entry of the folder that is a
    submission: folders and zips, and the archives and links the grader does
    not open (reported, with the reason, as a row of their own)."""
    found, seen = [], set()
    for entry in sorted(Path(folder).iterdir(), key=lambda p: p.name):
        if entry.name.startswith('.') or entry.name == '__MACOSX':
            continue
        lower, problem = entry.name.lower(), None
        archive = next((s for s in sorted(ARCHIVES, key=len, reverse=True) if lower.endswith(s)), None)
        if entry.is_symlink():
            name = entry.name
            problem = ("the submission is a symbolic link; the grader does not follow links "
                       "(copy the folder or zip in instead)")
        elif entry.is_dir():
            name = entry.name
        elif lower.endswith('.zip'):
            name = entry.name[:-4]
        elif archive:
            name = entry.name[:-len(archive)]
            problem = (f"a {archive} archive: the grader opens .zip files and folders only; "
                       f"submit a .zip (python3 tools/quickstart.py submit makes one)")
        else:
            if log:
                log(f"ignored {printable(entry.name)}: not a folder or an archive")
            continue
        if name in seen:
            name = entry.name
        name = printable(name)
        seen.add(name)
        found.append((name, entry, problem))
    return found


SUBMISSION_ZIP = re.compile(r'submission-([\w-]+)\.zip', re.IGNORECASE)   # as tools/submit.py names it


def declared_assignment(path):
    """The assignment a submission says it is for, or None: the name of its zip
    (submission-<assignment>.zip, as tools/submit.py writes it, also inside a
    folder) or the assignment in the handout's tools/submission.json it holds.
    Read without following links and with a size cap."""
    path = Path(path)
    if path.is_symlink():
        return None
    entries = [p for p in path.iterdir() if not p.is_symlink()] if path.is_dir() else [path]
    for entry in entries:
        match = SUBMISSION_ZIP.fullmatch(entry.name)
        if match and entry.is_file():
            return match.group(1)
    info = path / 'tools' / 'submission.json'
    if path.is_dir() and info.is_file() and not info.is_symlink():
        try:
            value = json.loads(child_outputs.read_capped(str(info), 65536)).get('assignment')
        except (child_outputs.OutputError, ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None
    return None


def files_named_in(path, limit=10000):
    """The base names of the files a submission holds (a zip's member names,
    a folder's files), without extracting or following links."""
    path = Path(path)
    if path.is_symlink():
        return set()
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as archive:
                return {PurePosixPath(name).name for name in archive.namelist()[:limit]}
        except (zipfile.BadZipFile, OSError, ValueError):
            return set()
    names = set()
    for folder, subfolders, files in os.walk(path):   # os.walk does not follow links to folders
        names.update(files)
        if len(names) > limit:
            break
    return names


def assignment_from_files(path, manifest):
    """The assignment whose own student files (those of no other assignment:
    layers.py for mlp, im2col.py for cnn, runner.ipynb for softmax) the
    submission holds, when exactly one matches; else None."""
    files = {a: set(spec.get('student_files', ())) for a, spec in manifest['assignments'].items()}
    held = files_named_in(path)
    matches = [a for a, own in files.items()
               if held & (own - set().union(*(f for b, f in files.items() if b != a)))]
    return matches[0] if len(matches) == 1 else None


def class_assignment(manifest, asked, submissions):
    """The assignment to grade: `asked` (--assignment) or, if None, the one the
    submissions name (their zip's name, tools/submission.json, or the student
    files only that assignment has; else the manifest's default). Raises HandoutError when a
    submission names another one than --assignment, or submissions name several."""
    declared = {}
    for name, path, problem in submissions:
        if not problem:
            found = declared_assignment(path) or assignment_from_files(path, manifest)
            if found:
                declared.setdefault(found, []).append(name)
    if asked:
        other = {a: names for a, names in declared.items() if a != asked}
        if other:
            a, names = sorted(other.items())[0]
            raise af.HandoutError(f"--assignment {asked}, but {len(names)} submission(s) are for the '{a}' "
                                  f"assignment (e.g. {', '.join(names[:3])}); grade them with --assignment {a}, "
                                  f"or move them out of this folder")
        return asked
    if len(declared) > 1:
        raise af.HandoutError("the submissions are for several assignments: " + '; '.join(
            f"'{a}' ({', '.join(names[:3])})" for a, names in sorted(declared.items()))
            + "; put each assignment's submissions in a folder of its own and give --assignment")
    if declared:
        return next(iter(declared))
    return manifest.get('default_assignment') or next(iter(manifest['assignments']))


def shard_of(submissions, shard):
    """The i-th of n deterministic slices (shard = (i, n), 1-based): every n-th submission in name order."""
    i, n = shard
    return [s for index, s in enumerate(sorted(submissions, key=lambda s: s[0])) if index % n == i - 1]


# ---------------------------------------------------------------------------
# The grading run: inputs, expected values, the handout template
# ---------------------------------------------------------------------------

class GradingRun(object):
    """Everything shared by the submissions of one grading run (built in the
    main thread, read-only afterwards).

    isolation: 'auto' (the best that works here) or a mode of tools/sandbox.py;
    hidden: folders that no sandbox may show (the grader's outputs)."""

    def __init__(self, root, assignment, seed=None, only=None, time_limit=None, check_timeout=None,
                 memory_limit_mb=None, workspace=None, python=None, isolation='auto', hidden=()):
        self.root = Path(root).resolve()
        self.python = str(python or sys.executable)   # the child's interpreter (needs NumPy)
        self.manifest = af.load_manifest(self.root / 'tools' / 'assignments.json')
        self.assignment = assignment
        self.spec = af.check_assignment(self.manifest, assignment)
        self.checks = load_checks(assignment, self.root)
        if not self.checks:
            raise af.HandoutError(f"assignment {assignment!r} has no graded checks yet "
                                  f"(tools/checks/{assignment}.py)")
        points = self.spec.get('checks', {})
        unknown = sorted(set(points) - {c.name for c in self.checks})
        if unknown:
            raise af.HandoutError(f"tools/assignments.json gives points to unknown checks of {assignment!r}: "
                                  f"{', '.join(unknown)}; the checks are {', '.join(c.name for c in self.checks)}")
        if only:
            self.checks = [c for c in self.checks if only in c.name]
            if not self.checks:
                raise af.HandoutError(f"no check of {assignment!r} matches {only!r}")
        self.points = {c.name: points.get(c.name, self.spec['default_points']) for c in self.checks}
        self.seed = secrets.randbits(32) if seed is None else int(seed)
        self.time_limit = float(time_limit or self.spec['time_limit'])
        self.check_timeout = float(check_timeout or self.spec['test_timeout'])
        self.memory_limit = int((memory_limit_mb or self.spec.get('memory_limit_mb', 3072)) * 2 ** 20)
        self.workspace = Path(workspace or tempfile.mkdtemp(prefix=f'grade-{assignment}-'))
        os.chmod(self.workspace, 0o711)   # sandboxes inside are 0700 each; their names are random
        self.keep = False
        try:
            self.isolation = sandbox.detect(self.python, self.root, self.workspace, hidden=hidden,
                                            wanted=isolation)
            self.inputs, self.expected = {}, {}
            for check in self.checks:
                rng = np.random.default_rng([self.seed, zlib.crc32(check.name.encode())])
                self.inputs[check.name] = check.make_inputs(rng)
                self.expected[check.name] = check.run_reference(self.inputs[check.name], self.root)
            self.template = self.workspace / 'handout'
            af.make_handout(self.root, self.template, assignment, self.manifest,   # checks never read notebooks
                            exclude=list(self.manifest['not_in_grading_sandbox']) + ['*.ipynb'])
            self.secret_lines = secret_lines(self.root, self.manifest, self.checks)
        except BaseException:
            shutil.rmtree(self.workspace, ignore_errors=True)
            raise

    def max_score(self):
        return sum(self.points.values())


def secret_lines(root, manifest, checks):
    """Whitespace-free lines that must never reach feedback: the hidden tests,
    the hidden checks' child code and every solution line of the reference."""
    lines = set()
    for path in (root / manifest['hidden_tests_dir']).rglob('*.py'):
        lines.update(path.read_text(encoding='utf-8', errors='replace').splitlines())
    for check in checks:
        if check.hidden:
            lines.update(check.child_source().splitlines())
    lines.update(af.solution_lines(root, manifest))
    squeezed = {re.sub(r'\s+', '', line) for line in lines}
    return {line for line in squeezed if len(line) >= 12}


LONG_TOKEN = re.compile(r'[A-Za-z0-9+/=_-]{40,}')
CONTROL = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]')


def cut_at_word(text, limit, mark=' ...'):
    """text, or its start cut at the end of a sentence (if one ends in its last
    third) or else of a word, within `limit` characters, followed by `mark`."""
    if len(text) <= limit:
        return text
    head = text[:limit + 1]
    sentence = max(head.rfind('. '), head.rfind('; '), head.rfind(': '))
    if sentence >= limit * 2 // 3:
        return head[:sentence + 1] + mark
    space = head.rfind(' ')
    return (head[:space] if space > 0 else head[:limit]).rstrip(' ,;:') + mark


def scrub(text, secret, limit=MESSAGE_CHARS):
    """Free text from student code, fit to show: control characters removed,
    long encoded-looking runs cut, withheld if it quotes grading material."""
    text = CONTROL.sub('', str(text))[:4 * limit]
    squeezed = re.sub(r'\s+', '', text)
    if any(line in squeezed for line in secret):
        return '(message withheld: it quotes grading material)'
    text = LONG_TOKEN.sub('[...]', text)
    return cut_at_word(text, limit, ' [...]')


# ---------------------------------------------------------------------------
# Running one submission's checks in a child process
# ---------------------------------------------------------------------------

def child_environment(isolation, sandbox):
    home = isolation.working_folder(sandbox)
    env = {'PATH': '/usr/bin:/bin', 'HOME': home, 'TMPDIR': '/tmp' if isolation.isolated else f'{home}/tmp',
           'LANG': 'C.UTF-8', 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1',
           'MKL_NUM_THREADS': '1', 'PYTHONHASHSEED': '0',
           'MNIST_DECOMPRESSED_CACHE': ''}   # no 47 MB cache of the data in every sandbox
    if 'SYSTEMROOT' in os.environ:
        env['SYSTEMROOT'] = os.environ['SYSTEMROOT']
    return env


def child_settings(run, status_fd):
    """The first line the child reads: what to import and its limits."""
    return {'student_files': [Path(f).name for f in run.spec['graded_files']],
            'import_first': [Path(f).stem for f in run.spec['graded_files'] if f.endswith('.py')],
            'check_timeout': run.check_timeout, 'status_fd': status_fd,
            'limits': {'RLIMIT_FSIZE': FILE_SIZE_LIMIT, 'RLIMIT_CORE': 0}}


def check_groups(checks):
    """The checks in the order they run, one child process per group: first every
    check that carries no constant, then each check that carries one (e.g. the
    original framework's code) alone, in a fresh child, so that what it carries
    cannot help any check scored before it."""
    plain = [c for c in checks if not c.constants]
    return ([plain] if plain else []) + [[c] for c in checks if c.constants]


class ChildConversation(object):
    """Feeds one child its checks one at a time and times each with the grader's
    clock. Used as run_contained's stop_check: every poll it reads the status
    pipe, collects a finished check's results, sends the next check, and says
    when to stop the child (all done, or a check over its time limit)."""

    def __init__(self, run, sandbox, checks, request_fd, status_fd):
        self.run, self.sandbox, self.todo = run, sandbox, list(checks)
        self.request_fd, self.status_fd = request_fd, status_fd
        self.outcomes, self.current, self.buffer = {}, None, b''
        self.ready, self.since, self.lines = False, time.monotonic(), 0

    def send_next(self):
        if not self.todo:
            self.current = None
            return 'done'
        check = self.todo.pop(0)
        stem = f'grader-out/{secrets.token_hex(8)}'
        request = {'id': check.name, 'source': check.child_source(), 'function': check.child.__name__,
                   'inputs': f'grader-in/{check.name}.npz', 'outputs': stem}
        self.current, self.since, self.stem = check, time.monotonic(), stem
        with contextlib.suppress(OSError):   # a child that stopped reading: the check runs out of time
            os.write(self.request_fd, (json.dumps(request) + '\n').encode())
        return None

    def collect(self, check):
        """The outcome of a check the child says has ended, read as untrusted data."""
        folder, name = self.stem.split('/')
        try:
            folder_fd = child_outputs.open_folder(self.sandbox / folder)
        except child_outputs.OutputError as error:
            return ('failed', str(error))
        try:
            if child_outputs.exists(name + '.json', folder_fd):
                return ('error', child_outputs.load_error(name + '.json', folder_fd))
            return ('outputs', child_outputs.load_npz(name + '.npz', self.run.expected[check.name], folder_fd))
        except child_outputs.OutputError as error:
            return ('failed', str(error))
        finally:
            os.close(folder_fd)

    def __call__(self):
        try:
            chunk = os.read(self.status_fd, 65536)
        except OSError:   # nothing to read yet (non-blocking)
            chunk = b''
        self.buffer += chunk
        self.lines += chunk.count(b'\n')
        if len(self.buffer) > 65536 or self.lines > MAX_STATUS_LINES:
            return 'garbled status'   # the probe writes one line per check and 'ready': a flood is student code
        while b'\n' in self.buffer:
            line, self.buffer = self.buffer.split(b'\n', 1)
            line = line.decode('utf-8', errors='replace')
            if line == 'ready' and not self.ready:
                self.ready = True
                if self.send_next() == 'done':
                    return 'done'
            elif self.current is not None and line == f'end {self.current.name}':
                self.outcomes[self.current.name] = self.collect(self.current)
                if self.send_next() == 'done':
                    return 'done'
        if time.monotonic() - self.since > self.run.check_timeout + GRACE_SECONDS:
            return 'check time limit'
        return None


def run_child(run, session, checks, time_limit):
    """One child process running `checks` in order until they are done or it
    stops. Returns (conversation, run_contained's result)."""
    request_read, request_write = os.pipe()
    status_read, status_write = os.pipe()
    os.set_blocking(request_write, False)
    os.set_blocking(status_read, False)
    try:
        os.write(request_write, (json.dumps(child_settings(run, status_write)) + '\n').encode())
        conversation = ChildConversation(run, session['folder'], checks, request_write, status_read)
        program = PROBE.read_text(encoding='utf-8') + '\n\nmain()\n'
        command = run.isolation.command([run.python, '-I', '-u', '-c', program], session['folder'])
        result = process_guard.run_contained(
            command, cwd=session['folder'], env=child_environment(run.isolation, session['folder']),
            stdin=request_read, time_limit=time_limit, memory_limit=run.memory_limit,
            file_size_limit=FILE_SIZE_LIMIT, stop_check=conversation, pass_fds=(status_write,),
            user=session['user'], wake_fd=status_read)
    finally:
        for fd in (request_read, request_write, status_read, status_write):
            with contextlib.suppress(OSError):
                os.close(fd)
    return conversation, result


SUBMISSION_LIMITS = {
    'time limit': lambda run: f"the time limit of the whole submission ({run.time_limit:g} s) was reached",
    'memory limit': lambda run: (f"the processes of this submission together used more than "
                                 f"{run.memory_limit // 2 ** 20} MB of memory"),
    'too many processes': lambda run: "the code started too many processes",
}


def run_group(run, session, checks, deadline):
    """Run a group of checks (see check_groups), starting a new child after a
    crash or a check over its time limit. Returns (status, {check: outcome}, output).

    outcome: ('outputs', {name: array}) | ('error', dict) | ('failed', message) |
             ('stopped', message) | ('not run', message)."""
    outcomes, status, output = {}, 'ok', ''
    for _ in range(MAX_RUNS):
        todo = [c for c in checks if c.name not in outcomes]
        remaining = deadline - time.monotonic()
        if not todo:
            break
        if remaining <= 0:
            status = 'time limit'
            for c in todo:
                outcomes[c.name] = ('not run', f"not run: {SUBMISSION_LIMITS['time limit'](run)} before this check")
            break
        conversation, result = run_child(run, session, todo, remaining)
        outcomes.update(conversation.outcomes)
        output = result['output']
        stopped, code, current = result['stopped'], result['returncode'], conversation.current
        if stopped == 'done':
            continue
        if stopped in SUBMISSION_LIMITS:
            status = stopped
            what = SUBMISSION_LIMITS[stopped](run)
            if current is not None:
                outcomes[current.name] = ('stopped', f"stopped: {what} during this check")
            for c in todo:
                outcomes.setdefault(c.name, ('not run', f"not run: {what} before this check"))
            break
        if stopped == 'garbled status':
            status = 'crashed' if status == 'ok' else status
            why = "stopped: your code wrote into the pipe on which the grading process reports its progress"
            for c in ([current] if current is not None else []) + ([] if conversation.ready else todo):
                outcomes.setdefault(c.name, ('stopped', why))
            continue
        if not conversation.ready:
            if stopped == 'check time limit':
                status, why = 'time limit', (f"not run: importing your files took longer than "
                                             f"{run.check_timeout:g} s")
            else:
                status, why = 'exited early', (f"not run: your code ended the grading process while it was being "
                                               f"imported (exit code {code}: os._exit or a crash at import?)")
            for c in todo:
                outcomes.setdefault(c.name, ('not run', why))
            break
        if current is None:
            break
        if stopped == 'check time limit':
            status = 'time limit' if status == 'ok' else status
            outcomes[current.name] = ('stopped', f"took longer than {run.check_timeout:g} s and was stopped "
                                                 f"(an endless loop, or code that ignores the stop signal?)")
        else:
            status = 'crashed' if status == 'ok' else status
            outcomes[current.name] = ('stopped', f"the process running your code ended during this check (exit "
                                                 f"code {code}); the other checks were run again in a new process")
    for c in checks:
        outcomes.setdefault(c.name, ('not run', "not run: the process running your code kept ending before "
                                                "this check (see the output below)"))
    return status, outcomes, output


def run_checks(run, session):
    """Every check of the run on one sandbox, group by group (check_groups).
    Returns (status, {check: outcome}, output of the last child)."""
    deadline = time.monotonic() + run.time_limit
    status, outcomes, output = 'ok', {}, ''
    for group in check_groups(run.checks):
        group_status, group_outcomes, group_output = run_group(run, session, group, deadline)
        outcomes.update(group_outcomes)
        if group_status != 'ok':
            status, output = (group_status if status == 'ok' else status), group_output
        output = output or group_output
    return status, outcomes, output


def judge(run, check, outcome, secret):
    """A check's row: passed or failed, points, message, and the anonymised
    category of the failure for the class summary. Trusted side only."""
    kind, value = outcome
    points = run.points[check.name]
    row = {'check': check.name, 'about': check.about, 'hidden': check.hidden, 'max_points': points,
           'points': 0, 'passed': False, 'message': '', 'category': ''}
    try:
        if kind == 'outputs':
            try:
                check.compare(value, run.expected[check.name], run.inputs[check.name])
            except CheckFailed:
                raise
            except Exception as error:  # noqa: BLE001  (odd values from the child never stop the grader)
                raise CheckFailed(f"your results could not be compared with the expected ones "
                                  f"({type(error).__name__})") from None
            row.update(passed=True, points=points)
            return row
        if kind == 'error':
            exception = str(value.get('exception', 'an exception'))[:60]
            if not re.fullmatch(r'[A-Za-z_][\w.]*', exception):
                exception = 'an exception'
            message = scrub(value.get('message', ''), secret)
            if check.hidden:
                message = message.strip().split('\n')[0]
            where = value.get('where')
            files = {Path(f).name for f in run.spec['graded_files']}
            place = (f" (raised in {where})" if isinstance(where, str) and
                     re.fullmatch(r'[\w.-]+\.py, line \d+', where) and where.split(',')[0] in files else '')
            row['category'] = f"your code raised {exception}{re.sub(r', line [0-9]+', '', place)}"
            raise CheckFailed(f"your code raised {exception}: {message}{place}")
        raise CheckFailed(value)
    except CheckFailed as failure:
        row['message'] = str(failure)
        if not row['category']:
            row['category'] = cut_at_word(re.sub(r'-?\d[\d.e+-]*', '#', str(failure).split('\n')[0]), 160)
    return row


def make_sandbox(run, files, overlay=None):
    """A new sandbox folder: the handout copy, `overlay` ({relative path: bytes})
    and the graded files, the checks' inputs, an empty folder for outputs.
    Returns ({'folder', 'user'}, {graded file: 'submitted' | 'handout version'})."""
    folder = Path(tempfile.mkdtemp(prefix='s', dir=run.workspace))
    folder.rmdir()
    shutil.copytree(run.template, folder)
    for name, data in (overlay or {}).items():
        (folder / name).write_bytes(data)
    used = {}
    for name in run.spec['graded_files']:
        if name in files:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(files[name])
            used[name] = 'submitted'
        else:
            used[name] = 'handout version'
    for sub in ('grader-in', 'grader-out', 'tmp'):
        (folder / sub).mkdir(exist_ok=True)
    for check in run.checks:
        np.savez(folder / 'grader-in' / f'{check.name}.npz', **run.inputs[check.name])
    return {'folder': folder, 'user': run.isolation.prepare(folder)}, used


def grade_files(run, files, overlay=None):
    """Run and judge the checks on one set of graded files. Returns
    {'status', 'rows', 'output', 'used': {file: 'submitted' | 'handout version'}}.
    overlay: {relative path: bytes} written over the handout first (the reference run only)."""
    session, used = make_sandbox(run, files, overlay)
    try:
        started = time.monotonic()
        status, outcomes, output = run_checks(run, session)
        rows = [judge(run, check, outcomes[check.name], run.secret_lines) for check in run.checks]
        return {'status': status, 'rows': rows, 'output': output, 'used': used,
                'seconds': time.monotonic() - started}
    finally:
        if not run.keep:
            shutil.rmtree(session['folder'], ignore_errors=True)
            shutil.rmtree(str(session['folder']) + '.root', ignore_errors=True)


def other_assignments_code(run):
    """{file: reference bytes} of the handout's .py files that hold regions of
    other assignments only (stubs in the handout; e.g. layers.py's mlp helpers)."""
    known, found = set(run.manifest['assignments']), {}
    for path in sorted(run.template.rglob('*.py')):
        rel = path.relative_to(run.template).as_posix()
        reference = run.root / rel
        if rel in run.spec['graded_files'] or not reference.is_file():
            continue
        lines = reference.read_text(encoding='utf-8').split('\n')
        if af.find_regions(lines, rel, known):
            found[rel] = reference.read_bytes()
    return found


def grade_reference(run):
    """Grade the reference's own graded files: every check must pass. They run
    with the reference's versions of other assignments' code (see
    other_assignments_code): the reference solution may call them, a student's
    cannot (tools/handout.py --validate says when it does)."""
    files = {name: (run.root / name).read_bytes() for name in run.spec['graded_files']
             if (run.root / name).is_file()}
    return grade_files(run, files, overlay=other_assignments_code(run))


def grade_submission(run, name, path, problem):
    if problem:
        return invalid(run, name, 'invalid submission', problem)
    try:
        files, notes = read_submission(path, run.spec)
    except SubmissionError as error:
        return invalid(run, name, 'invalid submission', str(error))
    result = grade_files(run, files)
    broken = compile_errors(files)
    if broken:
        result['status'] = 'does not compile'
        notes += broken
    for student_file, how in result['used'].items():
        if how == 'handout version':
            notes.append(f"{student_file} was not in your submission: graded the handout version "
                         f"(its TODOs raise NotImplementedError)")
    return dict(result, name=name, notes=notes)


def compile_errors(files):
    """One note per submitted .py file that is not valid Python (compiled here, never run)."""
    notes = []
    for name, data in sorted(files.items()):
        if name.endswith('.py'):
            try:
                compile(data, name, 'exec', dont_inherit=True)
            except (SyntaxError, ValueError) as error:
                where = f" (line {error.lineno})" if getattr(error, 'lineno', None) else ''
                notes.append(f"{name} does not compile: {printable(getattr(error, 'msg', error))[:120]}{where}")
    return notes


def invalid(run, name, status, reason):
    rows = [{'check': c.name, 'about': c.about, 'hidden': c.hidden, 'max_points': run.points[c.name],
             'points': 0, 'passed': False, 'message': f"not run: {status}", 'category': f"not run: {status}"}
            for c in run.checks]
    return {'name': name, 'status': status, 'notes': [reason], 'rows': rows, 'output': '', 'used': {}}


# ---------------------------------------------------------------------------
# Feedback, CSV, class summary
# ---------------------------------------------------------------------------

def feedback_text(run, result):
    total = sum(r['points'] for r in result['rows'])
    lines = [f"Assignment: {run.assignment} - {run.spec.get('title', '')}",
             f"Student: {result['name']}",
             f"Score: {total:g} / {run.max_score():g}",
             f"Status: {result['status']}",
             f"Grading run: seed {run.seed} (every run draws new inputs)", '']
    if result['notes']:
        lines += ['Notes:'] + [f"  - {note}" for note in result['notes']] + ['']
    lines.append("Checks (the grader runs your code on its own inputs and compares the results with the "
                 "reference; [hidden] checks are not in your handout):")
    for row in result['rows']:
        label = 'PASSED' if row['passed'] else 'FAILED'
        hidden = '[hidden] ' if row['hidden'] else ''
        lines.append(f"  {label} {row['points']:g}/{row['max_points']:g}  {hidden}{row['check']}: {row['about']}")
        if row['message']:
            lines += ['            ' + line for line in row['message'].split('\n')]
    if result['status'] not in ('ok', 'invalid submission') and result.get('output'):
        tail = [scrub(line, run.secret_lines, OUTPUT_LINE_CHARS) for line in result['output'].splitlines()]
        lines += ['', 'End of the output of your code:'] + ['  ' + line for line in tail[-OUTPUT_LINES:]]
    return '\n'.join(lines) + '\n'


def write_csv(path, checks, results):
    """checks: [(name, max points)]; results: dicts with name, status, notes, rows."""
    maximum = sum(points for _, points in checks)
    with atomic_write(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['student', 'score', 'max_score', 'percent', 'status', 'notes'] + [n for n, _ in checks])
        for result in results:
            total = sum(r['points'] for r in result['rows'])
            writer.writerow([csv_cell(result['name']), f"{total:g}", f"{maximum:g}",
                             f"{100 * total / maximum:.1f}" if maximum else '0.0', csv_cell(result['status']),
                             csv_cell('; '.join(result['notes']))] + [f"{r['points']:g}" for r in result['rows']])


def summary_counts(results):
    """{check: {'graded': n, 'failed': n, 'categories': {category: n}}} (anonymised: no names, no free text)."""
    counts = {}
    for result in results:
        for row in result['rows']:
            entry = counts.setdefault(row['check'], {'graded': 0, 'failed': 0, 'categories': {}})
            entry['graded'] += 1
            if not row['passed']:
                entry['failed'] += 1
                entry['categories'][row['category']] = entry['categories'].get(row['category'], 0) + 1
    return counts


def summary_text(assignment, checks, counts):
    lines = [f"Class summary for '{assignment}': for each check, the share of submissions failing it and "
             f"the most common failure (numbers replaced by #).", '']
    for name, points in checks:
        entry = counts.get(name, {'graded': 0, 'failed': 0, 'categories': {}})
        share = entry['failed'] / entry['graded'] if entry['graded'] else 0.0
        lines.append(f"{name} ({points:g} points): {entry['failed']}/{entry['graded']} fail ({share:.0%})")
        ran = {c: n for c, n in entry['categories'].items() if not c.startswith('not run')}
        if ran:   # what the code got wrong; submissions that could not run are counted apart
            category, n = max(ran.items(), key=lambda item: (item[1], item[0]))
            lines.append(f"    most common ({n}): {category}")
        not_run = sum(n for c, n in entry['categories'].items() if c.startswith('not run'))
        if not_run:
            lines.append(f"    not run ({not_run}): invalid submissions, crashes or time limits before this check")
    return '\n'.join(lines) + '\n'


def write_outputs(out_csv, feedback_dir, assignment, checks, results, feedback_texts, summary_counts_):
    write_csv(out_csv, checks, results)
    stems = unique_file_names([r['name'] for r in results])
    for result in results:
        with atomic_write(Path(feedback_dir) / f"{stems[result['name']]}.txt", 'w', encoding='utf-8') as f:
            f.write(feedback_texts[result['name']])
    out_csv = Path(out_csv)
    with atomic_write(out_csv.with_name(out_csv.stem + '-summary.json'), 'w', encoding='utf-8') as f:
        json.dump({'assignment': assignment, 'checks': checks, 'counts': summary_counts_,
                   'feedback': {r['name']: stems[r['name']] + '.txt' for r in results}}, f, indent=1)
    with atomic_write(out_csv.with_name(out_csv.stem + '-summary.txt'), 'w', encoding='utf-8') as f:
        f.write(summary_text(assignment, checks, summary_counts_))


def grade_class(root, submissions_dir, out_csv, assignment, feedback_dir=None, jobs=None, time_limit=None,
                check_timeout=None, memory_limit_mb=None, keep=False, only=None, seed=None, shard=None,
                python=None, isolation='auto', log=print):
    """Grade every submission (or one shard); write the CSV, feedback files and class summary."""
    submissions = find_submissions(submissions_dir, log)
    if shard:
        submissions = shard_of(submissions, shard)
    if not submissions:
        raise SystemExit(f"no submission folders or archives found in {submissions_dir}"
                         + (f" for shard {shard[0]}/{shard[1]}" if shard else ''))
    jobs = jobs or usable_cores()
    out_csv = Path(out_csv)
    feedback_dir = Path(feedback_dir) if feedback_dir else out_csv.with_name(out_csv.stem + '-feedback')
    started = time.monotonic()
    run = GradingRun(root, assignment, seed, only, time_limit, check_timeout, memory_limit_mb, python=python,
                     isolation=isolation, hidden=(out_csv.parent, feedback_dir))
    run.keep = keep
    if run.isolation.warning:
        log(run.isolation.warning)
    log(f"Isolation of student code: {run.isolation.mode}")
    log(f"Set up in {time.monotonic() - started:.1f} s (handout copy, inputs, expected values)")
    started = time.monotonic()
    log(f"Grading {len(submissions)} submissions of '{assignment}' ({len(run.checks)} checks, seed {run.seed}) "
        f"with {jobs} parallel jobs ...")
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            reference_future = pool.submit(grade_reference, run)
            futures = {pool.submit(grade_submission, run, name, path, problem): name
                       for name, path, problem in submissions}
            results = []
            for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
                name = futures[future]
                try:
                    result = future.result()
                except Exception as error:  # a grader bug must not lose the other students' grades
                    result = invalid(run, name, 'grader error', repr(error))
                results.append(result)
                log(f"[{done}/{len(submissions)}] {name}: graded ({result['status']}, "
                    f"{result.get('seconds', 0):.1f} s)")
            reference = reference_future.result()
        elapsed = time.monotonic() - started
        log(f"Graded {len(submissions)} submissions and the reference in {elapsed:.0f} s with {jobs} jobs: "
            f"{elapsed / (len(submissions) + 1):.1f} s per submission, about "
            f"{3600 / elapsed * (len(submissions) + 1):.0f} an hour at this rate")
        failing = [f"{r['check']}: {r['message']}" for r in reference['rows'] if not r['passed']]
        if failing:
            raise SystemExit("the reference solution does not pass every check, so no grade was written:\n  "
                             + '\n  '.join(failing))
        results.sort(key=lambda r: r['name'])
        checks = [(c.name, run.points[c.name]) for c in run.checks]
        for result in results:
            log(f"  {result['name']}: {sum(r['points'] for r in result['rows']):g}/{run.max_score():g} "
                f"({result['status']})")
        write_outputs(out_csv, feedback_dir, assignment, checks, results,
                      {r['name']: feedback_text(run, r) for r in results}, summary_counts(results))
        log(f"Wrote {out_csv}, {len(results)} feedback files in {feedback_dir} and the class summary "
            f"{out_csv.stem}-summary.txt")
        log(f"Peak memory: grader {peak_memory_mb():.0f} MB (its own process; each submission's processes "
            f"are limited to {run.memory_limit // 2 ** 20} MB together)")
        return results
    finally:
        if not keep:
            shutil.rmtree(run.workspace, ignore_errors=True)


def gradescope_results(run, result):
    """A result in the Gradescope autograder format (results.json): score,
    max_score, the feedback as output, and one test per check. Hidden checks
    are shown after the due date, so that repeated submissions cannot probe them."""
    tests = []
    for row in result['rows']:
        label = f"[hidden] {row['check']}" if row['hidden'] else row['check']
        tests.append({'name': label, 'score': row['points'], 'max_score': row['max_points'],
                      'output': f"{row['about']}" + (f"\n{row['message']}" if row['message'] else ''),
                      'visibility': 'after_due_date' if row['hidden'] else 'visible'})
    return {'score': sum(r['points'] for r in result['rows']), 'max_score': run.max_score(),
            'output': feedback_text(run, result), 'visibility': 'visible', 'tests': tests}


def grade_for_gradescope(root, submission, results_path, assignment, time_limit=None, check_timeout=None,
                         memory_limit_mb=None, seed=None, python=None, isolation='auto', only=None, log=print):
    """Grade one submission (folder or zip) and write results.json (gradescope_results)."""
    results_path = Path(results_path)
    run = GradingRun(root, assignment, seed, only, time_limit, check_timeout, memory_limit_mb, python=python,
                     isolation=isolation, hidden=(results_path.resolve().parent,))
    if run.isolation.warning:
        log(run.isolation.warning)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            reference_future = pool.submit(grade_reference, run)
            result = pool.submit(grade_submission, run, 'submission', Path(submission), None).result()
            reference = reference_future.result()
        failing = [f"{r['check']}: {r['message']}" for r in reference['rows'] if not r['passed']]
        if failing:
            raise SystemExit("the reference solution does not pass every check, so no result was written:\n  "
                             + '\n  '.join(failing))
        with atomic_write(results_path, 'w', encoding='utf-8') as f:
            json.dump(gradescope_results(run, result), f, indent=1)
        log(f"{sum(r['points'] for r in result['rows']):g}/{run.max_score():g} ({result['status']}); "
            f"wrote {results_path}")
        return result
    finally:
        shutil.rmtree(run.workspace, ignore_errors=True)


def merge(csv_paths, out_csv, feedback_dir=None, log=print):
    """Combine the CSVs, feedback files and summaries of shards into one."""
    out_csv = Path(out_csv)
    feedback_dir = Path(feedback_dir) if feedback_dir else out_csv.with_name(out_csv.stem + '-feedback')
    header, rows, counts, checks, assignment, texts = None, [], {}, None, None, {}
    for path in map(Path, csv_paths):
        with open(path, newline='', encoding='utf-8') as f:
            reader = csv.reader(f)
            this_header = next(reader)
            if header is not None and this_header != header:
                raise SystemExit(f"{path} has other columns than {csv_paths[0]}: were the shards graded "
                                 f"with the same assignment and checks?")
            header = this_header
            rows.extend(reader)
        summary = json.loads(path.with_name(path.stem + '-summary.json').read_text(encoding='utf-8'))
        assignment, checks = summary['assignment'], [tuple(c) for c in summary['checks']]
        for check, entry in summary['counts'].items():
            total = counts.setdefault(check, {'graded': 0, 'failed': 0, 'categories': {}})
            total['graded'] += entry['graded']
            total['failed'] += entry['failed']
            for category, n in entry['categories'].items():
                total['categories'][category] = total['categories'].get(category, 0) + n
        for name, file_name in summary['feedback'].items():
            if name in texts:
                raise SystemExit(f"{name} is graded in two shards ({path}); grade each shard once")
            texts[name] = (path.with_name(path.stem + '-feedback') / file_name).read_text(encoding='utf-8')
    rows.sort(key=lambda row: row[0])
    with atomic_write(out_csv, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    stems = unique_file_names(sorted(texts))
    for name, text in texts.items():
        with atomic_write(feedback_dir / f"{stems[name]}.txt", 'w', encoding='utf-8') as f:
            f.write(text)
    with atomic_write(out_csv.with_name(out_csv.stem + '-summary.json'), 'w', encoding='utf-8') as f:
        json.dump({'assignment': assignment, 'checks': checks, 'counts': counts,
                   'feedback': {name: stems[name] + '.txt' for name in texts}}, f, indent=1)
    with atomic_write(out_csv.with_name(out_csv.stem + '-summary.txt'), 'w', encoding='utf-8') as f:
        f.write(summary_text(assignment, checks, counts))
    log(f"Merged {len(csv_paths)} shards: {len(rows)} submissions in {out_csv}")


def parse_shard(text):
    match = re.fullmatch(r'(\d+)/(\d+)', text or '')
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise argparse.ArgumentTypeError(f"--shard takes i/n with 1 <= i <= n (e.g. 2/8), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     epilog="See the Instructors section of README.md.")
    parser.add_argument('submissions', nargs='?', help='folder with one folder or .zip per student')
    parser.add_argument('--out', help='the CSV of grades to write (required unless --gradescope)')
    parser.add_argument('--gradescope', metavar='SUBMISSION', help='grade this one submission (a folder or zip) '
                        'and write its result in the Gradescope autograder format to --results (see '
                        'tools/run_autograder)')
    parser.add_argument('--results', default='results.json', help='the JSON file --gradescope writes '
                        '(default: results.json)')
    parser.add_argument('--assignment', help='assignment name (default: the one the submissions name, by their '
                        'submission-<name>.zip or tools/submission.json, else default_assignment of the manifest)')
    parser.add_argument('--feedback', help='folder for the feedback files (default: <out>-feedback beside the CSV)')
    parser.add_argument('--jobs', type=int, default=None, help='submissions graded in parallel (default: cores)')
    parser.add_argument('--shard', type=parse_shard, help='grade the i-th of n slices of the class (i/n), e.g. '
                        'one per job of a cluster array; combine the shards with --merge')
    parser.add_argument('--merge', nargs='+', metavar='CSV', help="combine the shards' CSVs (and their "
                        "feedback and summaries) into --out")
    parser.add_argument('--seed', type=int, help='seed of the inputs (default: a new one per run; shown in '
                        'the feedback)')
    parser.add_argument('--time-limit', type=float, default=None, help='seconds per submission (default: manifest)')
    parser.add_argument('--test-timeout', '--check-timeout', dest='check_timeout', type=float, default=None,
                        help='seconds per check (default: manifest test_timeout)')
    parser.add_argument('--memory-limit', type=float, default=None,
                        help='MB for all processes of a submission together (default: manifest, 3072)')
    parser.add_argument('-k', '--checks', dest='only', help="grade only the checks whose name contains this "
                        "(the scores then cover those checks only)")
    parser.add_argument('--python', help='interpreter that runs student code (default: this one); use one '
                        'installed outside the reference folder, so that nothing in its path leads there')
    parser.add_argument('--isolation', choices=('auto',) + sandbox.MODES, default='auto',
                        help="how student code is isolated (default: the best mode that works here; see README, "
                        "Instructors)")
    parser.add_argument('--keep', action='store_true', help='keep the temporary sandboxes (debugging)')
    parser.add_argument('--root', default=str(af.REPO), help='reference folder (default: this repository)')
    args = parser.parse_args(argv)
    if not args.out and not args.gradescope:
        parser.error("give --out CSV (or --gradescope SUBMISSION)")
    if args.merge:
        merge(args.merge, args.out, args.feedback)
        return 0
    root = Path(args.root).resolve()
    try:
        if args.gradescope:
            manifest = af.load_manifest(root / 'tools' / 'assignments.json')
            path = Path(args.gradescope)
            assignment = class_assignment(manifest, args.assignment, [(path.name, path, None)])
            grade_for_gradescope(root, path, args.results, assignment, args.time_limit, args.check_timeout,
                                 args.memory_limit, args.seed, args.python, args.isolation, args.only)
            return 0
        manifest = af.load_manifest(root / 'tools' / 'assignments.json')
        if not args.submissions or not Path(args.submissions).is_dir():
            print(f"error: {args.submissions} is not a folder", file=sys.stderr)
            return 2
        assignment = class_assignment(manifest, args.assignment, find_submissions(args.submissions, log=None))
        af.check_assignment(manifest, assignment)
        grade_class(root, args.submissions, args.out, assignment, args.feedback, args.jobs, args.time_limit,
                    args.check_timeout, args.memory_limit, args.keep, args.only, args.seed, args.shard,
                    args.python, args.isolation)
    except (af.HandoutError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
