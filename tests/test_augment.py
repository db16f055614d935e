"""Data augmentation (notes §4.2.4): each transform does what it says on
images where the answer is known, keeps shapes, dtypes and labels, never
changes its input, and repeats exactly under a seed."""

import numpy as np
import pytest

import augment
from testkit.gradients import assert_close


def _digits(N=6, H=12, W=10, seed=0):
    """Bright random strokes on a background of -0.2 (an 'image_mean'-like offset)."""
    rng = np.random.default_rng(seed)
    images = np.full((N, H, W), -0.2, dtype=np.float32)
    images[:, 3:-3, 3:-3] = rng.uniform(0.5, 1.0, size=(N, H - 6, W - 6))
    return images


def _warp(images, matrices, offsets):
    return augment.affine_warp(images, np.asarray(matrices, dtype=float), np.asarray(offsets, dtype=float),
                               augment.background_of(images))


def test_integer_offsets_shift_exactly_and_fill_with_the_background():
    x = _digits()
    N = len(x)
    out = _warp(x, np.broadcast_to(np.eye(2), (N, 2, 2)), np.tile([2.0, -1.0], (N, 1)))
    # output (r, c) reads input (r + 2, c - 1)
    assert_close(out[:, :-2, 1:], x[:, 2:, :-1], "shifted pixels", rtol=1e-6)
    assert np.all(out[:, -2:, :] == -0.2) and np.all(out[:, :, :1] == -0.2), "new pixels are background"


def test_rotation_by_90_degrees_is_a_transpose_flip_and_half_pixel_is_an_average():
    x = _digits(H=9, W=9)
    N = len(x)
    quarter = augment._rotation_scale_matrices(np.full(N, 90.0), np.ones(N))
    assert_close(_warp(x, quarter, np.zeros((N, 2))), np.rot90(x, k=-1, axes=(1, 2)),
                 "90 degree rotation", rtol=1e-5, atol=1e-6)
    half = _warp(x, np.broadcast_to(np.eye(2), (N, 2, 2)), np.tile([0.0, 0.5], (N, 1)))
    assert_close(half[:, :, :-1], (x[:, :, :-1] + x[:, :, 1:]) / 2, "bilinear half-pixel shift", rtol=1e-5)


@pytest.mark.parametrize('transform', [
    lambda x, rng: augment.random_shift(x, 2, rng),
    lambda x, rng: augment.random_rotation(x, 15, rng),
    lambda x, rng: augment.random_scale_crop(x, (0.8, 1.2), rng),
    lambda x, rng: augment.jitter_brightness_contrast(x, 0.2, 0.3, rng),
    lambda x, rng: augment.random_erasing(x, 1.0, rng),
    lambda x, rng: augment.random_horizontal_flip(x, 0.5, rng),
], ids=['shift', 'rotation', 'scale_crop', 'jitter', 'erasing', 'flip'])
def test_each_transform_keeps_shape_dtype_input_and_is_reproducible(transform):
    x = _digits()
    original = x.copy()
    a = transform(x, np.random.default_rng(7))
    b = transform(x, np.random.default_rng(7))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert np.array_equal(x, original), "the input batch must not be modified"
    assert np.array_equal(a, b), "the same seed must give the same batch"
    assert not np.array_equal(a, x), "the transform changed nothing"
    assert np.all(np.isfinite(a))


def test_shift_moves_each_image_by_whole_pixels_within_the_limit():
    x = _digits(N=40)
    out = augment.random_shift(x, 2, np.random.default_rng(0))
    mass = lambda im: np.clip(im + 0.2, 0, None)        # brightness above the background
    rows = np.arange(x.shape[1])[None, :, None]
    centre_before = (mass(x) * rows).sum(axis=(1, 2)) / mass(x).sum(axis=(1, 2))
    centre_after = (mass(out) * rows).sum(axis=(1, 2)) / mass(out).sum(axis=(1, 2))
    moved = centre_after - centre_before
    assert np.all(np.abs(moved - np.round(moved)) < 1e-4) and np.all(np.abs(moved) <= 2 + 1e-4)
    assert len(np.unique(np.round(moved))) > 1, "all images moved alike: the shift is not per sample"


def test_shift_by_pad_and_crop_equals_the_warp_with_the_same_integer_offsets():
    # random_shift gathers whole pixels; the bilinear warp with the same
    # integer offsets must give exactly the same images.
    x = _digits(N=30)
    out = augment.random_shift(x, 3, np.random.default_rng(5))
    shifts = np.random.default_rng(5).integers(-3, 4, size=(30, 2))
    warped = augment.affine_warp(x, np.broadcast_to(np.eye(2), (30, 2, 2)), shifts.astype(float),
                                 augment.background_of(x))
    np.testing.assert_array_equal(out, warped)
    assert out.dtype == x.dtype and out.shape == x.shape


def test_jitter_matches_its_formula():
    x = _digits()
    rng = np.random.default_rng(3)
    out = augment.jitter_brightness_contrast(x, 0.2, 0.3, rng)
    rng = np.random.default_rng(3)
    c = rng.uniform(0.7, 1.3, size=(len(x), 1, 1))
    b = rng.uniform(-0.2, 0.2, size=(len(x), 1, 1))
    mean = x.mean(axis=(1, 2), keepdims=True)
    assert_close(out, mean + c * (x - mean) + b, "brightness and contrast", rtol=1e-5, atol=1e-6)


