"""Loading MNIST (or any data set in the same IDX format) for the homework.

The pipeline has four small pieces, from the files on disk to the batches
your training loop sees:

    load_mnist(data_root, kind)   reads the IDX files -> uint8 arrays
    Dataset                       picks a split (train / val / test) and
                                  normalises it ONCE -> float32 (N, D)
    IterationBatchSampler         decides which rows go into each batch
    Dataloader                    turns index arrays into (images, labels)

Most of the time you only need `build_dataloader`:

    train_loader = build_dataloader('data', max_epoch=10, batch_size=100,
                                    shuffle=True, mode='train', seed=0)
    for epoch in range(10):
        for images, labels in train_loader:   # one full pass = one epoch
            ...                                # images (B, 784), labels (B,)

Shapes follow the CS231n convention: N is the number of samples in a split,
B the number in a batch, D the number of features (28 * 28 = 784 pixels).

The decompressed bytes of the large .gz files are kept in ~/.cache/mnist-idx
(checked by SHA-256 on every read), so later runs skip the 0.2 s of
decompression; MNIST_DECOMPRESSED_CACHE='' turns that off.

Splits: the MNIST training file holds 60000 images. 'train' is the first
55000 of them, 'val' the last 5000, and 'test' the 10000 images of the
separate t10k file. The test split is for the final evaluation only.
"""

import functools
import gzip
import hashlib
import numbers
import os
import string
import struct
import zlib
from pathlib import Path

import numpy as np

from fileio import atomic_write

__all__ = [
    'IDXFormatError',
    'read_idx',
    'write_idx',
    'load_mnist',
    'Dataset',
    'IterationBatchSampler',
    'Dataloader',
    'build_dataloader',
    'VAL_FRACTION',
    'MODES',
    'NORMALIZATIONS',
    'check_positive_int',
    'check_choice',
    'check_data_root',
    'is_positive_int',
    'is_data_root',
]

# Where to get the data when it is missing or damaged.
MNIST_URL = 'http://yann.lecun.com/exdb/mnist/'
PROJECT_DATA_DIR = Path(__file__).resolve().parent / 'data'

# MNIST ships 60000 training images; the homework keeps the last 5000 of them
# as a validation set, which is exactly 1/12. For an IDX data set of another
# size we keep the same proportion: val = the last round(N / 12) images.
VAL_FRACTION = 1 / 12

MODES = ('train', 'val', 'test')
NORMALIZATIONS = ('image_mean', 'standardize', 'none')

# Optional file in the data folder, in the format written by `sha256sum`:
#   <64 hex digits><two spaces><file name>
CHECKSUM_FILE = 'SHA256SUMS'

# Type codes that can appear in byte 2 of an IDX header. Only 0x08 is
# supported, because MNIST and its look-alikes (Fashion-MNIST, KMNIST, ...)
# store pixels and labels as unsigned bytes. The others are listed only to
# give a helpful error message.
IDX_TYPE_NAMES = {
    0x08: 'unsigned byte',
    0x09: 'signed byte',
    0x0B: 'short (int16)',
    0x0C: 'int (int32)',
    0x0D: 'float (float32)',
    0x0E: 'double (float64)',
}
GZIP_MAGIC = b'\x1f\x8b'


def _what_to_do():
    return (f'Re-download it from {MNIST_URL} or re-copy it from this '
            f"project's data folder ({PROJECT_DATA_DIR}).")


# ---------------------------------------------------------------------------
# Argument checks, shared with solver.py (its cfg schema uses the is_* ones)
# ---------------------------------------------------------------------------

def is_positive_int(value):
    """True for an integer >= 1 (Python or NumPy int; bool is not accepted:
    batch_size=True is surely a mistake)."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and value >= 1)


def is_data_root(value):
    """True for a folder path: a non-empty str or a pathlib.Path (any os.PathLike)."""
    return isinstance(value, os.PathLike) or (isinstance(value, str) and value != '')


def check_positive_int(name, value):
    """Return `value` as an int, or raise a TypeError/ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f'{name} must be a positive integer, got {value!r} '
                        f'of type {type(value).__name__}')
    if not is_positive_int(value):
        raise ValueError(f'{name} must be a positive integer, got {value}')
    return int(value)


