"""Data augmentation for image batches (notes §4.2.4), vectorised over the batch.

Augmentation makes new training samples from the existing ones by small
changes that do not change the label: a digit shifted by two pixels, turned
by ten degrees or drawn a little fainter is still the same digit. It is
applied to TRAINING batches only (a fresh random change every time a batch is
drawn); validation and test images are used as they are, or, when the model
was trained on crops, through a centre crop or an average over several crops
(the notes' test-time recipe).

Shapes: N batch, H and W image rows and columns, D = H * W. The loaders give
flattened (N, D) batches; every function here takes (N, H, W) images, and
`Augmenter` also takes (N, D) batches when it knows the image shape.

Every transform draws its random numbers from the `rng` it is given
(np.random.Generator), so a seed reproduces a run exactly. None of them
loops over samples: each sample's random parameters are drawn as an array,
and one gather moves every pixel of the batch at once.

Background. MNIST digits are bright strokes on a constant background. The
framework's default normalisation ('image_mean') subtracts each image's
mean, so the background is not 0 but each image's smallest value; pixels that
a shift or rotation brings in from outside the image, and erased pixels, get
that value. (With 'standardize' the background differs slightly from pixel
to pixel; the per-image minimum is then an approximation.)

Cost. Shift, rotation and zoom together are one bilinear warp: four gathers
over the batch's N * H * W pixels, about 1 ms for a batch of 100 MNIST
images on one core; whole-pixel shifts alone are a pad and a crop, one
gather, about 0.4 ms. Against a training step (report/training_techniques.md,
measured alternately with it) that is 21% (shifts: 8%) for the 784-512-512-10
MLP of the 98.6% target, about one step of a 784-256-10 MLP, and six steps
of the homework model, whose step is one small matrix product.

Horizontal flip is available but OFF by default for digits: a mirrored
digit is not a digit of the same class (a mirrored 2, 3, 4, 7 or 9 is not a
digit at all, and a mirrored 5 looks much like a 2), so flipping would teach
the model wrong examples. For photographs of objects (the notes' example) a
left-right flip keeps the class and is the standard augmentation.
"""

import numbers

import numpy as np


# ---------------------------------------------------------------------------
# The one geometric operation: every shift, rotation and zoom is an affine warp
# ---------------------------------------------------------------------------

def background_of(images):
    """Per-image background value, the smallest pixel of each image.

    images: (N, H, W). Returns (N,) of the images' dtype.
    """
    return images.reshape(len(images), -1).min(axis=1)


def affine_warp(images, matrices, offsets, fill):
    """Resample every image through its own affine map, bilinearly.

    The output pixel at (row, col) takes the input value at
        source = M @ ([row, col] - centre) + centre + offset,
    centre = ((H - 1) / 2, (W - 1) / 2); values between pixels are bilinear
    interpolations of the four neighbours, and positions outside the image
    read the background `fill`. With M the identity and integer offsets this
    is an exact pixel shift.

    Inputs:
    - images: (N, H, W) float array
    - matrices: (N, 2, 2) the linear part M of each sample's map (output -> source)
    - offsets: (N, 2) the (row, col) translation of each sample, in pixels
    - fill: (N,) background value of each image
    Returns (N, H, W), same dtype as images.
    """
    (N, H, W), dtype = images.shape, images.dtype
    # Output pixel positions relative to the centre, flattened: (H*W,) each.
    grid_row = np.repeat(np.arange(H, dtype=dtype) - dtype.type((H - 1) / 2), W)
    grid_col = np.tile(np.arange(W, dtype=dtype) - dtype.type((W - 1) / 2), H)

    # A frame of background around every image (one pixel above and left,
    # two below and right). Source positions are clipped onto the frame, so
    # every neighbour read below is inside the padded array and positions
    # outside the image read the background: no masks needed.
    stride = W + 3
    padded = np.empty((N, H + 3, stride), dtype=dtype)
    padded[:] = fill[:, None, None]
    padded[:, 1:H + 1, 1:W + 1] = images

    # source = M @ (grid - centre) + centre + offset, in padded coordinates
    # (+1). Written out per entry of M: a batched 2x2 matmul is slower.
    M = matrices.astype(dtype)
    move = (np.array([(H - 1) / 2, (W - 1) / 2]) + offsets + 1).astype(dtype)       # (N, 2)
    src_row = M[:, 0, 0, None] * grid_row + M[:, 0, 1, None] * grid_col + move[:, 0, None]   # (N, H*W)
    src_col = M[:, 1, 0, None] * grid_row + M[:, 1, 1, None] * grid_col + move[:, 1, None]
    for coordinate, high in ((src_row, H + 1), (src_col, W + 1)):       # clip onto the frame, in place
        np.maximum(coordinate, 0, out=coordinate)
        np.minimum(coordinate, high, out=coordinate)
    row0, col0 = np.floor(src_row), np.floor(src_col)
    frac_row, frac_col = src_row - row0, src_col - col0           # (N, H*W) bilinear weights

    # Flat index of the top-left neighbour; the other three are +1, +W+3, +W+4.
    top_left = row0.astype(np.intp)
    top_left *= stride
    top_left += col0.astype(np.intp)
    top_left += (np.arange(N) * (H + 3) * stride)[:, None]
    flat = padded.ravel()
    # Interpolate along the columns, then the rows: a + f (b - a), in place.
    top, top_right = flat.take(top_left), flat.take(top_left + 1)
    bottom, bottom_right = flat.take(top_left + stride), flat.take(top_left + stride + 1)
    for left, right in ((top, top_right), (bottom, bottom_right)):
        right -= left
        right *= frac_col
        right += left                                             # right now holds the row's value
    bottom_right -= top_right
    bottom_right *= frac_row
    bottom_right += top_right
    return bottom_right.reshape(N, H, W)


