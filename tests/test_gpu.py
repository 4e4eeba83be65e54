"""Every device code path gives the NumPy results, on the strict CuPy stand-in and on real CuPy.

Each test takes the ``device`` fixture (tests/conftest.py): it runs on the
stand-in of tests/cupy_standin.py in the default suite, whose arrays refuse
any implicit conversion to NumPy, any NumPy function and any mixing with NumPy
arrays, and again on real CuPy where a CUDA device is present (marked
``gpu``; skipped cleanly otherwise).  Device results are compared with the
same computation on NumPy.
"""

from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.svm import SVC, LinearSVC

import bowlrp
import bowlrp.rules._lrp as rules_module  # where the proportional rule finds its denominators usable
from bowlrp import BagOfWords, CNNClassifier, DenseSIFT, FisherVectorEncoder, KernelOneClassSVM, KernelSVC
from bowlrp._backend import get_namespace, to_numpy
from bowlrp.cnn import (METHODS, AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, SumPool2d,
                        explain_model)
from bowlrp.cnn.composites import COMPOSITES, GRADIENT_COMPOSITES
from bowlrp.cnn.network import layer_from_config
from bowlrp.features.sift import bin_pixel_relevance, flat_pixel_relevance
from bowlrp.pipeline import ExplainablePipeline
from bowlrp.rules import RULES, get_rule, redistribute_sparse
from bowlrp.svm import make_kernel
from bowlrp.svm.adapters import as_explainable

MAPPING_RULES = ["z", "epsilon", "alphabeta", "abs", "flat"]
LAYER_RULES = [n for n, c in RULES.items() if "layer" in c.stages]


