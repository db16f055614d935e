"""Shared test helpers: a tiny, learnable MNIST-like data set.

Use the `tiny_mnist` fixture for a ready-made folder, or call
`make_tiny_mnist(folder, ...)` (e.g. `from conftest import make_tiny_mnist`)
when a test needs another size, naming style or number of classes.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

# The tests import the framework's modules (dataloader, layers, ...) as
# top-level modules, so the repository root must be on the import path.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from dataloader import write_idx  # noqa: E402  (needs the path set above)
from public_checks_note import pytest_terminal_summary  # noqa: E402,F401  (handouts: 'public tests only')

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


@pytest.fixture
def tiny_mnist(tmp_path):
    """Folder with a tiny MNIST-like data set: 600 train and 100 test images."""
    return make_tiny_mnist(tmp_path / 'mnist')
