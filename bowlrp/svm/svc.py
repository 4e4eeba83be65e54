"""Kernel SVMs (two-class and one-class) that keep what explanation needs."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, OutlierMixin
from sklearn.svm import SVC, OneClassSVM
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .._backend import asarray, get_namespace, to_numpy
from .._validation import check_number, resolve_targets
from ..base import ExplainableClassifierMixin
from .decompose import KernelExpansion, explain_expansion
from .kernels import KERNELS, kernel_names, make_kernel

__all__ = ["KernelSVC", "KernelOneClassSVM"]


class _KernelModel(ExplainableClassifierMixin, BaseEstimator):
    """Shared parameters, validation and decomposition of the kernel models."""

    # -------------------------------------------------------------- validation
    def _check_kernel_name(self):
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; valid kernels are {kernel_names()}")

    def _check_kernel_params(self, n_features):
        if self.blocks is None:
            sizes = (n_features,)
        else:
            sizes = tuple(self.blocks)
            if not sizes or any(not isinstance(s, Integral) or s < 1 for s in sizes):
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
        g = self.gamma
        if not (g == "mean" or (isinstance(g, Real) and not isinstance(g, bool) and g > 0)):
            raise ValueError(f"gamma must be a positive number or 'mean', got {g!r}")
        check_number(self.n_references, "n_references", low=1, integer=True)
        check_number(self.n_candidates, "n_candidates", low=1, integer=True, allow_none=True)
        return sizes, beta

    def _check_nonnegative(self, X):
        if KERNELS.get(self.kernel, {}).get("nonnegative_input") and X.size and X.min() < 0:
            raise ValueError(
                f"Negative values in data passed to {type(self).__name__}: the {self.kernel!r} kernel needs "
                "non-negative features (histograms); use kernel='linear' or 'rbf', or non-negative features"
            )
        return X

    def _check_X(self, X, reset):
        return self._check_nonnegative(validate_data(self, X, reset=reset, dtype=np.float64))

    def _fit_kernel(self, X):
        """Build ``kernel_`` (widths from the data when ``gamma='mean'``) and the Gram matrix."""
        sizes, beta = self._check_kernel_params(X.shape[1])
        gammas = None
        if not KERNELS[self.kernel]["sum_decomposable"]:
            if self.gamma == "mean":
                probe = make_kernel(self.kernel, sizes, beta, np.ones(len(sizes)))
                mean = probe.mean_distances(X)
                gammas = 1.0 / np.where(mean > 0, mean, 1.0)
            else:
                gammas = np.full(len(sizes), float(self.gamma))
        self.kernel_ = make_kernel(self.kernel, sizes, beta, gammas)
        return self.kernel_.gram(X, X, np)

    def _store_expansion(self, X, supports, duals, intercepts, F_train, rng):
        """Keep the union of support vectors, the dual coefficients per output and
        Taylor reference samples: up to ``n_references`` training samples scored
        positive and as many scored negative, per output."""
        support = np.unique(np.concatenate(supports))
        pos = {j: k for k, j in enumerate(support)}
        dual = np.zeros((len(duals), len(support)))
        for r, (s, c) in enumerate(zip(supports, duals)):
            dual[r, [pos[j] for j in s]] = c
        self.support_ = support
        self.support_vectors_ = X[support]
        self.dual_coef_ = dual
        self.intercept_ = np.asarray(intercepts, dtype=np.float64)
        picks = []
        for r in range(F_train.shape[1]):
            for side in (F_train[:, r] > 0, F_train[:, r] < 0):
                idx = np.flatnonzero(side)
                picks.append(rng.choice(idx, min(len(idx), self.n_references), replace=False))
        self.reference_samples_ = X[np.unique(np.concatenate(picks))]

    def _expansion(self):
        return KernelExpansion(self.kernel_, self.support_vectors_, self.dual_coef_, self.intercept_)

    def _raw_outputs(self, X):
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        return self._expansion().outputs(X, np)

    def _prepare_explain(self, X, references):
        check_is_fitted(self)
        if get_namespace(X) is np:
            X = self._check_X(X, reset=False)
        else:  # device features stay on the device
            X = self._check_nonnegative(check_features(X, self.n_features_in_))
        if references is None:
            references = self.reference_samples_
        else:
            references = check_references(references, X.shape[1])
            self._check_nonnegative(references)
        return X, references


class KernelSVC(ClassifierMixin, _KernelModel):
    """Kernel SVM with named kernels, per-block kernel weights and LRP support.

    The decision function is ``f(x) = b + sum_i alpha_i y_i k(x_i, x)``
    (eq. 2.66), with ``k`` a weighted sum of one kernel per feature block
    (eq. 2.67).  Training uses libsvm through scikit-learn's
    ``SVC(kernel="precomputed")``; multi-class problems are solved one class
    against the rest, so each class has its own decision function (which is
    what an explanation decomposes).

    Parameters
    ----------
    kernel : {"hik", "linear", "additive_chi2", "rbf", "chi2"}, default="hik"
        Histogram intersection (eq. A.2), linear (eq. A.1), additive chi2
        (``2 x y / (x + y)``) are sum-decomposable and explained exactly
        (eq. 2.70-2.72); Gaussian RBF (eq. A.4) and exponential chi2 (eq. A.6)
        are explained by Taylor decomposition (eq. 2.75-2.76, A.5, A.7).
    C : float, default=1.0
        Soft-margin penalty.
    gamma : float or "mean", default="mean"
        Width of the ``rbf`` and ``chi2`` kernels (``exp(-gamma dist)``);
        ``"mean"`` sets ``gamma_u = 1 / mean distance`` per block on the
        training data.  Ignored by the other kernels.
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
    n_references : int, default=50
        Taylor reference samples kept per output and sign (thesis: about 50).
    n_candidates : int or None, default=10
        The Taylor root is searched on the segments from ``x`` to its
        ``n_candidates`` nearest references of the opposite sign (None: to all
        of them, as in the thesis; slower in proportion).
    random_state : int, RandomState or None
        Seeds the choice of reference samples.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    kernel_ : bowlrp.svm.kernels.Kernel
        The fitted kernel (blocks, weights, widths).
    support_ : ndarray of shape (n_SV,)
        Indices of the support vectors in the training set (of any class).
    support_vectors_ : ndarray of shape (n_SV, n_features)
    dual_coef_ : ndarray of shape (n_outputs, n_SV)
        ``alpha_i y_i`` per decision function (one row for binary problems,
        one per class for one-vs-rest); zero where a vector is not a support
        vector of that output.
    intercept_ : ndarray of shape (n_outputs,)
        The bias ``b`` of each decision function.
    reference_samples_ : ndarray of shape (n_refs, n_features)
        Training samples used as Taylor references.
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

    def __init__(
        self,
        kernel="hik",
        C=1.0,
        gamma="mean",
        blocks=None,
        block_weights=None,
        class_weight=None,
        tol=1e-3,
        max_iter=-1,
        n_references=50,
        n_candidates=10,
        random_state=None,
    ):
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.blocks = blocks
        self.block_weights = block_weights
        self.class_weight = class_weight
        self.tol = tol
        self.max_iter = max_iter
        self.n_references = n_references
        self.n_candidates = n_candidates
        self.random_state = random_state

    def fit(self, X, y):
        """Fit one SVM (binary) or one per class against the rest.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        """
        check_number(self.C, "C", low=0, low_open=True)
        self._check_kernel_name()
        X, y = validate_data(self, X, y, dtype=np.float64)
        self._check_nonnegative(X)
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"KernelSVC needs samples of at least 2 classes; got 1 class ({classes[0]!r}). "
                "Check the labels, or use KernelOneClassSVM for novelty detection."
            )
        K = self._fit_kernel(X)
        problems = [y_idx == 1] if len(classes) == 2 else [y_idx == c for c in range(len(classes))]
        # class weights act per original class, in every one-vs-rest problem
        sample_weight = compute_sample_weight(self.class_weight, y) if self.class_weight is not None else None
        fitted = []
        for target in problems:
            svc = SVC(kernel="precomputed", C=self.C, tol=self.tol, max_iter=self.max_iter)
            svc.fit(K, target, sample_weight=sample_weight)
            fitted.append(svc)
        F_train = np.stack([s.decision_function(K) for s in fitted], axis=1)
        self.classes_ = classes
        self._store_expansion(
            X, [s.support_ for s in fitted], [s.dual_coef_[0] for s in fitted],
            [s.intercept_[0] for s in fitted], F_train, check_random_state(self.random_state),
        )
        self.n_iter_ = np.array([s.n_iter_[0] for s in fitted])
        return self

    def decision_function(self, X):
        """Signed distance ``f(x)`` (eq. 2.66); shape (n,) for binary, (n, n_classes) otherwise.

        For binary problems positive values favour ``classes_[1]``.
        """
        F = self._raw_outputs(X)
        return F[:, 0] if len(self.classes_) == 2 else F

    def predict(self, X):
        """Predicted class labels."""
        F = self.decision_function(X)
        if F.ndim == 1:
            return self.classes_[(F > 0).astype(int)]
        return self.classes_[np.argmax(F, axis=1)]

    def explain(self, X, target=None, bias="keep", decomposition="auto", references=None):
        """Decompose the decision function over the input features.

        Parameters
        ----------
        X : array of shape (n, n_features)
        target : None, label, or array of labels
            Binary models: ``None`` or ``classes_[1]`` explains ``f(x)`` (positive
            relevance speaks for ``classes_[1]``), ``classes_[0]`` explains
            ``-f(x)``.  Multi-class: ``None`` explains the predicted class.
        bias : {"keep", "uniform", "weights"}
            See :func:`bowlrp.svm.decompose.spread_bias`.
        decomposition : {"auto", "exact", "taylor"}
            ``"auto"``: exact for sum-decomposable kernels, Taylor otherwise.
        references : array (m, n_features) or None
            Taylor reference samples; default ``reference_samples_``.

        Returns
        -------
        bowlrp.Explanation
            ``features`` ``(n, n_features)`` sums with ``bias`` to ``score``
            (exactly, or up to the Taylor remainder in ``residual``).

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.random((40, 6)); y = (X[:, 0] > X[:, 1]).astype(int)
        >>> exp = KernelSVC(kernel="hik").fit(X, y).explain(X[:3])
        >>> bool(np.allclose(exp.features.sum(1) + exp.bias, exp.score))
        True
        """
        X, references = self._prepare_explain(X, references)
        expansion = self._expansion()
        F = expansion.outputs(X, get_namespace(X))
        rows, signs, labels = resolve_targets(self.classes_, to_numpy(F), target)
        return explain_expansion(expansion, X, rows, signs, labels, bias=bias,
                                 decomposition=decomposition, references=references,
                                 n_candidates=self.n_candidates, outputs=F)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if KERNELS.get(self.kernel, {}).get("nonnegative_input"):
            tags.input_tags.positive_only = True
        return tags


