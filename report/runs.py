"""Training runs for the report, with a cache on disk.

One run = one Solver trained from one cfg. A finished run is saved as one
JSON file in the cache folder, named by a hash of
    the full validated cfg (without keys that do not change the result),
    the content of the data files, and
    the content of the framework's source files,
so a rerun of the report loads it instead of training again, and changing
the data or the code (for example your loss.py) retrains automatically.
report/training_techniques.py keeps its runs with the same key (run_key).

Times are CPU seconds of the training process (time.process_time, one epoch
at a time, validation excluded): other programs on a busy machine slow the
wall clock of a run down, but barely its CPU time, so a comparison of two
runs trained at different moments (or side by side, with --jobs) is not
flipped by the load. The wall-clock seconds are kept beside them.

CacheLock makes two report runs on one cache folder take turns.

summarize(record, target) turns a raw record into the numbers the report
shows (final accuracies, seconds per epoch, epochs to reach a validation
accuracy target, ...). It is computed every time from the record, so the
target can change without retraining.
"""

import datetime
import hashlib
import json
import math
import os
import signal
import statistics
import time
from pathlib import Path

import numpy as np

from solver import Solver, TrainingDiverged, validate_cfg
from fileio import atomic_write
from threads import blas_threads_in_use, describe_threads

REPO_ROOT = Path(__file__).resolve().parents[1]

# Bump when the format of a cached record changes: old files are then ignored.
CACHE_FORMAT = 2

# Source files whose content changes the results of a run (a handout may lack
# some, e.g. im2col.py outside the cnn handout: missing files are left out).
CODE_FILES = ('solver.py', 'config.py', 'callbacks.py', 'dataloader.py', 'augment.py', 'layers.py', 'loss.py',
              'optimizer.py', 'im2col.py')

# cfg keys that do not change what a run computes (where the data lives is
# covered by the data fingerprint; printing is irrelevant).
KEYS_NOT_IN_HASH = ('data_root', 'verbose', 'display_freq')

# Run status, as shown in the tables.
OK, UNSTABLE, DIVERGED = 'ok', 'unstable', 'diverged'
STATUS_MEANING = {
    OK: 'trained normally',
    UNSTABLE: ("finished, but the last epoch's mean training loss is higher than "
               "the loss of the untrained model (its first batch)"),
    DIVERGED: 'stopped: the training loss became NaN or infinite',
}


# ---------------------------------------------------------------------------
# Fingerprints and cache keys
# ---------------------------------------------------------------------------

def _sha256_of_files(paths):
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(b'\0')
        digest.update(path.read_bytes())
        digest.update(b'\0')
    return digest.hexdigest()


def data_fingerprint(data_root):
    """SHA-256 of the IDX files (every file with 'ubyte' in its name) in data_root."""
    folder = Path(data_root)
    files = sorted(p for p in folder.glob('*ubyte*') if p.is_file())
    if not files:
        raise FileNotFoundError(
            f"No MNIST files (*ubyte*) in {folder.resolve()}. Put the four MNIST files "
            f"there or pass another folder with --data-root.")
    return _sha256_of_files(files)


def code_fingerprint(repo_root=REPO_ROOT):
    """SHA-256 of the framework's source files (CODE_FILES) plus CACHE_FORMAT."""
    files = [Path(repo_root) / name for name in CODE_FILES]
    return _sha256_of_files([p for p in files if p.exists()]) + f'-format{CACHE_FORMAT}'


def full_cfg(cfg):
    """validate_cfg(cfg) as plain JSON types (hidden_sizes a list), verbose off."""
    full = validate_cfg(dict(cfg, verbose=False))
    full['hidden_sizes'] = [int(h) for h in full['hidden_sizes']]
    return full


