"""scikit-learn's own models as the last pipeline step, explained without wrapping."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC, LinearSVC, OneClassSVM
from sklearn.tree import DecisionTreeClassifier

import bowlrp
from bowlrp.svm.adapters import as_explainable


@pytest.fixture(scope="module")
def features():
    from bowlrp.datasets import make_polygons

    data = make_polygons(n_train=90, n_test_images=0, random_state=3)
    y3 = np.arange(90) % 3
    return data.images, data.labels, y3


def _pipe(model):
    return Pipeline([("sift", bowlrp.DenseSIFT(scales=(3.0,), steps=(9,))),
                     ("bow", bowlrp.BagOfWords(n_words=12, random_state=0)), ("clf", model)])


_LINEAR = [LinearSVC(), LogisticRegression(max_iter=500), SGDClassifier(random_state=0)]


# multi-class SVC is one-vs-one and refused (test_refusals_are_explained)
@pytest.mark.parametrize("model,multi", [(m, k) for m in _LINEAR for k in (False, True)]
                         + [(SVC(kernel="linear"), False)])
def test_linear_models_exact(model, multi, features):
    X, y2, y3 = features
    y = y3 if multi else y2
    pipe = _pipe(model).fit(X, y)
    exp = bowlrp.explain(pipe, X[:5])
    F = pipe.decision_function(X[:5])
    expected = F if F.ndim == 1 else F[np.arange(5), np.searchsorted(pipe.classes_, exp.target)]
    np.testing.assert_allclose(exp.score, expected, rtol=1e-10)
    if multi:
        np.testing.assert_array_equal(exp.target, pipe.predict(X[:5]))
    for i in range(5):
        assert exp.pixels[i].sum() + exp.bias[i] == pytest.approx(exp.score[i], rel=1e-8, abs=1e-12)
    # eq. A.1: R_d = w_d x_d, the bias b
    clf = pipe[-1]
    feats = pipe[:-1].transform(X[:5])
    row = 0 if not multi else np.searchsorted(clf.classes_, exp.target[0])
    np.testing.assert_allclose(exp.features[0], clf.coef_[row] * feats[0], rtol=1e-10, atol=1e-14)


def test_rbf_svc_taylor(features):
    X, y, _ = features
    pipe = _pipe(SVC(kernel="rbf", gamma=5.0, C=10)).fit(X, y)
    exp = bowlrp.explain(pipe, X[:6])
    np.testing.assert_allclose(exp.score, pipe.decision_function(X[:6]), rtol=1e-10)
    assert exp.root_found.all()  # the support vectors of both signs serve as references
    assert np.abs(exp.bias).max() <= 1e-5  # f(root)
    np.testing.assert_allclose(exp.residual, exp.score - [p.sum() for p in exp.pixels] - exp.bias, atol=1e-10)
    with_refs = bowlrp.explain(pipe, X[:2], references=X[40:90])
    assert with_refs.root.shape == (2, 12)


def test_one_class_svm(features):
    X, _, _ = features
    lin = _pipe(OneClassSVM(kernel="linear", nu=0.3)).fit(X)
    exp = bowlrp.explain(lin, X[:4])
    np.testing.assert_allclose(exp.score, lin.decision_function(X[:4]), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose([p.sum() for p in exp.pixels] + exp.bias, exp.score, rtol=1e-8, atol=1e-12)
    rbf = _pipe(OneClassSVM(kernel="rbf", gamma=10.0, nu=0.3)).fit(X)
    exp = bowlrp.explain(rbf, X[:4])
    np.testing.assert_allclose(exp.score, rbf.decision_function(X[:4]), rtol=1e-8, atol=1e-12)
    assert np.isfinite(exp.residual).all()


def test_refusals_are_explained(features):
    X, y, y3 = features
    with pytest.raises(TypeError, match="one-vs-one"):
        bowlrp.explain(_pipe(SVC()).fit(X, y3), X[:2])
    with pytest.raises(TypeError, match="supported kernels"):
        bowlrp.explain(_pipe(SVC(kernel="poly")).fit(X, y), X[:2])
    with pytest.raises(TypeError, match="DecisionTreeClassifier cannot be explained"):
        bowlrp.explain(_pipe(DecisionTreeClassifier()).fit(X, y), X[:2])
    with pytest.raises(Exception, match="not fitted"):
        as_explainable(LinearSVC())
