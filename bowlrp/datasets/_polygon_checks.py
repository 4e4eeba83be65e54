"""Parameter checks of :func:`bowlrp.datasets.make_polygons`: every error names the parameter and the fix."""

import numpy as np

from ._shapes import _extent
from .watermark import watermark_box


def _validate(n_train, n_test_images, image_size, tile_size, test_stride, shape_radius,
              density, lp_range, background_amplitude, noise_std, context=0.0,
              context_amplitude=0.15, watermark=0.0, watermark_pattern="checkerboard"):
    for name, v in (("context", context), ("watermark", watermark)):
        if not (isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and 0 <= v <= 1):
            raise ValueError(f"{name} must be a number in [0, 1] (0: off), got {v!r}.")
    if not (isinstance(context_amplitude, (int, float, np.number)) and 0 < context_amplitude <= 0.3):
        raise ValueError(f"context_amplitude must lie in (0, 0.3], got {context_amplitude!r}.")
    if watermark > 0 and isinstance(tile_size, (int, np.integer)):
        try:
            watermark_box((tile_size, tile_size), watermark_pattern)
        except ValueError as exc:
            raise ValueError(f"watermark_pattern: {exc}") from None

    def is_int(x):
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    if not is_int(n_train) or n_train < 1:
        raise ValueError(f"n_train must be an integer >= 1, got {n_train!r}.")
    if not is_int(n_test_images) or n_test_images < 0:
        raise ValueError(
            f"n_test_images must be an integer >= 0 (0 for no test set), got {n_test_images!r}."
        )
    if not is_int(tile_size) or tile_size < 1:
        raise ValueError(f"tile_size must be an integer >= 1, got {tile_size!r}.")
    if not is_int(image_size) or image_size < tile_size:
        raise ValueError(
            f"tile_size={tile_size!r} must not exceed image_size={image_size!r}; "
            "raise `image_size` or lower `tile_size`."
        )
    if not is_int(test_stride) or test_stride < 1:
        raise ValueError(f"test_stride must be an integer >= 1, got {test_stride!r}.")
    try:
        lo, hi = (float(v) for v in shape_radius)
    except (TypeError, ValueError):
        raise ValueError(
            f"shape_radius must be a pair (lo, hi) with 0 < lo <= hi, got {shape_radius!r}."
        ) from None
    if not (0 < lo <= hi) or not np.isfinite(hi):
        raise ValueError(
            f"shape_radius must be a pair (lo, hi) with 0 < lo <= hi, got {shape_radius!r}."
        )
    if 2 * hi >= tile_size:
        raise ValueError(
            f"shapes of radius up to {hi} (diameter {2 * hi}) do not fit in tiles of "
            f"{tile_size} pixels; lower shape_radius[1] below tile_size / 2."
        )
    try:
        plo, phi = (float(v) for v in lp_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"lp_range must be a pair (lo, hi) with 1 <= lo <= hi, got {lp_range!r}."
        ) from None
    if not (1 <= plo <= phi) or not np.isfinite(phi):
        raise ValueError(
            f"lp_range must be a pair (lo, hi) with 1 <= lo <= hi (p < 1 gives non-convex, "
            f"star-like shapes), got {lp_range!r}."
        )
    max_extent = max(_extent("polygon", hi, 2.0), _extent("round", hi, phi))
    if 2 * max_extent + 1 >= image_size:
        raise ValueError(
            f"shapes reaching {max_extent:.1f} pixels from their centre do not fit in "
            f"images of {image_size} pixels; lower `shape_radius` or raise `image_size`."
        )
    if not np.isfinite(density) or density <= 0:
        raise ValueError(
            f"density must be a positive number (expected shapes per tile_size x tile_size "
            f"area), got {density!r}."
        )
    if not (0 <= background_amplitude <= 0.2):
        raise ValueError(
            "background_amplitude must lie in [0, 0.2] (the pattern must stay faint), "
            f"got {background_amplitude!r}."
        )
    if not (0 <= noise_std <= 0.1):
        raise ValueError(f"noise_std must lie in [0, 0.1], got {noise_std!r}.")
    return (lo, hi), (plo, phi)
