"""Pixel rules: how the relevance of dense SIFT descriptors is spread over the image's pixels.

* ``"flat"`` (eq. 2.84, 2.85): a descriptor's relevance spread evenly over
  its square ``area(l)``;
* ``"bins"`` (App. D.1.2): relevance per descriptor dimension (eq. D.3, from
  a Fisher-vector encoder) summed per 4 x 4 spatial bin, each bin's sum
  spread over the bin's box (:func:`bowlrp.features.geometry.bin_boxes`);
* ``"energy"``: a descriptor's total relevance shared among its bins in
  proportion to their gradient energy (the descriptor's own values), then
  spread over the bins' boxes;
* ``"magnitude"``: a descriptor's total relevance shared among its bins in
  proportion to the absolute relevance of their dimensions.

The last two keep the per-bin rule's finer localisation but, like the flat
rule, give every pixel of a descriptor the sign of the descriptor's total:
per-dimension relevance of Fisher-vector models is dominated by positive
and negative parts that cancel within a descriptor, and the per-bin rule
passes that noise on to the pixels.  ``"auto"`` picks ``"flat"`` for
relevance per descriptor and ``"magnitude"`` per descriptor dimension
(``AUTO_RULES``), by the pixel AOPC measured in ``docs/pixel_rules.md``:
"magnitude" keeps the flat rule's AOPC at the per-bin resolution,
"energy" is best under blur and weaker under uniform noise, "bins" is far
below both on Fisher vectors.  :class:`bowlrp.features.sift.DenseSIFT` chooses a rule
by name (``PIXEL_RULES``); all run on the array module of the relevance
(NumPy or CuPy) and conserve it: ``sum_p R_p = sum_l R_l``.  The per-bin
rules run over chunks of descriptors of one level into one difference
array; none reads more of per-dimension relevance than :func:`bin_parts`
keeps (per bin, the sums of its positive and of its negative parts).
"""

import numpy as np

from .._backend import asarray, get_namespace
from ..rules import Flat, Rule
from .geometry import SPATIAL_BINS
from .pixel_maps import bin_map, spread_over_boxes

__all__ = [
    "AUTO_RULES",
    "PIXEL_RULES",
    "bin_parts",
    "bin_pixel_relevance",
    "energy_pixel_relevance",
    "flat_pixel_relevance",
    "magnitude_pixel_relevance",
    "pixel_relevance",
    "resolve_pixel_rule",
    "shared_bin_relevance",
]

#: Pixel rules of :meth:`DenseSIFT.relevance` ("bins" and "magnitude" need relevance per descriptor dimension).
PIXEL_RULES = ("auto", "flat", "bins", "energy", "magnitude")
#: Pixel rules that need relevance per descriptor dimension.
_PER_DIMENSION = ("bins", "magnitude")
#: Spatial bins of a descriptor.
_NB = SPATIAL_BINS * SPATIAL_BINS


def _bin_sums(relevance, lo, hi, xp, magnitude=False):
    """``sum_o R_{l, 8 b + o}`` (or of ``|R|``) per spatial bin of descriptors ``lo:hi``: (m, 16) float64."""
    r = relevance[lo:hi]
    r = xp.abs(r) if magnitude else r
    return xp.einsum("mbo->mb", r.reshape(hi - lo, _NB, -1))  # about 3x faster than sum(2) on a short axis


