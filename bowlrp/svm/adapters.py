"""scikit-learn's own fitted models, explained as they are.

:func:`as_explainable` reads the fitted attributes of a scikit-learn model
(nothing is wrapped or refitted) into a :class:`KernelExpansion`, so the same
decomposition engine explains it:

* linear models (``LinearSVC``, ``LogisticRegression``, ``SGDClassifier``,
  ``RidgeClassifier``, ``Perceptron``, ``SVC(kernel="linear")`` binary):
  ``f_r(x) = w_r . x + b_r`` is written as a linear-kernel expansion whose
  "support vectors" are the rows of ``coef_``; exact (eq. A.1).  Multi-class
  linear models have one decision function per class (one-vs-rest, or the
  multinomial logits, which are linear too); the predicted class is explained
  by default.
* ``SVC(kernel="rbf")``, binary: Taylor decomposition (eq. A.5) with the
  model's support vectors as reference samples unless others are passed.
* ``OneClassSVM`` with a linear (exact, eq. A.9) or rbf (Taylor) kernel.

Multi-class ``SVC`` is one-vs-one: its votes are no kernel expansion to
decompose, so it is refused with a pointer to :class:`bowlrp.KernelSVC`.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._backend import get_namespace, to_numpy
from .._validation import resolve_targets
from ..base import ExplainableClassifierMixin, is_explainable_estimator
from .decompose import KernelExpansion, explain_expansion
from .kernels import make_kernel
from .svc import check_features, check_references

__all__ = ["as_explainable", "SUPPORTED"]

_LINEAR = ("LinearSVC", "LogisticRegression", "LogisticRegressionCV", "SGDClassifier", "RidgeClassifier",
           "RidgeClassifierCV", "Perceptron", "PassiveAggressiveClassifier")
SUPPORTED = _LINEAR + ('SVC(kernel="linear" or "rbf", binary)', 'OneClassSVM(kernel="linear" or "rbf")')


class _FittedExpansion(ExplainableClassifierMixin):
    """A fitted scikit-learn model seen as a kernel expansion."""

    def __init__(self, expansion, classes, references, one_class=False):
        self.expansion = expansion
        self.classes_ = classes
        self.references = references
        self.one_class = one_class

    def explain(self, X, target=None, bias="keep", decomposition="auto", references=None):
        """Decompose the model's decision function over its features (see :meth:`bowlrp.KernelSVC.explain`)."""
        X = check_features(X, self.expansion.support_vectors.shape[1])  # device features stay there
        n = X.shape[0]
        F = self.expansion.outputs(X, get_namespace(X))
        if self.one_class:
            if target is not None:
                raise ValueError("a one-class model explains its inlierness; target must be None")
            rows, signs, labels = np.zeros(n, dtype=np.intp), np.ones(n), np.ones(n, dtype=int)
        else:
            rows, signs, labels = resolve_targets(self.classes_, to_numpy(F), target)
        refs = self.references if references is None else check_references(references, X.shape[1])
        return explain_expansion(self.expansion, X, rows, signs, labels, bias=bias,
                                 decomposition=decomposition, references=refs, outputs=F)


def _linear(est):
    coef = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))
    b = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))
    if b.shape[0] == 1 and coef.shape[0] > 1:
        b = np.repeat(b, coef.shape[0])
    kern = make_kernel("linear", (coef.shape[1],))
    expansion = KernelExpansion(kern, coef, np.eye(coef.shape[0]), b)
    return _FittedExpansion(expansion, est.classes_, None)


def _svm(est, one_class):
    kernel = est.kernel
    if kernel not in ("linear", "rbf"):
        raise TypeError(f"{type(est).__name__}(kernel={kernel!r}) cannot be explained; supported kernels are "
                        "'linear' and 'rbf' (or use bowlrp.KernelSVC with hik, additive_chi2 or chi2)")
    if not one_class and len(est.classes_) != 2:
        raise TypeError(
            "multi-class SVC is one-vs-one: its votes are no kernel expansion to decompose; explain binary "
            "SVCs, or use bowlrp.KernelSVC, which trains one-vs-rest"
        )
    SV = np.asarray(est.support_vectors_, dtype=np.float64)
    gammas = None if kernel == "linear" else [float(est._gamma)]
    kern = make_kernel(kernel, (SV.shape[1],), None, gammas)
    expansion = KernelExpansion(kern, SV, np.asarray(est.dual_coef_, dtype=np.float64),
                                np.asarray(est.intercept_, dtype=np.float64))
    classes = None if one_class else est.classes_
    return _FittedExpansion(expansion, classes, SV, one_class=one_class)


def as_explainable(estimator):
    """Return an explainable view of a fitted scikit-learn classifier, or raise ``TypeError``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.svm import LinearSVC
    >>> X = np.random.default_rng(0).random((30, 3)); y = (X[:, 0] > 0.5).astype(int)
    >>> view = as_explainable(LinearSVC().fit(X, y))
    >>> out = view.explain(X[:2])
    >>> bool(np.allclose(out.features.sum(1) + out.bias, out.score))
    True
    """
    if is_explainable_estimator(estimator):
        return estimator
    check_is_fitted(estimator)
    name = type(estimator).__name__
    if name in ("SVC", "NuSVC"):
        return _svm(estimator, one_class=False)
    if name == "OneClassSVM":
        return _svm(estimator, one_class=True)
    if name in _LINEAR and hasattr(estimator, "coef_"):
        return _linear(estimator)
    raise TypeError(
        f"{name} cannot be explained; explainable final estimators are bowlrp.KernelSVC, "
        f"bowlrp.KernelOneClassSVM, bowlrp.CNNClassifier, anything with explain(X, target) and an input_kind, "
        f"and scikit-learn's {', '.join(SUPPORTED)}"
    )
