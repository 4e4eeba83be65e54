"""Dense SIFT: the first stage of the Bag-of-Words pipelines, forward to descriptors and back to pixels.

The local features of the Bag-of-Words pipelines of the thesis (Sec. 2.4.3)
are SIFT descriptors (Lowe, 2004) computed densely: for every scale
``sigma`` a regular grid of keypoints, all with that scale, optionally
rotated to the dominant gradient orientation.  The descriptor itself is
OpenCV's (``cv2.SIFT_create().compute``) on keypoints of ``size = 2 sigma``
and ``octave = 0``; OpenCV then uses spatial bins of width
``3 * size / 2 = 3 sigma``, so the 4 x 4 bins cover a square of side
``12 sigma`` (``4 * 3 * 3 = 36`` pixels for ``sigma = 3``).

Relevance of a descriptor is mapped to pixels by a pixel rule, by default
the flat rule (eq. 2.84, 2.85): it is spread evenly over the pixels of that
square.

The parts live in their own modules and are re-exported here:
:mod:`~bowlrp.features.geometry` (grid, squares, spatial bins),
:mod:`~bowlrp.features.orientation` (dominant orientation),
:mod:`~bowlrp.features.descriptors` (:class:`DescriptorSet`) and
:mod:`~bowlrp.features.pixel_rules` (flat and per-bin rules).
"""

import math
import numbers

import cv2
import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin

from .._blas import one_thread
from .._validation import check_images, images_to_uint8_gray
from ..base import ExplainableTransformerMixin
from .descriptors import DescriptorSet, make_keypoints
from .geometry import _boxes  # noqa: F401  (former private name, imported by callers)
from .geometry import BIN_WIDTH_SIGMAS, SPATIAL_BINS, bin_boxes, box_side, descriptor_boxes, grid_centers
from .geometry import _grid_geometry
from .orientation import ORI_BINS, ORI_RADIUS_STDS, ORI_WINDOW_SIGMAS, dominant_orientations, orientation_histograms
from .orientation import _level_orientations
from .pixel_rules import (
    AUTO_RULES,
    PIXEL_RULES,
    bin_parts,
    bin_pixel_relevance,
    energy_pixel_relevance,
    flat_pixel_relevance,
    magnitude_pixel_relevance,
    pixel_relevance,
    resolve_pixel_rule,
    shared_bin_relevance,
)

__all__ = [
    "AUTO_RULES",
    "BIN_WIDTH_SIGMAS",
    "ORI_BINS",
    "ORI_RADIUS_STDS",
    "ORI_WINDOW_SIGMAS",
    "PIXEL_RULES",
    "SPATIAL_BINS",
    "DenseSIFT",
    "DescriptorSet",
    "bin_boxes",
    "bin_pixel_relevance",
    "box_side",
    "descriptor_boxes",
    "dominant_orientations",
    "energy_pixel_relevance",
    "flat_pixel_relevance",
    "grid_centers",
    "magnitude_pixel_relevance",
    "orientation_histograms",
    "pixel_relevance",
    "shared_bin_relevance",
]

# Former private names, kept for callers that import them from here.
_make_keypoints = make_keypoints
_dominant_orientations = dominant_orientations
_pixel_rule = resolve_pixel_rule


def _check_params(scales, steps, rotate, n_jobs):
    """Validate DenseSIFT parameters; return ``(scales, steps)`` as tuples."""
    if isinstance(scales, numbers.Real) and not isinstance(scales, bool):
        scales = (scales,)
    try:
        scales = tuple(scales)
    except TypeError:
        raise ValueError(f"scales must be a positive number or a non-empty sequence of them, got {scales!r}") from None
    if not scales or not all(
        isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s) and s > 0 for s in scales
    ):
        raise ValueError(
            f"scales must be a non-empty sequence of finite positive numbers (sigma per level), got {scales!r}"
        )
    scales = tuple(float(s) for s in scales)

    def valid_step(s):
        return isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s) and s >= 1 and s == int(s)

    if isinstance(steps, numbers.Real) and not isinstance(steps, bool):
        steps = (steps,) * len(scales)
    try:
        steps = tuple(steps)
    except TypeError:
        raise ValueError(f"steps must be a positive integer or a sequence of them, got {steps!r}") from None
    if len(steps) != len(scales):
        raise ValueError(
            f"steps must be a single positive integer or have one entry per scale: got {len(steps)} "
            f"steps for {len(scales)} scales"
        )
    if not all(valid_step(s) for s in steps):
        raise ValueError(f"steps must be positive integers (grid step in pixels per level), got {steps!r}")
    steps = tuple(int(s) for s in steps)
    if not isinstance(rotate, (bool, np.bool_)):
        raise ValueError(f"rotate must be True or False, got {rotate!r}")
    if n_jobs is not None and (not isinstance(n_jobs, numbers.Integral) or isinstance(n_jobs, bool) or n_jobs == 0):
        raise ValueError(f"n_jobs must be None or a non-zero integer (-1 for all cores), got {n_jobs!r}")
    return scales, steps