def _per_descriptor(descriptor_set, relevance, xp, need_dimensions, rule):
    """``relevance`` as float64 of the array module ``xp``, shape-checked: (n,) or (n, d) with 16 | d."""
    n = len(descriptor_set)
    relevance = asarray(relevance, xp, dtype=xp.float64)
    if relevance.ndim == 2 and relevance.shape[0] == n and relevance.shape[1] % _NB == 0:
        return relevance
    if relevance.ndim == 1 and relevance.shape == (n,) and not need_dimensions:
        return relevance
    if need_dimensions:
        raise ValueError(
            f"the {rule!r} pixel rule needs relevance per descriptor dimension, an array of shape ({n}, 128) "
            f"(e.g. from FisherVectorEncoder), got {tuple(relevance.shape)}; use 'flat' or 'energy' for "
            "relevance per descriptor"
        )
    raise ValueError(
        f"relevance must have shape ({n},) or ({n}, 128), one value per descriptor (or per descriptor "
        f"dimension) of the set, got {tuple(relevance.shape)}"
    )


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
    return spread_over_boxes(descriptor_set.boxes, relevance / asarray(areas, xp, dtype=xp.float64),
                              descriptor_set.image_shape, xp)


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

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> img = (np.random.default_rng(0).random((40, 40)) * 255).astype(np.uint8)
    >>> ds = bowlrp.DenseSIFT(scales=(2.0,), steps=(8,)).transform([img])[0]  # 9 descriptors
    >>> R = np.random.default_rng(1).normal(size=(len(ds), 128))  # relevance per descriptor dimension
    >>> m = bin_pixel_relevance(ds, R)
    >>> m.shape, bool(np.isclose(m.sum(), R.sum()))  # conserved
    ((40, 40), True)
    """
    xp = get_namespace(relevance)
    relevance = _per_descriptor(descriptor_set, relevance, xp, True, "bins")
    return bin_map(descriptor_set, lambda lo, hi: (_bin_sums(relevance, lo, hi, xp),
                                                    xp.zeros(hi - lo, dtype=xp.float64)), xp)


def shared_bin_relevance(descriptor_set, relevance, weights):
    """Share each descriptor's relevance among its 16 spatial bins by non-negative weights, then map to pixels.

    ``R_{b <- l} = R_l w_{lb} / sum_b' w_{lb'}`` (the proportional rule, eq.
    2.78, with positive contributions ``z_{bl} = w_{lb}``), then every bin's
    share is spread evenly over its box (eq. 2.84, 2.85 per bin,
    :func:`bin_boxes`).  A descriptor whose weights are all zero keeps the
    flat rule over its square (the zero-mapping case, eq. 2.79).  Every pixel
    of a descriptor gets the sign of ``R_l``, and the map conserves
    relevance: ``sum_p R_p = sum_l R_l``.

    Parameters
    ----------
    descriptor_set : DescriptorSet
    relevance : array of shape (n,) or (n, d)
        ``R_l`` per descriptor, or per descriptor dimension (summed to ``R_l``).
    weights : array of shape (n, 16)
        Non-negative weight of every spatial bin (``b = 4 row + col``).

    Returns
    -------
    pixel_relevance : array of shape (H, W), float64

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.features.sift import DenseSIFT, shared_bin_relevance
    >>> ds = DenseSIFT(scales=(2.0,), steps=6).transform(np.zeros((1, 24, 24)))[0]
    >>> w = np.zeros((1, 16)); w[0, 0] = 1.0  # all to the top-left bin
    >>> R = shared_bin_relevance(ds, np.array([2.0]), w)
    >>> float(R[:6, :6].sum()), float(R[6:, :].sum() + R[:6, 6:].sum())
    (2.0, 0.0)
    """
    xp = get_namespace(relevance)
    relevance = _per_descriptor(descriptor_set, relevance, xp, False, "shared")
    w = asarray(weights, xp, dtype=xp.float64)
    n = len(descriptor_set)
    if w.shape != (n, _NB):
        raise ValueError(f"weights must have shape ({n}, {_NB}), one per spatial bin, got {tuple(w.shape)}")
    if not bool(xp.all((w >= 0) & xp.isfinite(w))):  # one read of the device: user-given weights
        raise ValueError("weights must be finite and non-negative (a share of each descriptor's relevance)")
    return _share_bins(descriptor_set, relevance, lambda lo, hi: w[lo:hi], xp)


def _share_bins(descriptor_set, relevance, weights, xp):
    """:func:`shared_bin_relevance` for weights known to be valid, reading nothing back from the device.

    ``weights(lo, hi)`` gives the (m, 16) weights of descriptors ``lo:hi``,
    formed chunk by chunk.  Descriptors whose weights are all zero keep the
    flat rule; their share goes into the same difference array as the bins'
    (zero for the others), so no device value decides a branch.
    """
    def per_bin(lo, hi):
        r = relevance[lo:hi]
        total = r.sum(1) if r.ndim == 2 else r
        w = weights(lo, hi)
        norm = w.sum(1)
        ok = norm > 0
        return w * (total / xp.where(ok, norm, 1.0))[:, None], xp.where(ok, 0.0, total)
    return bin_map(descriptor_set, per_bin, xp)


def energy_pixel_relevance(descriptor_set, relevance):
    """Share each descriptor's relevance among its bins by their gradient energy, then map to pixels.

    The weight of spatial bin ``b`` of descriptor ``l`` is the sum of its 8
    orientation values, ``w_{lb} = sum_o x_{l, 8 b + o}``: the gradient
    magnitude OpenCV collected in the bin.  This is the proportional rule
    (eq. 2.78) for the descriptor read as the sum of its (non-negative)
    entries, ``z_{dl} = x_{ld}``, then per bin the flat rule (eq. 2.84,
    2.85): relevance goes where the descriptor saw its gradients, and every
    pixel gets the sign of the descriptor's total (see
    :func:`shared_bin_relevance`).  It needs only ``R_l``, so it applies to
    Bag-of-Words models too.

    Parameters
    ----------
    descriptor_set : DescriptorSet
    relevance : array of shape (n,) or (n, d)
        Per descriptor, or per descriptor dimension (summed to ``R_l``).

    Returns
    -------
    pixel_relevance : array of shape (H, W), float64

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> img = (np.random.default_rng(0).random((40, 40)) * 255).astype(np.uint8)
    >>> ds = bowlrp.DenseSIFT(scales=(2.0,), steps=(8,)).transform([img])[0]  # 9 descriptors
    >>> R = np.random.default_rng(1).normal(size=(len(ds), 128))  # relevance per descriptor dimension
    >>> m = energy_pixel_relevance(ds, R.sum(1))  # per descriptor suffices
    >>> m.shape, bool(np.isclose(m.sum(), R.sum()))
    ((40, 40), True)
    """
    xp = get_namespace(relevance)
    relevance = _per_descriptor(descriptor_set, relevance, xp, False, "energy")
    d = descriptor_set.descriptors  # host values, summed per bin chunk by chunk
    return _share_bins(descriptor_set, relevance,
                       lambda lo, hi: asarray(d[lo:hi].reshape(hi - lo, _NB, -1).sum(2, dtype=np.float64), xp), xp)


def magnitude_pixel_relevance(descriptor_set, relevance):
    """Share each descriptor's relevance among its bins by their absolute relevance, then map to pixels.

    The weight of spatial bin ``b`` of descriptor ``l`` is
    ``w_{lb} = sum_o |R_{l, 8 b + o}|``, the relevance magnitude of its 8
    dimensions (eq. D.3) before positive and negative parts cancel; then
    :func:`shared_bin_relevance`: the per-descriptor total ``R_l`` spread
    over the bins where the model's evidence is, with one sign per
    descriptor.  Where every dimension of a descriptor has the sign of its
    total, this is the per-bin rule (:func:`bin_pixel_relevance`).  It is
    ``"auto"``'s rule for per-dimension relevance (``AUTO_RULES``).

    Parameters
    ----------
    descriptor_set : DescriptorSet
    relevance : array of shape (n, d), 16 divides d
        Relevance of every descriptor dimension (eq. D.3).

    Returns
    -------
    pixel_relevance : array of shape (H, W), float64

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> img = (np.random.default_rng(0).random((40, 40)) * 255).astype(np.uint8)
    >>> ds = bowlrp.DenseSIFT(scales=(2.0,), steps=(8,)).transform([img])[0]  # 9 descriptors
    >>> R = np.random.default_rng(1).normal(size=(len(ds), 128))  # relevance per descriptor dimension
    >>> m = magnitude_pixel_relevance(ds, R)
    >>> m.shape, bool(np.isclose(m.sum(), R.sum()))
    ((40, 40), True)
    """
    xp = get_namespace(relevance)
    relevance = _per_descriptor(descriptor_set, relevance, xp, True, "magnitude")
    return _share_bins(descriptor_set, relevance, lambda lo, hi: _bin_sums(relevance, lo, hi, xp, True), xp)


def bin_parts(relevance):
    """Per spatial bin, the sums of the positive and of the negative parts of its dimensions' relevance.

    ``(n, d) -> (n, 32)``: column ``2 b`` is ``sum_o max(R_{l, b d/16 + o}, 0)``
    and column ``2 b + 1`` is ``sum_o min(R_{l, b d/16 + o}, 0)``.  Every pixel rule
    reads no more of per-dimension relevance than this: a bin's sum is the
    sum of its two parts, its magnitude weight ``sum_o |R|`` (eq. D.3, the
    magnitude rule) the difference of them, a descriptor's total the sum of
    all 32.  So the maps of all rules from ``bin_parts(R)`` are those from
    ``R`` (up to rounding), from a quarter of the values of 128-dimensional
    SIFT relevance: what a relevance step can keep, chunk by chunk, when
    only pixels are wanted.

    Examples
    --------
    >>> import numpy as np
    >>> R = np.zeros((1, 128)); R[0, :8] = [1.0, -2.0, 0.5, 0, 0, 0, 0, 0]
    >>> bin_parts(R)[0, :4].tolist()
    [1.5, -2.0, 0.0, 0.0]
    """
    xp = get_namespace(relevance)
    r = asarray(relevance, xp, dtype=xp.float64)
    if r.ndim != 2 or r.shape[1] % _NB:
        raise ValueError(f"relevance must have shape (n, d) with 16 dividing d (per descriptor dimension), got "
                         f"{tuple(r.shape)}")
    n = r.shape[0]
    r = r.reshape(n, _NB, -1)
    out = xp.empty((n, _NB, 2), dtype=xp.float64)
    part = xp.maximum(r, 0.0)
    for j in (0, 1):  # einsum sums the short last axis about 3x faster than sum(2) does
        if j:
            xp.minimum(r, 0.0, out=part)
        if xp is np:
            np.einsum("nbo->nb", part, out=out[..., j])
        else:
            out[..., j] = xp.einsum("nbo->nb", part)
    return out.reshape(n, 2 * _NB)


def resolve_pixel_rule(rule):
    """The name of a pixel rule of :class:`DenseSIFT`; refuse everything else with the valid names.

    Examples
    --------
    >>> from bowlrp.rules import Flat
    >>> resolve_pixel_rule("bins"), resolve_pixel_rule(Flat())
    ('bins', 'flat')
    >>> resolve_pixel_rule("blur")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown pixel rule 'blur' for DenseSIFT; valid pixel rules are ['auto', 'flat', ...]
    """
    if isinstance(rule, Flat):
        return "flat"
    if isinstance(rule, Rule):
        raise ValueError(f"DenseSIFT maps descriptor relevance to pixels geometrically; the {rule.name!r} rule "
                         f"applies to mapping stages. Its pixel rules are {list(PIXEL_RULES)}")
    if rule not in PIXEL_RULES:
        raise ValueError(f"unknown pixel rule {rule!r} for DenseSIFT; valid pixel rules are {list(PIXEL_RULES)}")
    return rule


#: The rule ``"auto"`` picks, by the dimensions of the relevance: per descriptor (1), per descriptor
#: dimension (2).  "magnitude" was chosen by pixel AOPC (docs/pixel_rules.md): on Fisher-vector models,
#: toy and photographs, it stays within 0.02 of the flat rule under uniform noise and matches or beats
#: it under blur at the per-bin resolution, where "bins" (the default before) lost up to three quarters
#: of the flat rule's AOPC; it equals "bins" where every dimension has the sign of its descriptor's total.
AUTO_RULES = {1: "flat", 2: "magnitude"}

_RULE_FUNCTIONS = {
    "flat": lambda ds, r: flat_pixel_relevance(ds, r.sum(1) if r.ndim == 2 else r),
    "bins": bin_pixel_relevance,
    "energy": energy_pixel_relevance,
    "magnitude": magnitude_pixel_relevance,
}


def pixel_relevance(descriptor_set, relevance, rule="auto"):
    """Pixel map of one image's descriptor relevance under the pixel rule ``rule``.

    Parameters
    ----------
    descriptor_set : DescriptorSet
    relevance : array of shape (n,) or (n, 128)
        Relevance per descriptor, or per descriptor dimension (eq. D.3).
    rule : str or bowlrp.rules.Flat, default="auto"
        One of ``PIXEL_RULES`` (see :meth:`bowlrp.features.sift.DenseSIFT.relevance`);
        ``"auto"`` is ``AUTO_RULES[relevance.ndim]``.

    Returns
    -------
    pixel_relevance : array of shape (H, W), float64

    Examples
    --------
    >>> import numpy as np
    >>> import bowlrp
    >>> img = (np.random.default_rng(0).random((40, 40)) * 255).astype(np.uint8)
    >>> ds = bowlrp.DenseSIFT(scales=(2.0,), steps=(8,)).transform([img])[0]  # 9 descriptors
    >>> R = np.random.default_rng(1).normal(size=(len(ds), 128))  # relevance per descriptor dimension
    >>> bool(np.allclose(pixel_relevance(ds, R), magnitude_pixel_relevance(ds, R)))  # "auto", per dimension
    True
    >>> bool(np.allclose(pixel_relevance(ds, R.sum(1)), flat_pixel_relevance(ds, R.sum(1))))  # per descriptor
    True
    """
    rule = resolve_pixel_rule(rule)
    xp = get_namespace(relevance)
    ndim = relevance.ndim if hasattr(relevance, "ndim") else np.ndim(relevance)
    if rule == "auto":
        rule = AUTO_RULES.get(ndim, "flat")
    relevance = _per_descriptor(descriptor_set, relevance, xp, rule in _PER_DIMENSION, rule)
    return _RULE_FUNCTIONS[rule](descriptor_set, relevance)
