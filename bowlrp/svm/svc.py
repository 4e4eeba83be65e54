"""Kernel support vector classifier that keeps what explanation needs."""

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .._backend import asarray, get_namespace, to_numpy
from ..base import ExplainableClassifierMixin, OutputRelevance
from .kernels import KERNELS, get_kernel

__all__ = ["KernelSVC"]

_BIAS_MODES = ("keep", "uniform")


class KernelSVC(ExplainableClassifierMixin, ClassifierMixin, BaseEstimator):
    """Kernel SVM with named kernels, per-block kernel weights and LRP support.

    The decision function is ``f(x) = b + sum_i alpha_i y_i k(x_i, x)``
    (eq. 2.66), with ``k`` a weighted sum of one kernel per feature block
    (eq. 2.67).  Training uses libsvm through scikit-learn's
    ``SVC(kernel="precomputed")``; multi-class problems are solved one class
    against the rest, so each class has its own decision function (which is
    what an explanation decomposes).

    Parameters
    ----------
    kernel : {"hik", "linear", "additive_chi2"}, default="hik"
        Histogram intersection (eq. A.2), linear (eq. A.1) or additive chi2
        (``2 x y / (x + y)``).  All three are sum-decomposable, so their
        explanations are exact (eq. 2.70-2.72).
    C : float, default=1.0
        Soft-margin penalty.
    blocks : sequence of int or None, default=None
        Sizes of consecutive feature blocks (e.g. ``(128, 128)`` for two
        vocabularies); ``None`` is one block of all features.
    block_weights : sequence of float or None, default=None
        Kernel weight ``beta_u`` of each block (eq. 2.67); ``None`` weighs all
        blocks 1.
    class_weight : dict, "balanced" or None
        As in :class:`sklearn.svm.SVC`.
    tol : float, default=1e-3
        libsvm stopping tolerance.
    max_iter : int, default=-1
        libsvm iteration limit (-1: none).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    support_ : ndarray of shape (n_SV,)
        Indices of the support vectors in the training set (of any class).
    support_vectors_ : ndarray of shape (n_SV, n_features)
    dual_coef_ : ndarray of shape (n_outputs, n_SV)
        ``alpha_i y_i`` per decision function (one row for binary problems,
        one per class for one-vs-rest); zero where a vector is not a support
        vector of that output.
    intercept_ : ndarray of shape (n_outputs,)
        The bias ``b`` of each decision function.
    dimension_weights_ : ndarray of shape (n_features,)
        ``beta_u`` of the block of each feature.
    n_iter_ : ndarray of shape (n_outputs,)
        libsvm iterations per decision function.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 6)); y = (X[:, 0] > X[:, 1]).astype(int)
    >>> svm = KernelSVC(kernel="hik", C=10).fit(X, y)
    >>> float(svm.score(X, y)) > 0.9
    True
    """

    _relevance_input = "features"

    def __init__(
        self,
        kernel="hik",
        C=1.0,
        blocks=None,
        block_weights=None,
        class_weight=None,
        tol=1e-3,
        max_iter=-1,
    ):
        self.kernel = kernel
        self.C = C
        self.blocks = blocks
        self.block_weights = block_weights
        self.class_weight = class_weight
        self.tol = tol
        self.max_iter = max_iter

    # ------------------------------------------------------------ validation
    def _kernel(self):
        return get_kernel(self.kernel)

    def _dimension_weights(self, n_features):
        if self.blocks is None:
            sizes = (n_features,)
        else:
            sizes = tuple(self.blocks)
            if not sizes or any(int(s) != s or s < 1 for s in sizes):
                raise ValueError(f"blocks must be positive integer sizes, got {self.blocks!r}")
            if sum(sizes) != n_features:
                raise ValueError(
                    f"blocks {sizes} cover {sum(sizes)} features but X has {n_features}; "
                    "give one size per feature block (e.g. BagOfWords.block_sizes_)"
                )
        if self.block_weights is None:
            beta = np.ones(len(sizes))
        else:
            beta = np.asarray(self.block_weights, dtype=np.float64).ravel()
            if beta.shape != (len(sizes),) or not np.all(np.isfinite(beta)) or np.any(beta <= 0):
                raise ValueError(
                    f"block_weights must be {len(sizes)} positive finite numbers (one per block), "
                    f"got {self.block_weights!r}"
                )
        return np.repeat(beta, np.asarray(sizes, dtype=np.intp))

    def _check_nonnegative(self, X):
        if self._kernel().nonnegative_input and X.size and X.min() < 0:
            raise ValueError(
                f"Negative values in data passed to KernelSVC: the {self.kernel!r} kernel needs "
                "non-negative features (histograms); use kernel='linear' or non-negative features"
            )
        return X

    def _check_X(self, X, reset):
        return self._check_nonnegative(validate_data(self, X, reset=reset, dtype=np.float64))

    # ------------------------------------------------------------------- fit
    def fit(self, X, y):
        """Fit one SVM (binary) or one per class against the rest.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        """
        kern = self._kernel()
        if not isinstance(self.C, Real) or not self.C > 0:
            raise ValueError(f"C must be a positive number, got {self.C!r}")
        X, y = validate_data(self, X, y, dtype=np.float64)
        self._check_nonnegative(X)
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"KernelSVC needs samples of at least 2 classes; got 1 class ({classes[0]!r}). "
                "Check the labels, or use a one-class model for novelty detection."
            )
        w = self._dimension_weights(X.shape[1])
        K = kern.gram(X, X, w, np)
        problems = [y_idx == 1] if len(classes) == 2 else [y_idx == c for c in range(len(classes))]
        # class weights act per original class, in every one-vs-rest problem
        sample_weight = compute_sample_weight(self.class_weight, y) if self.class_weight is not None else None
        fitted = []
        for target in problems:
            svc = SVC(kernel="precomputed", C=self.C, tol=self.tol, max_iter=self.max_iter)
            svc.fit(K, target, sample_weight=sample_weight)
            fitted.append(svc)
        support = np.unique(np.concatenate([s.support_ for s in fitted]))
        pos = {j: k for k, j in enumerate(support)}
        dual = np.zeros((len(fitted), len(support)))
        for c, s in enumerate(fitted):
            dual[c, [pos[j] for j in s.support_]] = s.dual_coef_[0]
        self.classes_ = classes
        self.support_ = support
        self.support_vectors_ = X[support]
        self.dual_coef_ = dual
        self.intercept_ = np.array([s.intercept_[0] for s in fitted], dtype=np.float64)
        self.dimension_weights_ = w
        self.n_iter_ = np.array([s.n_iter_[0] for s in fitted])
        return self

    # --------------------------------------------------------------- predict
    def _outputs(self, X, xp):
        kern = self._kernel()
        SV = asarray(self.support_vectors_, xp, dtype=xp.float64)
        w = asarray(self.dimension_weights_, xp, dtype=xp.float64)
        K = kern.gram(X, SV, w, xp)
        return K @ asarray(self.dual_coef_, xp).T + asarray(self.intercept_, xp)

    def decision_function(self, X):
        """Signed distance ``f(x)`` (eq. 2.66); shape (n,) for binary, (n, n_classes) otherwise.

        For binary problems positive values favour ``classes_[1]``.
        """
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        F = self._outputs(X, np)
        return F[:, 0] if len(self.classes_) == 2 else F

    def predict(self, X):
        """Predicted class labels."""
        F = self.decision_function(X)
        if F.ndim == 1:
            return self.classes_[(F > 0).astype(int)]
        return self.classes_[np.argmax(F, axis=1)]

    # --------------------------------------------------------------- explain
    def _target_rows(self, F, target):
        """Output row and sign to explain for each sample, and the explained labels."""
        n = F.shape[0]
        binary = len(self.classes_) == 2
        if target is None:
            if binary:
                return np.zeros(n, dtype=np.intp), np.ones(n), np.repeat(self.classes_[1], n)
            rows = np.argmax(F, axis=1)
            return rows, np.ones(n), self.classes_[rows]
        t = np.asarray(target)
        if t.ndim == 0:
            t = np.repeat(t, n)
        if t.shape != (n,):
            raise ValueError(f"target must be one label or one label per sample ({n}), got shape {t.shape}")
        unknown = ~np.isin(t, self.classes_)
        if unknown.any():
            raise ValueError(f"target {t[unknown][0]!r} is not a class of this model; classes are {list(self.classes_)}")
        pos = np.searchsorted(self.classes_, t)
        if binary:
            return np.zeros(n, dtype=np.intp), np.where(pos == 1, 1.0, -1.0), t
        return pos, np.ones(n), t

    def _explain_output(self, X, target=None, bias="keep"):
        """Decompose the decision function over the input features (eq. 2.70-2.73).

        Parameters
        ----------
        X : array of shape (n, n_features)
        target : None, label, or array of labels
            Binary models: ``None`` or ``classes_[1]`` explains ``f(x)`` (positive
            relevance speaks for ``classes_[1]``), ``classes_[0]`` explains
            ``-f(x)``.  Multi-class: ``None`` explains the predicted class.
        bias : {"keep", "uniform"}
            ``"keep"``: the bias is its own term ``R_b = b`` (eq. 2.72);
            ``"uniform"``: spread evenly over the features (eq. 2.73).
        """
        check_is_fitted(self)
        if bias not in _BIAS_MODES:
            raise ValueError(f"unknown bias mode {bias!r}; valid modes are {list(_BIAS_MODES)}")
        kern = self._kernel()
        if not kern.sum_decomposable:  # pragma: no cover - all registered kernels are
            raise ValueError(f"kernel {self.kernel!r} cannot be decomposed exactly")
        xp = get_namespace(X)
        if xp is np:
            X = self._check_X(X, reset=False)
        else:
            X = asarray(X, xp, dtype=xp.float64)
        F = self._outputs(X, xp)
        rows, sign, labels = self._target_rows(to_numpy(F), target)
        rows_x, sign_x = xp.asarray(rows), asarray(sign, xp)
        coef = asarray(self.dual_coef_, xp)[rows_x] * sign_x[:, None]
        SV = asarray(self.support_vectors_, xp, dtype=xp.float64)
        w = asarray(self.dimension_weights_, xp, dtype=xp.float64)
        R = kern.dimension_terms(X, SV, coef, w, xp)
        Rb = asarray(self.intercept_, xp)[rows_x] * sign_x
        score = F[xp.arange(F.shape[0]), rows_x] * sign_x
        if bias == "uniform":
            R = R + (Rb / R.shape[1])[:, None]
            Rb = xp.zeros_like(Rb)
        residual = score - R.sum(1) - Rb
        return OutputRelevance(features=R, bias=Rb, score=score, target=labels, residual=residual)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self.kernel in KERNELS and KERNELS[self.kernel].nonnegative_input:
            tags.input_tags.positive_only = True
        return tags
