"""Shared test helpers, and a short first screen while TODOs are left.

- The thread policy (threads.py), applied before NumPy loads.
- A tiny, learnable MNIST-like data set: use the `tiny_mnist` fixture for a
  ready-made folder (a copy of one written once per run), or call
  `make_tiny_mnist(folder, ...)` (e.g. `from conftest import
  make_tiny_mnist`) when a test needs another size, naming style or number
  of classes. `mnist_subset`: a tenth of the real MNIST, for notebook tests.
- Before a student has filled the TODOs, most tests fail for one reason
  each: `raise NotImplementedError("X is not implemented yet ...")`. The
  hooks at the end list those TODOs (file, function) and the next step at
  the top of the output, report each such failure in one line instead of a
  page of traceback, and repeat the list under the summary.
"""

# The project's thread policy (threads.py: one BLAS thread unless you set
# OPENBLAS_NUM_THREADS yourself), applied before anything imports NumPy, so
# that plain `pytest` runs as `python3 tools/quickstart.py test` does. The
# repository root is on the import path through pyproject.toml's pythonpath.
from threads import apply_thread_policy, describe_threads

apply_thread_policy()

import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dataloader import write_idx  # noqa: E402
from public_checks_note import public_checks_note  # noqa: E402  (handouts: 'these are the public tests')
from tools.submit import todos_left  # noqa: E402  (what a TODO left looks like)

REPO_ROOT = Path(__file__).resolve().parents[1]

IMAGE_SIZE = 28     # rows and columns, as in MNIST
BORDER = 4          # MNIST digits leave a blank border; so do ours
NOISE_STD = 60.0    # pixel noise around the class prototype, in 0..255 units


def _file_name(kind, what, compress, naming):
    idx = 'idx3' if what == 'images' else 'idx1'
    separator = '-' if naming == 'dash' else '.'
    return f'{kind}-{what}{separator}{idx}-ubyte' + ('.gz' if compress else '')


def _make_split(rng, prototypes, num_samples):
    """Balanced labels in random order, and prototype-plus-noise images.

    Returns images (num_samples, 28, 28) uint8 and labels (num_samples,) uint8.
    """
    num_classes = len(prototypes)
    labels = rng.permutation(np.arange(num_samples) % num_classes).astype(np.uint8)
    noise = rng.normal(0.0, NOISE_STD, size=(num_samples, IMAGE_SIZE, IMAGE_SIZE))
    images = np.clip(prototypes[labels] + noise, 0, 255)
    # Keep the border blank, like MNIST: those pixels are constant (0), which
    # is the case the 'standardize' normalisation has to cope with.
    inside = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    inside[BORDER:-BORDER, BORDER:-BORDER] = True
    images[:, ~inside] = 0
    return images.round().astype(np.uint8), labels


def make_tiny_mnist(root, n_train=600, n_test=100, seed=0, compress=True,
                    naming='dash', num_classes=10):
    """Write a tiny MNIST-like data set in IDX format and return its folder.

    Every class has its own random prototype image (about a quarter of the
    inner pixels lit); a sample is its class prototype plus Gaussian noise,
    clipped to 0..255. Classes are therefore easy to tell apart, and a
    softmax regression learns them within a few epochs, which makes the set
    useful for end-to-end tests of training code.

    Inputs:
    - root: folder to write to (created if needed).
    - n_train, n_test: number of images in the 'train' and 't10k' files.
      With the default 600, the val split is the last round(600 / 12) = 50.
    - seed: the same seed writes the same files.
    - compress: write .gz files if True, raw files otherwise.
    - naming: 'dash' (train-images-idx3-ubyte) or 'dot' (train-images.idx3-ubyte).
    - num_classes: 1 .. 256; labels are balanced (as equal as possible).

    Returns the folder as a pathlib.Path.
    """
    if naming not in ('dash', 'dot'):
        raise ValueError(f"naming must be 'dash' or 'dot', got {naming!r}")
    if not 1 <= num_classes <= 256:
        raise ValueError(f'num_classes must be 1 .. 256 (labels are uint8), got {num_classes}')
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    lit = rng.random((num_classes, IMAGE_SIZE, IMAGE_SIZE)) < 0.25
    prototypes = np.where(lit, 255.0, 0.0)          # (num_classes, 28, 28)

    for kind, num_samples in (('train', n_train), ('t10k', n_test)):
        images, labels = _make_split(rng, prototypes, num_samples)
        write_idx(root / _file_name(kind, 'images', compress, naming), images)
        write_idx(root / _file_name(kind, 'labels', compress, naming), labels)
    return root


@pytest.fixture(scope='session')
def tiny_mnist_files(tmp_path_factory):
    """The tiny data set, written once per test run (read-only: tests get copies)."""
    return make_tiny_mnist(tmp_path_factory.mktemp('tiny') / 'mnist')


@pytest.fixture
def tiny_mnist(tmp_path, tiny_mnist_files):
    """Folder with a tiny MNIST-like data set: 600 train and 100 test images.
    Each test gets its own copy, which it may change."""
    return Path(shutil.copytree(tiny_mnist_files, tmp_path / 'mnist'))


# Size of the MNIST subset: enough for a notebook's curves and tables to mean
# something, a tenth of the time of the full set.
SUBSET_TRAIN, SUBSET_TEST = 6000, 1000


