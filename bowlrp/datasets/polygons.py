"""Toy data of polygons and round shapes (Lapuschkin's thesis, Sec. 2.4.3).

Large grayscale images show dark regular polygons (tetragons to heptagons) and
dark round :math:`\\ell_p`-balls scattered without overlap over a light, faintly
patterned background.  Training samples are non-overlapping tiles of such
images, test samples are overlapping tiles (taken at a fixed stride) of other,
independently drawn images.  A tile is labelled ``+1`` iff the centre of mass of
at least one polygon lies inside it.

The shapes are drawn by :mod:`bowlrp.datasets._shapes` (:func:`_render_shape`
can be called on its own: the tests check polygon areas against the analytic
value), the optional planted watermark by :mod:`bowlrp.datasets.watermark`.
"""

import numpy as np
from sklearn.utils import Bunch, check_random_state

from ._shapes import _Shape, _background, _draw_context, _place_shapes, _render_shape  # noqa: F401 (_Shape: tests)
from ._polygon_checks import _validate
from .watermark import stamp_watermark

__all__ = ["make_polygons"]


def _make_big_image(rng, size, tile_size, shape_radius, lp_range, density, amplitude,
                    noise_std, context=0.0, context_amplitude=0.15):
    """One large image: uint8 pixels, polygon / round masks, polygon centres."""
    expected = density * size**2 / tile_size**2
    n_shapes = int(np.floor(expected))
    n_shapes += int(rng.uniform() < expected - n_shapes)  # unbiased rounding
    img = _background(rng, size, tile_size, amplitude, noise_std)
    shapes = _place_shapes(rng, size, n_shapes, shape_radius, lp_range, density)
    if context > 0:  # after every other draw: the default images stay bit-for-bit the same
        _draw_context(rng, img, shapes, context, context_amplitude)
    poly = np.zeros((size, size), dtype=bool)
    rnd = np.zeros((size, size), dtype=bool)
    for s in shapes:
        rows, cols, mask, cov = _render_shape(s, (size, size))
        win = img[rows, cols]
        img[rows, cols] = win + cov * (np.float32(s.intensity) - win)
        (poly if s.kind == "polygon" else rnd)[rows, cols] |= mask
    pixels = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    centres = np.array([(s.cy, s.cx) for s in shapes if s.kind == "polygon"]).reshape(-1, 2)
    return pixels, poly, rnd, centres


def _tile_labels(centres, origins, tile_size):
    """+1 where the pixel holding some polygon centre lies in the tile, else -1."""
    pix = np.floor(centres + 0.5).astype(np.int64)  # (m, 2)
    rel = pix[None, :, :] - origins[:, None, :]  # (T, m, 2)
    inside = ((rel >= 0) & (rel < tile_size)).all(axis=2).any(axis=1)
    return np.where(inside, 1, -1).astype(np.int64)


def _crop(arrays, origins, tile_size):
    """Stack the ``tile_size`` crops of each array at ``origins``."""
    return [
        np.stack([a[r:r + tile_size, c:c + tile_size] for r, c in origins])
        for a in arrays
    ]


def _check_rng(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    return check_random_state(random_state)


def _draw_entropy(rng):
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2**63 - 1))
    return int(rng.randint(0, np.iinfo(np.int32).max))


