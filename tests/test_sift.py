"""Tests of bowlrp.features.sift (dense SIFT, flat rule) and bowlrp._validation."""

import pickle

import cv2
import numpy as np
import pytest
from sklearn.base import clone

from bowlrp._backend import cupy_available
from bowlrp._validation import check_images, images_to_uint8_gray
from bowlrp.features import DenseSIFT, DescriptorSet, flat_pixel_relevance, grid_centers
from bowlrp.features.sift import box_side, dominant_orientations, orientation_histograms
from bowlrp.rules import get_rule


def _textured(shape, seed=0, blur=1.5):
    rng = np.random.default_rng(seed)
    img = (rng.random(shape) * 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (0, 0), blur)


def _blob_patch(n=101, seed=0, extent=20.0):
    """A smooth random texture under a Gaussian envelope, centred at (n // 2, n // 2)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n] - n // 2
    img = np.zeros((n, n))
    for _ in range(6):
        cy, cx = rng.uniform(-12, 12, 2)
        s = rng.uniform(2, 5)
        img += rng.uniform(-1, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    img *= np.exp(-(yy**2 + xx**2) / (2 * extent**2))
    return ((img - img.min()) / np.ptp(img) * 255).astype(np.uint8)


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _center_descriptor(img, sigma, rotate):
    """Descriptor (and angle) of the single grid point at the image centre."""
    ds = DenseSIFT(scales=(sigma,), steps=1000, rotate=rotate).transform([img])[0]
    assert len(ds) == 1
    return ds.descriptors[0], ds.angles[0], ds.centers[0]


# ----------------------------------------------------------------------------- output


@pytest.mark.parametrize("shape", [(102, 102), (61, 87), (37, 50), (40, 36), (36, 36)])
@pytest.mark.parametrize("color", [False, True])
def test_output_shapes_dtypes_geometry(shape, color):
    scales, steps = (2.0, 3.0), (6, 9)
    rng = np.random.default_rng(1)
    img = rng.random(shape + ((3,) if color else ()))
    (ds,) = DenseSIFT(scales=scales, steps=steps).fit_transform([img])
    H, W = shape
    n = len(ds)
    assert ds.image_shape == (H, W) and ds.n_levels == 2
    assert ds.descriptors.shape == (n, 128) and ds.descriptors.dtype == np.float32
    assert ds.centers.shape == (n, 2) and ds.centers.dtype == np.float64
    assert ds.sigmas.shape == (n,) and ds.sigmas.dtype == np.float64
    assert ds.levels.shape == (n,) and ds.levels.dtype == np.intp
    assert ds.angles.shape == (n,) and ds.angles.dtype == np.float64
    assert ds.boxes.shape == (n, 4) and ds.boxes.dtype == np.intp
    assert np.all(ds.angles == 0)
    assert np.all(np.diff(ds.levels) >= 0)
    np.testing.assert_array_equal(ds.sigmas, np.asarray(scales)[ds.levels])
    for level, (sigma, step) in enumerate(zip(scales, steps)):
        side = box_side(sigma)
        assert side == round(12 * sigma)
        sl = ds.level_slice(level)
        expected = ((H - side) // step + 1) * ((W - side) // step + 1)
        assert sl.stop - sl.start == expected
        b, c = ds.boxes[sl], ds.centers[sl]
        # boxes: inside the image, side 12 sigma, placed at centre - side // 2
        assert b[:, 0].min() >= 0 and b[:, 1].min() >= 0 and b[:, 2].max() <= H and b[:, 3].max() <= W
        np.testing.assert_array_equal(b[:, 2] - b[:, 0], side)
        np.testing.assert_array_equal(b[:, 3] - b[:, 1], side)
        np.testing.assert_array_equal(b[:, 0], c[:, 1] - side // 2)
        np.testing.assert_array_equal(b[:, 1], c[:, 0] - side // 2)
        # the grid is regular and centred: the slack on both sides differs by at most 1
        ys, xs = np.unique(c[:, 1]), np.unique(c[:, 0])
        for u, L in ((ys, H), (xs, W)):
            if len(u) > 1:
                assert set(np.diff(u)) == {step}
            before = u[0] - side // 2
            after = L - (u[-1] - side // 2 + side)
            assert before >= 0 and after >= 0 and abs(before - after) <= 1
    np.testing.assert_array_equal(ds.areas, np.asarray([box_side(s) for s in scales])[ds.levels] ** 2)


def test_grid_centers_order_and_formula():
    c = grid_centers((40, 30), 2.0, 6)
    # rows: span 16 -> 3 centres, slack 4 split evenly; cols: span 6 -> 2 centres
    assert c.tolist() == [[12, 14], [18, 14], [12, 20], [18, 20], [12, 26], [18, 26]]
    assert len(grid_centers((23, 100), 2.0, 6)) == 0


def test_level_slices_and_repr():
    ds = DenseSIFT().transform([np.zeros((102, 102))])[0]
    assert [s.stop - s.start for s in ds.level_slices] == [196, 64]
    assert "per_level=[196, 64]" in repr(ds)
    with pytest.raises(IndexError, match="level must be in 0..1"):
        ds.level_slice(2)


def test_batch_forms_agree_and_colour_is_converted():
    rng = np.random.default_rng(2)
    rgb = (rng.random((3, 50, 60, 3)) * 255).astype(np.uint8)
    sift = DenseSIFT()
    from_stack = sift.transform(rgb)
    from_list = sift.transform(list(rgb))
    gray = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in rgb]
    from_gray = sift.transform(gray)
    from_float = sift.transform([g / 255.0 for g in gray])
    from_singleton = sift.transform(np.stack(gray)[..., None])
    for sets in (from_list, from_gray, from_float, from_singleton):
        for a, b in zip(from_stack, sets):
            np.testing.assert_array_equal(a.descriptors, b.descriptors)
            np.testing.assert_array_equal(a.boxes, b.boxes)


def test_images_of_different_sizes_in_one_batch():
    imgs = [_textured((40, 40)), _textured((70, 55), seed=1)]
    sets = DenseSIFT().transform(imgs)
    assert [s.image_shape for s in sets] == [(40, 40), (70, 55)]


def test_n_jobs_gives_the_same_result():
    imgs = [_textured((50, 60), seed=s) for s in range(5)]
    a = DenseSIFT(rotate=True).transform(imgs)
    b = DenseSIFT(rotate=True, n_jobs=2).transform(imgs)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.descriptors, y.descriptors)
        np.testing.assert_array_equal(x.angles, y.angles)


# ------------------------------------------------------------------ OpenCV agreement


def _reference_keypoints(shape, scales, steps, angles=None):
    kps = []
    for sigma, step in zip(scales, steps):
        side = int(round(12 * sigma))
        for axis_len in shape:
            assert axis_len >= side
        axes = []
        for L in shape:
            n = (L - side) // step + 1
            first = side // 2 + ((L - side) - (n - 1) * step) // 2
            axes.append(first + step * np.arange(n))
        for y in axes[0]:
            for x in axes[1]:
                kps.append(cv2.KeyPoint(float(x), float(y), 2 * sigma, 0.0, 0, 0))
    if angles is not None:
        for kp, a in zip(kps, angles):
            kp.angle = float(a)
    return kps


@pytest.mark.parametrize("shape", [(102, 102), (57, 81)])
def test_matches_opencv_compute_upright(shape):
    img = _textured(shape)
    ds = DenseSIFT(scales=(2.0, 3.0), steps=(6, 9)).transform([img])[0]
    kps = _reference_keypoints(shape, (2.0, 3.0), (6, 9))
    kps_out, ref = cv2.SIFT_create().compute(img, kps)
    assert len(kps_out) == len(ds)
    np.testing.assert_array_equal(ds.centers, [k.pt for k in kps_out])
    np.testing.assert_array_equal(ds.descriptors, ref)


def test_shared_grid_keypoints_are_built_once_and_never_changed():
    """Images of one shape share one cached tuple of upright keypoints; OpenCV's compute leaves it as it was,
    also after a rotated transform of the same grid, and later images get the descriptors of fresh keypoints."""
    from bowlrp.features.geometry import _grid_geometry

    shape, scales, steps = (70, 90), (2.0, 3.0), (6, 9)
    kps = _grid_geometry(shape, scales, steps, 0)[5]
    assert isinstance(kps, tuple) and _grid_geometry(shape, scales, steps, 1)[5] is kps
    state = [(k.pt, k.size, k.angle, k.octave, k.response, k.class_id) for k in kps]
    imgs = [_textured(shape, seed=s) for s in (1, 2)]
    DenseSIFT(scales=scales, steps=steps, rotate=True).transform(imgs)
    first = DenseSIFT(scales=scales, steps=steps).transform(imgs)
    again = DenseSIFT(scales=scales, steps=steps).transform(imgs[::-1])
    assert [(k.pt, k.size, k.angle, k.octave, k.response, k.class_id) for k in kps] == state
    fresh = _reference_keypoints(shape, scales, steps)
    for img, ds, ds2 in zip(imgs, first, again[::-1]):
        np.testing.assert_array_equal(ds.descriptors, cv2.SIFT_create().compute(img, fresh)[1])
        np.testing.assert_array_equal(ds.descriptors, ds2.descriptors)



def test_large_grids_build_their_keypoints_per_call(monkeypatch):
    import bowlrp.features.geometry as geometry

    monkeypatch.setattr(geometry, "_CACHED_KEYPOINTS", 10)  # this grid has more keypoints: not kept
    a, b = (geometry._grid_geometry((70, 90), (2.0, 3.0), (6, 9), 0)[5] for _ in range(2))
    assert isinstance(a, list) and a is not b and len(a) == len(b) > 10
    img = _textured((70, 90), seed=1)
    np.testing.assert_array_equal(DenseSIFT(scales=(2.0, 3.0), steps=(6, 9)).transform([img])[0].descriptors,
                                  cv2.SIFT_create().compute(img, a)[1])


def test_matches_opencv_compute_rotated():
    img = _textured((80, 90), seed=3)
    ds = DenseSIFT(rotate=True).transform([img])[0]
    assert np.all((ds.angles >= 0) & (ds.angles < 360)) and np.ptp(ds.angles) > 0
    kps = _reference_keypoints((80, 90), (2.0, 3.0), (6, 9), angles=ds.angles)
    _, ref = cv2.SIFT_create().compute(img, kps)
    np.testing.assert_array_equal(ds.descriptors, ref)
    _, ref2 = cv2.SIFT_create().compute(img, ds.keypoints())
    np.testing.assert_array_equal(ds.descriptors, ref2)


@pytest.mark.parametrize("sigma", [2.0, 3.0])
def test_spatial_bins_are_3_sigma_wide(sigma):
    """A bright dot at the centre of spatial bin (i, j) makes that bin dominate.

    OpenCV stores the descriptor as (row bin, column bin, orientation bin) with
    4 x 4 x 8 entries; with size = 2 sigma the bins are 3 sigma wide.
    """
    width = 3 * sigma
    n = box_side(sigma) + 41
    c = n // 2
    yy, xx = np.mgrid[:n, :n]
    sift = cv2.SIFT_create()
    for bi in range(4):
        for bj in range(4):
            oy, ox = round((bi - 1.5) * width), round((bj - 1.5) * width)
            img = (255 * np.exp(-((yy - c - oy) ** 2 + (xx - c - ox) ** 2) / 2.0)).astype(np.uint8)
            ours = DenseSIFT(scales=(sigma,), steps=1000).transform([img])[0]
            assert ours.centers[0].tolist() == [c, c]
            energy = ours.descriptors[0].reshape(4, 4, 8).sum(-1)
            assert np.unravel_index(energy.argmax(), energy.shape) == (bi, bj)
            _, ref = sift.compute(img, [cv2.KeyPoint(float(c), float(c), 2 * sigma, 0.0, 0, 0)])
            np.testing.assert_array_equal(ours.descriptors[0], ref[0])
    # Support: trilinear interpolation reaches half a bin past the square (7.5 sigma from
    # the centre), OpenCV's initial blur (std 1.52, truncated) a few pixels more.
    for offset, responds in ((round(5 * sigma), True), (round(7.5 * sigma) + 8, False)):
        img = np.zeros((n, n), np.uint8)
        img[c, c + offset] = 255
        assert DenseSIFT(scales=(sigma,), steps=1000).transform([img])[0].descriptors.any() == responds


# ------------------------------------------------------------------------- rotation


@pytest.mark.parametrize(
    ("direction", "angle"),
    [("right", 0.0), ("down", 90.0), ("left", 180.0), ("up", 270.0)],
)
def test_angle_convention_is_keypoint_convention(direction, angle):
    """Angles follow cv2.KeyPoint: atan2(dI/drow, dI/dcol), rows pointing down."""
    ramp = np.tile(np.linspace(0.1, 0.9, 60), (60, 1))  # brighter to the right
    img = {"right": ramp, "down": ramp.T, "left": ramp[:, ::-1], "up": ramp.T[::-1]}[direction]
    ds = DenseSIFT(scales=(2.0,), steps=6, rotate=True).transform([img])[0]
    diff = (ds.angles - angle + 180) % 360 - 180
    assert np.abs(diff).max() < 1.0


@pytest.mark.parametrize("sigma", [2.0, 3.0])
def test_rotation_invariance_rot90(sigma):
    img = _blob_patch()
    d0, a0, c0 = _center_descriptor(img, sigma, rotate=True)
    u0, _, _ = _center_descriptor(img, sigma, rotate=False)
    upright_cos = []
    for k in (1, 2, 3):
        rot = np.ascontiguousarray(np.rot90(img, k))  # counter-clockwise on screen
        d, a, c = _center_descriptor(rot, sigma, rotate=True)
        np.testing.assert_array_equal(c, c0)  # the centre pixel is fixed by rot90
        assert _cos(d0, d) > 0.95
        # counter-clockwise on screen lowers the KeyPoint (clockwise) angle by 90 degrees
        assert abs((a0 - a - 90 * k + 180) % 360 - 180) < 1.0
        upright_cos.append(_cos(u0, _center_descriptor(rot, sigma, rotate=False)[0]))
    assert min(upright_cos) < 0.8


@pytest.mark.parametrize("degrees", [30.0, 75.0])
def test_rotation_invariance_warp(degrees):
    img = _blob_patch(seed=1)
    n = img.shape[0]
    M = cv2.getRotationMatrix2D((n // 2, n // 2), degrees, 1.0)
    rot = cv2.warpAffine(img.astype(np.float32), M, (n, n), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    rot = np.clip(np.rint(rot), 0, 255).astype(np.uint8)
    for sigma in (2.0, 3.0):
        d0, a0, _ = _center_descriptor(img, sigma, rotate=True)
        d1, a1, _ = _center_descriptor(rot, sigma, rotate=True)
        assert _cos(d0, d1) > 0.95
        assert abs((a0 - a1 - degrees + 180) % 360 - 180) < 3.0
        u0 = _center_descriptor(img, sigma, rotate=False)[0]
        u1 = _center_descriptor(rot, sigma, rotate=False)[0]
        assert _cos(u0, u1) < 0.9


def test_flipped_angle_convention_would_break_invariance():
    """Guards the convention: passing 360 - angle to OpenCV loses the invariance."""
    img = _blob_patch()
    rot = np.ascontiguousarray(np.rot90(img))
    _, a0, c = _center_descriptor(img, 3.0, rotate=True)
    _, a1, _ = _center_descriptor(rot, 3.0, rotate=True)
    sift = cv2.SIFT_create()

    def desc(im, angle):
        return sift.compute(im, [cv2.KeyPoint(float(c[0]), float(c[1]), 6.0, float(angle), 0, 0)])[1][0]

    assert _cos(desc(img, a0), desc(rot, a1)) > 0.95
    assert _cos(desc(img, (360 - a0) % 360), desc(rot, (360 - a1) % 360)) < 0.9


def test_flat_image_gets_angle_zero():
    ds = DenseSIFT(rotate=True).transform([np.full((50, 50), 0.5)])[0]
    assert np.all(ds.angles == 0)


def _orientation_reference(gray, center, sigma):
    """Lowe's orientation assignment for one keypoint, written out pixel by pixel (slow, obvious).

    36 bins, magnitude split linearly between the two nearest bins, Gaussian
    window of std 1.5 sigma truncated at 3 std, zero outside the image,
    circular [1, 4, 6, 4, 1] / 16 smoothing, parabolic peak.  Returns
    ``(histogram before smoothing, angle in degrees)``.
    """
    s = np.sqrt(max(sigma**2 - 0.25, 0.01))
    img = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), s, borderType=cv2.BORDER_REFLECT_101).astype(np.float64)
    H, W = img.shape
    sw = 1.5 * sigma
    r = max(1, int(round(3 * sw)))
    cx, cy = int(center[0]), int(center[1])
    hist = np.zeros(36)
    for y in range(cy - r, cy + r + 1):
        for x in range(cx - r, cx + r + 1):
            if not (1 <= y < H - 1 and 1 <= x < W - 1):
                continue  # outside the image, or on its outermost rows/columns: no gradient
            dx = img[y, x + 1] - img[y, x - 1]
            dy = img[y + 1, x] - img[y - 1, x]
            mag = np.hypot(dx, dy)
            pos = (np.degrees(np.arctan2(dy, dx)) % 360.0) / 10.0
            b = int(np.floor(pos))
            w = np.exp(-0.5 * ((y - cy) ** 2 + (x - cx) ** 2) / sw**2)
            hist[b % 36] += w * mag * (1 - (pos - b))
            hist[(b + 1) % 36] += w * mag * (pos - b)
    sm = np.array([(hist[(b - 2) % 36] + hist[(b + 2) % 36]) + 4 * (hist[(b - 1) % 36] + hist[(b + 1) % 36])
                   + 6 * hist[b] for b in range(36)]) / 16
    j = int(np.argmax(sm))
    if sm[j] <= 0:
        return hist, 0.0
    left, c, right = sm[(j - 1) % 36], sm[j], sm[(j + 1) % 36]
    denom = left - 2 * c + right
    offset = 0.5 * (left - right) / denom if denom < 0 else 0.0
    return hist, ((j + offset) * 10.0) % 360.0


@pytest.mark.parametrize(("sigma", "step", "shape"), [(2.0, 6, (61, 70)), (3.0, 9, (80, 57))])
def test_orientation_matches_slow_reference(sigma, step, shape):
    img = _textured(shape, seed=11)
    centers = grid_centers(shape, sigma, step)
    # keypoints off the grid too: near the borders (windows leave the image) and in any order
    extra = np.array([[2, 3], [shape[1] - 2, shape[0] - 1], [0, 0], [shape[1] // 2, 5]])
    centers = np.concatenate([centers[::-1][:25], extra])
    hist = orientation_histograms(img, centers, sigma)
    angles = dominant_orientations(img, centers, sigma)
    for c, h, a in zip(centers, hist, angles):
        ref_h, ref_a = _orientation_reference(img, c, sigma)
        # OpenCV's cartToPolar (as in its own SIFT) has angles to about 0.3 degrees, the reference exact ones
        np.testing.assert_allclose(h, ref_h, rtol=5e-3, atol=5e-3 * ref_h.max())
        assert abs((a - ref_a + 180) % 360 - 180) < 0.1


def test_orientation_is_independent_of_the_batch_and_of_banding(monkeypatch):
    """An image's angles are the same alone, in any batch, and when cut into bands of rows."""
    import bowlrp.features.orientation as ori

    imgs = [_textured((90, 130), seed=s) for s in range(3)]
    centers = grid_centers((90, 130), 2.0, 6)
    alone = [dominant_orientations(im, centers, 2.0) for im in imgs]
    batch = dominant_orientations(imgs, centers, 2.0)
    for a, b in zip(alone, batch):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(ori, "_CHANNEL_BYTES", 1)  # bands of two windows of rows
    monkeypatch.setattr(ori, "_COLUMN_SPAN", 1)  # column products of two windows
    monkeypatch.setattr(ori, "_BATCH", 2)
    banded = dominant_orientations(imgs, centers, 2.0)
    np.testing.assert_allclose(banded, batch, atol=1e-3)
    assert dominant_orientations(imgs[0], np.zeros((0, 2)), 2.0).shape == (0,)
    with pytest.raises(ValueError, match="of one shape"):
        dominant_orientations([imgs[0], imgs[0][:50]], centers, 2.0)