def _rotation_scale_matrices(angles_deg, scales):
    """(N, 2, 2) output -> source matrices of a rotation by `angles_deg` and a
    zoom by `scales` (scale > 1 enlarges the digit, so the source is scaled by 1/scale)."""
    theta = np.deg2rad(angles_deg)
    cos, sin = np.cos(theta) / scales, np.sin(theta) / scales
    return np.stack([np.stack([cos, -sin], axis=-1),
                     np.stack([sin, cos], axis=-1)], axis=-2)


# ---------------------------------------------------------------------------
# The transforms of notes §4.2.4, each on a batch (N, H, W)
# ---------------------------------------------------------------------------

def random_shift(images, max_shift, rng):
    """Random translation by whole pixels: pad by max_shift, crop back at random.

    Padding the image by `max_shift` background pixels on every side and
    cropping an H x W window at a random position is the same as shifting by
    an integer in [-max_shift, max_shift] along each axis. It moves pixels
    without interpolating them: one gather, the cheapest augmentation.
    Returns (N, H, W).
    """
    N, H, W = images.shape
    shifts = rng.integers(-max_shift, max_shift + 1, size=(N, 2))
    padded = np.empty((N, H + 2 * max_shift, W + 2 * max_shift), dtype=images.dtype)
    padded[:] = background_of(images)[:, None, None]
    padded[:, max_shift:max_shift + H, max_shift:max_shift + W] = images
    # A window starting at max_shift + s shows the image moved by -s; the
    # sign does not matter for a symmetric range.
    return _crop_at(padded, max_shift + shifts[:, 0], max_shift + shifts[:, 1], H, W)


def random_rotation(images, max_degrees, rng):
    """Rotation about the image centre by an angle uniform in [-max_degrees, max_degrees].
    Returns (N, H, W)."""
    N = len(images)
    angles = rng.uniform(-max_degrees, max_degrees, size=N)
    matrices = _rotation_scale_matrices(angles, np.ones(N))
    return affine_warp(images, matrices, np.zeros((N, 2)), background_of(images))


def random_scale_crop(images, scale_range, rng):
    """Random zoom by s uniform in scale_range, then a crop of the original size.

    For s > 1 the enlarged image is larger than H x W; a window of the
    original size is cut at a random position inside it (the notes' "random
    scaling and cropping"). For s < 1 the digit shrinks about the centre and
    background fills the border.
    Returns (N, H, W).
    """
    N, H, W = images.shape
    low, high = scale_range
    scales = rng.uniform(low, high, size=N)
    # Source-space margin left by the zoom: the crop may move by up to this much.
    margin = np.maximum(0.0, 1 - 1 / scales)[:, None] * (np.array([H - 1, W - 1]) / 2)
    offsets = rng.uniform(-1, 1, size=(N, 2)) * margin
    matrices = _rotation_scale_matrices(np.zeros(N), scales)
    return affine_warp(images, matrices, offsets, background_of(images))


