"""Reading what a child process wrote, as untrusted data.

Every file is opened without following a symbolic link, must be a regular
file (not a FIFO, a device or a folder) and is read up to a size cap. An
.npz file is read from memory: its members must be exactly the expected
arrays, each an .npy of a numeric dtype whose declared size is
checked before any of it is decompressed, and the decompression itself
stops at the size the header announced. Any problem raises OutputError with
a message for the student; nothing here can make the grader run out of
memory, block or crash.
"""

import io
import json
import math
import os
import stat
import zipfile
import zlib

import numpy as np

MAX_NPZ_BYTES = 64 * 2 ** 20       # one check's results file, as written
MAX_ARRAY_BYTES = 64 * 2 ** 20     # one array, decompressed
MAX_JSON_BYTES = 64 * 2 ** 10      # one error report
NUMERIC_KINDS = 'biuf'


class OutputError(Exception):
    """A child's output file is missing or malformed (the message says how)."""


def open_folder(path):
    """A file descriptor of a folder a child may have replaced: no link followed.
    Raises OutputError."""
    try:
        return os.open(path, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0) | getattr(os, 'O_NOFOLLOW', 0))
    except OSError:
        raise OutputError("the results folder of this check is missing or not a folder (a link?)") from None


def exists(path, dir_fd=None):
    """Whether anything (a link included) is at path."""
    try:
        os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except OSError:
        return False


def read_capped(path, limit, dir_fd=None):
    """The bytes of a regular file (no link followed), at most `limit` of them.
    dir_fd: the folder (open_folder) that `path` is relative to, or None."""
    flags = os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise OutputError("the results of this check are missing") from None
    except OSError:
        raise OutputError("the results file of this check is not a regular file (a link?)") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OutputError("the results file of this check is not a regular file")
        if info.st_size > limit:
            raise OutputError(f"the results of this check are larger than {limit // 2 ** 20 or 1} MB")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise OutputError(f"the results of this check are larger than {limit // 2 ** 20 or 1} MB")
        return b''.join(chunks)
    finally:
        os.close(fd)


def _npy_header(member):
    """(shape, fortran_order, dtype) of an .npy stream, read without loading the data."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(member)
    raise ValueError(f"unknown .npy version {version}")


def _read_member(zf, info, name):
    with zf.open(info) as member:
        try:
            shape, fortran, dtype = _npy_header(member)
        except (ValueError, SyntaxError, TypeError, KeyError):
            raise OutputError(f"{name}: not a valid array") from None
        if dtype.hasobject or dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
            raise OutputError(f"{name}: expected numbers, got dtype {dtype}")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > MAX_ARRAY_BYTES:
            raise OutputError(f"{name}: larger than {MAX_ARRAY_BYTES // 2 ** 20} MB")
        data = member.read(nbytes + 1)      # decompresses no more than the header announced, plus one byte
        if len(data) != nbytes:
            raise OutputError(f"{name}: {len(data)} bytes of data, expected {nbytes}")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order='F' if fortran else 'C')
    # booleans compare as 0/1: the comparisons subtract
    return array.astype(np.float64) if dtype.kind == 'b' else array.copy()


def load_npz(path, expected, dir_fd=None):
    """{name: array} of a child's .npz, with exactly the names of `expected`
    ({name: array}) and numeric dtypes (shapes are compared by the check, which
    says which array is wrong). Raises OutputError."""
    data = read_capped(path, MAX_NPZ_BYTES, dir_fd)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise OutputError("the results of this check could not be read (not an .npz file)") from None
    wanted = {f'{name}.npy': name for name in expected}
    got_names = [info.filename for info in infos]
    if len(set(got_names)) != len(got_names) or set(got_names) != set(wanted):
        shown = sorted(n[:-4] if n.endswith('.npy') else n for n in got_names)[:8]
        raise OutputError(f"the results of this check have the wrong names (got {shown}, "
                          f"expected {sorted(expected)})")
    arrays = {}
    for info in infos:
        name = wanted[info.filename]
        try:
            arrays[name] = _read_member(zf, info, name)
        except OutputError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError, NotImplementedError,
                zlib.error):
            raise OutputError(f"{name}: the array could not be read") from None
    return arrays


def load_error(path, dir_fd=None):
    """The child's error report ({'exception', 'message', 'where'}), or {} if unreadable."""
    try:
        value = json.loads(read_capped(path, MAX_JSON_BYTES, dir_fd).decode('utf-8', errors='replace'))
    except (OutputError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}