# ------------------------------------------------------------------------ flat rule


def _flat_reference(ds, relevance):
    out = np.zeros(ds.image_shape)
    for (r0, c0, r1, c1), r in zip(ds.boxes, relevance):
        out[r0:r1, c0:c1] += r / ((r1 - r0) * (c1 - c0))
    return out


def _hand_made_set(shape, boxes):
    n = len(boxes)
    return DescriptorSet(
        descriptors=np.zeros((n, 128), np.float32),
        centers=np.zeros((n, 2)),
        sigmas=np.ones(n),
        levels=np.zeros(n, np.intp),
        angles=np.zeros(n),
        boxes=np.asarray(boxes),
        image_shape=shape,
        n_levels=1,
    )


@pytest.mark.parametrize("shape", [(102, 102), (61, 87), (36, 36)])
def test_flat_rule_matches_slow_reference_and_conserves(shape):
    rng = np.random.default_rng(4)
    ds = DenseSIFT().transform([rng.random(shape)])[0]
    R = rng.standard_normal(len(ds)) * rng.exponential(size=len(ds))  # mixed signs and sizes
    fast = flat_pixel_relevance(ds, R)
    ref = _flat_reference(ds, R)
    assert fast.shape == shape and fast.dtype == np.float64
    np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(fast.sum(), R.sum(), rtol=1e-10)


