"""The protocol every explainable pipeline stage follows.

A pipeline is explained by walking its stages forward once, each stage
returning its output *and a trace* (what its backward step needs), and then
walking them backward, each stage turning the relevance of its output into the
relevance of its input (thesis Algorithm 2).  Nothing is cached on the
estimators: the trace is a plain value passed from the forward to the backward
step, so explanations are thread-safe and estimators stay stateless between
calls.

A *stage* (a transformer) is explainable when it has the two methods

``forward(X) -> (Xt, trace)``
    ``Xt`` is exactly what ``transform(X)`` returns.
``relevance(R, trace, rule=None) -> R_in``
    ``R`` has the layout of ``Xt`` (an ``(n, D)`` array for feature vectors,
    a list with one ``(n_i,)`` or ``(n_i, d)`` array per image for descriptor
    sets); the result has the layout of ``X``.  ``rule`` is a rule the stage
    knows how to apply (``None``: the stage's default); a rule it cannot
    apply is an error, never ignored.

and the attributes

``input_kind``
    What the stage takes: ``"images"``, ``"descriptors"`` or ``"features"``.
    The relevance of the stage's input fills the :class:`~bowlrp.Explanation`
    field of that name (``"images"`` fills ``pixels``); when several stages
    take the same kind, the one nearest to the pipeline's input wins.
``takes_mapping_rule``
    Whether the pipeline hands its mapping rule (``explain(..., rule=...)``,
    :mod:`bowlrp.rules`) to this stage.  Stages that map relevance
    geometrically (:class:`bowlrp.DenseSIFT` to pixels) have rules of their
    own, chosen per stage with ``rule={"sift": ...}``.

A *final estimator* is explainable when it has

``explain(X, target=None, **options) -> Explanation``
    The explained score decomposed over the estimator's input, stored in the
    field its ``input_kind`` names, with ``score``, ``bias``, ``target`` and
    ``residual``.  Options it does not take are an error.

:func:`bowlrp.explain` decides explainability by these methods, as
scikit-learn's ``Pipeline`` decides ``inverse_transform`` by asking its steps,
never by class names.  The mixins below hold the attribute defaults and this
documentation; they add no behaviour.
"""

import warnings

__all__ = [
    "ExplainableTransformerMixin",
    "ExplainableClassifierMixin",
    "INPUT_KINDS",
    "is_explainable_stage",
    "is_explainable_estimator",
]

#: The kinds of input a stage can take, and the Explanation field each fills.
INPUT_KINDS = {"images": "pixels", "descriptors": "descriptors", "features": "features"}


class ExplainableTransformerMixin:
    """Marks a transformer with ``forward`` and ``relevance`` (see the module docstring).

    Examples
    --------
    A stage that doubles its features; each output's relevance goes back to
    the input it came from.  It applies no mapping rule, so it says so:

    >>> import numpy as np
    >>> from sklearn.base import BaseEstimator, TransformerMixin
    >>> import bowlrp
    >>> class Double(ExplainableTransformerMixin, TransformerMixin, BaseEstimator):
    ...     takes_mapping_rule = False
    ...     def fit(self, X, y=None):
    ...         return self
    ...     def transform(self, X):
    ...         return 2.0 * np.asarray(X)
    ...     def forward(self, X):
    ...         return self.transform(X), None
    ...     def relevance(self, R, trace, rule=None):
    ...         return R
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.5], [0.5, 2.0]])
    >>> pipe = bowlrp.ExplainablePipeline([("double", Double()), ("svm", bowlrp.KernelSVC(kernel="linear"))])
    >>> exp = pipe.fit(X, [0, 1, 0, 1]).explain(X[:2])
    >>> exp.score.round(6), (exp.features + 0.0).round(6)
    (array([-1.,  1.]), array([[-1.,  0.],
           [ 0.,  1.]]))
    """

    input_kind = "features"
    takes_mapping_rule = True


class ExplainableClassifierMixin:
    """Marks a final estimator with ``explain`` (see the module docstring).

    Examples
    --------
    A final estimator scoring the sum of its features, explained exactly by
    the features themselves:

    >>> import numpy as np
    >>> from bowlrp import Explanation
    >>> class SumScore(ExplainableClassifierMixin):
    ...     def decision_function(self, X):
    ...         return np.asarray(X, dtype=float).sum(axis=1)
    ...     def explain(self, X, target=None):
    ...         X = np.asarray(X, dtype=float)
    ...         f, n = self.decision_function(X), len(X)
    ...         return Explanation(pixels=None, descriptors=None, features=X, bias=np.zeros(n), score=f,
    ...                            target=np.ones(n, dtype=int), residual=np.zeros(n))
    >>> is_explainable_estimator(SumScore())
    True
    >>> SumScore().explain([[1.0, 2.0]]).score
    array([3.])
    """

    input_kind = "features"


def is_explainable_stage(step):
    """Whether ``step`` implements the stage protocol (``forward`` and ``relevance``).

    Examples
    --------
    >>> import bowlrp
    >>> from sklearn.preprocessing import StandardScaler
    >>> is_explainable_stage(bowlrp.BagOfWords()), is_explainable_stage(StandardScaler())
    (True, False)
    """
    return callable(getattr(step, "forward", None)) and callable(getattr(step, "relevance", None))


def is_explainable_estimator(est):
    """Whether ``est`` implements the final-estimator protocol (``explain`` and ``input_kind``).

    Examples
    --------
    >>> import bowlrp
    >>> from sklearn.svm import SVC
    >>> is_explainable_estimator(bowlrp.KernelSVC()), is_explainable_estimator(SVC())
    (True, False)
    """
    return callable(getattr(est, "explain", None)) and getattr(est, "input_kind", None) in INPUT_KINDS


def __getattr__(name):
    if name == "OutputRelevance":
        warnings.warn(
            "bowlrp.base.OutputRelevance is deprecated: final estimators return a bowlrp.Explanation "
            "(same fields: features, bias, score, target, residual, root, root_found)",
            DeprecationWarning, stacklevel=2,
        )
        from .explanation import Explanation  # noqa: PLC0415

        return Explanation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