def check_choice(name, value, choices):
    """Raise a ValueError naming `name` and the valid choices unless value is one of them."""
    if value not in choices:
        raise ValueError(f'{name} must be one of {", ".join(map(repr, choices))}; got {value!r}')
    return value


def check_data_root(value):
    """Return the data folder as a Path; raise a TypeError for anything but a
    non-empty str or a pathlib.Path."""
    if not is_data_root(value):
        raise TypeError(f"data_root must be a folder path (a str or a pathlib.Path), got "
                        f"{value!r}; the MNIST files ship in {PROJECT_DATA_DIR}")
    return Path(value)


# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------

class IDXFormatError(ValueError):
    """An IDX file is damaged, truncated or not an IDX file at all."""


def _idx_error(path, problem):
    """An IDXFormatError whose message names the file, the problem and the fix."""
    return IDXFormatError(f'{path}: {problem}. {_what_to_do()}')


def _gunzip_if_needed(raw, path):
    """Decompress `raw` if it is gzip data, otherwise return it unchanged.

    We look at the first two bytes instead of the file name because some
    browsers decompress a download but keep the '.gz' in its name.
    """
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        # zlib reads a one-member gzip file (all of MNIST) straight into one
        # bytes object; gzip.decompress, which also handles several members,
        # joins pieces and is slower. wbits=31: gzip header, 32 KiB window.
        decompressor = zlib.decompressobj(wbits=31)
        data = decompressor.decompress(raw)
        if decompressor.eof and not decompressor.unused_data:
            return data
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        # OSError covers gzip.BadGzipFile (e.g. a CRC mismatch), EOFError a
        # file cut short during the download or copy.
        raise _idx_error(path, f'broken gzip data ({error})') from None


def _parse_idx(data, path):
    """Turn the bytes of an uncompressed IDX file into a uint8 array.

    IDX layout (all integers are big-endian):
        bytes 0-1          always zero
        byte  2            data type code, 0x08 = unsigned byte
        byte  3            number of dimensions, ndim
        next 4 * ndim      the size of each dimension, as uint32
        the rest           the values in C order (last dimension fastest)
    Bytes 0-3 together are called the magic number: 0x00000803 for MNIST
    images (unsigned bytes, 3 dimensions) and 0x00000801 for labels.

    Returns a read-only array that views `data` (no copy).
    """
    if len(data) < 4:
        raise _idx_error(
            path, f'only {len(data)} bytes long, too short for an IDX header')
    if data[0] != 0 or data[1] != 0:
        problem = (f'not an IDX file: it should start with two zero bytes '
                   f'but starts with 0x{data[0]:02x} 0x{data[1]:02x}')
        if str(path).endswith('.gz'):
            problem += ' (its name ends in .gz, but it is not gzip data either)'
        raise _idx_error(path, problem)

    type_code, ndim = data[2], data[3]
    if type_code != 0x08:
        type_name = IDX_TYPE_NAMES.get(type_code, 'unknown type')
        raise _idx_error(
            path, f'unsupported IDX data type code 0x{type_code:02x} '
                  f'({type_name}); only 0x08 (unsigned byte), the type MNIST '
                  f'uses, is supported')
    if ndim == 0:
        raise _idx_error(path, 'the IDX header says the data has 0 dimensions')

    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise _idx_error(
            path, f'truncated: the header announces {ndim} dimensions, which '
                  f'needs {header_size} header bytes, but the file has only '
                  f'{len(data)} bytes')
    shape = struct.unpack(f'>{ndim}I', data[4:header_size])
    _check_idx_size(path, shape, len(data) - header_size)
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def _check_idx_size(path, shape, actual):
    """Explain an IDX file whose data (`actual` bytes) does not fill the header's shape exactly."""
    # Python ints, so the product cannot overflow.
    expected = 1
    for size in shape:
        expected *= size
    if len(shape) == 1:
        shape_text = f'{expected}'
    else:
        shape_text = ' x '.join(str(size) for size in shape) + f' = {expected}'
    if actual < expected:
        raise _idx_error(
            path, f'truncated: the header announces {shape_text} '
                  f'bytes of data but only {actual} bytes follow it')
    if actual > expected:
        raise _idx_error(
            path, f'{actual - expected} unexpected trailing bytes: the header '
                  f'announces {shape_text} bytes of data but '
                  f'{actual} bytes follow it')