class KernelOneClassSVM(OutlierMixin, _KernelModel):
    """One-class SVM with the kernels of :class:`KernelSVC`, explained as inlierness.

    ``f(x) = sum_i alpha_i k(x_i, x) - rho`` (eq. A.8), positive for inliers.
    For sum-decomposable kernels the explanation is exact, ``R_d = sum_i
    alpha_i k_d(x_id, x_d)`` (eq. A.9) with the bias ``-rho``; for ``rbf`` and
    ``chi2`` it is a Taylor decomposition at a root between ``x`` and training
    samples scored with the opposite sign.

    Parameters
    ----------
    kernel, gamma, blocks, block_weights, n_references, n_candidates, random_state
        As in :class:`KernelSVC`.
    nu : float, default=0.5
        Upper bound on the fraction of training outliers (libsvm's nu).
    tol : float, default=1e-3

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).random((50, 4))
    >>> oc = KernelOneClassSVM(kernel="hik", nu=0.2).fit(X)
    >>> float((oc.predict(X) == 1).mean())  # about 1 - nu of the training data are inliers
    0.82
    """

    def __init__(self, kernel="hik", nu=0.5, gamma="mean", blocks=None, block_weights=None, tol=1e-3,
                 n_references=50, n_candidates=10, random_state=None):
        self.kernel = kernel
        self.nu = nu
        self.gamma = gamma
        self.blocks = blocks
        self.block_weights = block_weights
        self.tol = tol
        self.n_references = n_references
        self.n_candidates = n_candidates
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit on (unlabelled) training features."""
        check_number(self.nu, "nu", low=0, high=1, low_open=True)
        self._check_kernel_name()
        X = validate_data(self, X, dtype=np.float64)
        self._check_nonnegative(X)
        K = self._fit_kernel(X)
        oc = OneClassSVM(kernel="precomputed", nu=self.nu, tol=self.tol).fit(K)
        F_train = oc.decision_function(K)[:, None]
        self._store_expansion(X, [oc.support_], [oc.dual_coef_[0]], [oc.intercept_[0]], F_train,
                              check_random_state(self.random_state))
        self.offset_ = -self.intercept_[0]
        return self

    def decision_function(self, X):
        """Inlierness ``f(x)`` (eq. A.8): positive for inliers, shape (n,)."""
        return self._raw_outputs(X)[:, 0]

    def score_samples(self, X):
        """``f(x) + rho``: the kernel expansion without the threshold."""
        return self.decision_function(X) + self.offset_

    def predict(self, X):
        """+1 for inliers, -1 for outliers."""
        return np.where(self.decision_function(X) >= 0, 1, -1)

    def explain(self, X, target=None, bias="keep", decomposition="auto", references=None):
        """Decompose the inlierness ``f(x)`` over the features (eq. A.9, or Taylor).

        Parameters as :meth:`KernelSVC.explain`; ``target`` must be None.
        """
        if target is not None:
            raise ValueError("a one-class model explains its inlierness; target must be None")
        X, references = self._prepare_explain(X, references)
        n = X.shape[0]
        return explain_expansion(self._expansion(), X, np.zeros(n, dtype=np.intp), np.ones(n),
                                 np.ones(n, dtype=int), bias=bias, decomposition=decomposition,
                                 references=references, n_candidates=self.n_candidates)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if KERNELS.get(self.kernel, {}).get("nonnegative_input"):
            tags.input_tags.positive_only = True
        return tags


def check_features(X, n_features, name="X"):
    """``X`` as a finite float64 ``(n, n_features)`` array on its own device.

    NumPy input (and lists) goes through scikit-learn's ``check_array``;
    a device array is checked on the device (one scalar read for finiteness)
    and never copied to the host.
    """
    xp = get_namespace(X)
    if xp is np:
        X = check_array(np.asarray(X), dtype=np.float64, input_name=name)
    else:
        X = asarray(X, xp, dtype=xp.float64)
        if X.ndim != 2:
            raise ValueError(f"{name} must be a 2-D (n, {n_features}) array, got shape {tuple(X.shape)}")
        if not bool(xp.isfinite(X).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (n, {n_features}), got {tuple(X.shape)}")
    return X


def check_references(references, n_features, name="references"):
    """Taylor reference samples as a finite float64 ``(m, n_features)`` array (device arrays stay there)."""
    return check_features(references, n_features, name)