@pytest.fixture(scope='session')
def mnist_subset(tmp_path_factory):
    """Folder with the first 6000 training and 1000 test images of the
    shipped MNIST (data/), written once per test run: notebook tests run
    their code on real digits in a tenth of the time."""
    if not (REPO_ROOT / 'data' / 'train-images-idx3-ubyte.gz').exists():
        pytest.skip('the shipped MNIST (data/) is not here')
    from dataloader import load_mnist
    root = tmp_path_factory.mktemp('mnist_subset')
    for kind, count in (('train', SUBSET_TRAIN), ('t10k', SUBSET_TEST)):
        images, labels = load_mnist(REPO_ROOT / 'data', kind)
        write_idx(root / _file_name(kind, 'images', True, 'dash'),
                  images[:count].reshape(-1, IMAGE_SIZE, IMAGE_SIZE))
        write_idx(root / _file_name(kind, 'labels', True, 'dash'), labels[:count])
    return root


# ---------------------------------------------------------------------------
# In a handout: tests of other assignments are skipped, not failed
# ---------------------------------------------------------------------------

def handout_assignments():
    """In a student handout, the assignments whose code it holds: its own and
    the released ones it builds on (tools/submission.json, written by
    tools/handout.py). None in the instructor's repository."""
    try:
        info = json.loads((REPO_ROOT / 'tools' / 'submission.json').read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
    return {info['assignment'], *info.get('builds_on', [])}


def pytest_collection_modifyitems(config, items):
    present = handout_assignments()
    if present is None:
        return
    for item in items:
        tags = {str(arg) for mark in item.iter_markers('solution') for arg in mark.args}
        missing = tags - present
        if missing:
            # A test needs the code of every assignment it names: e.g. an MLP
            # test in the softmax handout, or a CNN + MLP test in the mlp
            # handout. That code is a stub here, so a correct solution must
            # not see it fail.
            item.add_marker(pytest.mark.skip(reason=f"needs the code of the {', '.join(sorted(missing))} "
                                                    f"assignment, which this handout does not contain"))


# ---------------------------------------------------------------------------
# TODOs still to do: a short first screen
# ---------------------------------------------------------------------------

TODO_MESSAGE_RE = re.compile(r'(?P<target>[\w.]+) is not implemented yet')


def _next_step(todos):
    file, target, line = todos[0]
    return (f'Next step: write {target} in {file} (line {line} raises NotImplementedError; the '
            f'TODO comment above it says what to compute), then run the tests again.')


def pytest_report_header(config):
    threads = f'threads: {describe_threads()}'
    todos = todos_left(REPO_ROOT)
    if not todos:
        return threads
    width = max(len(file) for file, _, _ in todos)
    return ([threads, f'TODOs still to do ({len(todos)}): until each is written, the tests that use it '
             f'fail with NotImplementedError (one line each below).']
            + [f'  {file:<{width}}  {target}' for file, target, _ in todos]
            + [_next_step(todos)])


class TodoFailure:
    """The report of a test that failed only because a TODO is left: one
    line. (No `reprcrash`, so pytest's short summary shows the test's name
    alone instead of a message cut to the terminal width.)"""

    def __init__(self, text):
        self.text = text

    def toterminal(self, writer):
        writer.line(self.text)

    def __str__(self):
        return self.text


def _todo_of(call):
    """The TODO ('Class.method') a failed test call ran into, or None."""
    if call.excinfo is None:
        return None
    error = call.excinfo.value
    # Directly (NotImplementedError), or reported by a test that ran the
    # student's code elsewhere (the notebook test, a subprocess).
    if not isinstance(error, (NotImplementedError, pytest.fail.Exception)):
        return None
    match = TODO_MESSAGE_RE.search(str(error))
    return match['target'] if match else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    target = _todo_of(call) if report.failed else None
    if target is not None:
        where = next((f'{file}:{line}' for file, name, line in todos_left(REPO_ROOT) if name == target), '')
        # One line instead of the test's source and a traceback: the cause is
        # the same for every test that reaches this TODO.
        report.longrepr = TodoFailure(f'TODO {target} is not written yet ({where or "see its file"}): '
                                      f'the full list is under the short test summary.')
        report.user_properties.append(('todo', target))
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # tryfirst makes this the outermost wrapper, so the lines below come
    # after pytest's short test summary: the last thing on the screen.
    result = yield
    counts = {}
    for report in terminalreporter.stats.get('failed', []):
        for name, value in getattr(report, 'user_properties', ()):
            if name == 'todo':
                counts[value] = counts.get(value, 0) + 1
    if counts:
        todos = todos_left(REPO_ROOT)
        write = terminalreporter.write_line
        terminalreporter.write_sep('=', 'TODOs still to do', yellow=True)
        for file, target, line in todos:
            count = counts.pop(target, 0)
            write(f'{file}:{line}  {target}  '
                  + (f'({count} failed tests need it)' if count else '(no test reached it yet)'))
        for target, count in counts.items():          # raised from somewhere else
            write(f'{target}  ({count} failed tests need it)')
        other = len(terminalreporter.stats.get('failed', [])) - sum(
            1 for r in terminalreporter.stats.get('failed', [])
            if any(name == 'todo' for name, _ in getattr(r, 'user_properties', ())))
        if other:
            write(f'{other} other failed tests: see their details above.')
        if todos:
            write(_next_step(todos))
    if public_checks_note():
        terminalreporter.write_line(public_checks_note())
    return result
