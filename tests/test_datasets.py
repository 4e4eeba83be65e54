import numpy as np
import pytest
from scipy import ndimage

from bowlrp.datasets import make_polygons
from bowlrp.datasets.polygons import _Shape, _render_shape


@pytest.fixture(scope="module")
def data():
    return make_polygons(n_train=40, n_test_images=2, random_state=0)


def test_fields_shapes_and_dtypes(data):
    t = 102
    n_pos = len(range(0, 408 - t + 1, 34)) ** 2  # 10 x 10 positions per big image
    T = 2 * n_pos
    expected = {
        "images": ((40, t, t), np.uint8),
        "labels": ((40,), np.integer),
        "polygon_masks": ((40, t, t), np.bool_),
        "round_masks": ((40, t, t), np.bool_),
        "test_images": ((T, t, t), np.uint8),
        "test_labels": ((T,), np.integer),
        "test_polygon_masks": ((T, t, t), np.bool_),
        "test_round_masks": ((T, t, t), np.bool_),
        "test_origins": ((T, 2), np.integer),
        "test_source": ((T,), np.integer),
        "test_big_images": ((2, 408, 408), np.uint8),
        "test_big_polygon_masks": ((2, 408, 408), np.bool_),
        "test_big_round_masks": ((2, 408, 408), np.bool_),
    }
    for name, (shape, dtype) in expected.items():
        arr = data[name]
        assert isinstance(arr, np.ndarray), name
        assert arr.shape == shape, name
        assert np.issubdtype(arr.dtype, dtype), (name, arr.dtype)
    assert set(np.unique(data.labels)) <= {-1, 1}
    assert set(np.unique(data.test_labels)) <= {-1, 1}
    assert isinstance(data.DESCR, str) and "2.4.3" in data.DESCR
    np.testing.assert_array_equal(np.bincount(data.test_source), [n_pos, n_pos])


def test_custom_sizes_and_empty_test_set():
    d = make_polygons(n_train=7, n_test_images=0, image_size=200, tile_size=64,
                      test_stride=20, shape_radius=(6, 10), random_state=1)
    assert d.images.shape == (7, 64, 64)
    assert d.test_images.shape == (0, 64, 64)
    assert d.test_labels.shape == (0,)
    assert d.test_origins.shape == (0, 2)
    assert d.test_big_images.shape == (0, 200, 200)
    d = make_polygons(n_train=3, n_test_images=1, image_size=200, tile_size=64,
                      test_stride=20, shape_radius=(6, 10), random_state=1)
    n = len(range(0, 200 - 64 + 1, 20))
    assert d.test_images.shape == (n * n, 64, 64)


def test_determinism():
    a = make_polygons(n_train=20, n_test_images=1, random_state=3)
    b = make_polygons(n_train=20, n_test_images=1, random_state=3)
    c = make_polygons(n_train=20, n_test_images=1, random_state=4)
    for key in a:
        if key == "DESCR":
            continue
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(a.images, c.images)
    assert not np.array_equal(a.test_big_images, c.test_big_images)
    # RandomState and Generator instances are accepted and deterministic too
    r1 = make_polygons(n_train=5, n_test_images=0, random_state=np.random.RandomState(7))
    r2 = make_polygons(n_train=5, n_test_images=0, random_state=np.random.RandomState(7))
    np.testing.assert_array_equal(r1.images, r2.images)
    g1 = make_polygons(n_train=5, n_test_images=0, random_state=np.random.default_rng(7))
    g2 = make_polygons(n_train=5, n_test_images=0, random_state=np.random.default_rng(7))
    np.testing.assert_array_equal(g1.images, g2.images)


def test_train_prefix_stable_and_test_independent_of_n_train():
    small = make_polygons(n_train=10, n_test_images=1, random_state=5)
    large = make_polygons(n_train=40, n_test_images=1, random_state=5)
    np.testing.assert_array_equal(small.images, large.images[:10])
    np.testing.assert_array_equal(small.labels, large.labels[:10])
    np.testing.assert_array_equal(small.test_big_images, large.test_big_images)


def test_train_and_test_images_differ(data):
    # the first training image's top-left tile vs. the first test image's
    assert not np.array_equal(data.images[0], data.test_big_images[0, :102, :102])
    assert not np.array_equal(data.test_big_images[0], data.test_big_images[1])


