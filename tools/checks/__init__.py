"""Graded checks: the student's code runs in a child process, the verdict is computed here.

A check is three small functions:

- make_inputs(rng) -> {name: array}: the inputs, drawn by the trusted grader
  from a seed chosen per grading run (so precomputed answers do not help);
- child(inputs, modules) -> {name: number or array}: calls the code under
  test, e.g. modules.loss.SoftmaxCrossEntropyLoss, on those inputs. Its
  source is sent to the child process (tools/_probe_child.py), where
  `modules` are the student's; it must be self-contained (imports inside,
  no globals other than the `constants` of its Check);
- compare(got, expected, inputs): the trusted half. `expected` is what the
  same child function returns when the grader runs it on the *reference*
  modules in its own process; raise CheckFailed(message) to fail.

The child's outputs reach compare() only after the grader has read them as
untrusted data (tools/child_outputs.py: exactly the expected names, numeric
dtypes, bounded sizes; no pickle). Messages are written here, from the
comparison (which array, relative error, first differing index), never by
student code.

An assignment's checks live in tools/checks/<assignment>.py and its hidden
checks in tools/checks/<assignment>_hidden.py, each returned by the module's
function checks(root) (root: the reference folder); their points are in
tools/assignments.json under "checks".
"""

import importlib
import inspect
import sys
import textwrap
from pathlib import Path

import numpy as np

from testkit.gradients import assert_close   # the comparison and messages the tests use too
from testkit.vectorised import executed_lines, growing_lines, loop_message


class CheckFailed(Exception):
    """A check's verdict: failed, with a message for the student."""


class Check(object):
    """One graded check (see the module docstring).

    name: short id, used in tools/assignments.json, the CSV and the feedback.
    about: one line saying what it checks, shown in the feedback.
    hidden: not described to students before grading; its child source is
        sent at run time only, and free text from student code is shown for
        it in its first line only.
    constants: {name: str or number} prepended to the child's source (for
        code the child needs, such as the original framework's files).
    helpers: functions the child function calls, sent with it.
    """

    def __init__(self, name, about, make_inputs, child, compare, hidden=False, constants=None, helpers=()):
        self.name, self.about, self.hidden = name, about, hidden
        self.make_inputs, self.child, self.compare = make_inputs, child, compare
        self.constants, self.helpers = dict(constants or {}), list(helpers)

    def child_source(self):
        """The code sent to the child: constants, helper functions, the child function."""
        lines = [f"{name} = {value!r}" for name, value in self.constants.items()]
        functions = [textwrap.dedent(inspect.getsource(f)) for f in self.helpers + [self.child]]
        return '\n'.join(lines + functions)

    def run_reference(self, inputs, root):
        """The expected outputs: the child function on the reference modules, here."""
        namespace = {'__name__': 'grading_check'}
        exec(compile(self.child_source(), f"<check {self.name}>", 'exec'), namespace)
        outputs = namespace[self.child.__name__]({k: v.copy() for k, v in inputs.items()},
                                                ReferenceModules(root))
        return {key: np.asarray(value) for key, value in outputs.items()}


class ReferenceModules(object):
    """modules.loss, modules.optimizer, ... of the reference (trusted) folder."""

    def __init__(self, root):
        root = str(Path(root).resolve())
        if root not in sys.path:
            sys.path.insert(0, root)

    def __getattr__(self, name):
        return importlib.import_module(name)


def load_checks(assignment, root):
    """checks(root) of tools/checks/<assignment>.py, then of <assignment>_hidden.py
    (its hidden checks), each optional ([] if the assignment has none yet)."""
    found = []
    for name in (assignment, f'{assignment}_hidden'):
        try:
            module = importlib.import_module(f'checks.{name}')
        except ModuleNotFoundError as error:
            if error.name == f'checks.{name}':
                continue
            raise
        found += module.checks(Path(root))
    names = [check.name for check in found]
    if len(set(names)) != len(names):
        raise ValueError(f"tools/checks/{assignment}.py: two checks share a name")
    return found


# ---------------------------------------------------------------------------
# Comparisons used by the checks
# ---------------------------------------------------------------------------

