"""Pixel maps of boxes of descriptor relevance: one difference array, filled chunk by chunk (eq. 2.84, 2.85).

Every pixel rule of :mod:`bowlrp.features.pixel_rules` spreads values
evenly over boxes (a descriptor's square, or its 4 x 4 spatial bins).  A
2-D difference array (four signed corners per box, scattered with
``bincount``) integrated by two cumulative sums does it in ``O(n + H W)``.
"""

import numpy as np

from .._backend import asarray
from .._blas import one_thread
from .geometry import _edges, bin_boxes, rotated

# the machinery of the pixel rules (bowlrp.features.pixel_rules); nothing here is for users
__all__ = []


def spread_over_boxes(boxes, values, image_shape, xp):
    """``out[p] = sum_{k : p in boxes[k]} values[k]``: every box's value added to each of its pixels.

    A 2-D difference array (four signed corners per box, scattered with
    ``bincount``) and two cumulative sums: ``O(n + H W)``.
    """
    H, W = image_shape
    b = asarray(np.asarray(boxes).reshape(-1, 4), xp, dtype=xp.int64)
    v = values.reshape(-1)
    r0, c0, r1, c1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    stride = W + 1
    idx = xp.concatenate([r0 * stride + c0, r0 * stride + c1, r1 * stride + c0, r1 * stride + c1])
    wts = xp.concatenate([v, -v, -v, v])
    diff = xp.bincount(idx, weights=wts, minlength=(H + 1) * stride).reshape(H + 1, stride)
    return xp.cumsum(xp.cumsum(diff, axis=0), axis=1)[:H, :W]


#: Descriptors per chunk of the per-bin rules: about 4 kB of temporaries each (boxes, corners, weights).
_CHUNK = 8192


class _Part:
    """Descriptors ``lo:hi`` of a set, with the geometry :func:`bin_boxes` reads."""

    def __init__(self, ds, lo, hi):
        self.image_shape = ds.image_shape
        self.centers, self.sigmas, self.angles = ds.centers[lo:hi], ds.sigmas[lo:hi], ds.angles[lo:hi]
        self.boxes = ds.boxes[lo:hi]

    def __len__(self):
        return len(self.sigmas)


def _add_boxes(diff, boxes, values, stride, xp):
    """Add the four signed corners of every box (host ``(m, 4)``) with its value to the flat ``diff``.

    The corners of a chunk of consecutive descriptors lie in a band of rows
    (descriptors are ordered by level, then row-major), so the ``bincount``
    covers only that band of the difference array.
    """
    r0, c0, r1, c1 = (boxes[:, j].astype(np.int64) for j in range(4))
    idx = np.concatenate([r0 * stride + c0, r0 * stride + c1, r1 * stride + c0, r1 * stride + c1])
    v = values.reshape(-1)
    _add_points(diff, idx, xp.concatenate([v, -v, -v, v]), xp)


def _add_points(diff, idx, weights, xp, band=None):
    """``diff[idx] += weights`` (host flat indices, repeats summed) with one ``bincount`` over their band.

    ``band`` is ``(base, span)`` when the caller knows the indices' range
    and gives ``idx - base``.
    """
    if not idx.size:
        return
    if band is None:
        base = int(idx.min())
        band, idx = (base, int(idx.max()) - base + 1), idx - base
    base, span = band
    diff[base : base + span] += xp.bincount(asarray(idx, xp), weights=weights, minlength=span)


def _lattice_weights():
    """``(16, 25)``: bin ``(i, j)``'s sign at each point ``(p, q)`` of the 5 x 5 edge lattice (+1 at its
    corners ``(i, j)`` and ``(i+1, j+1)``, -1 at ``(i, j+1)`` and ``(i+1, j)``), the 2-D difference as a map."""
    out = np.zeros((4, 4, 5, 5))
    for i in range(4):
        for j in range(4):
            out[i, j, i, j] = out[i, j, i + 1, j + 1] = 1.0
            out[i, j, i, j + 1] = out[i, j, i + 1, j] = -1.0
    return out.reshape(16, 25)


_LATTICE = _lattice_weights()