def test_test_tiles_are_crops_of_big_images(data):
    t = 102
    for i, ((r, c), k) in enumerate(zip(data.test_origins, data.test_source)):
        np.testing.assert_array_equal(data.test_images[i], data.test_big_images[k, r:r + t, c:c + t])
        np.testing.assert_array_equal(
            data.test_polygon_masks[i], data.test_big_polygon_masks[k, r:r + t, c:c + t])
        np.testing.assert_array_equal(
            data.test_round_masks[i], data.test_big_round_masks[k, r:r + t, c:c + t])
    assert set(map(int, np.unique(data.test_origins))) == set(range(0, 408 - t + 1, 34))


def test_positive_tiles_contain_polygons(data):
    for labels, masks in [(data.labels, data.polygon_masks),
                          (data.test_labels, data.test_polygon_masks)]:
        pos = labels == 1
        assert pos.any() and (~pos).any()
        assert masks[pos].reshape(pos.sum(), -1).any(axis=1).all()


def test_labels_match_polygon_centres_in_big_test_images(data):
    # Re-derive the test labels from the big polygon masks: the centre of mass
    # of each connected polygon must lie in exactly the positive tiles.
    t = 102
    for k in range(len(data.test_big_images)):
        lab, n = ndimage.label(data.test_big_polygon_masks[k])
        centres = np.array(ndimage.center_of_mass(lab > 0, lab, range(1, n + 1)))
        pix = np.floor(centres + 0.5)
        sel = data.test_source == k
        for origin, label in zip(data.test_origins[sel], data.test_labels[sel]):
            rel = pix - origin
            inside = ((rel >= 0) & (rel < t)).all(axis=1)
            # mask centroids may differ from the placed centres by a fraction
            # of a pixel; skip the rare tiles where that is ambiguous
            margin = np.abs(centres - origin + 0.5)
            far = np.abs(centres - (origin + t) + 0.5)
            if (np.minimum(margin, far) < 1.0).any(axis=1).any():
                continue
            assert (label == 1) == inside.any()


def test_shape_pixels_dark_and_masks_disjoint(data):
    inner = (slice(None), slice(2, -2), slice(2, -2))  # edges of shapes in neighbour tiles
    for images, pm, rm in [
        (data.images[inner], data.polygon_masks[inner], data.round_masks[inner]),
        (data.test_big_images, data.test_big_polygon_masks, data.test_big_round_masks),
    ]:
        assert not (pm & rm).any()
        assert pm.any() and rm.any()
        near = np.stack([ndimage.binary_dilation(m, iterations=2) for m in pm | rm])
        background = images[~near]
        # anti-aliased rims may be lighter; shape interiors are darker than any background
        interior = lambda m: np.stack([ndimage.binary_erosion(x) for x in m])  # noqa: E731
        assert images[interior(pm)].max() < background.min()
        assert images[interior(rm)].max() < background.min()
        assert 0.6 * 255 < background.mean() < 0.95 * 255


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positive_fraction_balanced(seed):
    d = make_polygons(n_train=160, n_test_images=0, random_state=seed)
    frac = np.mean(d.labels == 1)
    assert 0.3 <= frac <= 0.7


@pytest.mark.parametrize("n", [4, 5, 6, 7])
def test_polygon_area_matches_analytic(n):
    r = 30.0
    shape = _Shape(kind="polygon", cy=40.3, cx=39.8, radius=r, angle=0.37, n_vertices=n)
    rows, cols, mask, coverage = _render_shape(shape, (80, 80))
    area = 0.5 * n * r**2 * np.sin(2 * np.pi / n)
    assert abs(mask.sum() - area) / area < 0.02
    assert abs(coverage.sum() - area) / area < 0.02
    assert np.array_equal(mask, coverage >= 0.5)
    # the mask's centre of mass is the placed centre
    cy, cx = ndimage.center_of_mass(mask)
    assert abs(cy + rows.start - shape.cy) < 0.3 and abs(cx + cols.start - shape.cx) < 0.3


@pytest.mark.parametrize("p", [2.0, 3.0])
def test_round_area_matches_analytic(p):
    from math import gamma

    r = 30.0
    shape = _Shape(kind="round", cy=50.2, cx=49.7, radius=r, angle=0.5, p=p)
    _, _, mask, coverage = _render_shape(shape, (100, 100))
    area = 4 * gamma(1 + 1 / p) ** 2 / gamma(1 + 2 / p) * r**2
    assert abs(mask.sum() - area) / area < 0.02
    assert abs(coverage.sum() - area) / area < 0.02