def test_flat_rule_boxes_at_the_borders():
    rng = np.random.default_rng(5)
    H, W = 23, 31
    boxes = [(0, 0, 23, 31), (0, 0, 1, 1), (22, 30, 23, 31), (0, 25, 10, 31), (15, 0, 23, 4), (3, 5, 4, 30)]
    r0 = rng.integers(0, H, 40)
    c0 = rng.integers(0, W, 40)
    boxes += [(a, b, rng.integers(a + 1, H + 1), rng.integers(b + 1, W + 1)) for a, b in zip(r0, c0)]
    ds = _hand_made_set((H, W), boxes)
    R = rng.standard_normal(len(ds)) * 10
    fast = flat_pixel_relevance(ds, R)
    ref = _flat_reference(ds, R)
    np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(fast.sum(), R.sum(), rtol=1e-10)
    # a single relevance spreads exactly uniformly over its box and nowhere else
    single = flat_pixel_relevance(_hand_made_set((H, W), [(15, 0, 23, 4)]), np.array([3.2]))
    np.testing.assert_allclose(single[15:, :4], 0.1, rtol=1e-14)
    single[15:, :4] = 0
    assert np.abs(single).max() < 1e-15


def test_relevance_step_through_the_protocol():
    rng = np.random.default_rng(6)
    imgs = [rng.random((50, 70)), rng.random((36, 40, 3))]
    sift = DenseSIFT()
    sets, trace = sift.forward(imgs)
    for a, b in zip(sets, sift.transform(imgs)):
        np.testing.assert_array_equal(a.descriptors, b.descriptors)
    R = [rng.standard_normal(len(s)) for s in sets]
    for rule in (None, "auto", "flat", get_rule("flat")):  # the flat rule (eq. 2.84) is a rule of its own
        maps = sift.relevance(R, trace, rule=rule)
        assert [m.shape for m in maps] == [(50, 70), (36, 40)]
        for m, r, s in zip(maps, R, sets):
            np.testing.assert_allclose(m.sum(), r.sum(), rtol=1e-10)
            np.testing.assert_array_equal(m, flat_pixel_relevance(s, r))
    with pytest.raises(ValueError, match=r"valid pixel rules are \['auto', 'flat', 'bins', 'energy', 'magnitude'\]"):
        sift.relevance(R, trace, rule="epsilon")
    with pytest.raises(ValueError, match="applies to mapping stages"):  # a mapping rule is not ignored
        sift.relevance(R, trace, rule=get_rule("z"))
    with pytest.raises(ValueError, match="needs relevance per descriptor dimension"):
        sift.relevance(R, trace, rule="bins")
    with pytest.raises(ValueError, match="one relevance array per image"):
        sift.relevance(R[:1], trace)
    with pytest.raises(ValueError, match=r"relevance must have shape \(\d+,\)"):
        sift.relevance([R[0][:-1], R[1]], trace)