def read_idx(path):
    """Read an IDX file (gzip-compressed or raw) into a NumPy array.

    Inputs:
    - path: str or Path of the file, e.g. 'data/train-images-idx3-ubyte.gz'.

    Returns:
    - array: uint8 array whose shape comes from the file header, e.g.
      (60000, 28, 28) for MNIST training images and (60000,) for labels.
      It is read-only because it views the file's bytes; call .copy() if
      you need to modify it.

    Raises IDXFormatError (a ValueError) if the file is damaged or not an
    IDX file of unsigned bytes.
    """
    path = Path(path)
    data = _gunzip_if_needed(path.read_bytes(), path)
    return _parse_idx(data, path)


def write_idx(path, array):
    """Write a uint8 array as an IDX file (the inverse of `read_idx`).

    Inputs:
    - path: str or Path. If the name ends in '.gz' the file is gzip-compressed,
      otherwise it is written raw.
    - array: uint8 array of any shape with at least one dimension.

    The file is written atomically (see fileio.atomic_write).
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(
            f'write_idx only writes uint8 arrays (IDX type 0x08), got dtype '
            f'{array.dtype}; check the value range and use array.astype(np.uint8)')
    if not 1 <= array.ndim <= 255:
        raise ValueError(f'an IDX file holds 1 to 255 dimensions, got {array.ndim}')
    if max(array.shape) >= 2 ** 32:
        raise ValueError(f'IDX dimensions must fit in 32 bits, got shape {array.shape}')

    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f'>{array.ndim}I', *array.shape)
    data = header + np.ascontiguousarray(array).tobytes()
    if path.name.endswith('.gz'):
        # mtime=0 keeps the time stamp out of the gzip header, so the same
        # array always gives the same bytes (and the same SHA-256).
        # Level 6 is the default of the gzip tool; Python's default, 9, can
        # be ten times slower for a file only about 1% smaller.
        data = gzip.compress(data, compresslevel=6, mtime=0)

    with atomic_write(path, 'wb') as f:
        f.write(data)


# ---------------------------------------------------------------------------
# Finding, checking and caching the MNIST files
# ---------------------------------------------------------------------------

def _candidate_names(kind, what):
    """File names to look for, in order of preference.

    kind is 'train' or 't10k', what is 'images' or 'labels'. Both naming
    styles are in use: 'train-images-idx3-ubyte' (the official download) and
    'train-images.idx3-ubyte' (common in copies), each raw or gzipped.
    """
    idx = 'idx3' if what == 'images' else 'idx1'
    stems = [f'{kind}-{what}-{idx}-ubyte', f'{kind}-{what}.{idx}-ubyte']
    return [stem + suffix for stem in stems for suffix in ('.gz', '')]


def _expected_file_list():
    names = [_candidate_names(kind, what)[0]
             for kind in ('train', 't10k') for what in ('images', 'labels')]
    return ', '.join(names)


def _where_to_get_them():
    return (f'Download them from {MNIST_URL} or copy them from this '
            f"project's data folder ({PROJECT_DATA_DIR}).")


def _check_folder(data_root):
    folder = check_data_root(data_root).expanduser()
    if not folder.is_dir():
        reason = 'is not a folder' if folder.exists() else 'does not exist'
        # A relative path is relative to the folder Python runs in, which is
        # often not the project folder (a notebook started elsewhere, say):
        # show where we looked, and the fix.
        where = '' if folder.is_absolute() else (
            f' (looked in {folder.absolute()}: the relative path {str(folder)!r} is '
            f'relative to the current folder, {Path.cwd()})')
        fix = ''
        if not folder.is_absolute() and PROJECT_DATA_DIR.is_dir():
            fix = (f" To use this project's data, run from the project folder "
                   f"({PROJECT_DATA_DIR.parent}) or pass data_root='{PROJECT_DATA_DIR}'.")
        raise FileNotFoundError(
            f'MNIST data folder {folder} {reason}{where}. It should contain '
            f'{_expected_file_list()} (raw or .gz, with a dash or a dot '
            f'before idx).{fix} {_where_to_get_them()}')
    return folder


def _find_file(folder, kind, what):
    """Return the first existing file of `_candidate_names` in `folder`."""
    candidates = _candidate_names(kind, what)
    for name in candidates:
        path = folder / name
        if path.is_file():
            return path
    folders = [name for name in candidates if (folder / name).is_dir()]
    if folders:
        raise IsADirectoryError(
            f'{folder / folders[0]} is a folder, but it should be the MNIST {kind} {what} '
            f'file (did unpacking an archive create a folder of that name?). Replace it by '
            f'the file. {_where_to_get_them()}')
    raise FileNotFoundError(
        f'No {kind} {what} file in the MNIST data folder {folder.absolute()}: looked for '
        f'{", ".join(candidates)}. {_where_to_get_them()}')


def _expected_sha256(path):
    """The checksum listed for `path` in the folder's SHA256SUMS, or None."""
    sums_path = path.parent / CHECKSUM_FILE
    if not sums_path.is_file():
        return None
    for line_number, line in enumerate(sums_path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        parts = line.split(maxsplit=1)
        if (len(parts) != 2 or len(parts[0]) != 64
                or not all(char in string.hexdigits for char in parts[0])):
            raise ValueError(
                f'{sums_path}, line {line_number}: expected "<64 hex digits>  '
                f'<file name>" (the format of the sha256sum tool), got {line!r}')
        digest, name = parts
        # sha256sum writes '*name' for files it read in binary mode.
        if name.lstrip('*') == path.name:
            return digest.lower()
    return None


# The magic number (first 4 bytes) of an MNIST file: two zero bytes, 0x08
# (unsigned bytes), then the number of dimensions.
MNIST_MAGIC = {'images': 0x00000803, 'labels': 0x00000801}


def _check_magic(data, path, what):
    """Raise an IDXFormatError if `data` does not start with the magic number
    of an MNIST `what` ('images' or 'labels') file.

    Checked before the header is parsed: a label file with an image header
    would otherwise be read as a 3-D array of absurd size and reported as
    truncated.
    """
    expected = MNIST_MAGIC[what]
    if len(data) >= 4 and data[0] == 0 and data[1] == 0 and data[2] == 0x08:
        magic = struct.unpack('>I', data[:4])[0]
        if magic != expected:
            other = {v: k for k, v in MNIST_MAGIC.items()}.get(magic)
            hint = (f'; that is the magic number of an MNIST {other} file: are the image and '
                    f'label files swapped or misnamed?' if other else '')
            raise _idx_error(
                path, f'wrong magic number 0x{magic:08x}: an MNIST {what} file starts with '
                      f'0x{expected:08x} (unsigned bytes, {expected & 0xFF} '
                      f'dimension{"s" if expected & 0xFF > 1 else ""}){hint}')


@functools.lru_cache(maxsize=8)
def _read_idx_cached(resolved_path, size, mtime_ns, expected_sha256, what):
    """read_idx with a checksum check, remembered between calls.

    Building a train and a val loader both need the training file; the
    cache makes sure it is read, checked and decompressed only once.
    `size` and `mtime_ns` are not used here: they are part of the cache key,
    so a file that is replaced on disk is read again. maxsize=8 holds the
    four files of two data sets (the MNIST training images take 47 MB).
    """
    path = Path(resolved_path)
    raw = path.read_bytes()
    if expected_sha256 is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected_sha256:
            raise ValueError(
                f'{path} is corrupt or modified: its SHA-256 is {actual}, but '
                f'{path.parent / CHECKSUM_FILE} expects {expected_sha256}. '
                f'{_what_to_do()}')
    data = _gunzip_cached(raw, path)
    _check_magic(data, path, what)
    array = _parse_idx(data, path)
    # The same array is handed to every caller, so nobody may change it.
    array.setflags(write=False)
    return array


# Decompressing the 10 MB of training images takes about 0.2 s of CPU, half
# of building the training loader. The decompressed bytes of large files are
# therefore kept in a per-user cache folder, named by the SHA-256 of the
# compressed file and of the decompressed bytes; the second one is checked
# on every read (0.03 s), so a damaged or foreign cache file is never used.
# Set MNIST_DECOMPRESSED_CACHE to another folder, or to '' to turn it off.
DECOMPRESSED_CACHE_MIN_BYTES = 1 << 20


def _decompressed_cache_dir():
    configured = os.environ.get('MNIST_DECOMPRESSED_CACHE')
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'
    return Path(base) / 'mnist-idx'


def _gunzip_cached(raw, path):
    """_gunzip_if_needed, through the decompressed cache for large gzip files."""
    folder = _decompressed_cache_dir()
    if raw[:2] != GZIP_MAGIC or len(raw) < DECOMPRESSED_CACHE_MIN_BYTES or folder is None:
        return _gunzip_if_needed(raw, path)
    key = hashlib.sha256(raw).hexdigest()
    try:
        for cached in folder.glob(f'{key}-*.idx'):
            data = cached.read_bytes()
            if hashlib.sha256(data).hexdigest() == cached.stem.split('-', 1)[1]:
                return data
    except OSError:
        pass
    data = _gunzip_if_needed(raw, path)
    try:
        with atomic_write(folder / f'{key}-{hashlib.sha256(data).hexdigest()}.idx', 'wb') as f:
            f.write(data)
    except OSError:
        pass         # a read-only home: no cache, so every read decompresses the file
    return data


def _read_checked(path, what):
    stat = path.stat()
    return _read_idx_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns,
                            _expected_sha256(path), what)