def close(dev, ref, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(to_numpy(dev), ref, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ the stand-in itself
@pytest.mark.parametrize("what, convert", [
    ("numpy.asarray", lambda a, h: np.asarray(a)),
    ("numpy.array of a list", lambda a, h: np.array([a[0], a[1]])),
    ("numpy ufunc", lambda a, h: np.exp(a)),
    ("numpy function", lambda a, h: np.concatenate([a, a])),
    ("numpy reduction", lambda a, h: np.sum(a)),
    ("device + host", lambda a, h: a + h),
    ("host * device", lambda a, h: h * a),
    ("host < device", lambda a, h: h < a),
    ("0-d host array", lambda a, h: np.array(2.0) - a),
    ("device index into a host array", lambda a, h: h[a.astype(int)[:2]]),
    ("device integer as a Python index", lambda a, h: [0, 1, 2][a.astype(int)[1]]),
    ("host array assigned from the device", lambda a, h: h.__setitem__(slice(None), a)),
    ("bool of many values", lambda a, h: bool(a > 0)),
])
def test_standin_refuses_implicit_host_conversion(standin, what, convert):
    a, h = standin.asarray([1.0, 2.0, 3.0]), np.ones(3)
    with pytest.raises((TypeError, ValueError)):
        convert(a, h)


def test_standin_allows_and_counts_what_cupy_allows(standin):
    a = standin.asarray(np.arange(4.0))
    log = standin.transfers
    log.reset()
    assert float(a.sum()) == 6.0 and a[1].item() == 1.0 and bool(a[0] == 0) and int(a[3]) == 3
    assert isinstance(standin.asnumpy(a), np.ndarray) and a.get().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert log.scalar_reads == 4 and log.host_bytes == 3 * 8 + 1 + 2 * 32
    assert np.float64(2.0) * a is not None and 2 ** a is not None  # host scalars mix, as in CuPy
    with standin.forbid_host_transfers():
        b = standin.exp(a) * 2.0 + a[standin.asarray([0, 0])].sum()  # device work is fine
        for read in (lambda: float(b[0]), lambda: b.get(), lambda: standin.asnumpy(b), lambda: bool(b[0] > 0)):
            with pytest.raises(standin.HostTransferError):
                read()
    assert np.isnan(to_numpy(standin.empty(3))).all()  # uninitialised memory is not zero
    assert np.ndim(a) == 1 and np.shape(a) == (4,) and np.size(a) == 4  # metadata reads no data


def test_get_namespace_refuses_mixed_inputs(device):
    d = device.to_device(np.ones(3))
    assert get_namespace(d, None, 2.0) is device.xp and get_namespace(np.ones(2), 1) is np
    with pytest.raises(TypeError, match="mix of NumPy and CuPy"):
        get_namespace(np.ones(3), d)


def test_a_numpy_call_in_a_device_path_fails(standin, monkeypatch):
    """What the stand-in is for: a NumPy function slipped into device code makes the device test fail."""
    z, cols, R = np.array([1.0, -2.0, 3.0]), np.array([0, 0, 1]), np.array([1.0, 2.0])
    host = redistribute_sparse(get_rule("z"), z, cols, 2, R, np)[0]
    monkeypatch.setattr(rules_module, "usable", lambda den, mag, xp: np.abs(den) > np.maximum(1e-10 * mag, 1e-290))
    np.testing.assert_allclose(redistribute_sparse(get_rule("z"), z, cols, 2, R, np)[0], host)
    with pytest.raises(TypeError):
        redistribute_sparse(get_rule("z"), *(standin.asarray(v) for v in (z, cols)), 2, standin.asarray(R), standin)


# ------------------------------------------------------------------ kernels and rules
@pytest.mark.parametrize("name", ["linear", "hik", "additive_chi2", "rbf", "chi2"])
def test_kernels_on_device(device, name):
    rng = np.random.default_rng(0)
    X, Y, coef = rng.random((6, 5)), rng.random((4, 5)), rng.normal(size=(6, 4))
    X[0, 1] = Y[2, 1] = 0.0  # 0/0 terms of the chi2 kernels
    kern = make_kernel(name, (2, 3), (1.0, 0.5), (1.5, 0.7) if name in ("rbf", "chi2") else None)
    xp = device.xp
    Xg, Yg, cg = (device.to_device(v) for v in (X, Y, coef))
    with device.no_host_transfers():
        g, grad = kern.gram(Xg, Yg, xp), kern.gradient(Xg, Yg, cg, xp)
        terms = kern.dimension_terms(Xg, Yg, cg, xp) if kern.sum_decomposable else None
    device.assert_on_device(g, grad)
    close(g, kern.gram(X, Y, np), rtol=device.tol(1e-12))
    close(grad, kern.gradient(X, Y, coef, np), rtol=device.tol(1e-10))
    if terms is not None:
        close(terms, kern.dimension_terms(X, Y, coef, np), rtol=device.tol(1e-12))


@pytest.mark.parametrize("name", MAPPING_RULES)
def test_mapping_rules_on_device(device, name):
    z = np.array([1.0, -2.0, 3.0, 0.5, 0.0, 1e-300, -1e-300])
    cols, R = np.array([0, 0, 2, 3, 1, 4, 4]), np.array([1.0, 2.0, -1.0, 0.5, 3.0])
    rule = get_rule(name)
    with device.no_host_transfers():
        m, reached = redistribute_sparse(rule, *(device.to_device(v) for v in (z, cols)), 5, device.to_device(R),
                                         device.xp)
    m0, r0 = redistribute_sparse(rule, z, cols, 5, R, np)
    device.assert_on_device(m, reached)
    close(m, m0, rtol=device.tol(1e-12))
    np.testing.assert_array_equal(to_numpy(reached), r0)


def _layers():
    conv = Conv2d(2, 3, 3, stride=2, padding=1)
    lin = Linear(12, 4)
    r = np.random.default_rng(3)
    conv.W, conv.b = r.normal(size=conv.W.shape), r.normal(size=3) * 0.1
    lin.W, lin.b = r.normal(size=lin.W.shape), -np.abs(r.normal(size=4)) * 0.1
    return [(conv, r.random((2, 2, 5, 6))), (lin, r.normal(size=(3, 12)))]


@pytest.mark.parametrize("name", LAYER_RULES)
def test_layer_rules_on_device(device, name):
    rule = get_rule(name)
    for layer, x in _layers():
        if name == "zbox":
            x = np.clip(x, 0.0, 1.0)
        R = np.random.default_rng(1).normal(size=layer.forward(x)[0].shape)
        host = rule.relevance(layer, x, R)
        dev_layer = layer_from_config(layer.config())
        for p in layer.params:
            setattr(dev_layer, p, device.to_device(getattr(layer, p)))
        with device.no_host_transfers():
            out = rule.relevance(dev_layer, device.to_device(x), device.to_device(R))
        device.assert_on_device(out)
        close(out, host, rtol=device.tol(1e-10))


# ------------------------------------------------------------------ encoders and pixel rules
@dataclass
class DeviceSet:
    """Device descriptors with their geometry on the host: what a stage after DenseSIFT takes on a GPU."""

    descriptors: object
    levels: np.ndarray
    n_levels: int
    centers: np.ndarray
    image_shape: tuple

    @classmethod
    def of(cls, ds, xp):
        return cls(xp.asarray(ds.descriptors), ds.levels, ds.n_levels, ds.centers, ds.image_shape)


@pytest.fixture(scope="module")
def sift_data():
    rng = np.random.default_rng(5)
    images = (rng.random((6, 40, 44)) * 255).astype(np.uint8)
    labels = np.array([0, 1, 0, 1, 1, 0])
    sift = DenseSIFT(scales=(2.0, 3.0), steps=(8, 10), rotate=True)
    return images, labels, sift, sift.transform(images)


@pytest.mark.parametrize("mapping, pooling, normalize", [
    ("rank", "sum", "l1"), ("hard", "sum", "count"), ("soft", 2.0, "l1"), ("rank", "max", None)])
def test_bow_forward_and_rules_on_device(device, sift_data, mapping, pooling, normalize):
    sets = sift_data[3]
    bow = BagOfWords(n_words=6, mapping=mapping, pooling=pooling, normalize=normalize, random_state=0).fit(sets)
    X, trace = bow.forward(sets)
    Xg, trace_g = bow.forward([DeviceSet.of(s, device.xp) for s in sets])
    device.assert_on_device(Xg)
    close(Xg, X, rtol=1e-6, atol=1e-9)
    R = np.random.default_rng(1).normal(size=X.shape)
    for name in MAPPING_RULES:
        with device.no_host_transfers():
            Rg = bow.relevance(device.to_device(R), trace_g, name)
        for a, b in zip(Rg, bow.relevance(R, trace, name)):
            device.assert_on_device(a)
            close(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("pca, pyramid, include_weights, dimension_relevance, dtype", [
    (None, ((1, 1),), True, True, "float64"),
    (6, ((1, 1), (2, 1)), True, True, "float64"),
    (6, ((1, 1), (1, 2)), False, False, "float32"),
])
def test_fisher_vectors_on_device(device, sift_data, pca, pyramid, include_weights, dimension_relevance, dtype):
    sets = sift_data[3]
    fv = FisherVectorEncoder(n_components=3, pca=pca, pyramid=pyramid, include_weights=include_weights,
                             dimension_relevance=dimension_relevance, dtype=dtype, random_state=0).fit(sets)
    X, trace = fv.forward(sets)
    Xg, trace_g = fv.forward([DeviceSet.of(s, device.xp) for s in sets])
    device.assert_on_device(Xg)
    tol = device.tol(1e-5, gpu=1e-4) if dtype == "float32" else device.tol(1e-9)
    close(Xg, X, rtol=tol, atol=tol * 1e-3)
    R = np.random.default_rng(2).normal(size=X.shape)
    for name in MAPPING_RULES:
        Rg = fv.relevance(device.to_device(R), trace_g, name)
        for a, b in zip(Rg, fv.relevance(R, trace, name)):
            device.assert_on_device(a)
            close(a, b, rtol=tol, atol=tol * 1e-3 * np.abs(b).max())


def test_pixel_rules_on_device(device, sift_data):
    images, _, sift, sets = sift_data
    rng = np.random.default_rng(3)
    per_desc = [rng.normal(size=len(s)) for s in sets[:2]]
    per_dim = [rng.normal(size=(len(s), 128)) for s in sets[:2]]
    for ds, r, rd in zip(sets, per_desc, per_dim):
        with device.no_host_transfers():
            flat = flat_pixel_relevance(ds, device.to_device(r))
        bins = bin_pixel_relevance(ds, device.to_device(rd))
        device.assert_on_device(flat, bins)
        close(flat, flat_pixel_relevance(ds, r), rtol=device.tol(1e-10))
        close(bins, bin_pixel_relevance(ds, rd), rtol=device.tol(1e-10))
    for rule, rel in (("auto", per_desc), ("flat", per_dim), ("bins", per_dim), ("auto", per_dim)):
        maps = sift.relevance([device.to_device(r) for r in rel], sets[:2], rule)
        for a, b in zip(maps, sift.relevance(rel, sets[:2], rule)):
            device.assert_on_device(a)
            close(a, b, rtol=device.tol(1e-10))


def test_bin_parts_and_reduced_encoder_relevance_on_device(device, sift_data):
    from bowlrp.features.pixel_rules import bin_parts

    R = np.random.default_rng(4).normal(size=(50, 128))
    with device.no_host_transfers():
        parts = bin_parts(device.to_device(R))
    device.assert_on_device(parts)
    close(parts, bin_parts(R), rtol=device.tol(1e-12))
    images, _, sift, sets = sift_data
    fv = FisherVectorEncoder(n_components=2, pca=4, dimension_relevance=True, random_state=0).fit(sets)
    X, trace = fv.forward(sets[:2])
    _, trace_g = fv.forward([DeviceSet.of(s, device.xp) for s in sets[:2]])
    Rf = np.random.default_rng(5).normal(size=X.shape)
    for name in ("z", "alphabeta"):
        got = fv.relevance(device.to_device(Rf), trace_g, name, reduce=sift.relevance_reducer())
        for a, b in zip(got, fv.relevance(Rf, trace, name, reduce=sift.relevance_reducer())):
            device.assert_on_device(a)
            assert a.shape[1] == 32
            close(a, b, rtol=device.tol(1e-9), atol=device.tol(1e-9) * 1e-3 * np.abs(b).max())
    upright = DenseSIFT(scales=(2.0, 3.0), steps=(8, 10)).transform(images[:2])  # bins as split squares
    for ds in upright:
        rd = np.random.default_rng(6).normal(size=(len(ds), 128))
        with device.no_host_transfers():
            bins = bin_pixel_relevance(ds, device.to_device(rd))
        device.assert_on_device(bins)
        close(bins, bin_pixel_relevance(ds, rd), rtol=device.tol(1e-10))


# ------------------------------------------------------------------ kernel models: exact and Taylor
def _svm_data(n=40, d=6, classes=2):
    rng = np.random.default_rng(2)
    X = rng.random((n, d))
    y = (X[:, 0] > X[:, 1]).astype(int) if classes == 2 else np.argmax(X[:, :classes], 1)
    return X, y


def _same_explanation(dev, host, device):
    # a root search ends within its tolerance (|f| <= 1e-5): on a GPU, other rounding may end it elsewhere
    tol = device.tol(1e-10, gpu=1e-6 if dev.root is None else 1e-3)
    for field in ("features", "bias", "score", "residual", "root", "root_found"):
        a, b = getattr(dev, field), getattr(host, field)
        assert (a is None) == (b is None), field
        if a is not None:
            device.assert_on_device(a)
            close(a, b, rtol=tol, atol=device.tol(1e-12, gpu=tol))
    np.testing.assert_array_equal(to_numpy(dev.target), to_numpy(host.target))


@pytest.mark.parametrize("kernel, bias, classes", [
    ("linear", "weights", 2), ("hik", "keep", 2), ("additive_chi2", "uniform", 3), ("rbf", "keep", 2),
    ("chi2", "uniform", 3)])
def test_svm_decomposition_on_device(device, kernel, bias, classes):
    X, y = _svm_data(classes=classes)
    svm = KernelSVC(kernel=kernel, C=10.0, blocks=(2, 4), random_state=0).fit(X, y)
    for target in (None, svm.classes_[0]):
        host = svm.explain(X[:5], target=target, bias=bias)
        dev = svm.explain(device.to_device(X[:5]), target=target, bias=bias)
        _same_explanation(dev, host, device)


def test_taylor_with_device_references_and_one_class_model(device):
    X, y = _svm_data()
    svm = KernelSVC(kernel="rbf", random_state=0).fit(X, y)
    refs = X[10:30]
    _same_explanation(svm.explain(device.to_device(X[:4]), references=device.to_device(refs)),
                      svm.explain(X[:4], references=refs), device)
    oc = KernelOneClassSVM(kernel="chi2", nu=0.3, random_state=0).fit(X)
    _same_explanation(oc.explain(device.to_device(X[:4])), oc.explain(X[:4]), device)
    with pytest.raises(ValueError, match="non-negative"):
        KernelSVC(kernel="hik").fit(X, y).explain(device.to_device(X[:2] - 1.0))


@pytest.mark.parametrize("model", [LinearSVC(), SVC(kernel="rbf", gamma=2.0)])
def test_scikit_learn_models_explained_on_device(device, model):
    X, y = _svm_data()
    view = as_explainable(model.fit(X, y))
    host, dev = view.explain(X[:5]), view.explain(device.to_device(X[:5]))
    _same_explanation(dev, host, device)


# ------------------------------------------------------------------ whole pipelines on device descriptors
@pytest.mark.parametrize("encoder, svm, rule", [
    ("bow", KernelSVC(kernel="hik"), "epsilon"),
    ("bow", KernelSVC(kernel="chi2", random_state=0), "alphabeta"),
    ("fv", KernelSVC(kernel="linear"), "z"),
    ("fv", KernelSVC(kernel="linear"), "abs"),
])
def test_pipeline_explain_on_device_descriptors(device, sift_data, encoder, svm, rule):
    """SIFT on the host, then every stage on the device: the explanation equals the host one."""
    images, labels, sift, sets = sift_data
    enc = (BagOfWords(n_words=6, random_state=0) if encoder == "bow" else
           FisherVectorEncoder(n_components=2, pca=4, pyramid=((1, 1), (2, 1)), random_state=0))
    pipe = ExplainablePipeline([("sift", sift), ("enc", enc), ("svm", svm)]).fit(images, labels)
    tail = pipe[1:]
    host = bowlrp.explain(tail, sets, rule=rule)
    dev = bowlrp.explain(tail, [DeviceSet.of(s, device.xp) for s in sets], rule=rule)
    tol = device.tol(1e-8, gpu=1e-3 if svm.kernel == "chi2" else 1e-6)  # chi2: a Taylor root search
    for field in ("features", "bias", "score", "residual"):
        np.testing.assert_allclose(getattr(dev, field), getattr(host, field), rtol=tol, atol=device.tol(1e-12, tol))
    for a, b in zip(dev.descriptors, host.descriptors):
        np.testing.assert_allclose(a, b, rtol=tol, atol=device.tol(1e-12, tol) * np.abs(b).max())
    pixels = sift.relevance([device.to_device(r) for r in dev.descriptors], sets)  # back to pixels on the device
    for a, b in zip(pixels, sift.relevance(host.descriptors, sets)):
        device.assert_on_device(a)
        close(a, b, rtol=tol, atol=device.tol(1e-12, tol) * np.abs(b).max())


# ------------------------------------------------------------------ the CNN with device="cuda"
def _cnn_layers():
    return [Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Conv2d(4, 4, 3), ReLU(), AvgPool2d(2),
            Flatten(), Linear(16, 6), ReLU(), Linear(6, 1)]


def _cnn_data(n=24):
    rng = np.random.default_rng(4)
    X = rng.random((n, 12, 12)) * 0.5
    y = rng.integers(0, 2, n)
    X[y == 1, 2:6, 2:6] += 0.5
    return X, y


def _cpu_twin(clf):
    """The same fitted network on the host."""
    twin = CNNClassifier(**{**clf.get_params(), "device": "cpu"})
    twin.model_ = Sequential.from_config(clf.model_.config())
    for src, dst in zip(clf.model_, twin.model_):
        for p in src.params:
            setattr(dst, p, to_numpy(getattr(src, p)))
    twin.classes_, twin.input_shape_, twin.loss_curve_ = clf.classes_, clf.input_shape_, clf.loss_curve_
    twin.patterns_ = None if clf.patterns_ is None else [None if A is None else to_numpy(A) for A in clf.patterns_]
    return twin


@pytest.fixture(scope="module")
def cnn_on_device(device):
    X, y = _cnn_data()
    clf = CNNClassifier(_cnn_layers(), epochs=2, batch_size=8, augment=True, dtype="float64", device="cuda",
                        random_state=0).fit(X, y)
    return clf.fit_patterns(X), X, y


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-8), ("float32", 1e-4)])
def test_cnn_trains_on_device_as_on_cpu(device, dtype, tol):
    tol = device.tol(tol, gpu=1e-3 if dtype == "float32" else 1e-6)
    X, y = _cnn_data()
    kw = dict(epochs=2, batch_size=8, augment=True, dtype=dtype, random_state=0, nonpositive_bias=True)
    gpu = CNNClassifier(_cnn_layers(), device="cuda", **kw).fit(X, y)
    cpu = CNNClassifier(_cnn_layers(), device="cpu", **kw).fit(X, y)
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=tol)
    for a, b in zip(gpu.model_, cpu.model_):
        for p in a.params:
            device.assert_on_device(getattr(a, p))
            close(getattr(a, p), getattr(b, p), rtol=tol, atol=tol)
    np.testing.assert_allclose(gpu.decision_function(X), cpu.decision_function(X), rtol=tol, atol=tol)
    np.testing.assert_array_equal(gpu.predict(X), cpu.predict(X))