def make_polygons(n_train=600, n_test_images=2, *, image_size=408, tile_size=102,
                  test_stride=34, shape_radius=(14.0, 21.0), density=1.25,
                  lp_range=(2.0, 2.6), background_amplitude=0.05, noise_std=0.01,
                  context=0.0, context_amplitude=0.15, watermark=0.0, watermark_pattern="checkerboard",
                  random_state=None):
    """Generate the polygons-versus-round-shapes toy data of the LRP thesis.

    Reproduces the toy task of Lapuschkin's thesis, Sec. 2.4.3, Fig. 2.13:
    large grayscale images show regular polygons (tetragons to heptagons) and
    round :math:`\\ell_p`-shaped objects, scattered uniformly without overlap.
    Training samples are non-overlapping ``tile_size`` crops of such images;
    test samples are overlapping crops, ``test_stride`` pixels apart, of other
    large images.  A tile is labelled ``+1`` iff the centre of mass of at least
    one polygon lies within it, ``-1`` otherwise.

    Rendering (grey values on a 0..1 scale, stored as uint8 ``rint(255 * v)``):

    * Background: level 0.8 plus the sum of four plane waves with random
      orientation, phase and wavelength (0.5 to 2 ``tile_size``), total
      amplitude at most ``background_amplitude``, plus Gaussian pixel noise of
      standard deviation ``noise_std``.  It has no edges or corners.
    * Each shape is a polygon with probability 0.5, otherwise a round shape.
      Polygons are regular with 4 to 7 vertices (uniform), random rotation and
      circumradius uniform in ``shape_radius``.  Round shapes are the balls
      ``|u|^p + |v|^p <= r^p`` in a randomly rotated frame, ``p`` uniform in
      ``lp_range``, ``r`` uniform in ``shape_radius``.
    * Shapes are filled with a grey uniform in [0.1, 0.45], with edges
      anti-aliased over about one pixel; the masks are hard (a pixel belongs to
      a shape iff its centre lies inside it).
    * Placement: rejection sampling of centres, uniform over the positions that
      keep the whole shape inside the image, such that the bounding circles of
      any two shapes are at least 3 pixels apart.  Placement gives up with a
      ``ValueError`` after 1280 failed attempts for one shape.
    * The number of shapes per large image is ``density * image_size**2 /
      tile_size**2`` (randomly rounded up or down to keep that expectation).
    * The centre of mass of a regular polygon is its placed centre; a tile
      ``[r0, r0 + tile_size) x [c0, c0 + tile_size)`` is positive iff it holds
      the pixel containing some polygon centre, so each polygon makes exactly
      one non-overlapping training tile positive.

    Large image ``k`` of each split is drawn from its own random stream derived
    from ``random_state``, so training and test images are different draws, the
    test set does not depend on ``n_train``, and the first tiles of a larger
    training set equal a smaller one.

    Parameters
    ----------
    n_train : int, default=600
        Number of training tiles.  Large images (``(image_size // tile_size)**2``
        tiles each) are generated until there are enough; the first ``n_train``
        tiles are kept.
    n_test_images : int, default=2
        Number of large test images (0 for no test set).
    image_size : int, default=408
        Side length of the square large images, in pixels.
    tile_size : int, default=102
        Side length of the square sample tiles, in pixels.
    test_stride : int, default=34
        Distance between the top-left corners of neighbouring test tiles.
    shape_radius : (float, float), default=(14.0, 21.0)
        Range of the (circum)radius of the shapes, in pixels.
        ``2 * shape_radius[1]`` must be smaller than ``tile_size``.
    density : float, default=1.25
        Expected number of shapes (polygons and round ones) per
        ``tile_size x tile_size`` area.  The default gives about 50% positive
        training tiles (each polygon centre falls in exactly one tile, and
        half the shapes are polygons).
    lp_range : (float, float), default=(2.0, 2.6)
        Range of the exponent ``p`` of the round shapes; ``p >= 2`` keeps
        them free of corners (``p = 2`` is a disc, larger ``p`` a rounded
        square).  ``p`` must be at least 1.  The defaults of ``shape_radius``
        and ``lp_range`` were chosen by measurement (docs/toy_polygons.md):
        smaller shapes and squarer round shapes cost the thesis' two-scale
        HIK model 5 to 10 points of tile accuracy.
    background_amplitude : float, default=0.05
        Largest deviation of the smooth background pattern from its level
        0.8, on the 0..1 grey scale; at most 0.2.
    noise_std : float, default=0.01
        Standard deviation of the Gaussian pixel noise, on the 0..1 scale.
    context : float in [0, 1], default=0.0
        Strength of a background context that correlates with the label (G1):
        a disc of stripes (period 4 px, random orientation, radius 1.6 times
        the shape's extent, drawn under the shapes) surrounds each polygon
        with probability ``(1 + context) / 2`` and each round shape with
        probability ``(1 - context) / 2``.  ``0`` draws no texture at all, and
        the data are then bit-for-bit those of earlier versions.  At ``1``
        the texture alone nearly decides the label.
    context_amplitude : float, default=0.15
        Amplitude of the stripes on the 0..1 grey scale (at most 0.3).
    watermark : float in [0, 1], default=0.0
        Probability that a positive tile (train and test) carries a planted
        artefact 3 px from the tile's bottom-left corner, pasted into the
        tile after cropping (the "copyright tag" of the horse class, thesis
        Ch. 4).  ``has_watermark`` and ``test_has_watermark`` say which tiles
        carry it; :func:`bowlrp.datasets.watermark.watermark_mask` gives its
        pixels.
    watermark_pattern : str or 2-D array, default="checkerboard"
        The mark (:data:`bowlrp.datasets.watermark.WATERMARKS`):
        ``"checkerboard"``, a 5 x 5 checkerboard of dark (0.1) pixels, too
        fine for dense SIFT to see; ``"tag"``, a 12 x 12 white label with
        three black bars, which a Fisher-vector model learns to use
        (docs/clever_hans.md); or grey values in [0, 1] (NaN: transparent).
    random_state : int, RandomState, Generator or None, default=None
        Seed of the generator; see :func:`sklearn.utils.check_random_state`.
        A ``RandomState`` or ``Generator`` is advanced by one draw.

    Returns
    -------
    data : sklearn.utils.Bunch
        With fields (``T`` test tiles, ``t = tile_size``, ``s = image_size``)

        images : uint8 ndarray of shape (n_train, t, t)
            Training tiles.
        labels : int ndarray of shape (n_train,)
            ``+1`` / ``-1`` training labels.
        polygon_masks, round_masks : bool ndarray of shape (n_train, t, t)
            Pixels of polygons / round shapes in each training tile.
        test_images : uint8 ndarray of shape (T, t, t)
            Test tiles, row-major over positions, one large image after another.
        test_labels : int ndarray of shape (T,)
            ``+1`` / ``-1`` test labels.
        test_polygon_masks, test_round_masks : bool ndarray of shape (T, t, t)
            Pixels of polygons / round shapes in each test tile.
        test_origins : int ndarray of shape (T, 2)
            (row, col) of each test tile's top-left corner in its large image.
        test_source : int ndarray of shape (T,)
            Index of the large test image each test tile was cropped from.
        test_big_images : uint8 ndarray of shape (n_test_images, s, s)
            The large test images.
        test_big_polygon_masks, test_big_round_masks : bool ndarray of shape (n_test_images, s, s)
            Pixels of polygons / round shapes in each large test image.
        has_watermark, test_has_watermark : bool ndarray of shape (n_train,), (T,)
            Tiles carrying the planted watermark (all False unless ``watermark > 0``).
        DESCR : str
            Description of the data and the parameters used.

    Raises
    ------
    ValueError
        For invalid parameters, or when ``density`` is too high to place the
        shapes without overlap.

    Examples
    --------
    >>> from bowlrp.datasets import make_polygons
    >>> data = make_polygons(n_train=20, n_test_images=1, random_state=0)
    >>> data.images.shape
    (20, 102, 102)
    >>> sorted(set(data.labels.tolist()))
    [-1, 1]
    >>> data.test_images.shape  # 10 x 10 positions, 34 pixels apart
    (100, 102, 102)
    """
    shape_radius, lp_range = _validate(
        n_train, n_test_images, image_size, tile_size, test_stride, shape_radius,
        density, lp_range, background_amplitude, noise_std, context, context_amplitude, watermark,
        watermark_pattern,
    )
    entropy = _draw_entropy(_check_rng(random_state))

    def big_image(split, k):
        rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(split, k)))
        return _make_big_image(rng, image_size, tile_size, shape_radius, lp_range,
                               density, background_amplitude, noise_std, context,
                               context_amplitude)

    # --- training: non-overlapping tiles of as many large images as needed
    n_side = image_size // tile_size
    starts = np.arange(n_side) * tile_size
    train_origins = np.stack(np.meshgrid(starts, starts, indexing="ij"), -1).reshape(-1, 2)
    per_image = len(train_origins)
    n_big = -(-n_train // per_image)
    images, labels, pmasks, rmasks = [], [], [], []
    for k in range(n_big):
        pixels, poly, rnd, centres = big_image(0, k)
        keep = train_origins[: min(per_image, n_train - k * per_image)]
        im, pm, rm = _crop((pixels, poly, rnd), keep, tile_size)
        images.append(im)
        pmasks.append(pm)
        rmasks.append(rm)
        labels.append(_tile_labels(centres, keep, tile_size))

    # --- testing: overlapping tiles at stride test_stride
    tstarts = np.arange(0, image_size - tile_size + 1, test_stride)
    test_grid = np.stack(np.meshgrid(tstarts, tstarts, indexing="ij"), -1).reshape(-1, 2)
    big_images = np.zeros((n_test_images, image_size, image_size), dtype=np.uint8)
    big_poly = np.zeros((n_test_images, image_size, image_size), dtype=bool)
    big_round = np.zeros((n_test_images, image_size, image_size), dtype=bool)
    t_images, t_labels, t_pmasks, t_rmasks = [], [], [], []
    for k in range(n_test_images):
        big_images[k], big_poly[k], big_round[k], centres = big_image(1, k)
        im, pm, rm = _crop((big_images[k], big_poly[k], big_round[k]), test_grid, tile_size)
        t_images.append(im)
        t_pmasks.append(pm)
        t_rmasks.append(rm)
        t_labels.append(_tile_labels(centres, test_grid, tile_size))

    def cat(parts, dtype):
        if parts:
            return np.concatenate(parts)
        return np.zeros((0, tile_size, tile_size), dtype=dtype)

    n_test = n_test_images * len(test_grid)
    labels = np.concatenate(labels)
    test_labels = np.concatenate(t_labels) if t_labels else np.zeros(0, dtype=np.int64)
    train_images, test_images = np.concatenate(images), cat(t_images, np.uint8)
    marks = []
    for split, (tiles, lab) in enumerate(((train_images, labels), (test_images, test_labels))):
        mark = np.zeros(len(lab), dtype=bool)
        if watermark > 0:  # own random stream: the rest of the data does not change
            rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(2, split)))
            mark = (lab == 1) & (rng.uniform(size=len(lab)) < watermark)
            tiles[mark] = stamp_watermark(tiles[mark], pattern=watermark_pattern)
        marks.append(mark)
    descr = (
        "Polygons vs. round shapes toy data (Lapuschkin's LRP thesis, Sec. 2.4.3, "
        "Fig. 2.13).\n"
        f"{n_train} training tiles ({tile_size}x{tile_size}, non-overlapping crops of "
        f"{n_big} large {image_size}x{image_size} images), {int((labels == 1).sum())} "
        f"positive; {n_test} test tiles (crops at stride {test_stride} of {n_test_images} "
        f"other large images), {int((test_labels == 1).sum())} positive.\n"
        "Label +1 iff the centre of mass of at least one regular polygon (4-7 vertices) "
        "lies in the tile; round shapes are l_p balls.\n"
        f"Parameters: shape_radius={shape_radius}, density={density} shapes per tile "
        f"area, lp_range={lp_range}, background_amplitude={background_amplitude}, "
        f"noise_std={noise_std}, random_state={random_state!r}."
    )
    if context > 0:
        descr += (f"\nContext: stripes (amplitude {context_amplitude}) around a polygon with "
                  f"probability {(1 + context) / 2:g}, around a round shape with {(1 - context) / 2:g}.")
    if watermark > 0:
        name = watermark_pattern if isinstance(watermark_pattern, str) else "custom"
        descr += (f"\nWatermark: the {name!r} mark at the bottom-left of {int(marks[0].sum())} "
                  f"training and {int(marks[1].sum())} test tiles (positive tiles, probability {watermark:g}).")
    return Bunch(
        images=train_images,
        labels=labels,
        polygon_masks=np.concatenate(pmasks),
        round_masks=np.concatenate(rmasks),
        test_images=test_images,
        test_labels=test_labels,
        test_polygon_masks=cat(t_pmasks, bool),
        test_round_masks=cat(t_rmasks, bool),
        test_origins=np.tile(test_grid, (n_test_images, 1)).astype(np.int64).reshape(-1, 2),
        test_source=np.repeat(np.arange(n_test_images, dtype=np.int64), len(test_grid)),
        test_big_images=big_images,
        test_big_polygon_masks=big_poly,
        test_big_round_masks=big_round,
        has_watermark=marks[0],
        test_has_watermark=marks[1],
        DESCR=descr,
    )