def _load_images_and_labels(data_root, kind, num_classes):
    """Like `load_mnist`, but keeps the images 3-D: (N, rows, cols)."""
    if kind not in ('train', 't10k'):
        raise ValueError(f"kind must be 'train' or 't10k', got {kind!r}")
    folder = _check_folder(data_root)
    image_path = _find_file(folder, kind, 'images')
    label_path = _find_file(folder, kind, 'labels')
    images = _read_checked(image_path, 'images')
    labels = _read_checked(label_path, 'labels')

    if images.ndim != 3:
        raise _idx_error(
            image_path, f'expected images of shape (count, rows, cols) but the '
                        f'file holds an array of shape {images.shape}; are the '
                        f'image and label files swapped?')
    if labels.ndim != 1:
        raise _idx_error(
            label_path, f'expected labels of shape (count,) but the file holds '
                        f'an array of shape {labels.shape}; are the image and '
                        f'label files swapped?')
    if len(images) != len(labels):
        raise ValueError(
            f'{image_path.name} holds {len(images)} images but '
            f'{label_path.name} holds {len(labels)} labels; the two files in '
            f'{folder} do not belong together. {_where_to_get_them()}')
    if len(labels) > 0 and labels.max() >= num_classes:
        raise ValueError(
            f'{label_path} contains the label {labels.max()}, but labels must be '
            f'0 .. {num_classes - 1} for a data set of {num_classes} classes. Check that '
            f'it is the right label file. {_what_to_do()} (A data set with more '
            f'classes needs Dataset(..., num_classes=...) or load_mnist(..., num_classes=...).)')
    return images, labels