def test_cnn_patterns_predictions_and_files_on_device(device, cnn_on_device, tmp_path):
    clf, X, _ = cnn_on_device
    twin = _cpu_twin(clf)
    ref = CNNClassifier(**{**clf.get_params(), "device": "cpu"})
    ref.__dict__.update({k: v for k, v in twin.__dict__.items() if k.endswith("_")})
    ref.fit_patterns(X)
    for a, b in zip(clf.patterns_, ref.patterns_):
        assert (a is None) == (b is None)
        if a is not None:
            device.assert_on_device(a)
            close(a, b, rtol=device.tol(1e-10))
    np.testing.assert_allclose(clf.predict_proba(X), twin.predict_proba(X), rtol=device.tol(1e-12))
    clf.save(tmp_path / "cnn.npz")
    back = CNNClassifier.load(tmp_path / "cnn.npz")
    device.assert_on_device(back.model_[0].W)
    np.testing.assert_allclose(back.decision_function(X), clf.decision_function(X), rtol=1e-12)  # same device


@pytest.mark.parametrize("method, composite", [("lrp", c) for c in COMPOSITES if c not in GRADIENT_COMPOSITES]
                         + [(m, None) for m in METHODS if m != "lrp"] + [("lrp", "rule:alphabeta")])
def test_cnn_explains_on_device(device, cnn_on_device, method, composite):
    clf, X, _ = cnn_on_device
    twin = _cpu_twin(clf)
    kw = {"method": method, "batch_size": 5}
    if composite and composite.startswith("rule:"):
        kw["rule"] = composite[5:]
    elif composite:
        kw["composite"] = composite
    target = np.where(np.arange(8) % 3 == 0, clf.classes_[0], clf.classes_[1])  # both signs of f
    if method.startswith("pattern"):  # the signed network of -f has no patterns for its doubled output layer yet
        target = clf.classes_[1]
    dev, host = clf.explain(X[:8], target=target, **kw), twin.explain(X[:8], target=target, **kw)
    tol = device.tol(1e-9)
    for field in ("features", "score", "residual", "bias"):
        np.testing.assert_allclose(getattr(dev, field), getattr(host, field), rtol=tol, atol=device.tol(1e-12, tol))
    for a, b in zip(dev.pixels, host.pixels):
        assert isinstance(a, np.ndarray)
        np.testing.assert_allclose(a, b, rtol=tol, atol=device.tol(1e-12, tol) * max(1.0, np.abs(b).max()))
    assert dev.rule == host.rule


