"""The child half of grading: runs the checks' child functions on the student's code.

tools/grade.py never writes this file into a sandbox: it sends its text,
followed by one line `main(<request>)`, as the program on the standard input
of `python -I -`, run with its working folder in the sandbox (the handout
with the student's files). The request (JSON) holds, for every check to run,
its id, the source of its child function and the name of its input file.

For each check, in order:
  progress file:  "start <id>"
  inputs:         grader-in/<id>.npz (np.load, allow_pickle=False)
  call:           outputs = child(inputs, modules) under a per-check alarm
  outputs:        grader-out/<id>.npz (numbers only) or grader-out/<id>.json (the error)
  progress file:  "end <id>"

Nothing here is trusted: the student's code runs in this process and may
change anything in it. The grader treats every file written here as data
to validate, and computes every verdict itself.
"""

import importlib
import json
import os
import signal
import sys
import traceback

import numpy as np

IN_DIR, OUT_DIR = 'grader-in', 'grader-out'
MAX_MESSAGE = 400


class CheckTimeout(BaseException):
    """Raised in a check that runs longer than its limit (a BaseException, so
    that `except Exception:` in student code does not swallow it)."""


class StudentModules(object):
    """modules.loss, modules.optimizer, ...: the sandbox's modules, imported on first use."""

    def __getattr__(self, name):
        return importlib.import_module(name)


def _progress(line):
    with open(os.path.join(OUT_DIR, 'progress'), 'a', encoding='utf-8') as f:
        f.write(line + '\n')


def _where(tb, student_files):
    place = None
    for frame in traceback.extract_tb(tb):
        if os.path.basename(frame.filename) in student_files:
            place = f"{os.path.basename(frame.filename)}, line {frame.lineno}"
    return place


def _save_outputs(check_id, outputs):
    if not isinstance(outputs, dict):
        raise TypeError(f"the check returned {type(outputs).__name__}, not a dict")
    arrays = {}
    for key, value in outputs.items():
        array = np.asarray(value)
        if array.dtype.kind not in 'biuf':
            raise TypeError(f"{key} is {type(value).__name__} ({array.dtype}), not a number or an array of numbers")
        arrays[str(key)] = array
    np.savez(os.path.join(OUT_DIR, f'{check_id}.npz'), **arrays)


def main(request):
    sys.path.insert(0, os.getcwd())
    sys.dont_write_bytecode = True
    os.makedirs(OUT_DIR, exist_ok=True)
    student_files = set(request['student_files'])
    _progress('start import')
    for name in request['import_first']:   # import errors are reported by the checks that need them
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001  (a SystemExit at import must not end the run here)
            pass
    _progress('end import')

    def on_alarm(signum, frame):
        raise CheckTimeout(f"took longer than {request['check_timeout']:g} s and was stopped "
                           f"(an endless loop, or far too slow code?)")

    modules = StudentModules()
    for check in request['checks']:
        check_id = check['id']
        _progress(f'start {check_id}')
        namespace = {'__name__': 'grading_check'}
        error = None
        try:
            exec(compile(check['source'], f"<check {check_id}>", 'exec'), namespace)
            with np.load(os.path.join(IN_DIR, f'{check_id}.npz'), allow_pickle=False) as data:
                inputs = {key: data[key] for key in data.files}
            signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, request['check_timeout'])
            try:
                outputs = namespace[check['function']](inputs, modules)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            _save_outputs(check_id, outputs)
        except BaseException as exc:  # noqa: BLE001  (report everything, including SystemExit)
            error = {'exception': type(exc).__name__, 'message': str(exc)[:MAX_MESSAGE],
                     'where': _where(exc.__traceback__, student_files)}
        if error is not None:
            with open(os.path.join(OUT_DIR, f'{check_id}.json'), 'w', encoding='utf-8') as f:
                json.dump(error, f)
        _progress(f'end {check_id}')