def jitter_brightness_contrast(images, brightness, contrast, rng):
    """Random brightness and contrast, per image.

    x' = mean + c (x - mean) + b, with c uniform in [1 - contrast, 1 + contrast]
    (contrast about the image's mean) and b uniform in [-brightness, brightness]
    (in the units of the normalised pixels; the pixel range of a digit is about 1).
    Returns (N, H, W).
    """
    N = len(images)
    c = rng.uniform(1 - contrast, 1 + contrast, size=(N, 1, 1)).astype(images.dtype)
    b = rng.uniform(-brightness, brightness, size=(N, 1, 1)).astype(images.dtype)
    mean = images.mean(axis=(1, 2), keepdims=True)
    return mean + c * (images - mean) + b


def random_erasing(images, probability, rng, area_range=(0.02, 0.15), aspect_range=(0.3, 3.3)):
    """Random erasing: with the given probability, a random rectangle of each
    image is set to the background (notes §4.2.4; at test time the whole image
    is used).

    The rectangle covers a fraction of the image uniform in area_range, with
    height/width ratio log-uniform in aspect_range, at a random position.
    Returns (N, H, W).
    """
    N, H, W = images.shape
    area = rng.uniform(*area_range, size=N) * H * W
    aspect = np.exp(rng.uniform(np.log(aspect_range[0]), np.log(aspect_range[1]), size=N))
    height = np.clip(np.round(np.sqrt(area * aspect)), 1, H).astype(np.int64)
    width = np.clip(np.round(np.sqrt(area / aspect)), 1, W).astype(np.int64)
    top = rng.integers(0, H - height + 1)          # one draw per sample (arrays of highs)
    left = rng.integers(0, W - width + 1)
    erase = rng.random(N) < probability

    rows = np.arange(H)[None, :, None]
    cols = np.arange(W)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + height)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + width)[:, None, None]))
    mask = inside & erase[:, None, None]                                      # (N, H, W)
    return np.where(mask, background_of(images)[:, None, None], images)


def random_horizontal_flip(images, probability, rng):
    """Mirror each image left-right with the given probability.
    Not for digits (see the module docstring). Returns (N, H, W)."""
    flip = rng.random(len(images)) < probability
    return np.where(flip[:, None, None], images[:, :, ::-1], images)


# ---------------------------------------------------------------------------
# Crops for models trained on crops: random at training, centre or several at test
# ---------------------------------------------------------------------------

def _crop_at(images, tops, lefts, size, width=None):
    """Cut a size x width window (width defaults to size) at (tops[n], lefts[n])
    of every image n, by one gather. images (N, H, W), tops and lefts (N,) ints.
    Returns (N, size, width)."""
    rows = tops[:, None, None] + np.arange(size)[None, :, None]
    cols = lefts[:, None, None] + np.arange(size if width is None else width)[None, None, :]
    return images[np.arange(len(images))[:, None, None], rows, cols]


def random_crop(images, size, rng):
    """Random size x size window of each image (training). Returns (N, size, size)."""
    N, H, W = images.shape
    _check_crop(size, H, W)
    return _crop_at(images, rng.integers(0, H - size + 1, size=N),
                    rng.integers(0, W - size + 1, size=N), size)