@pytest.mark.skipif(not cupy_available(), reason="CuPy with a CUDA device is not available")
def test_flat_rule_on_cupy():
    import cupy as cp

    rng = np.random.default_rng(7)
    ds = DenseSIFT().transform([rng.random((61, 87))])[0]
    R = rng.standard_normal(len(ds))
    gpu = flat_pixel_relevance(ds, cp.asarray(R))
    assert isinstance(gpu, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(gpu), flat_pixel_relevance(ds, R), rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("X", "exc", "match"),
    [
        (np.zeros((40, 40)), ValueError, r"for one image use images\[None\]"),
        (np.zeros((40, 40, 3)), ValueError, r"single colour image.*images\[None\]"),
        ([], ValueError, "empty batch"),
        (np.zeros((0, 40, 40)), ValueError, "empty batch"),
        ([np.zeros((40, 40), dtype=object)], TypeError, "non-numeric dtype object"),
        ([np.full((40, 40), "a")], TypeError, "non-numeric dtype"),
        ([np.zeros((40, 40), dtype=complex)], TypeError, "complex dtype"),
        ([np.zeros((40, 40), dtype=bool)], TypeError, r"dtype bool.*astype\(np.uint8\)"),
        (np.zeros((2, 40, 40), dtype=bool), TypeError, "dtype bool"),
        ([np.zeros(40)], ValueError, r"\[0\] has 1 dimension"),
        ([np.zeros((40, 40)), np.zeros((2, 4, 4, 3))], ValueError, r"\[1\] has 4 dimension"),
        (np.zeros((2, 3, 4, 4, 3)), ValueError, "5 dimension"),
        ([np.zeros((40, 40, 4))], ValueError, r"3 \(RGB\) channels, got 4.*\[\.\.\., :3\]"),
        ([np.zeros((40, 40, 2))], ValueError, r"3 \(RGB\) channels, got 2"),
        (np.zeros((2, 40, 40, 5)), ValueError, r"3 \(RGB\) channels, got 5"),
        ([np.full((40, 40), np.nan)], ValueError, "NaN or inf"),
        (np.full((2, 40, 40), np.inf), ValueError, "NaN or inf"),
        ([np.zeros((0, 40))], ValueError, "is empty"),
        ([np.zeros((40, 0, 3))], ValueError, "is empty"),
        ([np.full((40, 40), 1.5)], ValueError, r"outside \[0, 1\].*img / 255"),
        ([np.full((40, 40), -0.1)], ValueError, r"outside \[0, 1\]"),
        ([np.full((40, 40), 300, dtype=np.int32)], ValueError, r"outside 0\.\.255"),
        ([np.full((40, 40), -1, dtype=np.int16)], ValueError, r"outside 0\.\.255"),
        ("image.png", TypeError, "list or tuple of images"),
        (None, TypeError, "list or tuple of images"),
        (["image.png"], TypeError, "load image files first"),
        ([0.1, 0.2, 0.3], ValueError, "flat sequence of numbers"),
        ([[[0.1, 0.2], [0.3]]], ValueError, "rectangular"),
    ],
)
def test_check_images_errors(X, exc, match):
    with pytest.raises(exc, match=match):
        check_images(X)
    with pytest.raises(exc, match=match):
        DenseSIFT().transform(X)


