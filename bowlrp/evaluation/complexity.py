"""Heatmap complexity: compressed size and entropy (paper 003, Fig. 5).

Good heatmaps mark the relevant regions and little else, so they compress
better than noisy ones.  Both measures work on the rendered heatmap: the map
is divided by its own ``max |R|`` (eq. 2.62) unless a common ``scale`` is given.
"""

import cv2
import numpy as np

from ..viz import heatmap_rgb, normalize_relevance
from ._common import check_heatmaps

__all__ = ["heatmap_complexity", "png_size", "heatmap_entropy"]


def png_size(heatmap, scale=None, compression=9):
    """Bytes of the colour heatmap (eq. 2.62, :func:`bowlrp.viz.heatmap_rgb`) as a PNG file.

    Examples
    --------
    >>> import numpy as np
    >>> blob = np.zeros((32, 32)); blob[8:16, 8:16] = 1.0
    >>> noise = np.random.default_rng(0).standard_normal((32, 32))
    >>> png_size(blob) < png_size(noise)  # a clean map compresses better
    True
    """
    rgb = heatmap_rgb(np.asarray(heatmap, dtype=np.float64), scale=scale)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise RuntimeError("OpenCV could not encode the heatmap as PNG")
    return int(buf.size)


def heatmap_entropy(heatmap, scale=None, bins=256):
    """Shannon entropy (bits) of the normalised map quantised to ``bins`` grey levels.

    Like MATLAB's ``entropy`` (used in paper 003): ``-sum p log2 p`` over a
    ``bins``-bin histogram of the map scaled to [-1, 1] (eq. 2.62).

    Examples
    --------
    One pixel in 16 is relevant, the rest is zero: ``-(1/16) log2(1/16) -
    (15/16) log2(15/16)``.

    >>> import numpy as np
    >>> blob = np.zeros((32, 32)); blob[8:16, 8:16] = 1.0
    >>> round(heatmap_entropy(blob), 4)
    0.3373
    >>> heatmap_entropy(np.zeros((32, 32)))  # one grey level
    0.0
    """
    r = normalize_relevance(np.asarray(heatmap, dtype=np.float64), scale=scale)
    q = np.clip(np.floor((np.clip(r, -1, 1) + 1) / 2 * bins), 0, bins - 1).astype(np.intp)
    p = np.bincount(q.ravel(), minlength=bins) / q.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum() + 0.0)


def heatmap_complexity(heatmaps, scale=None):
    """PNG size and entropy of each heatmap.

    Parameters
    ----------
    heatmaps : list of (H, W) arrays or Explanation
    scale : float or None
        Common normalisation (eq. 2.62); None uses each map's own ``max |R|``.

    Returns
    -------
    dict with ``"png_bytes"`` (ndarray of int) and ``"entropy"`` (ndarray, bits)

    Examples
    --------
    >>> import numpy as np
    >>> blob = np.zeros((32, 32)); blob[8:16, 8:16] = 1.0
    >>> noise = np.random.default_rng(0).standard_normal((32, 32))
    >>> c = heatmap_complexity([blob, noise])
    >>> sorted(c), bool(c["png_bytes"][0] < c["png_bytes"][1]), c["entropy"].round(2)
    (['entropy', 'png_bytes'], True, array([0.34, 6.85]))
    """
    maps = check_heatmaps(heatmaps)
    return {
        "png_bytes": np.array([png_size(h, scale) for h in maps]),
        "entropy": np.array([heatmap_entropy(h, scale) for h in maps]),
    }