def test_explain_model_on_device(device, cnn_on_device):
    clf, X, _ = cnn_on_device
    twin = _cpu_twin(clf)
    x = X[:4, None].astype(np.float64)
    sign = np.array([1.0, -1.0, 1.0, -1.0])
    R, score, _ = explain_model(clf.model_, device.to_device(x), np.zeros(4, int), sign=sign, composite="epsilon")
    R0, score0, _ = explain_model(twin.model_, x, np.zeros(4, int), sign=sign, composite="epsilon")
    device.assert_on_device(R, score)
    close(R, R0, rtol=device.tol(1e-10))
    close(score, score0, rtol=device.tol(1e-10))


def test_pooling_rules_on_device(device):
    """Sum pooling and proportional max pooling, as the composites use them, on the device."""
    layers = [Conv2d(1, 2, 3), ReLU(), SumPool2d(2), MaxPool2d(2, stride=1), Flatten(), Linear(18, 1)]
    X, y = _cnn_data(16)
    kw = dict(epochs=1, batch_size=8, dtype="float64", random_state=0)
    gpu = CNNClassifier([layer for layer in layers], device="cuda", **kw).fit(X[:, :10, :10], y)
    twin = _cpu_twin(gpu)
    for comp in ("dtd", "z"):
        a, b = gpu.explain(X[:3, :10, :10], composite=comp), twin.explain(X[:3, :10, :10], composite=comp)
        np.testing.assert_allclose(np.stack(a.pixels), np.stack(b.pixels), rtol=device.tol(1e-9),
                                   atol=device.tol(1e-12))