def _add_split_squares(diff, rows, cols, values, stride, xp):
    """Add the 4 x 4 bins of unrotated descriptors: each bin's value over its box, from the 5 x 5 edge lattice.

    The bins split the descriptor's square along the edges ``rows`` and
    ``cols`` (host ``(m, 5)``), so the four corners of each bin are points of
    that lattice, shared with its neighbours: a lattice point's weight is
    the signed sum of the bins it is a corner of (the 2-D difference of the
    zero-padded 4 x 4 values, one product with :data:`_LATTICE`), 25 points
    per descriptor instead of 64.
    """
    m = len(rows)
    if not m:
        return
    L = values.reshape(m, 16) @ asarray(_LATTICE, xp, dtype=xp.float64)  # (m, 25): one small product
    r0, c0 = int(rows.min()), int(cols.min())
    r, c = rows.astype(np.int64) - r0, cols.astype(np.int64) - c0
    idx = (r * stride)[:, :, None] + c[:, None, :]
    span = int(r.max()) * stride + int(c.max()) + 1
    _add_points(diff, idx.reshape(-1), L.reshape(-1), xp, band=(r0 * stride + c0, span))


def _chunks(descriptor_set):
    """``(lo, hi)`` of up to ``_CHUNK`` consecutive descriptors, never across two scale levels.

    Inside a level descriptors are row-major, so a chunk's boxes cover a
    band of rows; a chunk across a level boundary would span the image.
    """
    n = len(descriptor_set)
    for sl in getattr(descriptor_set, "level_slices", (slice(0, n),)):
        for lo in range(sl.start, sl.stop, _CHUNK):
            yield lo, min(sl.stop, lo + _CHUNK)


def bin_map(descriptor_set, per_bin, xp):
    """Pixel map of per-bin relevance, chunk by chunk over descriptors (eq. 2.84, 2.85 per bin).

    ``per_bin(lo, hi)`` gives ``(bins (m, 16), flat (m,))``: relevance of
    every spatial bin, spread evenly over the bin's box
    (:func:`bin_boxes`), and relevance spread evenly over the descriptor's
    whole box (the flat rule).  A bin whose box is empty after clipping
    (only for hand-made sets whose squares leave the image) gives its
    relevance to the descriptor's whole box, so the map conserves
    relevance.  All boxes go into one difference array, integrated once by
    two cumulative sums: temporaries of one chunk of descriptors and one
    ``(H + 1) x (W + 1)`` array, and nothing read back from the device.
    """
    H, W = descriptor_set.image_shape
    n = len(descriptor_set)
    areas = descriptor_set.areas
    if n and areas.min() <= 0:
        raise ValueError("every box must hold at least one pixel for the flat rule to conserve relevance")
    stride = W + 1
    diff = xp.zeros((H + 1) * stride, dtype=xp.float64)
    with one_thread():  # small products: threads gain nothing and leave OpenBLAS's worker spinning
        for lo, hi in _chunks(descriptor_set):
            _add_chunk(diff, descriptor_set, areas, lo, hi, per_bin, stride, xp)
    diff = diff.reshape(H + 1, stride)
    xp.cumsum(diff, axis=0, out=diff)
    xp.cumsum(diff, axis=1, out=diff)
    return diff[:H, :W]


def _add_chunk(diff, descriptor_set, areas, lo, hi, per_bin, stride, xp):
    """Add the boxes of descriptors ``lo:hi`` (whose box ``areas`` the set holds) to the difference array
    ``diff`` (see :func:`bin_map`)."""
    part = _Part(descriptor_set, lo, hi)
    split = rotated(part.angles).size == 0  # host geometry: the bins split each square
    if split:
        rows, cols = _edges(part)[:2]
        bin_areas = (np.diff(rows, axis=1)[:, :, None] * np.diff(cols, axis=1)[:, None, :]).reshape(-1, 16)
    else:
        boxes = bin_boxes(part)
        bin_areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    bins, flat = per_bin(lo, hi)
    if (bin_areas > 0).all():
        v = bins / asarray(bin_areas, xp, dtype=xp.float64)
    else:
        ok = asarray(bin_areas > 0, xp)
        v = xp.where(ok, bins / asarray(np.maximum(bin_areas, 1), xp, dtype=xp.float64), 0.0)
        flat = flat + xp.where(ok, 0.0, bins).sum(1)
    if split:
        _add_split_squares(diff, rows, cols, v, stride, xp)
    else:
        _add_boxes(diff, boxes.reshape(-1, 4), v, stride, xp)
    _add_boxes(diff, descriptor_set.boxes[lo:hi], flat / asarray(areas[lo:hi], xp, dtype=xp.float64),
               stride, xp)
