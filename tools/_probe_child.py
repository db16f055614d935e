"""The child half of grading: runs the checks' child functions on the student's code.

tools/grade.py never writes this file into a sandbox: it runs
`python -I -c <this text + "main()">` in the sandbox (the handout with the
student's files) and talks to it through two pipes:

  standard input, one JSON line each:
    first   the settings: student_files, import_first, check_timeout, limits, status_fd
    then    one check at a time, sent when the previous one has ended:
            id, source and name of its child function, input and output file names
  the status pipe (its file descriptor is in the settings), one line each:
    "ready"      the graded files were imported
    "end <id>"   the check finished; its outputs (.npz) or error (.json) are written

For each check: inputs from the grader's .npz (np.load, allow_pickle=False),
outputs = child(inputs, modules) under an alarm, outputs written as .npz
(numbers only) or the error as .json.

Nothing here is trusted: the student's code runs in this process and may
change anything in it. The grader keeps its own clock for every check, treats
every file written here as data to validate, and computes every verdict itself.
"""

import importlib
import json
import os
import resource
import signal
import sys
import traceback

import numpy as np

MAX_MESSAGE = 400


class CheckTimeout(BaseException):
    """Raised in a check that runs longer than its limit (a BaseException, so
    that `except Exception:` in student code does not swallow it)."""


class StudentModules(object):
    """modules.loss, modules.optimizer, ...: the sandbox's modules, imported on first use."""

    def __getattr__(self, name):
        return importlib.import_module(name)


_status_fd = None


def _status(line):
    try:
        os.write(_status_fd, (line + '\n').encode())
    except OSError:
        pass


def _where(tb, student_files):
    place = None
    for frame in traceback.extract_tb(tb):
        if os.path.basename(frame.filename) in student_files:
            place = f"{os.path.basename(frame.filename)}, line {frame.lineno}"
    return place


def _save_outputs(path, outputs):
    if not isinstance(outputs, dict):
        raise TypeError(f"the check returned {type(outputs).__name__}, not a dict")
    arrays = {}
    for key, value in outputs.items():
        array = np.asarray(value)
        if array.dtype.kind not in 'biuf':
            raise TypeError(f"{key} is {type(value).__name__} ({array.dtype}), not a number or an array of numbers")
        arrays[str(key)] = array
    with open(path, 'wb') as f:
        np.savez(f, **arrays)


def _run_check(check, settings, modules):
    def on_alarm(signum, frame):
        raise CheckTimeout(f"took longer than {settings['check_timeout']:g} s and was stopped "
                           f"(an endless loop, or far too slow code?)")

    error = None
    try:
        namespace = {'__name__': 'grading_check'}
        exec(compile(check['source'], f"<check {check['id']}>", 'exec'), namespace)
        with np.load(check['inputs'], allow_pickle=False) as data:
            inputs = {key: data[key] for key in data.files}
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, settings['check_timeout'])
        try:
            outputs = namespace[check['function']](inputs, modules)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        _save_outputs(check['outputs'] + '.npz', outputs)
    except BaseException as exc:  # noqa: BLE001  (report everything, including SystemExit)
        error = {'exception': type(exc).__name__, 'message': str(exc)[:MAX_MESSAGE],
                 'where': _where(exc.__traceback__, set(settings['student_files']))}
    if error is not None:
        with open(check['outputs'] + '.json', 'w', encoding='utf-8') as f:
            json.dump(error, f)


def main():
    global _status_fd
    settings = json.loads(sys.stdin.readline())
    _status_fd = settings['status_fd']
    for name, value in settings['limits'].items():   # inherited by anything the student's code starts
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError, AttributeError):
            pass
    sys.path.insert(0, os.getcwd())
    sys.dont_write_bytecode = True
    for name in settings['import_first']:   # import errors are reported by the checks that need them
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001  (a SystemExit at import must not end the run here)
            pass
    _status('ready')
    modules = StudentModules()
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        check = json.loads(line)
        _run_check(check, settings, modules)
        _status(f"end {check['id']}")