def close(got, expected, name, rtol=1e-7, atol=0.0):
    """Fail unless got matches expected: says which array, the relative error
    and the first differing index (testkit.gradients.assert_close)."""
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        raise CheckFailed(f"{name}: shape {got.shape}, expected {expected.shape}")
    try:
        assert_close(got, expected, name, rtol=rtol, atol=atol)
    except AssertionError as error:
        raise CheckFailed(str(error)) from None


def compare_all(rtol=1e-7, atol=0.0, names=None):
    """A compare() that checks every output (or `names`) with close()."""
    def compare(got, expected, inputs):
        for key in names or sorted(expected):
            close(got[key], expected[key], key, rtol=rtol, atol=atol)
    return compare


# ---------------------------------------------------------------------------
# Vectorisation: line counts measured in the child, judged here
# ---------------------------------------------------------------------------

def traced(make_run, files, sizes):
    """(line counts, value) of the code that make_run(size) returns, run for
    a small and a large size under testkit.vectorised.executed_lines. A helper
    of the child functions (sent with executed_lines).

    make_run(size) -> (run, value): run() calls the code under test once;
    value() returns what it computed (an array), so that only correct code
    can pass. Returns the counts as rows [file index, line, times for the
    small size, times for the large one, depth] (int64, (L, 5)) and the
    value of the large run (float64).
    """
    import os
    import numpy as np
    names = [os.path.basename(f) for f in files]
    counts, depths = [], {}
    for size in sizes:
        run, value = make_run(int(size))
        counts.append(executed_lines(run, files, depths))  # noqa: F821  (sent with this helper)
    rows = [[names.index(file), line, counts[0].get((file, line), 0), counts[1].get((file, line), 0),
             depths[(file, line)]] for file, line in set(counts[0]) | set(counts[1])]
    return np.array(sorted(rows), dtype=np.int64).reshape(-1, 5), np.asarray(value(), dtype=np.float64)


VECTORISED_HELPERS = [executed_lines, traced]


def counts_of_rows(rows, files):
    """The two Counters and the depths of traced()'s rows (untrusted: checked here)."""
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != 5 or rows.dtype.kind not in 'iu' or np.any(rows < 0) \
            or np.any(rows[:, 0] >= len(files)):
        raise CheckFailed("the line counts of this check could not be read (was the tracer changed?)")
    keys = [(files[f], int(line)) for f, line, _, _, _ in rows]
    return ({key: int(a) for key, a in zip(keys, rows[:, 2])}, {key: int(b) for key, b in zip(keys, rows[:, 3])},
            {key: int(d) for key, d in zip(keys, rows[:, 4])})


def compare_vectorised(files, parts):
    """A compare() for a vectorisation check: every part's value must match
    the reference's (loosely: the values are graded by other checks), then
    no line of `files` (names) may run once more per element.

    parts: [(label, what, sizes key)]: the child returns 'value: <label>'
    and 'line counts: <label>' (traced()); inputs[sizes key] holds the small
    and large size; `what` says what the size counts, for the message.
    """
    def compare(got, expected, inputs):
        for label, _, _ in parts:
            close(got[f'value: {label}'], expected[f'value: {label}'], f'{label} (the values of the traced run)',
                  rtol=1e-6, atol=1e-12)
        for label, what, sizes in parts:
            small, large = (int(s) for s in inputs[sizes])
            small_counts, large_counts, depths = counts_of_rows(got[f'line counts: {label}'], files)
            growing = growing_lines(small_counts, large_counts, small, large, depths)
            if growing:
                raise CheckFailed(loop_message(label, what, growing, small, large))
    return compare


# ---------------------------------------------------------------------------
# MNIST as the trusted side sees it (for checks that train)
# ---------------------------------------------------------------------------

_mnist = {}


def mnist(root):
    """(train images uint8 (60000, 784), train labels, test images, test labels) of root/data,
    read once per process with the reference's reader."""
    root = Path(root)
    if root not in _mnist:
        from dataloader import load_mnist
        _mnist[root] = load_mnist(root / 'data', 'train') + load_mnist(root / 'data', 't10k')
    return _mnist[root]


def image_mean(images):
    """The homework's default normalisation ('image_mean'): /255, then minus each image's mean."""
    x = images.astype(np.float64) / 255
    return x - x.mean(axis=1, keepdims=True)