def run_key(cfg, data_fp, code_fp):
    """Cache key of a run: 16 hex digits of a hash of everything that sets its result."""
    relevant = {k: v for k, v in full_cfg(cfg).items() if k not in KEYS_NOT_IN_HASH}
    text = json.dumps({'cfg': relevant, 'data': data_fp, 'code': code_fp}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------
# Training one run, and the cache
# ---------------------------------------------------------------------------

class EpochCpuTime:
    """Solver callback: CPU seconds of this process spent in each epoch's
    training loop (the updates; validation excluded), in `seconds`.

    An epoch starts when begin() is called (before train) or when the
    previous epoch ended, and its training ends at its last update."""

    def __init__(self):
        self.seconds = []
        self._epoch_start = self._last_update = None

    def begin(self):
        self._epoch_start = time.process_time()

    def on_batch_end(self, solver, iterations):
        self._last_update = time.process_time()

    def on_epoch_end(self, solver, epoch):
        if self._last_update is None:
            raise RuntimeError('EpochCpuTime: the Solver did not call on_batch_end after an update')
        self.seconds.append(self._last_update - self._epoch_start)
        self._epoch_start = time.process_time()


def train_run(cfg):
    """Train and test one cfg; return its record (a JSON-ready dict).

    A run whose loss becomes NaN or infinite is recorded as diverged, with
    the epoch and batch where it happened and the history up to there; it
    is not an error for the report.
    """
    cfg = full_cfg(cfg)
    load_before = _load_average()
    start = time.perf_counter()
    cpu_time = EpochCpuTime()
    solver = Solver(cfg, callbacks=[cpu_time])
    updates_per_epoch = len(solver.train_loader)
    diverged_at, message = None, None
    try:
        # A run that blows up overflows on its way to NaN; its status says so,
        # so NumPy's overflow warnings would only clutter the progress lines.
        with np.errstate(over='ignore', invalid='ignore'):
            cpu_time.begin()
            solver.train()
    except TrainingDiverged as error:
        history = solver.history
        epoch = len(history['train_loss'])           # 0-based epoch that failed
        batch = len(history['iter_loss']) - epoch * updates_per_epoch   # 0-based batch
        diverged_at = {'epoch': epoch + 1, 'batch': batch + 1,
                       'update': len(history['iter_loss']) + 1}   # 1-based, for people
        message = str(error)
    if diverged_at is None:
        test_loss, test_acc = solver.test()
    else:
        test_loss = test_acc = None   # the weights are NaN or infinite: nothing to test
    history = {key: [float(v) for v in values] for key, values in solver.history.items()}

    train_set, val_set, test_set = (solver.train_loader.dataset, solver.val_loader.dataset,
                                    solver.test_loader.dataset)
    return {
        'format': CACHE_FORMAT,
        'cfg': cfg,
        'status': status_of(history, diverged_at),
        'diverged_at': diverged_at,
        'diverged_message': message,
        'history': history,
        'epoch_cpu_time': cpu_time.seconds,
        'test_loss': test_loss,
        'test_acc': test_acc,
        'updates_per_epoch': updates_per_epoch,
        'data': {'n_train': len(train_set), 'n_val': len(val_set), 'n_test': len(test_set),
                 'num_features': int(np.prod(train_set.images.shape[1:])),
                 'num_classes': int(train_set.num_classes)},
        'wall_seconds': time.perf_counter() - start,
        # Other work on the machine slows a run down: keep the load with its timings.
        'load_average': [load_before, _load_average()],
        'finished_at': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
    }


def _load_average():
    """1-minute load average of the machine (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def status_of(history, diverged_at):
    """OK, UNSTABLE or DIVERGED (see STATUS_MEANING)."""
    if diverged_at is not None:
        return DIVERGED
    if history['train_loss'] and history['iter_loss'] \
            and history['train_loss'][-1] > history['iter_loss'][0]:
        return UNSTABLE
    return OK


# What every cached record must hold for the report to use it.
RECORD_FIELDS = ('cfg', 'status', 'diverged_at', 'history', 'epoch_cpu_time', 'test_loss',
                 'test_acc', 'updates_per_epoch', 'data', 'finished_at')
HISTORY_KEYS = ('train_loss', 'train_acc', 'val_loss', 'val_acc', 'epoch_time', 'iter_loss',
                'iter_acc')


def check_writable(folder, what):
    """Create `folder` if needed and prove a file can be written in it, so that
    a read-only folder is reported before any training, not after it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / '.write-test', 'w') as f:
            f.write('ok')
        (folder / '.write-test').unlink()
    except OSError as error:
        raise PermissionError(
            f'cannot write the {what} in {folder.resolve()} ({error.strerror or error}). '
            f'Choose a folder you can write to'
            + (' with --cache-dir' if what == 'cache' else ' with --out-dir')) from None


