"""Pixel rules of DenseSIFT (bowlrp.features.pixel_rules): slow references, conservation, localisation."""

import numpy as np
import pytest

import bowlrp
from bowlrp._backend import cupy_available
from bowlrp.datasets import make_polygons
from bowlrp.features import DenseSIFT, DescriptorSet, PIXEL_RULES, pixel_relevance
from bowlrp.features.sift import (
    AUTO_RULES,
    bin_boxes,
    bin_pixel_relevance,
    descriptor_boxes,
    energy_pixel_relevance,
    flat_pixel_relevance,
    magnitude_pixel_relevance,
    shared_bin_relevance,
)
from pipelines.fisher_vector import make_pipeline

# ------------------------------------------------------------------ slow references


def _add_box(out, box, value):
    r0, c0, r1, c1 = box
    out[r0:r1, c0:c1] += value / ((r1 - r0) * (c1 - c0))


def _reference(ds, R, rule):
    """Each rule written out descriptor by descriptor and bin by bin."""
    out = np.zeros(ds.image_shape)
    boxes = bin_boxes(ds)
    for i in range(len(ds)):
        r = np.asarray(R[i], dtype=np.float64)
        total = r.sum()
        if rule == "flat":
            _add_box(out, ds.boxes[i], total)
            continue
        if rule == "bins":
            shares = r.reshape(16, -1).sum(1)
        else:
            if rule == "energy":
                w = ds.descriptors[i].astype(np.float64).reshape(16, 8).sum(1)
            else:  # magnitude
                w = np.abs(r).reshape(16, -1).sum(1)
            if w.sum() == 0:
                _add_box(out, ds.boxes[i], total)
                continue
            shares = total * w / w.sum()
        for b in range(16):
            if (boxes[i, b, 2] - boxes[i, b, 0]) * (boxes[i, b, 3] - boxes[i, b, 1]) > 0:
                _add_box(out, boxes[i, b], shares[b])
            else:  # a bin clipped away: its share to the descriptor's square
                _add_box(out, ds.boxes[i], shares[b])
    return out


def _textured(shape, seed):
    rng = np.random.default_rng(seed)
    import cv2

    return cv2.GaussianBlur((rng.random(shape) * 255).astype(np.uint8), (0, 0), 1.5)


def _clipped_set(seed=0):
    """A hand-made set whose squares leave the image, with some descriptors all zero."""
    rng = np.random.default_rng(seed)
    shape = (50, 60)
    centers = np.array([[3, 4], [58, 47], [30, 25], [10, 45], [55, 2]], dtype=float)
    d = (rng.random((5, 128)) * 100).astype(np.float32)
    d[[1, 3]] = 0.0  # no gradients: the energy rule keeps the flat rule there
    return DescriptorSet(d, centers, np.full(5, 2.0), np.zeros(5, np.intp), [0.0, 0.0, 40.0, 0.0, 250.0],
                         descriptor_boxes(centers, 2.0, shape), shape, 1)


@pytest.mark.parametrize("rule", ["flat", "bins", "energy", "magnitude"])
@pytest.mark.parametrize("kind", ["upright", "rotated", "clipped"])
def test_rules_match_slow_reference_and_conserve(rule, kind):
    rng = np.random.default_rng(1)
    if kind == "clipped":
        ds = _clipped_set()
    else:
        ds = DenseSIFT(rotate=kind == "rotated").transform([_textured((61, 73), seed=2)])[0]
    R = rng.standard_normal((len(ds), 128)) * rng.exponential(size=(len(ds), 1))  # cancelling parts
    R[0] = 0.0  # a descriptor without relevance
    fast = pixel_relevance(ds, R, rule)
    ref = _reference(ds, R, rule)
    assert fast.shape == ds.image_shape and fast.dtype == np.float64
    np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(fast.sum(), R.sum(), rtol=1e-10)
    # the functions of the rules give the same maps
    own = {"flat": lambda: flat_pixel_relevance(ds, R.sum(1)), "bins": lambda: bin_pixel_relevance(ds, R),
           "energy": lambda: energy_pixel_relevance(ds, R), "magnitude": lambda: magnitude_pixel_relevance(ds, R)}
    np.testing.assert_array_equal(own[rule](), fast)


@pytest.mark.parametrize("rule", ["flat", "energy"])
def test_per_descriptor_rules_match_reference(rule):
    rng = np.random.default_rng(3)
    ds = DenseSIFT(rotate=True).transform([_textured((70, 64), seed=4)])[0]
    Rl = rng.standard_normal(len(ds))
    fast = pixel_relevance(ds, Rl, rule)
    np.testing.assert_allclose(fast, _reference(ds, Rl[:, None], rule), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast.sum(), Rl.sum(), rtol=1e-10)
    # per descriptor or per dimension summing to it: the same map for these two rules
    split = np.repeat(Rl[:, None] / 128, 128, axis=1)
    np.testing.assert_allclose(pixel_relevance(ds, split, rule), fast, rtol=1e-9, atol=1e-14)


