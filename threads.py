"""The project's thread policy: one BLAS thread unless you choose otherwise.

NumPy hands matrix products to a BLAS library (OpenBLAS), which starts one
thread per core. For the homework's small matrices a second thread does not
pay, and on a shared 2-core machine it can make a product many times slower
whenever another process is busy (README, Speed): timings then flip from run
to run. So everything the README tells you to run uses ONE BLAS thread:

    python3 tools/quickstart.py train | test | notebook | report | submit
    python report/make_report.py          (calls apply_thread_policy itself)
    runner.ipynb                          (its first cell calls it)

To choose another number, set the variable yourself before starting, e.g.
    OPENBLAS_NUM_THREADS=2 python3 tools/quickstart.py report
A BLAS library reads these variables once, when NumPy is imported, so the
policy must be applied before the first `import numpy` of the process.

This module uses only the standard library: tools/quickstart.py runs it with
the system Python before any virtual environment exists.
"""

import ctypes
import os
import sys

# The variables the common BLAS libraries read (OpenBLAS, OpenMP-based ones, MKL).
THREAD_VARIABLES = ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')
DEFAULT_THREADS = '1'

# Set by apply_thread_policy: was NumPy already imported when it ran?
_numpy_was_imported_first = None


def usable_cores():
    """The number of cores this process may run on (its CPU affinity where
    the OS has one): the default number of worker processes."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                 # macOS, Windows
        return os.cpu_count() or 1


def thread_environment(environ=None):
    """A copy of `environ` (default os.environ) with the policy applied:
    every THREAD_VARIABLES entry that is not set becomes DEFAULT_THREADS."""
    env = dict(os.environ if environ is None else environ)
    for name in THREAD_VARIABLES:
        env.setdefault(name, DEFAULT_THREADS)
    return env


def apply_thread_policy(quiet=False):
    """Apply the policy to this process (os.environ.setdefault, so a value you
    set yourself wins). Call it before NumPy is imported.

    If NumPy is already imported, the BLAS library has already chosen its
    thread count and the variables change nothing: a message says so (unless
    quiet=True), e.g. when a notebook cell is run again after NumPy was
    loaded; restart the kernel to apply the policy.

    Returns a one-line description of the thread setting, for logs and the report.
    """
    global _numpy_was_imported_first
    numpy_loaded = 'numpy' in sys.modules
    if _numpy_was_imported_first is None:
        _numpy_was_imported_first = numpy_loaded
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, DEFAULT_THREADS)
    if _numpy_was_imported_first and not quiet:
        print('Note: NumPy was imported before the thread policy was applied, so '
              f'OPENBLAS_NUM_THREADS={os.environ["OPENBLAS_NUM_THREADS"]} may not be in effect '
              f'(BLAS threads in use: {blas_threads_in_use() or "unknown"}). Restart the kernel '
              '(or the program) and apply the policy before importing NumPy.', file=sys.stderr)
    return describe_threads()


def blas_threads_in_use():
    """The number of threads the loaded OpenBLAS reports, or None when that
    cannot be asked (NumPy not imported yet, another BLAS, not Linux)."""
    if 'numpy' not in sys.modules:
        return None
    try:
        with open('/proc/self/maps') as maps:
            libraries = sorted({line.split()[-1] for line in maps if 'openblas' in line.lower()
                                and line.split()[-1].startswith('/')})
    except OSError:
        return None
    for path in libraries:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        # NumPy's wheels ship OpenBLAS with prefixed, 64-bit-integer symbols.
        for symbol in ('scipy_openblas_get_num_threads64_', 'openblas_get_num_threads64_',
                       'openblas_get_num_threads'):
            function = getattr(library, symbol, None)
            if function is not None:
                return int(function())
    return None


def describe_threads():
    """E.g. 'OPENBLAS_NUM_THREADS=1 (the project default); OpenBLAS uses 1 thread'."""
    value = os.environ.get('OPENBLAS_NUM_THREADS')
    if value is None:
        text = 'OPENBLAS_NUM_THREADS not set (the BLAS library chooses)'
    else:
        text = f'OPENBLAS_NUM_THREADS={value}'
        if value == DEFAULT_THREADS:
            text += ' (the project default)'
    in_use = blas_threads_in_use()
    if in_use is not None:
        text += f'; OpenBLAS uses {in_use} thread{"s" if in_use != 1 else ""}'
    if _numpy_was_imported_first:
        text += '; NumPy was imported before the policy was applied'
    return text
