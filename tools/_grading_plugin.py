"""pytest plugin used by tools/handout.py --validate to observe the tests of a
reference or a fresh handout (trusted code only: grading itself does not run
pytest, see tools/grade.py).

Loaded with `-p _grading_plugin` from a folder the validation controls. It writes
one JSON object per line to the file named by GRADER_RESULTS, as soon as each
event happens, so that the results of the tests that ran survive a
submission that later crashes or hangs:

    {"kind": "collected", "tests": [{"nodeid": ..., "tags": [...]}, ...]}
    {"kind": "collect_error", "nodeid": ..., "message": ...}
    {"kind": "start", "nodeid": ...}
    {"kind": "result", "nodeid": ..., "outcome": "passed"|"failed"|"skipped",
     "exception": ..., "message": ..., "where": ...}

Environment:
- GRADER_RESULTS: the results file (required)
- GRADER_ASSIGNMENT: keep only the tests marked @pytest.mark.solution(<it>);
  unset: keep every test (validation observes them all)
- GRADER_SKIP: file of node ids not to run again (after a crash)
- GRADER_TEST_TIMEOUT: seconds per test (0: none); POSIX only
- GRADER_STUDENT_FILES: os.pathsep-separated file names whose lines are
  reported as the place an exception was raised
"""

import json
import os
import signal

import pytest

_RESULTS = os.environ.get('GRADER_RESULTS')
_ASSIGNMENT = os.environ.get('GRADER_ASSIGNMENT') or None
_TEST_TIMEOUT = float(os.environ.get('GRADER_TEST_TIMEOUT') or 0)
_STUDENT_FILES = set(filter(None, os.environ.get('GRADER_STUDENT_FILES', '').split(os.pathsep)))
_MAX_MESSAGE = 4000

_out = open(_RESULTS, 'a', encoding='utf-8') if _RESULTS else None
_phases = {}


class TestTimeout(BaseException):
    """Raised in a test that runs longer than its time limit. A BaseException,
    so that an `except Exception:` in the code under test cannot swallow it."""


def _write(**record):
    if _out is not None:
        _out.write(json.dumps(record) + '\n')
        _out.flush()


def _tags(item):
    return sorted({str(arg) for mark in item.iter_markers('solution') for arg in mark.args})


def pytest_configure(config):
    config.addinivalue_line('markers', 'solution(*assignments): the test needs the solution regions '
                                       'of every one of these assignments')


def pytest_collectreport(report):
    if report.failed:
        text = str(report.longrepr)
        errors = [line[4:] for line in text.splitlines() if line.startswith('E   ')]
        _write(kind='collect_error', nodeid=report.nodeid,
               message=('\n'.join(errors) or text)[-_MAX_MESSAGE:])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    skip_file = os.environ.get('GRADER_SKIP')
    skip = set(open(skip_file, encoding='utf-8').read().split('\n')) if skip_file else set()
    keep, drop = [], []
    for item in items:
        wanted = _ASSIGNMENT is None or _ASSIGNMENT in _tags(item)
        (keep if wanted and item.nodeid not in skip else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep
    _write(kind='collected', tests=[{'nodeid': item.nodeid, 'tags': _tags(item)} for item in keep])


def pytest_runtest_logstart(nodeid, location):
    _write(kind='start', nodeid=nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if _TEST_TIMEOUT <= 0 or not hasattr(signal, 'setitimer'):
        yield
        return

    def on_alarm(signum, frame):
        raise TestTimeout(f"the test took longer than {_TEST_TIMEOUT:g} s and was stopped "
                          f"(an endless loop, or far too slow code?)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, _TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _where(excinfo):
    """'loss.py, line 57' for the deepest traceback entry in a student file."""
    place = None
    for entry in excinfo.traceback:
        if os.path.basename(str(entry.path)) in _STUDENT_FILES:
            place = f"{os.path.basename(str(entry.path))}, line {entry.lineno + 1}"
    return place


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    state = _phases.setdefault(item.nodeid, {'outcome': 'passed'})
    if state['outcome'] != 'passed':
        return
    if report.skipped and report.when != 'teardown':
        state['outcome'] = 'skipped'
        state['message'] = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ''
    elif report.failed:
        state['outcome'] = 'failed'
        excinfo = call.excinfo
        if excinfo is not None:
            message = str(excinfo.value)
            state['exception'] = excinfo.type.__name__
            state['message'] = message[:_MAX_MESSAGE]
            state['where'] = _where(excinfo)
        else:
            state['message'] = str(report.longrepr)[-_MAX_MESSAGE:]
        if report.when != 'call':
            state['message'] = f"(during test {report.when}) " + state.get('message', '')


def pytest_runtest_logfinish(nodeid, location):
    state = _phases.pop(nodeid, {'outcome': 'failed', 'message': 'no report'})
    _write(kind='result', nodeid=nodeid, **state)