def test_check_images_accepts_and_does_not_copy():
    stack = np.zeros((3, 20, 30), np.uint8)
    out = check_images(stack)
    assert len(out) == 3 and all(np.shares_memory(o, stack) for o in out)
    imgs = [np.zeros((20, 30)), np.ones((10, 12, 3)), np.zeros((5, 6, 1), np.uint16)]
    out = check_images(imgs)
    assert out[0] is imgs[0] and out[1] is imgs[1]
    assert out[2].shape == (5, 6) and np.shares_memory(out[2], imgs[2])
    assert check_images(np.zeros((2, 8, 9, 1)))[0].shape == (8, 9)
    assert check_images(np.zeros((2, 8, 9, 3)))[0].shape == (8, 9, 3)
    assert check_images(([[0, 255], [1, 2]],))[0].shape == (2, 2)
    with pytest.raises(ValueError, match="grayscale"):
        check_images([np.zeros((8, 9, 3))], allow_color=False)
    with pytest.raises(ValueError, match="frames"):
        check_images([np.zeros((8, 9, 5))], name="frames")


def test_images_to_uint8_gray():
    rng = np.random.default_rng(8)
    u8 = (rng.random((9, 11)) * 255).astype(np.uint8)
    assert images_to_uint8_gray(u8) is u8
    np.testing.assert_array_equal(images_to_uint8_gray(u8 / 255.0), u8)
    np.testing.assert_array_equal(images_to_uint8_gray(u8.astype(np.int64)), u8)
    np.testing.assert_array_equal(images_to_uint8_gray(np.full((2, 2), 0.5)), 128)
    rgb = (rng.random((9, 11, 3)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(images_to_uint8_gray(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    np.testing.assert_array_equal(images_to_uint8_gray(rgb[::-1]), cv2.cvtColor(rgb[::-1].copy(), cv2.COLOR_RGB2GRAY))
    from_float = images_to_uint8_gray(rgb / 255.0).astype(int)
    assert np.abs(from_float - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).max() <= 1


def test_image_too_small():
    with pytest.raises(ValueError, match=r"image 1 of shape \(40, 35\) is too small.*sigma=3.*36x36"):
        DenseSIFT().transform([np.zeros((50, 50)), np.zeros((40, 35))])
    with pytest.raises(ValueError, match=r"sigma=2: 24x24, sigma=3: 36x36"):
        DenseSIFT().transform([np.zeros((30, 30))])
    assert len(DenseSIFT(scales=(2.0,), steps=6).transform([np.zeros((30, 30))])[0]) == 4


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"scales": (2.0, -3.0)}, "finite positive numbers"),
        ({"scales": (0.0, 3.0)}, "finite positive numbers"),
        ({"scales": ()}, "non-empty"),
        ({"scales": (2.0, np.nan)}, "finite positive"),
        ({"scales": "2"}, "finite positive"),
        ({"scales": None}, "sequence"),
        ({"steps": (6,)}, "one entry per scale: got 1 steps for 2 scales"),
        ({"steps": (6, 9, 12)}, "got 3 steps for 2 scales"),
        ({"steps": (6, 0)}, "positive integers"),
        ({"steps": -1}, "positive integers"),
        ({"steps": (6, 2.5)}, "positive integers"),
        ({"steps": (True, 9)}, "positive integers"),
        ({"rotate": "yes"}, "True or False"),
        ({"n_jobs": 0}, "non-zero integer"),
        ({"n_jobs": 1.5}, "non-zero integer"),
    ],
)
def test_bad_params(params, match):
    sift = DenseSIFT(**params)  # __init__ only stores
    with pytest.raises(ValueError, match=match):
        sift.fit([np.zeros((50, 50))])
    with pytest.raises(ValueError, match=match):
        sift.transform([np.zeros((50, 50))])


