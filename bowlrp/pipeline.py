"""Explaining a whole pipeline: one forward walk, one backward walk.

:func:`explain` runs the steps of a fitted scikit-learn ``Pipeline`` forward,
each explainable step returning its output and a trace, decomposes the final
classifier's score over its input features, and walks the steps backward,
each turning the relevance of its output into relevance of its input (thesis
Algorithm 2).  :class:`ExplainablePipeline` is a ``Pipeline`` with an
``explain`` method doing the same.
"""

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._backend import to_numpy
from .base import ExplainableTransformerMixin
from .rules import get_rule
from .svm.adapters import as_explainable
from .viz import gray_rgb, heatmap_rgb, merge_tiles, save_png, side_by_side

__all__ = ["Explanation", "explain", "ExplainablePipeline"]


@dataclass
class Explanation:
    """The result of explaining a batch of inputs.

    Each stage's relevance is kept, so conservation can be checked layer by
    layer: ``pixels[i].sum() + bias[i] == descriptors[i].sum() + bias[i] ==
    features[i].sum() + bias[i] == score[i]`` up to ``residual[i]``.

    Attributes
    ----------
    pixels : list of ndarray (H_i, W_i) or None
        Pixel relevance per image (eq. 2.85); ``None`` when the pipeline does
        not start from images.
    descriptors : list of ndarray (n_i,) or (n_i, n_dims), or None
        Relevance of each local descriptor (eq. 2.80); per descriptor
        dimension (eq. D.3) for encoders that go that deep (Fisher vectors).
    features : ndarray (n, n_features)
        Relevance of each feature the classifier sees (eq. 2.72).
    bias : ndarray (n,)
        Relevance kept by the classifier's bias.
    score : ndarray (n,)
        The explained score ``f(x)``.
    target : ndarray (n,)
        The class explained for each input.
    residual : ndarray (n,)
        ``score - sum(input relevance) - bias``, at the input layer: zero up to
        rounding for exact rules.
    rule : str
        The name of the mapping-stage rule used.
    root : ndarray (n, n_features) or None
        Taylor decompositions: the root point on the decision boundary used
        for each input (in the classifier's feature space).
    root_found : ndarray (n,) of bool or None
        Taylor decompositions: whether a root with ``|f| <= 1e-5`` was found.
    """

    pixels: list
    descriptors: list
    features: np.ndarray
    bias: np.ndarray
    score: np.ndarray
    target: np.ndarray
    residual: np.ndarray
    rule: str = "z"
    root: Optional[np.ndarray] = None
    root_found: Optional[np.ndarray] = None
    stages: dict = field(default_factory=dict, repr=False)

    def __len__(self):
        return len(self.score)

    def heatmap(self, i=0, scale=None):
        """RGB heatmap (uint8) of image ``i`` (eq. 2.62 with own or given scale)."""
        if self.pixels is None:
            raise ValueError("this explanation has no pixel relevance (the pipeline does not start from images)")
        return heatmap_rgb(self.pixels[i], scale)

    def save_png(self, path, i=0, image=None, scale=None):
        """Write the heatmap of input ``i`` as a PNG; with ``image``, side by side.

        Parameters
        ----------
        path : str or path-like
        i : int
            Which explained input.
        image : array or None
            The input image, drawn left of the heatmap when given.
        scale : float or None
            Common normalisation ``S`` (eq. 2.62); ``None``: the map's own maximum.
        """
        heat = self.heatmap(i, scale)
        if image is not None:
            heat = side_by_side(gray_rgb(image), heat)
        return save_png(path, heat)

    def merge(self, origins, shape, indices=None):
        """Merge the pixel maps of tiles into one large map (average of overlaps, Sec. 2.4.3).

        Parameters
        ----------
        origins : array (len(self), 2)
            (row, col) of each explained tile in its large image.
        shape : (H, W)
            Shape of the large image.
        indices : array of int or None
            Which explained tiles belong to this large image (default: all).

        Examples
        --------
        ``exp.merge(data.test_origins, (408, 408), indices=np.flatnonzero(data.test_source == 0))``
        """
        if self.pixels is None:
            raise ValueError("this explanation has no pixel relevance to merge")
        origins = np.asarray(origins)
        if origins.shape != (len(self), 2):
            raise ValueError(f"origins must have one (row, col) per explained tile: shape ({len(self)}, 2), "
                             f"got {origins.shape}")
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.intp)
        return merge_tiles([self.pixels[k] for k in idx], origins[idx], shape)


def _active_steps(pipeline):
    """The (name, estimator) steps of a pipeline that are not None or 'passthrough'."""
    return [(n, s) for n, s in pipeline.steps if s is not None and s != "passthrough"]


def _steps(pipeline):
    check_is_fitted(pipeline)
    *transformers, (last_name, last) = _active_steps(pipeline)
    try:
        last = as_explainable(last)
    except TypeError as err:
        raise TypeError(f"the last step {last_name!r} cannot be explained: {err}") from None
    for name, step in transformers:
        if not isinstance(step, ExplainableTransformerMixin):
            raise TypeError(
                f"step {name!r} ({type(step).__name__}) has no relevance rule; explainable steps are "
                "bowlrp.DenseSIFT, bowlrp.BagOfWords and bowlrp.FisherVectorEncoder"
            )
    return transformers, (last_name, last)


