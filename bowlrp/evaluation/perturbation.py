"""Region perturbation on pixels: MoRF/LeRF curves and the AOPC.

Samek et al., "Evaluating the visualization of what a deep neural network has
learned" (paper 003), eq. 11-12, and the thesis Sec. 3.4.1: the regions of an
image are ranked by their summed relevance; step ``k`` replaces region
``r_k`` of ``x^(k-1)`` (eq. 11), and the area over the perturbation curve,

    AOPC = 1/(L+1) < sum_{k=0}^{L} f(x^(0)) - f(x^(k)) >_{p(x)}      (eq. 12),

is larger the better the ranking finds what the model relies on.  The test
is model-agnostic: it needs a function from images to scores and one heatmap
per image.  Always compare with ``order="random"`` on the same images: with
uniform noise the score of a SIFT model can *rise* (noise adds edges), so raw
AOPC values can be negative.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np

from ._common import (
    check_choice,
    check_heatmaps,
    check_images_list,
    check_positive_int,
    chunks,
    map_chunks,
    resolve_seed,
    select_scores,
)

__all__ = ["PerturbationResult", "aopc", "region_perturbation", "region_scores"]

_ORDERS = ("morf", "lerf", "random")
_REPLACEMENTS = ("uniform", "blur", "mean")


@dataclass
class PerturbationResult:
    """Perturbation curves of a batch of inputs.

    Attributes
    ----------
    curves : ndarray (n_inputs, n_repeats, n_steps + 1)
        ``f(x^(k))`` for ``k = 0..L`` (eq. 11), per input and repetition.
    order : str
        ``"morf"``, ``"lerf"`` or ``"random"``.
    flipped : ndarray (n_inputs, n_repeats, n_steps + 1) of bool
        Whether the decision at step ``k`` differs from the one at step 0
        (sign of ``f`` for one score per input).
    params : dict
        The settings of the run (region or batch size, replacement, ...).

    Examples
    --------
    :func:`region_perturbation` returns one; made by hand, two inputs, one
    repetition, two steps:

    >>> import numpy as np
    >>> res = PerturbationResult(curves=np.array([[[2.0, 1.0, -1.0]], [[1.0, 1.0, 1.0]]]), order="morf",
    ...                          flipped=np.array([[[False, False, True]], [[False, False, False]]]))
    >>> res
    PerturbationResult(order='morf', n_inputs=2, n_repeats=1, n_steps=2, aopc=0.6667, flip_share=0.5)
    >>> res.mean_curve, res.aopc_per_input
    (array([1.5, 1. , 0. ]), array([1.33333333, 0.        ]))
    """

    curves: np.ndarray
    order: str
    flipped: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def n_steps(self):
        return self.curves.shape[2] - 1

    @property
    def mean_curve(self):
        """``<f(x^(k))>`` over inputs and repetitions, shape (n_steps + 1,)."""
        return self.curves.mean(axis=(0, 1))

    @property
    def mean_drop(self):
        """``<f(x^(0)) - f(x^(k))>``, shape (n_steps + 1,)."""
        return (self.curves[:, :, :1] - self.curves).mean(axis=(0, 1))

    @property
    def aopc_per_input(self):
        """Eq. 12 per input (averaged over repetitions), shape (n_inputs,)."""
        return aopc(self.curves.mean(axis=1), per_input=True)

    @property
    def aopc(self):
        """Eq. 12: the AOPC averaged over inputs and repetitions."""
        return float(self.aopc_per_input.mean())

    @property
    def flip_share(self):
        """Share of (input, repetition) pairs whose decision flipped by the last step."""
        return float(self.flipped[:, :, -1].mean())

    @property
    def flip_curve(self):
        """Share of flipped decisions at each step, shape (n_steps + 1,)."""
        return self.flipped.mean(axis=(0, 1))

    def __repr__(self):
        return (
            f"PerturbationResult(order={self.order!r}, n_inputs={self.curves.shape[0]}, "
            f"n_repeats={self.curves.shape[1]}, n_steps={self.n_steps}, aopc={self.aopc:.4g}, "
            f"flip_share={self.flip_share:.3g})"
        )


def aopc(curves, per_input=False):
    """Area over the perturbation curve (paper 003, eq. 12).

    Parameters
    ----------
    curves : array-like (n_inputs, n_steps + 1)
        ``f(x^(k))`` for ``k = 0..L``; column 0 is the unperturbed score.
    per_input : bool, default=False
        Return one value per input instead of the mean.

    Returns
    -------
    float or ndarray (n_inputs,)
        ``1/(L+1) sum_k (f(x^(0)) - f(x^(k)))``.

    Examples
    --------
    >>> aopc([[2.0, 1.0, 0.0]])  # drops 0, 1, 2 over L + 1 = 3 steps
    1.0
    >>> aopc([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]], per_input=True)
    array([1., 0.])
    """
    c = np.asarray(curves, dtype=np.float64)
    if c.ndim == 1:
        c = c[None]
    if c.ndim != 2 or c.shape[1] < 1:
        raise ValueError(f"curves must have shape (n_inputs, n_steps + 1), got {c.shape}")
    per = (c[:, :1] - c).mean(axis=1)
    return per if per_input else float(per.mean())


def region_scores(heatmap, region_size):
    """Summed relevance of the ``m x m`` cells of a grid laid over the map.

    The grid starts at the top-left pixel; cells on the right and bottom edges
    are cut off by the image border.

    Returns
    -------
    scores : ndarray (ceil(H/m), ceil(W/m))

    Examples
    --------
    >>> import numpy as np
    >>> region_scores(np.arange(25.0).reshape(5, 5), 2)  # the last row and column are cut off
    array([[12., 20., 13.],
           [52., 60., 33.],
           [41., 45., 24.]])
    """
    h = np.asarray(heatmap, dtype=np.float64)
    m = region_size
    H, W = h.shape
    gh, gw = -(-H // m), -(-W // m)
    pad = np.zeros((gh * m, gw * m))
    pad[:H, :W] = h
    return pad.reshape(gh, m, gw, m).sum(axis=(1, 3))


def _region_order(scores, order, rng):
    """Flat cell indices, most relevant first (``morf``), least first (``lerf``) or random.

    Ties are broken at random so that no image position is preferred.
    """
    flat = scores.ravel()
    tie = rng.random(flat.size)
    if order == "random":
        return np.argsort(tie)
    key = -flat if order == "morf" else flat
    return np.lexsort((tie, key))


def _image_range(img):
    return (0, 255) if img.dtype.kind in "ui" else (0.0, 1.0)


def _fill_region(state, original, filler, r0, c0, m, replacement, rng):
    sl = (slice(r0, r0 + m), slice(c0, c0 + m))
    patch = state[sl]
    if replacement == "uniform":
        lo, hi = _image_range(original)
        if original.dtype.kind in "ui":
            state[sl] = rng.integers(lo, hi + 1, size=patch.shape, dtype=np.int64).astype(state.dtype)
        else:
            state[sl] = rng.uniform(lo, hi, size=patch.shape).astype(state.dtype)
    elif replacement == "blur":
        state[sl] = filler[sl]
    else:  # "mean"
        state[sl] = filler


def _prepare_filler(img, replacement, region_size):
    if replacement == "blur":
        f = cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigmaX=region_size / 2.0)
        return np.clip(np.rint(f) if img.dtype.kind in "ui" else f, *_image_range(img)).astype(img.dtype)
    if replacement == "mean":
        mean = img.reshape(img.shape[0] * img.shape[1], -1).mean(0)
        mean = np.rint(mean) if img.dtype.kind in "ui" else mean
        return mean.astype(img.dtype).reshape(img.shape[2:])
    return None


def _perturb_chunk(predict, images, heatmaps, first, m, n_steps, order, replacement, n_repeats, target, seed):
    """Run eq. 11 on a chunk of images, one model call per step for the whole chunk."""
    states, originals, fillers, orders, rngs = [], [], [], [], []
    for j, img in enumerate(images):
        H, W = img.shape[:2]
        gw = -(-W // m)
        filler = _prepare_filler(img, replacement, m)
        scores = region_scores(heatmaps[j], m) if heatmaps is not None else np.zeros((-(-H // m), gw))
        for rep in range(n_repeats):
            rng = np.random.default_rng([seed, first + j, rep])
            cells = _region_order(scores, order, rng)[:n_steps]
            orders.append([((c // gw) * m, (c % gw) * m) for c in cells])
            states.append(np.array(img, copy=True))
            originals.append(img)
            fillers.append(filler)
            rngs.append(rng)
    tgt = None
    if target is not None:
        t = np.broadcast_to(np.asarray(target), (len(images),))
        tgt = np.repeat(t, n_repeats)
    curves = np.empty((len(states), n_steps + 1))
    curves[:, 0] = select_scores(predict(states), tgt, len(states))
    for k in range(1, n_steps + 1):
        for s, st in enumerate(states):
            r0, c0 = orders[s][k - 1]
            _fill_region(st, originals[s], fillers[s], r0, c0, m, replacement, rngs[s])
        curves[:, k] = select_scores(predict(states), tgt, len(states))
    return curves.reshape(len(images), n_repeats, n_steps + 1)


def region_perturbation(
    predict,
    images,
    heatmaps=None,
    *,
    region_size=9,
    n_steps=None,
    order="morf",
    replacement="uniform",
    n_repeats=1,
    target=None,
    batch_size=16,
    n_jobs=None,
    random_state=None,
    verbose=False,
):
    """Perturb image regions in the order a heatmap gives and record the score (eq. 11).

    Parameters
    ----------
    predict : callable
        ``predict(list_of_images) -> scores`` of shape (n,) or (n, n_classes),
        for instance ``pipeline.decision_function``.  It is called once per
        step for a whole batch of images (and repetitions).
    images : list of ndarray or ndarray (n, H, W[, 3])
        uint8 images (0..255) or float images in [0, 1].
    heatmaps : list of (H, W) arrays, Explanation, or None
        Relevance maps ranking the regions; only ``order="random"`` may do
        without.
    region_size : int, default=9
        Side ``m`` of the square regions, laid as a grid of ``m x m`` cells
        (cut at the right and bottom border).
    n_steps : int or None, default=None
        ``L`` of eq. 11-12; None perturbs every cell of the smallest image.
    order : {"morf", "lerf", "random"}, default="morf"
        Most relevant first, least relevant first, or a random order (the
        baseline of paper 003, Fig. 4).  Ties are broken at random.
    replacement : {"uniform", "blur", "mean"}, default="uniform"
        ``g`` of eq. 11: uniform noise over the image's value range (paper
        003), the region of a Gaussian-blurred copy (sigma ``m/2``), or the
        image's mean value.
    n_repeats : int, default=1
        Repetitions with fresh noise (and, for ``"random"``, a fresh order).
    target : int, array-like or None
        Column of ``predict``'s output to follow when it returns several.
    batch_size : int, default=16
        Images per chunk; each chunk is one joblib task.
    n_jobs : int or None
        joblib workers over chunks.
    random_state : int, RandomState or None
        Noise and tie-breaking; results do not depend on ``batch_size`` or ``n_jobs``.
    verbose : bool, default=False
        Show a progress bar.

    Returns
    -------
    PerturbationResult
        ``.curves``, ``.aopc`` (eq. 12), ``.flip_share``.

    Examples
    --------
    >>> import numpy as np
    >>> imgs = np.zeros((2, 18, 18), np.uint8)
    >>> f = lambda X: np.array([float(np.mean(x[:9, :9])) for x in X])
    >>> maps = [np.pad(np.ones((9, 9)), ((0, 9), (0, 9)))] * 2
    >>> r = region_perturbation(f, imgs, maps, region_size=9, n_steps=1, replacement="mean")
    >>> r.curves.shape
    (2, 1, 2)
    """
    if not callable(predict):
        raise TypeError(f"predict must be a callable images -> scores, got {type(predict).__name__}")
    imgs = check_images_list(images)
    check_choice(order, "order", _ORDERS)
    check_choice(replacement, "replacement", _REPLACEMENTS)
    m = check_positive_int(region_size, "region_size")
    n_repeats = check_positive_int(n_repeats, "n_repeats")
    batch_size = check_positive_int(batch_size, "batch_size")
    if heatmaps is None:
        if order != "random":
            raise ValueError(f"order={order!r} needs heatmaps; only order='random' runs without them")
        maps = None
    else:
        maps = check_heatmaps(heatmaps, [im.shape for im in imgs])
    n_cells = min(-(-im.shape[0] // m) * -(-im.shape[1] // m) for im in imgs)
    if n_steps is None:
        n_steps = n_cells
    n_steps = check_positive_int(n_steps, "n_steps")
    if n_steps > n_cells:
        raise ValueError(f"n_steps={n_steps} exceeds the {n_cells} regions of size {m} in the smallest image")
    seed = resolve_seed(random_state)
    tgt = None if target is None else np.broadcast_to(np.asarray(target), (len(imgs),))
    args = [
        (
            predict,
            imgs[a:b],
            None if maps is None else maps[a:b],
            a,
            m,
            n_steps,
            order,
            replacement,
            n_repeats,
            None if tgt is None else tgt[a:b],
            seed,
        )
        for a, b in chunks(len(imgs), batch_size)
    ]
    curves = np.concatenate(map_chunks(_perturb_chunk, args, n_jobs, verbose, desc=f"perturb ({order})"))
    return PerturbationResult(
        curves=curves,
        order=order,
        flipped=_flips(curves),
        params={"region_size": m, "replacement": replacement, "n_steps": n_steps, "n_repeats": n_repeats},
    )


def _flips(curves):
    """Decision flips for one score per input: the sign differs from step 0's."""
    return np.sign(curves) != np.sign(curves[:, :, :1])
