"""Fisher-vector pipelines down to pixels: per-bin maps (App. D.1.2), conservation, the toy task."""

import cv2
import numpy as np
import pytest

import bowlrp
from bowlrp.datasets import make_polygons
from bowlrp.features.sift import DescriptorSet, _boxes, bin_boxes, bin_pixel_relevance, flat_pixel_relevance
from pipelines.fisher_vector import make_pipeline


def _single(angle, dot, sigma=3.0, size=90):
    c = size // 2
    img = np.full((size, size), 60, np.uint8)
    img[c + dot[0] - 1 : c + dot[0] + 2, c + dot[1] - 1 : c + dot[1] + 2] = 250
    kp = [cv2.KeyPoint(float(c), float(c), 2 * sigma, float(angle), 0, 0, -1)]
    _, d = cv2.SIFT_create().compute(img, kp)
    ds = DescriptorSet(d, np.array([[c, c]], float), [sigma], [0], [angle],
                       _boxes(np.array([[c, c]]), sigma, (size, size)), (size, size), 1)
    return ds, d[0].reshape(16, 8).sum(1)


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0, 300.0])
def test_bin_boxes_follow_opencv_layout(angle):
    """A dot lights up the SIFT bin whose box (bin_boxes) contains it."""
    hits = 0
    dots = [(-13, -13), (-13, 4), (4, 13), (13, -4), (-4, -4), (10, 10)]
    for dot in dots:
        ds, energy = _single(angle, dot)
        b = bin_boxes(ds)[0, int(np.argmax(energy))]
        hits += b[0] <= 45 + dot[0] < b[2] and b[1] <= 45 + dot[1] < b[3]
    assert hits == len(dots) if angle == 0 else hits >= len(dots) - 1


def test_unrotated_bins_tile_the_flat_square():
    ds, _ = _single(0.0, (0, 0))
    b = bin_boxes(ds)[0]
    area = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).sum()
    assert area == ds.areas[0] == 36 * 36
    assert b[:, 0].min() == ds.boxes[0, 0] and b[:, 3].max() == ds.boxes[0, 3]


def test_bin_map_conserves_and_is_finer():
    """One small bright square: the per-bin map keeps the flat map's total and stays closer to it."""
    img = np.full((80, 80), 0.5)
    img[38:42, 30:34] = 1.0
    sift = bowlrp.DenseSIFT(scales=(2.0,), steps=4)
    (ds,) = sift.transform([img])
    R = ds.descriptors.astype(np.float64) / 512.0  # relevance per dimension = gradient energy
    fine = bin_pixel_relevance(ds, R)
    flat = flat_pixel_relevance(ds, R.sum(1))
    assert fine.shape == flat.shape == (80, 80)
    np.testing.assert_allclose(fine.sum(), flat.sum(), rtol=1e-12)
    np.testing.assert_allclose(fine.sum(), R.sum(), rtol=1e-12)
    near = np.zeros((80, 80), bool)
    near[38 - 6 : 42 + 6, 30 - 6 : 34 + 6] = True
    share = lambda m: m[near].sum() / m.sum()  # noqa: E731
    assert share(fine) > share(flat) + 0.2
    # finer: more distinct values, and the flat map's support is wider
    assert (np.abs(fine) > 1e-3 * np.abs(fine).max()).sum() < (np.abs(flat) > 1e-3 * np.abs(flat).max()).sum()
    # for per-dimension relevance the SIFT stage chooses the magnitude rule, which is the per-bin rule
    # where, as here, every dimension has the sign of its descriptor's total
    np.testing.assert_allclose(sift.relevance([R], [ds])[0], fine)
    np.testing.assert_allclose(sift.relevance([R], [ds], rule="flat")[0], flat)


def test_bin_map_with_clipped_boxes_conserves():
    ds, _ = _single(0.0, (0, 0))
    shifted = DescriptorSet(ds.descriptors, np.array([[5.0, 70.0]]), ds.sigmas, ds.levels, ds.angles,
                            _boxes(np.array([[5, 70]]), 3.0, (90, 90)), (90, 90), 1)
    R = np.random.default_rng(0).standard_normal((1, 128))
    np.testing.assert_allclose(bin_pixel_relevance(shifted, R).sum(), R.sum(), rtol=1e-12)


@pytest.fixture(scope="module")
def toy():
    data = make_polygons(n_train=300, n_test_images=1, random_state=0)
    pipe = make_pipeline(scales=(2.0, 3.0), steps=(6, 9), rotate=True, n_components=16, pca=32,
                         pyramid=((1, 1),), max_iter=50)
    return data, pipe.fit(data.images, data.labels)


def test_pipeline_conserves_to_pixels():
    """Proportional rule: SVM output = FV dims = descriptors = descriptor dims = pixels (+ bias)."""
    data = make_polygons(n_train=40, n_test_images=1, random_state=1)
    pipe = make_pipeline(scales=(2.0, 3.0), steps=(6, 9), rotate=True, n_components=4, pca=12,
                         pyramid=((1, 1), (2, 2), (3, 1)), max_iter=20).fit(data.images, data.labels)
    X = data.test_images[:3]
    exp = pipe.explain(X, rule="z", keep_dimensions=True)
    np.testing.assert_allclose(exp.score, pipe.decision_function(X), rtol=1e-10)
    for i in range(len(X)):
        tol = 1e-8 * max(abs(exp.score[i]), 1e-3)
        assert exp.descriptors[i].shape[1] == 128
        for total in (exp.features[i].sum(), exp.descriptors[i].sum(), exp.pixels[i].sum()):
            assert abs(total + exp.bias[i] - exp.score[i]) <= tol
    assert np.all(np.abs(exp.residual) <= 1e-8 * np.maximum(np.abs(exp.score), 1e-3))
    lean = pipe.explain(X, rule="z")  # by default each descriptor's dimensions are summed
    for i in range(len(X)):
        assert lean.descriptors[i].ndim == 1
        np.testing.assert_allclose(lean.descriptors[i], exp.descriptors[i].sum(1), rtol=1e-12)
        # the pixel rule reads per-bin parts formed chunk by chunk in the encoder: the same map to rounding
        np.testing.assert_allclose(lean.pixels[i], exp.pixels[i], rtol=1e-12,
                                   atol=1e-12 * np.abs(exp.pixels[i]).max())
        assert all(r.ndim == 1 for r in lean.stages["fv"])


def test_toy_polygons_accuracy_and_heatmaps(toy):
    data, pipe = toy
    acc = np.mean(pipe.predict(data.test_images) == data.test_labels)
    assert acc >= 0.9, acc
    pos = np.flatnonzero(data.test_labels == 1)[:12]
    exp = pipe.explain([data.test_images[i] for i in pos], rule="epsilon", epsilon=1.0)
    masks = [data.test_polygon_masks[i] for i in pos]
    on = np.mean([p[m].mean() for p, m in zip(exp.pixels, masks) if m.any()])
    off = np.mean([p[~m].mean() for p, m in zip(exp.pixels, masks)])
    assert on > 0 and on > off