def load_mnist(data_root, kind, num_classes=10):
    """Read the images and labels of one MNIST-format file pair.

    Inputs:
    - data_root: folder with the IDX files (str or Path).
    - kind: 'train' (train-images-idx3-ubyte, ...) or 't10k' (the test files).
    - num_classes: labels must lie in 0 .. num_classes - 1.

    Returns a tuple of:
    - images: uint8 array of shape (N, D), one flattened image per row,
      D = rows * cols (784 for MNIST).
    - labels: uint8 array of shape (N,).

    Both arrays are read-only: they are cached and shared between calls.
    Any IDX data set of unsigned bytes works (e.g. Fashion-MNIST), whatever
    the image size. If the folder has a SHA256SUMS file that lists a file,
    the file's checksum is verified.
    """
    images, labels = _load_images_and_labels(data_root, kind, num_classes)
    num_images, rows, cols = images.shape
    return images.reshape(num_images, rows * cols), labels


# ---------------------------------------------------------------------------
# Dataset: one split, normalised once
# ---------------------------------------------------------------------------

def _num_train(num_images):
    """How many of the training file's images belong to the train split."""
    num_val = round(num_images * VAL_FRACTION)
    return num_images - num_val


class Dataset:
    """One split of an MNIST-format data set, ready for training.

    Inputs:
    - data_root: folder with the IDX files (see `load_mnist`).
    - mode: 'train' (first 55000 training images), 'val' (last 5000) or
      'test' (the 10000 t10k images). For other data set sizes, val is the
      last round(N * VAL_FRACTION) images of the training file.
    - num_classes: number of classes; labels must be 0 .. num_classes - 1.
    - normalize: how pixel values are scaled, computed once here:
        'image_mean'   x / 255, then subtract each image's own mean pixel
                       value (what the original homework does).
        'standardize'  x / 255, then subtract the per-pixel mean of the
                       TRAIN split and divide by one scalar std, that of the
                       centred train pixels (about 0.30 for MNIST), so the
                       train split has mean 0 and variance 1. A scalar, not a
                       per-pixel std, because border pixels are always 0:
                       their std is 0. Val and test use the train statistics
                       too: the model must not peek at them.
        'none'         x / 255 only, values in [0, 1].
    - dtype: floating dtype of `images`.

    Attributes:
    - images: array of shape (N, D), e.g. (55000, 784), dtype `dtype`.
    - labels: int64 array of shape (N,).
    - num_classes, mode, normalize: the arguments.
    - image_shape: (rows, cols) of one image, (28, 28) for MNIST; use
      images[i].reshape(image_shape) to look at image i.
    """

    def __init__(self, data_root, mode='train', num_classes=10,
                 normalize='image_mean', dtype=np.float32):
        check_choice('mode', mode, MODES)
        check_choice('normalize', normalize, NORMALIZATIONS)
        num_classes = check_positive_int('num_classes', num_classes)
        dtype = np.dtype(dtype)
        if dtype.kind != 'f':
            raise TypeError(f'dtype must be a floating point type, got {dtype}')

        kind = 't10k' if mode == 'test' else 'train'
        images, labels = _load_images_and_labels(data_root, kind, num_classes)
        num_images, rows, cols = images.shape
        images = images.reshape(num_images, rows * cols)   # (N, D) uint8

        if mode != 'test':
            num_train = _num_train(num_images)
            if mode == 'train':
                images, labels = images[:num_train], labels[:num_train]
            else:
                images, labels = images[num_train:], labels[num_train:]
        if len(images) == 0:
            raise ValueError(
                f'the {mode} split of {data_root} is empty: the {kind} file '
                f'holds only {num_images} images')

        self.mode = mode
        self.normalize = normalize
        self.num_classes = num_classes
        self.image_shape = (rows, cols)
        self.labels = labels.astype(np.int64)

        # Normalise everything once here, so that batches are plain row
        # selections and no work is repeated in every epoch.
        self.images = np.divide(images, 255, dtype=dtype)   # (N, D), x / 255
        if normalize == 'image_mean':
            self.images -= self.images.mean(axis=1, keepdims=True)
        elif normalize == 'standardize':
            pixel_mean, pixel_std = _train_statistics(data_root, num_classes)
            self.images -= pixel_mean
            self.images /= pixel_std

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        """Return (image, label) for an int, or (images, labels) for an index
        array or slice: images (B, D), labels (B,)."""
        return self.images[idx], self.labels[idx]

    def __repr__(self):
        return (f'Dataset(mode={self.mode!r}, normalize={self.normalize!r}, '
                f'images={self.images.shape}, num_classes={self.num_classes})')