def test_shared_rules_keep_one_sign_per_descriptor():
    """Energy and magnitude give every pixel of a descriptor the sign of its total; per-bin does not."""
    rng = np.random.default_rng(5)
    ds = DenseSIFT(scales=(2.0,), steps=1000).transform([_textured((40, 40), seed=6)])[0]
    assert len(ds) == 1
    R = rng.standard_normal((1, 128)) * 10
    R[0, 0] += 3.0 - R.sum()  # total +3, parts of both signs
    for rule in ("energy", "magnitude"):
        m = pixel_relevance(ds, R, rule)
        assert m.min() >= -1e-12 * m.max() and np.isclose(m.sum(), 3.0)
    m = pixel_relevance(ds, R, "bins")
    assert m.min() < 0 < m.max()


def test_magnitude_is_the_per_bin_rule_without_cancellation():
    ds = DenseSIFT(rotate=True).transform([_textured((61, 73), seed=9)])[0]
    R = np.random.default_rng(10).exponential(size=(len(ds), 128))
    R[::3] *= -1.0  # descriptors of either sign, each of one sign throughout
    np.testing.assert_allclose(pixel_relevance(ds, R, "magnitude"), pixel_relevance(ds, R, "bins"),
                               rtol=1e-9, atol=1e-12)


def test_shared_bin_relevance_weights():
    ds = _clipped_set()
    Rl = np.arange(1.0, 6.0)
    w = np.zeros((5, 16))
    w[0, 5] = 2.0  # all of descriptor 0 to bin 5
    w[2] = 1.0  # descriptor 2 evenly over its bins
    m = shared_bin_relevance(ds, Rl, w)
    np.testing.assert_allclose(m.sum(), Rl.sum(), rtol=1e-12)
    r0, c0, r1, c1 = bin_boxes(ds)[0, 5]
    alone = shared_bin_relevance(ds, np.array([1.0, 0, 0, 0, 0]), w)
    np.testing.assert_allclose(alone[r0:r1, c0:c1], 1.0 / ((r1 - r0) * (c1 - c0)))
    # zero weights: the flat rule over the square
    np.testing.assert_allclose(shared_bin_relevance(ds, np.array([0, 2.0, 0, 0, 0]), w),
                               flat_pixel_relevance(ds, np.array([0, 2.0, 0, 0, 0])), atol=1e-15)
    with pytest.raises(ValueError, match="non-negative"):
        shared_bin_relevance(ds, Rl, -w)
    with pytest.raises(ValueError, match=r"weights must have shape \(5, 16\)"):
        shared_bin_relevance(ds, Rl, w[:, :8])


# -------------------------------------------------------------------- localisation


def _square_image(margin=9):
    """A bright 4 x 4 square on a flat image, and the pixels within ``margin`` of it (1.5 bin widths)."""
    img = np.full((80, 80), 0.5)
    img[38:42, 30:34] = 1.0
    near = np.zeros((80, 80), bool)
    near[38 - margin : 42 + margin, 30 - margin : 34 + margin] = True
    return img, near


def _share(m, near):
    return m[near].sum() / m.sum()


@pytest.mark.parametrize("rotate", [False, True])
def test_energy_rule_puts_relevance_on_the_square(rotate):
    """A bright square on a flat image: every descriptor that sees it is relevant; the energy rule
    puts that relevance where the square is, the flat rule over the descriptors' whole squares."""
    img, near = _square_image()
    (ds,) = DenseSIFT(scales=(2.0,), steps=4, rotate=rotate).transform([img])
    Rl = (ds.descriptors.sum(1) > 0).astype(np.float64)
    assert 0 < Rl.sum() < len(ds)
    energy, flat = pixel_relevance(ds, Rl, "energy"), pixel_relevance(ds, Rl, "flat")
    assert _share(energy, near) > 0.7 and _share(energy, near) > _share(flat, near) + 0.4
    assert np.argmax(energy) in np.flatnonzero(near)


def test_magnitude_rule_localises_despite_cancellation():
    """Per-dimension relevance on the square's bins with parts of both signs, larger than the net: the
    per-bin map has negative pixels, the magnitude map is positive and as local as the per-bin map."""
    img, near = _square_image()
    (ds,) = DenseSIFT(scales=(2.0,), steps=4).transform([img])
    rng = np.random.default_rng(7)
    x = ds.descriptors.astype(np.float64) / 512.0
    sign = np.repeat(rng.choice([-1.0, 1.0], size=(len(x), 16)), 8, axis=1)  # one sign per spatial bin
    R = x * (0.2 + 3.0 * sign)
    R[R.sum(1) <= 0] = 0.0
    assert np.abs(R).sum() > 2 * R.sum() > 0
    mag, bins, flat = (pixel_relevance(ds, R, rule) for rule in ("magnitude", "bins", "flat"))
    for m in (mag, bins, flat):
        np.testing.assert_allclose(m.sum(), R.sum(), rtol=1e-10)
    assert mag.min() >= -1e-12 * mag.max()  # up to the cumulative sums' rounding
    assert bins.min() < -0.1 * bins.max()
    assert _share(mag, near) > 0.8 and _share(mag, near) > _share(flat, near) + 0.4