def test_param_forms_accepted():
    img = [np.zeros((40, 40))]
    assert DenseSIFT(scales=3.0, steps=9).transform(img)[0].n_levels == 1
    a = DenseSIFT(scales=[2.0, 3.0], steps=6).transform(img)[0]
    b = DenseSIFT(scales=(2, 3), steps=(6.0, np.int64(6))).transform(img)[0]
    np.testing.assert_array_equal(a.centers, b.centers)


# ------------------------------------------------------------------ sklearn / pickle


def test_sklearn_protocol_pickle_clone():
    sift = DenseSIFT(scales=(2.5,), steps=7, rotate=True, n_jobs=2)
    assert sift.get_params() == {"scales": (2.5,), "steps": 7, "rotate": True, "pixel_rule": "auto", "n_jobs": 2}
    assert sift.set_params(steps=5) is sift and sift.steps == 5
    cloned = clone(sift)
    assert cloned is not sift and cloned.get_params() == sift.get_params()
    restored = pickle.loads(pickle.dumps(sift))
    assert restored.get_params() == sift.get_params()
    tags = sift.__sklearn_tags__()
    assert tags.requires_fit is False and tags.input_tags.two_d_array is False
    img = [_textured((45, 45))]
    assert sift.fit(img) is sift
    a, b = sift.transform(img)[0], restored.transform(img)[0]
    np.testing.assert_array_equal(a.descriptors, b.descriptors)


def test_descriptor_set_pickles():
    ds = DenseSIFT(rotate=True).transform([_textured((60, 50))])[0]
    back = pickle.loads(pickle.dumps(ds))
    for name in ("descriptors", "centers", "sigmas", "levels", "angles", "boxes"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ds, name))
        assert getattr(back, name).dtype == getattr(ds, name).dtype
    assert back.image_shape == ds.image_shape and back.n_levels == ds.n_levels
    assert back.level_slices == ds.level_slices
    with pytest.raises(AttributeError):
        ds.n_levels = 3  # frozen


def test_descriptor_set_validates_shapes():
    with pytest.raises(ValueError, match=r"boxes must have shape \(1, 4\)"):
        DescriptorSet(
            descriptors=np.zeros((1, 128)),
            centers=np.zeros((1, 2)),
            sigmas=np.ones(1),
            levels=np.zeros(1, int),
            angles=np.zeros(1),
            boxes=np.zeros((1, 3)),
            image_shape=(10, 10),
            n_levels=1,
        )
    with pytest.raises(ValueError, match="inside the image"):
        _hand_made_set((10, 10), [(0, 0, 11, 5)])
