"""The protocol every explainable pipeline stage follows.

A pipeline is explained by walking its stages forward once, each stage
returning its output *and a trace* (what its backward step needs), and then
walking them backward, each stage turning the relevance of its output into the
relevance of its input.  Nothing is cached on the estimators: the trace is a
plain value passed from the forward to the backward step, so explanations are
thread-safe and estimators stay stateless between calls.

Stages implement

``_forward(X) -> (Xt, trace)``
    ``Xt`` is exactly what ``transform(X)`` returns.
``_relevance(relevance, trace, rule) -> relevance_in``
    ``relevance`` has the layout of ``Xt`` (an ``(n, D)`` array for feature
    vectors, a list with one ``(n_i,)`` array per image for descriptor sets);
    the result has the layout of ``X``.

and the last stage (the classifier) implements

``_explain_output(X, target, bias) -> OutputRelevance``.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["ExplainableTransformerMixin", "ExplainableClassifierMixin", "OutputRelevance"]


class ExplainableTransformerMixin:
    """Marks a transformer whose relevance can be propagated back through it."""

    def _forward(self, X):  # pragma: no cover - documented protocol
        raise NotImplementedError

    def _relevance(self, relevance, trace, rule):  # pragma: no cover - documented protocol
        raise NotImplementedError


class ExplainableClassifierMixin:
    """Marks a classifier whose decision function can be decomposed over its inputs."""

    def _explain_output(self, X, target=None, bias="keep"):  # pragma: no cover
        raise NotImplementedError


@dataclass
class OutputRelevance:
    """Decomposition of the explained score of a classifier over its input features.

    Attributes
    ----------
    features : ndarray of shape (n_samples, n_features)
        Relevance of each input feature (eq. 2.72 for sum-decomposable kernels).
    bias : ndarray of shape (n_samples,)
        Relevance kept by the bias term (``R_b`` of eq. 2.71); zero when the bias
        was spread over the features (eq. 2.73, 2.74).
    score : ndarray of shape (n_samples,)
        The explained score ``f(x)`` of the target (sign-flipped decision function
        when a binary model is explained for its negative class).
    target : ndarray of shape (n_samples,)
        The class label explained for each sample.
    residual : ndarray of shape (n_samples,)
        ``score - features.sum(1) - bias``: zero up to rounding for exact rules,
        the Taylor remainder for Taylor decompositions.
    root : ndarray of shape (n_samples, n_features) or None
        Taylor decompositions: the root point ``x~`` used for each sample.
    root_found : ndarray of shape (n_samples,) or None
        Taylor decompositions: whether a root with ``|f(x~)| <= tol`` was found.
    """

    features: np.ndarray
    bias: np.ndarray
    score: np.ndarray
    target: np.ndarray
    residual: np.ndarray
    root: Optional[np.ndarray] = None
    root_found: Optional[np.ndarray] = None