# ------------------------------------------------------------------------- protocol


def test_rule_names_errors_and_auto():
    assert PIXEL_RULES == ("auto", "flat", "bins", "energy", "magnitude")
    ds = _clipped_set()
    R1, R2 = np.ones(5), np.ones((5, 128))
    for rule in ("bins", "magnitude"):
        with pytest.raises(ValueError, match=rf"the '{rule}' pixel rule needs relevance per descriptor dimension"):
            pixel_relevance(ds, R1, rule)
    with pytest.raises(ValueError, match=r"shape \(5,\) or \(5, 128\)"):
        pixel_relevance(ds, np.ones(4), "energy")
    with pytest.raises(ValueError, match="valid pixel rules are"):
        pixel_relevance(ds, R1, "bin")
    np.testing.assert_array_equal(pixel_relevance(ds, R1), pixel_relevance(ds, R1, AUTO_RULES[1]))
    np.testing.assert_array_equal(pixel_relevance(ds, R2), pixel_relevance(ds, R2, AUTO_RULES[2]))
    sift = DenseSIFT(pixel_rule="magnitude")
    assert sift.fit([np.zeros((40, 40))]) is sift
    with pytest.raises(ValueError, match="valid pixel rules"):
        DenseSIFT(pixel_rule="energetic").fit([np.zeros((40, 40))])


@pytest.fixture(scope="module")
def fv_model():
    data = make_polygons(n_train=40, n_test_images=1, random_state=1)
    pipe = make_pipeline(scales=(2.0, 3.0), steps=(6, 9), rotate=True, n_components=4, pca=12,
                         pyramid=((1, 1),), max_iter=20).fit(data.images, data.labels)
    return pipe, data.test_images[:3]


@pytest.mark.parametrize("rule", ["flat", "bins", "energy", "magnitude", "auto"])
def test_pipeline_pixels_conserve_under_every_rule(fv_model, rule):
    """Proportional rule through a Fisher-vector model: pixels + bias = score for every pixel rule."""
    pipe, X = fv_model
    exp = bowlrp.explain(pipe, X, rule={"fv": "z", "sift": rule})
    sift = pipe.named_steps["sift"]
    dims = bowlrp.explain(pipe, X, rule="z", keep_dimensions=True).descriptors
    for i in range(len(X)):
        assert abs(exp.pixels[i].sum() + exp.bias[i] - exp.score[i]) <= 1e-8 * max(abs(exp.score[i]), 1e-3)
        np.testing.assert_allclose(exp.pixels[i], pixel_relevance(sift.transform(X[i : i + 1])[0], dims[i], rule),
                                   rtol=1e-9, atol=1e-12)
    # the estimator's parameter chooses the same rule
    via_param = bowlrp.explain(pipe.set_params(sift__pixel_rule=rule), X, rule="z")
    pipe.set_params(sift__pixel_rule="auto")
    for a, b in zip(via_param.pixels, exp.pixels):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.skipif(not cupy_available(), reason="CuPy with a CUDA device is not available")
@pytest.mark.parametrize("rule", ["flat", "bins", "energy", "magnitude"])
def test_rules_on_cupy(rule):
    import cupy as cp

    ds = _clipped_set()
    R = np.random.default_rng(8).standard_normal((5, 128))
    gpu = pixel_relevance(ds, cp.asarray(R), rule)
    assert isinstance(gpu, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(gpu), pixel_relevance(ds, R, rule), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["rotated", "clipped"])
def test_rules_run_on_the_device_without_reading_back(device, kind):
    """Every rule on the device (the strict CuPy stand-in, or CuPy) gives the host's map and reads no
    device value back: the geometry's tests run on the host, nothing decides a branch on the device."""
    ds = _clipped_set() if kind == "clipped" else DenseSIFT(rotate=True).transform([_textured((61, 73), seed=5)])[0]
    R = np.random.default_rng(11).standard_normal((len(ds), 128))
    R[0] = 0.0  # no relevance: zero weights under the magnitude rule
    for rule in ("flat", "bins", "energy", "magnitude", "auto"):
        with device.no_host_transfers():
            dev = pixel_relevance(ds, device.to_device(R), rule)
        device.assert_on_device(dev)
        np.testing.assert_allclose(device.to_host(dev), pixel_relevance(ds, R, rule), rtol=device.tol(1e-12),
                                   atol=1e-12)