def _set_angles(keypoints, angles):
    """Give the keypoints of one image their orientations (a Python loop over attribute writes only)."""
    for kp, a in zip(keypoints, angles.tolist()):
        kp.angle = a
    return keypoints


#: Images of at least this many pixels have their scale levels oriented on threads side by side (a
#: 512x512 photograph's orientations took 22 instead of 35 ms on 2 cores); for the thesis' 102x102
#: tiles the threads contended for the GIL and gained nothing.
_LEVEL_THREADS_MIN_PIXELS = 1 << 16


def _compute(sift, gray, keypoints):
    """OpenCV's descriptors of ``keypoints`` in ``gray``, one per keypoint, in order."""
    kps_out, desc = sift.compute(gray, keypoints)
    if desc is None or len(kps_out) != len(keypoints):  # pragma: no cover - OpenCV keeps provided keypoints
        raise RuntimeError("OpenCV SIFT dropped keypoints; cannot align descriptors with the grid")
    return desc


def _rotated_descriptors(sift, grays, centers, sigmas, levels, scales, n_threads):
    """Dominant orientations and rotated descriptors of images of one shape: ``(angles, descriptors)``.

    The orientations (:func:`_level_orientations`, Lowe 2004, Sec. 5) of all
    the images are computed together, their scale levels side by side on
    ``n_threads`` threads for images of at least
    :data:`_LEVEL_THREADS_MIN_PIXELS` pixels; then OpenCV describes them.
    """
    level_threads = n_threads if grays[0].size >= _LEVEL_THREADS_MIN_PIXELS else 1
    rows = _level_orientations(grays, centers, levels, scales, level_threads)
    keypoints = make_keypoints(centers, sigmas, np.zeros(len(centers)))
    # OpenCV only in this loop: Python work between its calls ran slower (cold caches)
    descs = [_compute(sift, gray, _set_angles(keypoints, row)) for gray, row in zip(grays, rows)]
    return list(rows), descs


def _describe_images(images, scales, steps, rotate, offset, n_threads=1):
    """Compute the DescriptorSets of a chunk of images (one SIFT object per chunk).

    Images of one shape share their grid: its geometry and keypoints are
    built once per shape, and the dominant orientations of all images of a
    shape are computed together, one batch per scale level, on up to
    ``n_threads`` threads for large images (:func:`_rotated_descriptors`).
    A result does not depend on which other images are in the chunk.
    """
    sift = cv2.SIFT_create()
    grays = [images_to_uint8_gray(img) for img in images]
    grids = {}
    for i, gray in enumerate(grays):
        if gray.shape not in grids:
            grids[gray.shape] = _grid_geometry(gray.shape, scales, steps, offset + i)
    angles = [grids[gray.shape][4] for gray in grays]
    if rotate:
        descs = [None] * len(grays)
        for shape in grids:
            members = [i for i, gray in enumerate(grays) if gray.shape == shape]
            centers, sigmas, levels = grids[shape][:3]
            rows, out = _rotated_descriptors(sift, [grays[i] for i in members], centers, sigmas, levels, scales,
                                             n_threads)
            for i, row, desc in zip(members, rows, out):
                angles[i], descs[i] = row, desc
    else:
        descs = [_compute(sift, gray, grids[gray.shape][5]) for gray in grays]
    out = []
    for gray, ang, desc in zip(grays, angles, descs):  # after OpenCV's calls, not between them
        centers, sigmas, levels, boxes, _, _ = grids[gray.shape]
        out.append(
            DescriptorSet(
                descriptors=desc.astype(np.float32, copy=False),
                centers=centers,
                sigmas=sigmas,
                levels=levels,
                angles=ang,
                boxes=boxes,
                image_shape=gray.shape,
                n_levels=len(scales),
            )
        )
    return out


