"""Pixel rules: how the relevance of dense SIFT descriptors is spread over the image's pixels.

* the flat rule (eq. 2.84, 2.85): a descriptor's relevance spread evenly over
  its square ``area(l)``;
* the per-bin rule (App. D.1.2): relevance per descriptor dimension (eq. D.3,
  from a Fisher-vector encoder) summed per 4 x 4 spatial bin, each bin's sum
  spread over the bin's box (:func:`bowlrp.features.geometry.bin_boxes`).

:class:`bowlrp.features.sift.DenseSIFT` chooses one by name (``PIXEL_RULES``).
All run on the array module of the relevance (NumPy or CuPy).
"""

import numpy as np

from .._backend import asarray, get_namespace
from ..rules import Flat, Rule
from .geometry import SPATIAL_BINS, bin_boxes

__all__ = ["PIXEL_RULES", "bin_pixel_relevance", "flat_pixel_relevance", "pixel_relevance", "resolve_pixel_rule"]

#: Pixel rules of :meth:`DenseSIFT.relevance` ("bins" needs relevance per descriptor dimension).
PIXEL_RULES = ("auto", "flat", "bins")


def flat_pixel_relevance(descriptor_set, relevance):
    """Spread descriptor relevance evenly over the pixels of each box (flat rule).

    Implements eq. 2.84 and 2.85: every pixel of ``area(l)`` contributes
    equally (``z_pl = 1``), so ``R_{p<-l} = R_l / |area(l)|`` and
    ``R_p = sum_{l : p in area(l)} R_l / |area(l)|``.  The boxes are the
    (clipped) squares of ``descriptor_set.boxes``, so the map conserves
    relevance: ``sum_p R_p = sum_l R_l`` up to rounding.

    The sum over overlapping boxes is computed with a 2-D difference array
    (four signed corners per box, scattered with ``bincount``) and two
    cumulative sums: ``O(n + H W)``.  The computation runs on the array
    module of ``relevance`` (NumPy or CuPy).

    Parameters
    ----------
    descriptor_set : DescriptorSet
        Geometry of the descriptors of one image.
    relevance : array of shape (n,)
        Relevance ``R_l`` of each descriptor (NumPy or CuPy).

    Returns
    -------
    pixel_relevance : array of shape (H, W), float64
        ``R_p`` for every pixel, in the array module of ``relevance``.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.features.sift import DenseSIFT, flat_pixel_relevance
    >>> ds = DenseSIFT(scales=(2.0,), steps=6).transform(np.zeros((1, 24, 36)))[0]
    >>> R = flat_pixel_relevance(ds, np.array([1.0, -2.0, 4.0]))
    >>> R.shape, bool(np.isclose(R.sum(), 3.0))
    ((24, 36), True)
    """
    xp = get_namespace(relevance)
    H, W = descriptor_set.image_shape
    n = len(descriptor_set)
    relevance = asarray(relevance, xp, dtype=xp.float64)
    if relevance.shape != (n,):
        raise ValueError(
            f"relevance must have shape ({n},), one value per descriptor of the set, got {tuple(relevance.shape)}"
        )
    areas = descriptor_set.areas
    if n and areas.min() <= 0:
        raise ValueError("every box must hold at least one pixel for the flat rule to conserve relevance")
    boxes = asarray(descriptor_set.boxes, xp, dtype=xp.int64)
    v = relevance / asarray(areas, xp, dtype=xp.float64)
    r0, c0, r1, c1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    stride = W + 1
    idx = xp.concatenate([r0 * stride + c0, r0 * stride + c1, r1 * stride + c0, r1 * stride + c1])
    wts = xp.concatenate([v, -v, -v, v])
    diff = xp.bincount(idx, weights=wts, minlength=(H + 1) * stride).reshape(H + 1, stride)
    out = xp.cumsum(xp.cumsum(diff, axis=0), axis=1)
    return out[:H, :W]


