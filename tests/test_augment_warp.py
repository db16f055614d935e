"""A known answer for the Augmenter's combined warp (zoom, random position
inside the margin, whole-pixel shift): on a linear ramp image bilinear
interpolation is exact, so every output pixel tells where it was read from."""

import numpy as np

from augment import Augmenter

H = W = 28
CENTRE = (H - 1) / 2


def test_zoom_window_moves_within_its_margin_plus_the_whole_pixel_shift():
    N, zoom, shift, seed = 8, 2.0, 1, 3
    rows, cols = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing='ij')
    ramp = rows + 100 * cols                       # pixel value = row + 100 col
    images = np.repeat(ramp[None], N, axis=0)

    out = Augmenter(shift=shift, scale=(zoom, zoom), seed=seed)(images)

    # The draws of Augmenter._geometry, in its order: zoom factors, the
    # window's position inside the margin, then the whole-pixel shift.
    rng = np.random.default_rng(seed)
    rng.uniform(zoom, zoom, size=N)
    margin = (1 - 1 / zoom) * CENTRE               # 6.75 px: the zoomed window stays inside the image
    offsets = rng.uniform(-1, 1, size=(N, 2)) * margin + rng.integers(-shift, shift + 1, size=(N, 2))
    assert np.all(np.abs(offsets) > 0) and np.abs(offsets).max() <= margin + shift

    # source = (pixel - centre) / zoom + centre + offset, read bilinearly from the ramp.
    inner = slice(2, H - 2)                        # sources that stay inside the image
    src_rows = (rows - CENTRE) / zoom + CENTRE + offsets[:, 0, None, None]
    src_cols = (cols - CENTRE) / zoom + CENTRE + offsets[:, 1, None, None]
    expected = src_rows + 100 * src_cols
    assert np.allclose(out[:, inner, inner], expected[:, inner, inner], atol=1e-9), \
        f"largest difference {np.abs(out - expected)[:, inner, inner].max():.3g} px"