class DenseSIFT(ExplainableTransformerMixin, TransformerMixin, BaseEstimator):
    """Dense multi-scale SIFT descriptors on a regular grid, with LRP back to pixels.

    For every scale ``sigma`` in ``scales`` keypoints of that scale are placed
    on a grid of step ``step`` pixels and described with OpenCV's SIFT
    (``cv2.SIFT_create().compute`` on ``cv2.KeyPoint(x, y, size=2 sigma)``,
    ``octave=0``).  The descriptor's 4 x 4 spatial bins are ``3 sigma`` wide,
    so it covers a square of side ``12 sigma``; the grid keeps these squares
    inside the image and is centred (see :func:`grid_centers`).  The thesis'
    toy experiment (Sec. 2.4.3) uses ``sigma in {2, 3}`` with steps 6 and 9
    and rotated descriptors.

    The transformer is stateless: :meth:`fit` only validates the parameters.

    Parameters
    ----------
    scales : sequence of float, default=(2.0, 3.0)
        Scale ``sigma`` of each level.
    steps : int or sequence of int, default=(6, 9)
        Grid step in pixels of each level; one int is used for all levels.
    rotate : bool, default=False
        Rotate every descriptor to the dominant gradient orientation in a
        Gaussian window of std ``1.5 sigma`` around its centre (36-bin
        magnitude-weighted histogram with parabolic peak interpolation, as in
        Lowe's SIFT); otherwise all descriptors are upright (angle 0).
        The orientations of a batch are computed for the whole grid at once
        (:func:`orientation_histograms`); for images of 256 x 256 pixels or
        more, its scale levels side by side on OpenCV's threads
        (``cv2.setNumThreads``) when ``n_jobs`` is 1.
    pixel_rule : {"auto", "flat", "bins", "energy", "magnitude"}, default="auto"
        How :meth:`relevance` maps descriptor relevance to pixels (see
        :mod:`bowlrp.features.pixel_rules` and ``docs/pixel_rules.md``): the
        flat rule over each descriptor's square (eq. 2.84, 2.85); per
        spatial bin (App. D.1.2, signed, for relevance per descriptor
        dimension); each descriptor's total shared among its bins by their
        gradient energy, or by the magnitude of their per-dimension
        relevance.  ``"auto"``: ``AUTO_RULES[relevance.ndim]``, the flat rule
        for relevance per descriptor and the magnitude rule for relevance per
        descriptor dimension (chosen by pixel AOPC, ``docs/pixel_rules.md``).
    n_jobs : int, default=None
        Number of joblib workers (threads) over chunks of images; ``None``
        means 1 unless in a ``joblib.parallel_config`` context, -1 all cores.

    See Also
    --------
    flat_pixel_relevance : the flat rule (eq. 2.84, 2.85), the default for relevance per descriptor.
    magnitude_pixel_relevance : the default for relevance per descriptor dimension (Fisher vectors).
    energy_pixel_relevance : shares by gradient energy; best under blur, weaker under uniform noise
        (``docs/pixel_rules.md``); also for relevance per descriptor.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.features.sift import DenseSIFT
    >>> rng = np.random.default_rng(0)
    >>> images = rng.random((2, 102, 102))
    >>> sift = DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=True)
    >>> sets = sift.fit_transform(images)
    >>> len(sets), sets[0].descriptors.shape
    (2, (260, 128))
    >>> [s.stop - s.start for s in sets[0].level_slices]
    [196, 64]

    Relevance of the descriptors goes back to pixels with the flat rule:

    >>> sets, trace = sift.forward(images)
    >>> maps = sift.relevance([np.ones(len(s)) for s in sets], trace)
    >>> maps[0].shape, bool(np.isclose(maps[0].sum(), 260.0))
    ((102, 102), True)
    """

    #: Name under which the pipeline walk stores this stage's input relevance.
    input_kind = "images"
    takes_mapping_rule = False

    def __init__(self, scales=(2.0, 3.0), steps=(6, 9), rotate=False, pixel_rule="auto", n_jobs=None):
        self.scales = scales
        self.steps = steps
        self.rotate = rotate
        self.pixel_rule = pixel_rule
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = []
        return tags

    def fit(self, X, y=None):
        """Validate the parameters and the images; DenseSIFT learns nothing.

        Parameters
        ----------
        X : list of ndarray or ndarray
            Ignored (images, see :meth:`transform`).
        y : None
            Ignored.

        Returns
        -------
        self : DenseSIFT
        """
        _check_params(self.scales, self.steps, self.rotate, self.n_jobs)
        resolve_pixel_rule(self.pixel_rule)
        check_images(X, name="X")
        return self

    def transform(self, X):
        """Compute the dense SIFT descriptors of every image.

        Parameters
        ----------
        X : list of ndarray or ndarray
            Images, see :func:`bowlrp._validation.check_images`: ``(H, W)``
            grayscale or ``(H, W, 3)`` RGB, float in ``[0, 1]`` or integer in
            ``0..255``; converted to 8-bit grayscale.

        Returns
        -------
        descriptor_sets : list of DescriptorSet
            One per image, descriptors ordered by level then row-major.
        """
        scales, steps = _check_params(self.scales, self.steps, self.rotate, self.n_jobs)
        images = check_images(X, name="X")
        rotate = bool(self.rotate)
        n_jobs = effective_n_jobs(self.n_jobs) if self.n_jobs is not None else 1
        if n_jobs == 1 or len(images) == 1:  # the orientation step may use OpenCV's threads
            return _describe_images(images, scales, steps, rotate, 0, n_threads=max(1, cv2.getNumThreads()))
        n_chunks = min(len(images), 4 * n_jobs)
        bounds = np.linspace(0, len(images), n_chunks + 1).astype(int)
        with one_thread():  # held by this thread for all workers' orientation steps
            results = Parallel(n_jobs=self.n_jobs, prefer="threads")(
                delayed(_describe_images)(images[a:b], scales, steps, rotate, a)
                for a, b in zip(bounds[:-1], bounds[1:])
                if b > a
            )
        return [ds for chunk in results for ds in chunk]

    def forward(self, X):
        """Return ``(transform(X), trace)``; the trace is the descriptor sets' geometry."""
        sets = self.transform(X)
        return sets, sets

    def relevance_reducer(self):
        """What :meth:`relevance` needs of per-dimension descriptor relevance: :func:`bin_parts`.

        ``(n, 128) -> (n, 32)``: per spatial bin the sums of the positive and
        of the negative parts.  Every pixel rule gives the same map from it as
        from the full relevance (to rounding), so a stage above may hand over
        these rows instead (:class:`bowlrp.FisherVectorEncoder` ``reduce``).

        Examples
        --------
        >>> import numpy as np
        >>> from bowlrp import DenseSIFT
        >>> DenseSIFT().relevance_reducer()(np.ones((3, 128))).shape
        (3, 32)
        """
        return bin_parts

    def relevance(self, relevance, trace, rule=None):
        """Map descriptor relevance to pixel relevance (eq. 2.84, 2.85; App. D.1.2).

        Parameters
        ----------
        relevance : list of array of shape (n_i,) or (n_i, 128)
            Relevance of each descriptor of each image (NumPy or CuPy), or
            of each descriptor dimension (eq. D.3, e.g. from
            ``FisherVectorEncoder``).
        trace : list of DescriptorSet
            The trace returned by :meth:`forward`.
        rule : {None, "auto", "flat", "bins", "energy", "magnitude"} or bowlrp.rules.Flat
            The pixel rule; ``None`` uses the estimator's ``pixel_rule``.
            ``"auto"``: the flat rule for per-descriptor relevance, the
            magnitude rule for per-dimension relevance (``AUTO_RULES``).
            ``"flat"`` (or a :class:`bowlrp.rules.Flat`): the flat rule
            over the descriptor's square (per-dimension relevance is summed
            first).  ``"bins"``: each 4 x 4 spatial bin's summed relevance
            spread over the bin's pixels (:func:`bin_pixel_relevance`; needs
            per-dimension relevance).  ``"energy"``: each descriptor's total
            shared among its bins by their gradient energy
            (:func:`energy_pixel_relevance`).  ``"magnitude"``: shared by
            the bins' absolute per-dimension relevance
            (:func:`magnitude_pixel_relevance`; needs per-dimension
            relevance).  The rules of the mapping stages (proportional,
            epsilon, ...) have no meaning here and raise.

        Returns
        -------
        pixel_relevance : list of array of shape (H_i, W_i), float64
            Conserves relevance per image: ``R_p.sum() == R_l.sum()``.
        """
        rule = resolve_pixel_rule(self.pixel_rule if rule is None else rule)
        if len(relevance) != len(trace):
            raise ValueError(
                f"relevance has {len(relevance)} entries but the trace has {len(trace)} images; "
                "pass one relevance array per image"
            )
        with one_thread():  # held once for all images: each map's own limit then costs nothing
            return [pixel_relevance(ds, r, rule) for ds, r in zip(trace, relevance)]