def cache_path(cache_dir, key):
    return Path(cache_dir) / f'run-{key}.json'


def load_cached(cache_dir, key):
    """The cached record of `key`, or None if there is none (or it is unreadable)."""
    path = cache_path(cache_dir, key)
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None          # damaged file (should not happen: writes are atomic); retrain
    if not isinstance(record, dict) or record.get('format') != CACHE_FORMAT \
            or record.get('key') != key:
        return None
    # A record missing a field (written by an older version of this file, or
    # edited by hand) is stale: train the run again rather than fail later.
    if any(field not in record for field in RECORD_FIELDS) or not isinstance(record['history'], dict) \
            or any(name not in record['history'] for name in HISTORY_KEYS):
        return None
    return record


def save_record(cache_dir, record):
    with atomic_write(cache_path(cache_dir, record['key']), 'w') as f:
        json.dump(record, f)


def get_run(cfg, cache_dir, data_fp, code_fp, force=False):
    """(record, was_cached): load the run from the cache, or train and cache it."""
    key = run_key(cfg, data_fp, code_fp)
    if not force:
        record = load_cached(cache_dir, key)
        if record is not None:
            return record, True
    record = train_run(cfg)
    record['key'] = key
    record['data_fingerprint'] = data_fp
    record['code_fingerprint'] = code_fp
    save_record(cache_dir, record)
    return record, False


# ---------------------------------------------------------------------------
# Worker processes (make_report.py --jobs N)
# ---------------------------------------------------------------------------