def center_crop(images, size):
    """The central size x size window of each image (test time). Returns (N, size, size)."""
    N, H, W = images.shape
    _check_crop(size, H, W)
    return _crop_at(images, np.full(N, (H - size) // 2), np.full(N, (W - size) // 2), size)


def five_crops(images, size):
    """The four corner windows and the centre window (test-time multi-crop).
    Returns a list of five (N, size, size) arrays."""
    N, H, W = images.shape
    _check_crop(size, H, W)
    corners = [(0, 0), (0, W - size), (H - size, 0), (H - size, W - size)]
    crops = [_crop_at(images, np.full(N, top), np.full(N, left), size) for top, left in corners]
    return crops + [center_crop(images, size)]


def multi_crop_probabilities(predict_proba, images, size):
    """Average of the class probabilities over the five crops (notes §4.2.4:
    "crop several regions, feed them to the model and average the outputs").

    Inputs:
    - predict_proba: function (N, size*size) flattened crops -> (N, C) probabilities
    - images: (N, H, W)
    Returns (N, C).
    """
    return TestTimeCrops(size, 'multi', images.shape[1:]).probabilities(
        lambda crop: predict_proba(crop.reshape(len(crop), -1)), images)


def _check_crop(size, H, W):
    if not (isinstance(size, (int, np.integer)) and 1 <= size <= min(H, W)):
        raise ValueError(f"crop size must be an integer in [1, {min(H, W)}] for {H}x{W} images, got {size!r}")


def as_image_stack(batch, image_shape, who='augment'):
    """A batch in any of the framework's layouts as (N, H, W) images (a view).

    Accepts (N, D) rows with D = H * W (the MLP's layout), (N, H, W), and
    single-channel (N, 1, H, W) feature maps (the CNN's layout)."""
    if batch.ndim == 2:
        if batch.shape[1] != int(np.prod(image_shape)):
            raise ValueError(f"{who}: batch of shape {batch.shape} does not hold {tuple(image_shape)} "
                             f"images; pass image_shape=(H, W)")
        return batch.reshape((len(batch),) + tuple(image_shape))
    if batch.ndim == 4 and batch.shape[1] == 1:
        return batch[:, 0]
    if batch.ndim != 3:
        raise ValueError(f"{who} expects (N, D), (N, H, W) or single-channel (N, 1, H, W) images, "
                         f"got shape {batch.shape}")
    return batch


def in_layout_of(batch, images):
    """(N, h, w) images back in the layout of `batch` (see as_image_stack):
    (N, h*w), (N, h, w) or (N, 1, h, w)."""
    if batch.ndim == 2:
        return images.reshape(len(images), -1)
    if batch.ndim == 4:
        return images[:, None]
    return images


class TestTimeCrops(object):
    """Evaluation of a model trained on random crop x crop windows (notes §4.2.4):
    at test time it sees the centre window ('center') or the four corner
    windows and the centre one, whose class probabilities are averaged ('multi').

    crops(batch) -> the list of crop batches to feed the model, each in the
    batch's layout ((N, D) -> (N, crop*crop), (N, 1, H, W) -> (N, 1, crop, crop)):
    one for 'center', five for 'multi'.
    """
    MODES = ('center', 'multi')

    def __init__(self, crop, mode='center', image_shape=(28, 28)):
        _check_crop(crop, *image_shape)
        if mode not in self.MODES:
            raise ValueError(f"test-time crop mode must be one of {', '.join(self.MODES)}, got {mode!r}")
        self.crop, self.mode, self.image_shape = crop, mode, tuple(image_shape)

    def crops(self, batch):
        images = as_image_stack(batch, self.image_shape, 'TestTimeCrops')
        windows = [center_crop(images, self.crop)] if self.mode == 'center' else five_crops(images, self.crop)
        return [in_layout_of(batch, window) for window in windows]

    def probabilities(self, predict_proba, batch):
        """Class probabilities (N, C): predict_proba(crop batch) averaged over the crops.

        predict_proba takes a batch in the layout crops() gives and returns
        (N, C) probabilities."""
        return np.mean([predict_proba(crop) for crop in self.crops(batch)], axis=0)


# ---------------------------------------------------------------------------
# The augmenter used by the Solver: several transforms, one random draw each
# ---------------------------------------------------------------------------

class Augmenter(object):
    """Random training-time changes of a batch, reproducible under a seed.

    Settings (0 / None / False switch a transform off):
    - shift: largest translation in pixels (pad and random crop).
    - rotate: largest rotation in degrees.
    - scale: (low, high) zoom range for random scale-and-crop, e.g. (0.9, 1.1).
    - brightness, contrast: jitter amplitudes (see jitter_brightness_contrast).
    - erase: probability of random erasing per image.
    - flip: probability of a horizontal flip (0 by default: wrong for digits).
    - crop: train on random crop x crop windows (the model's input is then
      crop*crop); evaluate with center_crop or multi_crop_probabilities.
    - image_shape: (H, W), needed to accept flattened (N, D) batches.
    - seed: seed of the augmenter's own random generator.

    Shift, rotation and zoom are composed into ONE affine warp per batch, so
    the image is interpolated once, not three times.

    augmenter(images) -> augmented images in the layout they came in ((N, D),
    (N, H, W) or single-channel (N, 1, H, W)), of crop x crop images when
    `crop` is set (e.g. (N, crop*crop)).
    Labels are unchanged; the input array is never modified.
    """

    def __init__(self, shift=0, rotate=0.0, scale=None, brightness=0.0, contrast=0.0,
                 erase=0.0, flip=0.0, crop=None, image_shape=(28, 28), seed=None):
        for name, value in (('shift', shift), ('rotate', rotate), ('brightness', brightness),
                            ('contrast', contrast), ('erase', erase), ('flip', flip)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"Augmenter: {name} must be a number, got {value!r}")
        if shift != int(shift) or not shift < min(image_shape) / 2:
            raise ValueError(f"Augmenter: shift is the largest move in whole pixels and must be an integer "
                             f"below half the image ({min(image_shape) / 2:g} for {tuple(image_shape)}), "
                             f"got {shift!r}; 2 suits MNIST")
        if rotate > 180:
            raise ValueError(f"Augmenter: rotate is the largest angle in degrees, at most 180, got {rotate!r}; "
                             f"10 suits MNIST")
        if scale is not None and not (len(scale) == 2 and 0 < scale[0] <= scale[1]):
            raise ValueError(f"scale must be a (low, high) range with 0 < low <= high, got {scale!r}")
        for name, value in (('erase', erase), ('flip', flip)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} is a probability in [0, 1], got {value!r}")
        for name, value in (('shift', shift), ('rotate', rotate), ('brightness', brightness),
                            ('contrast', contrast)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0 (0 switches it off), got {value!r}")
        if crop is not None:
            _check_crop(crop, *image_shape)
        self.shift, self.rotate, self.scale = shift, rotate, scale
        self.brightness, self.contrast = brightness, contrast
        self.erase, self.flip, self.crop = erase, flip, crop
        self.image_shape = tuple(image_shape)
        self.rng = np.random.default_rng(seed)

    def __repr__(self):
        settings = ', '.join(f'{k}={v!r}' for k, v in vars(self).items() if k != 'rng')
        return f'Augmenter({settings})'

    def __call__(self, images):
        out = as_image_stack(images, self.image_shape, 'Augmenter')
        out = self._geometry(out)
        if self.brightness or self.contrast:
            out = jitter_brightness_contrast(out, self.brightness, self.contrast, self.rng)
        if self.erase:
            out = random_erasing(out, self.erase, self.rng)
        if self.flip:
            out = random_horizontal_flip(out, self.flip, self.rng)
        if self.crop is not None:
            out = random_crop(out, self.crop, self.rng)
        return in_layout_of(images, out)

    def _geometry(self, images):
        """Shift, rotation and zoom as one warp (the same maths as random_shift,
        random_rotation and random_scale_crop, drawn together)."""
        N, H, W = images.shape
        if not (self.shift or self.rotate or self.scale):
            return images
        if not (self.rotate or self.scale):
            return random_shift(images, self.shift, self.rng)     # whole pixels: no interpolation needed
        angles = self.rng.uniform(-self.rotate, self.rotate, size=N) if self.rotate else np.zeros(N)
        scales = self.rng.uniform(*self.scale, size=N) if self.scale else np.ones(N)
        margin = np.maximum(0.0, 1 - 1 / scales)[:, None] * (np.array([H - 1, W - 1]) / 2)
        offsets = self.rng.uniform(-1, 1, size=(N, 2)) * margin
        if self.shift:
            offsets = offsets + self.rng.integers(-self.shift, self.shift + 1, size=(N, 2))
        matrices = _rotation_scale_matrices(angles, scales)
        return affine_warp(images, matrices, offsets, background_of(images))


class AugmentedLoader(object):
    """A training loader whose batches pass through an Augmenter.

    Wraps the training loader only, so validation and test data are never
    augmented. len() and .dataset are the wrapped loader's.
    """

    def __init__(self, loader, augmenter):
        self.loader = loader
        self.augmenter = augmenter

    @property
    def dataset(self):
        return self.loader.dataset

    @property
    def sampler(self):
        return self.loader.sampler

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for images, labels in self.loader:
            yield self.augmenter(images), labels