def test_render_clips_at_image_border():
    shape = _Shape(kind="polygon", cy=2.0, cx=3.0, radius=10.0, angle=0.0, n_vertices=5)
    rows, cols, mask, coverage = _render_shape(shape, (30, 30))
    assert rows.start == 0 and cols.start == 0
    assert mask.shape == coverage.shape == (rows.stop - rows.start, cols.stop - cols.start)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_train=0), "n_train"),
        (dict(n_train=2.5), "n_train"),
        (dict(n_test_images=-1), "n_test_images"),
        (dict(image_size=100, tile_size=102), "must not exceed image_size"),
        (dict(test_stride=0), "test_stride"),
        (dict(shape_radius=(5.0,)), "shape_radius"),
        (dict(shape_radius=(0.0, 5.0)), "shape_radius"),
        (dict(shape_radius=(9.0, 5.0)), "shape_radius"),
        (dict(shape_radius=(10.0, 60.0)), "do not fit in tiles"),
        (dict(lp_range=(0.5, 2.0)), "lp_range"),
        (dict(lp_range=(3.0, 2.0)), "lp_range"),
        (dict(density=0), "density"),
        (dict(density=-1.0), "density"),
        (dict(density=100.0), "density"),
        (dict(background_amplitude=0.5), "background_amplitude"),
    ],
)
def test_invalid_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_polygons(**{"n_train": 4, "n_test_images": 0, "random_state": 0, **kwargs})


def test_density_too_high_for_rejection_sampling_fails_cleanly():
    # below the packing bound, but beyond what random sequential placement reaches
    with pytest.raises(ValueError, match="lower `density`"):
        make_polygons(n_train=4, n_test_images=0, density=9.0, random_state=0)


# ---------------------------------------------------------------- G1 options: context and watermark


def test_context_and_watermark_default_off_leave_data_unchanged():
    a = make_polygons(n_train=16, n_test_images=1, random_state=11)
    b = make_polygons(n_train=16, n_test_images=1, random_state=11, context=0.0, watermark=0.0)
    for key in a:
        if key != "DESCR":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not a.has_watermark.any() and not a.test_has_watermark.any()
    assert "Context" not in a.DESCR and "Watermark" not in a.DESCR


def test_context_texture_correlates_with_label_and_keeps_labels():
    base = make_polygons(n_train=64, n_test_images=0, random_state=12)
    ctx = make_polygons(n_train=64, n_test_images=0, random_state=12, context=1.0)
    np.testing.assert_array_equal(base.labels, ctx.labels)
    np.testing.assert_array_equal(base.polygon_masks, ctx.polygon_masks)
    # the stripes change pixels outside every shape, around polygons only at context=1
    diff = (base.images != ctx.images) & ~base.polygon_masks & ~base.round_masks
    changed = diff.reshape(64, -1).mean(1)
    assert changed[ctx.labels == 1].mean() > 5 * changed[ctx.labels == -1].mean()
    assert "Context" in ctx.DESCR


def test_watermark_on_positive_tiles_only():
    d = make_polygons(n_train=48, n_test_images=1, random_state=13, watermark=1.0)
    base = make_polygons(n_train=48, n_test_images=1, random_state=13)
    np.testing.assert_array_equal(d.has_watermark, d.labels == 1)
    np.testing.assert_array_equal(d.test_has_watermark, d.test_labels == 1)
    t = d.images.shape[1]
    corner = d.images[:, t - 8:t - 3, 3:8]
    assert (corner[d.has_watermark][:, ::2, ::2] == 26).all()  # dark checkerboard pixels
    np.testing.assert_array_equal(d.images[~d.has_watermark], base.images[~d.has_watermark])
    half = make_polygons(n_train=48, n_test_images=0, random_state=13, watermark=0.5)
    assert 0 < half.has_watermark.sum() < (half.labels == 1).sum()


@pytest.mark.parametrize("kw", [dict(context=1.5), dict(context=-0.1), dict(watermark=2),
                                dict(context_amplitude=0.0), dict(watermark=True)])
def test_context_watermark_validation(kw):
    with pytest.raises(ValueError, match="context|watermark"):
        make_polygons(n_train=4, n_test_images=0, random_state=0, **kw)