def test_erasing_sets_one_rectangle_per_image_to_the_background():
    x = _digits(N=20, H=20, W=20)
    x[:, 3:-3, 3:-3] += 1.0                     # the whole inside is clearly above the background
    out = augment.random_erasing(x, 1.0, np.random.default_rng(0), area_range=(0.05, 0.1))
    changed = out != x
    for n in range(len(x)):                      # check the shape of each erased region
        rows, cols = np.nonzero(changed[n])
        assert len(rows), f"image {n} not erased"
        box = changed[n, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.all(), f"image {n}: the erased pixels are not a rectangle"
    assert np.all(out[changed] == -0.2)
    none = augment.random_erasing(x, 0.0, np.random.default_rng(0))
    assert np.array_equal(none, x)


def test_flip_mirrors_the_chosen_images_only():
    x = _digits(N=50)
    out = augment.random_horizontal_flip(x, 0.5, np.random.default_rng(0))
    flipped = np.array([np.array_equal(o, i[:, ::-1]) and not np.array_equal(o, i) for o, i in zip(out, x)])
    same = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert np.all(flipped | same) and 10 < flipped.sum() < 40


def test_crops_centre_five_and_multi_crop_average():
    x = np.arange(2 * 6 * 6, dtype=np.float64).reshape(2, 6, 6)
    assert np.array_equal(augment.center_crop(x, 4), x[:, 1:5, 1:5])
    crops = augment.five_crops(x, 4)
    for crop, expected in zip(crops, [x[:, :4, :4], x[:, :4, 2:], x[:, 2:, :4], x[:, 2:, 2:], x[:, 1:5, 1:5]]):
        assert np.array_equal(crop, expected)
    rc = augment.random_crop(x, 4, np.random.default_rng(0))
    assert rc.shape == (2, 4, 4)
    # the top-left pixel of each crop fixes its position; all crop pixels come from that window
    for n in range(2):
        top, left = divmod(int(rc[n, 0, 0]) - 36 * n, 6)
        assert np.array_equal(rc[n], x[n, top:top + 4, left:left + 4])
    proba = augment.multi_crop_probabilities(lambda flat: flat[:, :3], x, 4)
    assert_close(proba, np.mean([c.reshape(2, -1)[:, :3] for c in crops], axis=0), "mean over crops")
    with pytest.raises(ValueError, match='crop size'):
        augment.center_crop(x, 7)


def test_augmenter_keeps_flat_batches_labels_and_repeats_under_a_seed():
    x = _digits(N=8, H=28, W=28).reshape(8, -1)
    settings = dict(shift=2, rotate=10, scale=(0.9, 1.1), brightness=0.1, contrast=0.2, erase=0.5)
    a = augment.Augmenter(**settings, seed=1)(x)
    b = augment.Augmenter(**settings, seed=1)(x)
    assert a.shape == x.shape and a.dtype == x.dtype and np.array_equal(a, b)
    assert not np.array_equal(a, augment.Augmenter(**settings, seed=2)(x))
    assert augment.Augmenter(crop=24, seed=0)(x).shape == (8, 24 * 24)

    labels = np.arange(8)
    batches = [(x, labels)]
    loader = augment.AugmentedLoader(batches, augment.Augmenter(shift=1, seed=0))
    (images_out, labels_out), = list(loader)
    assert images_out.shape == x.shape and labels_out is labels


@pytest.mark.parametrize('kwargs, message', [
    (dict(erase=1.5), 'erase is a probability'),
    (dict(scale=(1.2, 0.9)), 'scale must be'),
    (dict(rotate=-5), 'rotate must be >= 0'),
    (dict(crop=40), 'crop size'),
])
def test_augmenter_explains_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        augment.Augmenter(**kwargs)


def test_augmenter_explains_a_wrong_image_shape():
    with pytest.raises(ValueError, match='image_shape'):
        augment.Augmenter(shift=1)(np.zeros((2, 100), dtype=np.float32))


def test_augmenter_keeps_single_channel_feature_maps_and_test_time_crops_keep_the_layout():
    x = _digits(N=6)
    maps = x[:, None]                                             # (N, 1, H, W), the CNN's layout
    out = augment.Augmenter(shift=2, rotate=5, crop=8, image_shape=(12, 10), seed=1)(maps)
    assert out.shape == (6, 1, 8, 8)
    flat = augment.Augmenter(shift=2, rotate=5, crop=8, image_shape=(12, 10), seed=1)(x.reshape(6, -1))
    np.testing.assert_array_equal(out.reshape(6, -1), flat)       # the same draws in either layout
    centre, = augment.TestTimeCrops(8, 'center', image_shape=(12, 10)).crops(maps)
    np.testing.assert_array_equal(centre[:, 0], augment.center_crop(x, 8))
    five = augment.TestTimeCrops(8, 'multi', image_shape=(12, 10)).crops(x.reshape(6, -1))
    assert len(five) == 5 and all(c.shape == (6, 64) for c in five)
    with pytest.raises(ValueError, match="single-channel"):
        augment.Augmenter(shift=1)(np.zeros((2, 3, 28, 28), np.float32))