def _train_statistics(data_root, num_classes):
    """Per-pixel mean (D,) and scalar std of the train split, after x / 255.

    Always computed from the TRAIN split, whatever split is being built, so
    that no information from the validation or test images leaks into the
    preprocessing.
    """
    images, _ = load_mnist(data_root, 'train', num_classes)
    train_images = images[:_num_train(len(images))]                 # (N_train, D) uint8

    # Both statistics are computed on the uint8 values and divided by 255 at
    # the end; that is cheaper than a float copy of the whole split.
    raw_pixel_mean = train_images.mean(axis=0, dtype=np.float64)      # (D,), in 0..255
    # Variance of the centred pixels, x - mean_d, over all samples and
    # pixels: E[x^2] - mean over d of mean_d^2. With arbitrary floats this
    # formula can lose precision, but here the sums are sums of small
    # integers (uint16 holds 255^2), which float64 adds up exactly.
    mean_square = np.square(train_images, dtype=np.uint16).mean(dtype=np.float64)
    pixel_std = np.sqrt(mean_square - np.mean(raw_pixel_mean ** 2)) / 255   # scalar
    pixel_mean = raw_pixel_mean / 255
    if pixel_std == 0:
        raise ValueError(f'cannot standardize: all training pixels in {data_root} '
                         f'have the same value')
    return pixel_mean, pixel_std