def test_training_reads_one_scalar_per_batch(device):
    """The training loop reads back the loss once per batch, and the weights' finiteness once per epoch."""
    log = device.transfers()
    if log is None:
        pytest.skip("transfers are counted on the stand-in")
    X, y = _cnn_data(24)
    CNNClassifier(_cnn_layers(), epochs=2, batch_size=8, device="cuda", random_state=0).fit(X, y)
    assert log.scalar_reads == 2 * 3 + 2 and log.host_bytes <= 8 * log.scalar_reads


def test_mixed_host_and_device_inputs_are_refused(device):
    """A batch of descriptor sets partly on the host and partly on the device is an error, not a copy."""
    X, _ = _svm_data()
    bow = BagOfWords(n_words=3, random_state=0).fit([X[:20], X[20:]])
    with pytest.raises(TypeError, match="mix of NumPy and CuPy"):
        bow.forward([device.to_device(X[:20]), X[20:]])


@pytest.mark.slow
def test_bench_gpu_runs(tmp_path):
    """benchmarks/bench_gpu.py runs every row on the stand-in, and says plainly when there is no GPU."""
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from bowlrp._backend import cupy_available  # noqa: PLC0415

    script = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "bench_gpu.py")
    out = subprocess.run([sys.executable, script, "--standin", "--scale", "0.05", "--repeat", "1"],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    assert "not a measurement of a GPU" in out and "median GPU/CPU ratio over 19 rows" in out
    if not cupy_available():
        out = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=120, check=True).stdout
        assert "no GPU here" in out and "nothing was timed" in out