def bin_pixel_relevance(descriptor_set, relevance):
    """Map relevance per descriptor dimension to pixels through the 4 x 4 spatial bins (App. D.1.2).

    The relevance of the 8 orientation dimensions of a spatial bin is summed
    and spread evenly over the bin's pixels (:func:`bin_boxes`): the flat
    rule (eq. 2.84, 2.85) applied per bin instead of per descriptor, giving
    maps 16 times finer.  A bin whose box is empty after clipping (only for
    hand-made sets whose squares leave the image) gives its relevance to the
    descriptor's whole box, so the map always conserves relevance:
    ``sum_p R_p = sum_{l, i} R_{l, i}``.

    Parameters
    ----------
    descriptor_set : DescriptorSet
    relevance : array of shape (n, 128)
        Relevance of every descriptor dimension (NumPy or CuPy), e.g. from
        :class:`bowlrp.FisherVectorEncoder` (eq. D.3).

    Returns
    -------
    pixel_relevance : array of shape (H, W), float64
    """
    xp = get_namespace(relevance)
    H, W = descriptor_set.image_shape
    n = len(descriptor_set)
    relevance = asarray(relevance, xp, dtype=xp.float64)
    nb = SPATIAL_BINS * SPATIAL_BINS
    if relevance.ndim != 2 or relevance.shape[0] != n or relevance.shape[1] % nb:
        raise ValueError(
            f"relevance must have shape ({n}, 128), one value per descriptor dimension, got {tuple(relevance.shape)}"
        )
    per_bin = relevance.reshape(n, nb, -1).sum(2)  # (n, 16)
    boxes = bin_boxes(descriptor_set)
    areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    ok = asarray(areas > 0, xp)
    v = xp.where(ok, per_bin / asarray(np.maximum(areas, 1), xp, dtype=xp.float64), 0.0).reshape(-1)
    b = asarray(boxes.reshape(-1, 4), xp, dtype=xp.int64)
    r0, c0, r1, c1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    stride = W + 1
    idx = xp.concatenate([r0 * stride + c0, r0 * stride + c1, r1 * stride + c0, r1 * stride + c1])
    wts = xp.concatenate([v, -v, -v, v])
    diff = xp.bincount(idx, weights=wts, minlength=(H + 1) * stride).reshape(H + 1, stride)
    out = xp.cumsum(xp.cumsum(diff, axis=0), axis=1)[:H, :W]
    if not bool(ok.all()):
        out = out + flat_pixel_relevance(descriptor_set, xp.where(ok, 0.0, per_bin).sum(1))
    return out


def resolve_pixel_rule(rule):
    """The name of a pixel rule of :class:`DenseSIFT`; refuse everything else with the valid names."""
    if isinstance(rule, Flat):
        return "flat"
    if isinstance(rule, Rule):
        raise ValueError(f"DenseSIFT maps descriptor relevance to pixels geometrically; the {rule.name!r} rule "
                         f"applies to mapping stages. Its pixel rules are {list(PIXEL_RULES)}")
    if rule not in PIXEL_RULES:
        raise ValueError(f"unknown pixel rule {rule!r} for DenseSIFT; valid pixel rules are {list(PIXEL_RULES)}")
    return rule


def pixel_relevance(descriptor_set, relevance, rule="auto"):
    """Pixel map of one image's descriptor relevance under the pixel rule ``rule``.

    Parameters
    ----------
    descriptor_set : DescriptorSet
    relevance : array of shape (n,) or (n, 128)
        Relevance per descriptor, or per descriptor dimension (eq. D.3).
    rule : str or bowlrp.rules.Flat, default="auto"
        One of ``PIXEL_RULES`` (see :meth:`bowlrp.features.sift.DenseSIFT.relevance`).

    Returns
    -------
    pixel_relevance : array of shape (H, W), float64
    """
    rule = resolve_pixel_rule(rule)
    if getattr(relevance, "ndim", 1) == 2:  # relevance per descriptor dimension (eq. D.3)
        if rule == "flat":
            return flat_pixel_relevance(descriptor_set, relevance.sum(1))
        return bin_pixel_relevance(descriptor_set, relevance)
    if rule == "bins":
        raise ValueError("pixel_rule='bins' needs relevance per descriptor dimension, arrays of shape "
                         "(n_i, 128) (e.g. from FisherVectorEncoder); use 'flat' or 'auto'")
    return flat_pixel_relevance(descriptor_set, relevance)