def ignore_interrupts():
    """Initializer of a worker process: Ctrl-C reaches every process of the
    terminal; the parent handles it (and stops the workers), so a worker does
    not print a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def train_in_worker(task):
    """Train one run in a worker process and cache it.

    task = (key, cfg, cache_dir, data_fp, code_fp). Returns (key, record,
    error): error is the message of a NotImplementedError (code the run
    needs is not written yet), record None then. The record is saved in the
    cache by the worker itself, so a run finished before an interruption is
    kept."""
    key, cfg, cache_dir, data_fp, code_fp = task
    try:
        record, _ = get_run(cfg, cache_dir, data_fp, code_fp, force=True)
    except NotImplementedError as error:
        return key, None, str(error)
    return key, record, None


# ---------------------------------------------------------------------------
# One report run at a time per cache folder
# ---------------------------------------------------------------------------

class CacheLock:
    """An exclusive lock on a cache folder (its file .lock), held by one
    report run at a time; the operating system releases it when the process
    ends, even after kill -9.

        with CacheLock(cache_dir, on_wait=print):   # waits for the other run
            ...

    on_wait(message) is called once when another process holds the lock,
    before waiting for it."""

    def __init__(self, cache_dir, on_wait=None):
        self.path = Path(cache_dir) / '.lock'
        self.on_wait = on_wait
        self._file = None

    def __enter__(self):
        self._file = open(self.path, 'a+')
        if not _try_lock(self._file):
            self._file.seek(0)
            holder = self._file.read().strip() or 'another process'
            if self.on_wait is not None:
                self.on_wait(f'The cache {self.path.parent} is in use by another report run '
                             f'({holder}): waiting for it to finish (Ctrl-C to stop) ...')
            _lock(self._file)
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f'pid {os.getpid()}, since {time.strftime("%H:%M:%S")}')
        self._file.flush()
        return self

    def __exit__(self, *exc):
        _unlock(self._file)
        self._file.close()
        self._file = None


try:
    import fcntl

    def _try_lock(f):
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _lock(f):
        fcntl.flock(f, fcntl.LOCK_EX)

    def _unlock(f):
        fcntl.flock(f, fcntl.LOCK_UN)
except ImportError:                       # Windows: lock the first byte of the file
    import msvcrt

    def _try_lock(f):
        f.seek(0)
        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _lock(f):
        while not _try_lock(f):
            time.sleep(1.0)

    def _unlock(f):
        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)


# ---------------------------------------------------------------------------
# The numbers the report shows
# ---------------------------------------------------------------------------

def epochs_to_reach(val_acc, target):
    """1-based number of epochs after which val_acc first reaches target, or None."""
    for epoch, acc in enumerate(val_acc, start=1):
        if acc >= target:
            return epoch
    return None


def summarize(record, target):
    """The report's numbers for one run record.

    Accuracies are fractions in [0, 1]; times are CPU seconds of training
    (validation and testing excluded; 'wall_sec_per_epoch' is the wall-clock
    median). Values that do not exist (a diverged run has no test accuracy;
    a target never reached has no epoch) are None.
    """
    history = record['history']
    epochs_done = len(history['train_loss'])

    def last(key):
        return history[key][-1] if history[key] else None

    epoch_time = record['epoch_cpu_time'][:epochs_done]
    wall_time = history['epoch_time'][:epochs_done]
    to_target = epochs_to_reach(history['val_acc'], target)
    finite_losses = [v for v in history['iter_loss'] if math.isfinite(v)]
    return {
        'status': record['status'],
        'diverged_at': record['diverged_at'],
        'epochs_planned': record['cfg']['max_epoch'],
        'epochs_completed': epochs_done,
        'updates_per_epoch': record['updates_per_epoch'],
        'initial_loss': history['iter_loss'][0] if history['iter_loss'] else None,
        'max_batch_loss': max(finite_losses) if finite_losses else None,
        'final_train_loss': last('train_loss'),
        'final_train_acc': last('train_acc'),
        'final_val_loss': last('val_loss'),
        'final_val_acc': last('val_acc'),
        'n_val': record['data']['n_val'],
        'best_val_acc': max(history['val_acc']) if history['val_acc'] else None,
        'test_loss': record['test_loss'],
        'test_acc': record['test_acc'],
        'sec_per_epoch': statistics.median(epoch_time) if epoch_time else None,
        'wall_sec_per_epoch': statistics.median(wall_time) if wall_time else None,
        'train_seconds': float(sum(epoch_time)),
        'val_target': target,
        'epochs_to_target': to_target,
        'seconds_to_target': float(sum(epoch_time[:to_target])) if to_target else None,
    }


def machine_info():
    """CPU, cores, software versions and BLAS thread settings, for the setup page."""
    import platform

    import matplotlib
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    blas = 'unknown'
    try:
        config = np.show_config(mode='dicts')
        blas_info = config['Build Dependencies']['blas']
        blas = f"{blas_info.get('name', '?')} {blas_info.get('version', '')}".strip()
    except Exception:      # older NumPy: no mode='dicts'; the name is only informative
        pass
    return {
        'cpu': cpu,
        'logical_cores': os.cpu_count(),
        'platform': platform.platform(),
        'python': platform.python_version(),
        'numpy': np.__version__,
        'matplotlib': matplotlib.__version__,
        'blas': blas,
        'blas_threads': describe_threads(),
        'blas_threads_in_use': blas_threads_in_use(),
    }
