"""Writing files safely: every output of the project goes through here.

    with atomic_write('results.json', 'w') as f:
        json.dump(results, f)

`atomic_write` writes to a temporary file beside the target and renames it
over the target at the end, so a reader sees either the old file or the
complete new one, never half a file. A process killed in the middle of a
write (kill -9, a power cut) cannot run its clean-up and leaves the
temporary file behind; `remove_stale_temporaries` deletes those leftovers.
"""

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path

__all__ = ['atomic_write', 'remove_stale_temporaries']

# Temporary files are named .<target name>.<pid>.<random>.tmp: the pid of
# the writing process tells a leftover (its process is gone) from a write in
# progress (its process still runs).
_TEMP_RE = re.compile(r'^\..+\.(?P<pid>\d+)\.[^.]+\.tmp$')


@contextlib.contextmanager
def atomic_write(path, mode='wb', **open_kwargs):
    """Open a temporary file beside `path`; on success rename it to `path`.

    The bytes go to a temporary file in the same folder, which then replaces
    `path` in one step (os.replace). A reader therefore sees either the old
    file or the complete new one, never half a file, and an interrupted write
    (an exception, Ctrl-C) leaves the previous version in place and removes
    the temporary file. Every output of the project (data, figures, JSON,
    PDF, grades) is written this way.

    Usage: with atomic_write('results.json', 'w') as f: f.write(...)
    `open_kwargs` (encoding, newline, ...) go to the file's open().
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.{os.getpid()}.',
                               suffix='.tmp')
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
        # mkstemp creates the file readable by its owner only; give it the
        # permissions of an ordinary new file (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _process_is_running(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)          # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True              # it exists but belongs to someone else (or we cannot tell)
    return True


def remove_stale_temporaries(folder, max_age_seconds=24 * 3600):
    """Delete the temporary files that killed writers left in `folder`.

    A temporary file of atomic_write is stale when the process that wrote
    it no longer runs, or when it is older than max_age_seconds (a pid can
    be reused by another process after a reboot). Writes in progress are
    left alone. Only files named like atomic_write's temporaries are
    touched; sub-folders are not searched.

    Returns the list of removed paths.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in folder.iterdir():
        match = _TEMP_RE.match(path.name)
        if not match or not path.is_file():
            continue
        try:
            too_old = now - path.stat().st_mtime > max_age_seconds
        except FileNotFoundError:
            continue             # its writer just renamed or removed it
        if too_old or not _process_is_running(int(match['pid'])):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def save_figure(fig, path, **kwargs):
    """Save a matplotlib figure atomically; the format follows the file's extension."""
    fmt = os.path.splitext(os.fspath(path))[1].lstrip('.') or 'png'
    with atomic_write(path, 'wb') as f:
        fig.savefig(f, format=fmt, **kwargs)