# ---------------------------------------------------------------------------
# Sampling batches
# ---------------------------------------------------------------------------

class IterationBatchSampler:
    """Splits a dataset into batches of indices, one epoch per iteration.

    Inputs:
    - dataset: anything with len(); only its length is used.
    - max_epoch: number of epochs the training will run. Checked, then not
      used: it is there because the original homework's signature has it.
      Every `for` loop over the sampler is one epoch, and the training loop
      decides how many to run (the validation loader, built with
      max_epoch=1, is looped over after every epoch).
    - batch_size: number of samples per batch. The last batch of an epoch
      holds the remaining samples and may be smaller; it is kept, so every
      sample is seen exactly once per epoch.
    - shuffle: if True, every epoch uses a new random order; if False, the
      file order.
    - seed: seed of the sampler's own random generator. The same seed gives
      the same sequence of epochs, and other code using NumPy's global
      random state cannot change it.

    Each iteration yields int arrays of shape (B,), B <= batch_size.
    """

    def __init__(self, dataset, max_epoch, batch_size=2, shuffle=True, seed=None):
        self.dataset = dataset
        check_positive_int('max_epoch', max_epoch)
        self.batch_size = check_positive_int('batch_size', batch_size)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        """Number of batches per epoch, ceil(N / batch_size)."""
        num_samples = len(self.dataset)
        # ceil(a / b) in integer arithmetic, exact for any size.
        return (num_samples + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        num_samples = len(self.dataset)
        if self.shuffle:
            order = self.rng.permutation(num_samples)
        else:
            order = np.arange(num_samples)
        for start in range(0, num_samples, self.batch_size):
            yield order[start:start + self.batch_size]


class Dataloader:
    """Yields (images, labels) batches of a Dataset in the sampler's order.

    Inputs:
    - dataset: a Dataset (or anything whose dataset[index_array] returns
      (images, labels)).
    - sampler: an IterationBatchSampler (or any iterable of index arrays).

    Each iteration (one epoch) yields tuples of:
    - images: array of shape (B, D), float32 by default.
    - labels: int64 array of shape (B,).
    The batches are copies, so changing them does not change the dataset.
    """

    def __init__(self, dataset, sampler):
        self.dataset = dataset
        self.sampler = sampler

    def __iter__(self):
        for indices in self.sampler:
            # One fancy-indexing step per batch selects all B rows at once.
            yield self.dataset[indices]

    def __len__(self):
        """Number of batches per epoch."""
        return len(self.sampler)


def build_dataloader(data_root, max_epoch, batch_size, shuffle=False, mode='train',
                     normalize='image_mean', seed=None, as_images=False):
    """Build the Dataloader for one split.

    Inputs:
    - data_root: folder with the MNIST IDX files (str or pathlib.Path).
    - max_epoch: number of training epochs (checked; see IterationBatchSampler).
    - batch_size: samples per batch; the last batch may be smaller.
    - shuffle: reshuffle every epoch (use it for training, not for val/test).
    - mode: 'train', 'val' or 'test'.
    - normalize: 'image_mean', 'standardize' or 'none' (see Dataset).
    - seed: seed for the shuffling, for reproducible runs.
    - as_images: False gives image batches as rows (B, D), as the homework;
      True as (B, 1, rows, cols), the (N, C, H, W) layout of convolutional
      layers (dataset.images becomes an (N, 1, rows, cols) view, no copy).

    Returns a Dataloader; `for images, labels in loader` runs one epoch.
    """
    # Check the cheap arguments first, so that a typo fails before the data is read.
    check_data_root(data_root)
    check_positive_int('max_epoch', max_epoch)
    check_positive_int('batch_size', batch_size)
    check_choice('mode', mode, MODES)
    check_choice('normalize', normalize, NORMALIZATIONS)
    dataset = Dataset(data_root, mode=mode, normalize=normalize)
    if as_images:
        dataset.images = dataset.images.reshape((len(dataset), 1) + dataset.image_shape)
    sampler = IterationBatchSampler(dataset, max_epoch, batch_size=batch_size,
                                    shuffle=shuffle, seed=seed)
    return Dataloader(dataset, sampler)