def explain(pipeline, X, target=None, rule="z", bias="keep", decomposition="auto", references=None,
            **rule_params):
    """Explain the decisions of a fitted pipeline on ``X`` with LRP.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Fitted; every step explainable (e.g. ``DenseSIFT``, ``BagOfWords``,
        ``KernelSVC``).
    X : images or whatever the first step takes
    target : None, label or array of labels
        What to explain.  Binary models: ``None`` explains ``f(x)``, so positive
        relevance speaks for ``classes_[1]``; ``classes_[0]`` explains ``-f(x)``.
        Multi-class: ``None`` explains the predicted class.
    rule : str or bowlrp.rules.Rule
        Rule for the mapping stages: ``"z"`` (proportional, eq. 2.78-2.79,
        exact), ``"epsilon"`` (eq. 2.22), ``"alphabeta"`` (eq. 2.26), ``"abs"``
        (magnitudes only, eq. 2.7), ``"flat"`` (eq. 2.27).
    bias : {"keep", "uniform", "weights"}
        Keep the classifier's bias as its own term (eq. 2.72), spread it evenly
        over the features (eq. 2.73), or along ``w`` for linear models (eq. 2.74).
    decomposition : {"auto", "exact", "taylor"}
        How the classifier's score is split over its features: ``"auto"`` is
        exact for sum-decomposable kernels (linear, hik, additive_chi2) and a
        Taylor decomposition at a root on the decision boundary otherwise (rbf,
        chi2; eq. 2.75-2.76).
    references : inputs like ``X``, or None
        Taylor reference samples (thesis: about 50 samples of the other
        class), given as pipeline inputs; they are transformed by the
        pipeline's stages.  Default: the samples the classifier kept at fit
        time.
    **rule_params
        Parameters of the rule, e.g. ``epsilon=1.0`` or ``alpha=2, beta=-1``.
        A pipeline ending in a :class:`bowlrp.CNNClassifier` is explained by
        the network's own :meth:`~bowlrp.CNNClassifier.explain`, which takes
        ``method=`` and ``composite=`` here instead of a mapping rule.

    Returns
    -------
    Explanation

    Examples
    --------
    >>> import bowlrp
    >>> from bowlrp.datasets import make_polygons
    >>> data = make_polygons(n_train=60, n_test_images=1, random_state=0)
    >>> pipe = bowlrp.ExplainablePipeline([
    ...     ("sift", bowlrp.DenseSIFT()),
    ...     ("bow", bowlrp.BagOfWords(n_words=16, random_state=0)),
    ...     ("svm", bowlrp.KernelSVC(kernel="hik")),
    ... ]).fit(data.images, data.labels)
    >>> exp = bowlrp.explain(pipe, data.test_images[:2])
    >>> bool(abs(exp.pixels[0].sum() + exp.bias[0] - exp.score[0]) < 1e-8 * abs(exp.score[0]) + 1e-12)
    True
    """
    from .cnn import CNNClassifier  # noqa: PLC0415  (cnn imports this module)

    final = _active_steps(pipeline)[-1][1]
    if isinstance(final, CNNClassifier):  # a network explains itself with its own rules
        Xt = pipeline[:-1].transform(X) if len(pipeline) > 1 else X
        return final.explain(Xt, target=target, **rule_params)
    transformers, (_, last) = _steps(pipeline)
    rule_obj = get_rule(rule, **rule_params)
    Xt, traces = X, []
    for _, step in transformers:
        Xt, tr = step._forward(Xt)
        traces.append(tr)
    refs = references
    if refs is not None:
        for _, step in transformers:
            refs = step.transform(refs)
    out = last._explain_output(Xt, target=target, bias=bias, decomposition=decomposition, references=refs)
    stages = {getattr(last, "_relevance_input", "features"): out.features}
    R = out.features
    for (_, step), tr in zip(reversed(transformers), reversed(traces)):
        R = step._relevance(R, tr, rule_obj)
        stages[getattr(step, "_relevance_input", type(step).__name__)] = R
    bias_np = to_numpy(out.bias)
    score = to_numpy(out.score)
    totals = np.array([float(to_numpy(r).sum()) for r in R]) if isinstance(R, list) else to_numpy(R).sum(1)
    residual = score - totals - bias_np

    def as_list(v):
        return None if v is None else [to_numpy(a) for a in v]

    return Explanation(
        pixels=as_list(stages.get("pixels")),
        descriptors=as_list(stages.get("descriptors")),
        features=to_numpy(out.features),
        bias=bias_np,
        score=score,
        target=to_numpy(out.target),
        residual=residual,
        rule=rule_obj.name,
        root=None if out.root is None else to_numpy(out.root),
        root_found=None if out.root_found is None else to_numpy(out.root_found),
        stages=stages,
    )


class ExplainablePipeline(Pipeline):
    """A scikit-learn ``Pipeline`` that can explain its decisions.

    Examples
    --------
    >>> import bowlrp
    >>> pipe = bowlrp.ExplainablePipeline([
    ...     ("sift", bowlrp.DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=True)),
    ...     ("bow", bowlrp.BagOfWords(n_words=128, mapping="rank")),
    ...     ("svm", bowlrp.KernelSVC(kernel="hik")),
    ... ])
    """

    def explain(self, X, target=None, rule="z", bias="keep", decomposition="auto", references=None,
                **rule_params):
        """Explain the pipeline's decisions on ``X``; see :func:`bowlrp.explain`."""
        return explain(self, X, target=target, rule=rule, bias=bias, decomposition=decomposition,
                       references=references, **rule_params)
