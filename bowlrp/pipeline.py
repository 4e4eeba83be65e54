"""Explaining a whole pipeline: one forward walk, one backward walk.

:func:`explain` runs the steps of a fitted scikit-learn ``Pipeline`` forward,
each explainable step returning its output and a trace, lets the final
estimator decompose its score over its input, and walks the steps backward,
each turning the relevance of its output into relevance of its input (thesis
Algorithm 2).  What makes a step explainable is the protocol of
:mod:`bowlrp.base` (``forward``/``relevance`` for stages, ``explain`` for the
final estimator), as scikit-learn's ``Pipeline`` asks its steps for
``inverse_transform``; no class is special-cased.  :class:`ExplainablePipeline`
is a ``Pipeline`` with an ``explain`` method doing the same.
"""

import inspect

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._backend import to_numpy
from ._validation import check_images
from .base import INPUT_KINDS, is_explainable_stage
from .explanation import Explanation
from .rules import RULES, Rule, get_rule, rule_parameters
from .svm.adapters import as_explainable

__all__ = ["Explanation", "explain", "ExplainablePipeline"]


def _active_steps(pipeline):
    """The (name, estimator) steps of a pipeline that are not None or 'passthrough'."""
    return [(n, s) for n, s in pipeline.steps if s is not None and s != "passthrough"]


def _split(model):
    """``(stages, (tail_name, tail))`` of a fitted pipeline, or of a lone final estimator."""
    if not isinstance(model, Pipeline):
        try:
            return [], (type(model).__name__, as_explainable(model))
        except TypeError as err:
            raise TypeError(f"{type(model).__name__} cannot be explained: {err}") from None
    check_is_fitted(model)
    steps = _active_steps(model)
    if not steps:
        raise ValueError("the pipeline has no steps to explain")
    *stages, (tail_name, tail) = steps
    try:
        tail = as_explainable(tail)
    except TypeError as err:
        raise TypeError(f"the last step {tail_name!r} cannot be explained: {err}") from None
    for name, step in stages:
        if not is_explainable_stage(step):
            raise TypeError(
                f"step {name!r} ({type(step).__name__}) has no relevance step: an explainable step has "
                "forward(X) -> (Xt, trace) and relevance(R, trace, rule) (bowlrp.DenseSIFT, "
                "bowlrp.BagOfWords, bowlrp.FisherVectorEncoder, bowlrp.DescriptorPCA)"
            )
    return stages, (tail_name, tail)


def _explain_parameters(tail):
    """The keyword arguments ``tail.explain`` takes (None: any)."""
    params = inspect.signature(tail.explain).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return [n for n, p in params.items() if n not in ("self", "X") and p.kind is not inspect.Parameter.VAR_POSITIONAL]


def _stage_rules(stages, tail, rule, options):
    """The rule of each stage, the rule for the tail (or None) and the rule's name; pops rule parameters.

    ``rule`` is ``None`` (every stage's own default), a name or Rule for every
    stage that takes the pipeline's mapping rule (and a tail whose
    ``explain`` takes ``rule``), or a dict ``{step name: rule}``.
    """
    names = [n for n, _ in stages]
    takers = [k for k, (_, s) in enumerate(stages) if getattr(s, "takes_mapping_rule", False)]
    if rule is None:
        given = sorted(k for k in options if any(k in rule_parameters(r) for r in RULES))
        if given:
            raise TypeError(f"{given} are parameters of a rule; pass rule= too, e.g. rule='epsilon', epsilon=1.0")
        return [None] * len(stages), None, ("z" if takers else None)
    if isinstance(rule, dict):
        unknown = sorted(set(rule) - set(names))
        if unknown:
            raise ValueError(f"rule names steps {unknown} that the pipeline does not have; its explainable "
                             f"steps are {names}")
        label = ", ".join(f"{n}={getattr(r, 'name', r)}" for n, r in rule.items())
        return [rule.get(n) for n in names], None, label
    foreign = sorted(k for k in options if any(k in rule_parameters(r) for r in RULES))
    if isinstance(rule, Rule):
        if foreign:
            raise TypeError(f"rule parameters {foreign} go into the Rule object when passing an instance")
        rule_obj = rule
    else:
        own = rule_parameters(rule)
        rule_obj = get_rule(rule, **{k: options.pop(k) for k in foreign if k in own})
        foreign = [k for k in foreign if k not in own]
        if foreign:
            raise TypeError(f"rule {rule_obj.name!r} takes no parameters {foreign}; its parameters are {own}")
    tail_takes_rule = "rule" in (_explain_parameters(tail) or ["rule"])
    if not takers and not tail_takes_rule:
        raise ValueError(f"rule={rule!r} applies to mapping stages (bowlrp.BagOfWords, FisherVectorEncoder, "
                         f"DescriptorPCA) or to networks, and this model has none: its steps are "
                         f"{names + [type(tail).__name__]}")
    return ([rule_obj if k in takers else None for k in range(len(stages))],
            rule_obj if tail_takes_rule else None, rule_obj.name)


def _tail_options(tail, options):
    accepted = _explain_parameters(tail)
    if accepted is not None:
        bad = sorted(set(options) - set(accepted))
        if bad:
            raise TypeError(f"{type(tail).__name__}.explain takes no argument(s) {bad}; it takes "
                            f"{[a for a in accepted if a != 'target']}")
    return options


def explain(pipeline, X, target=None, rule=None, keep_dimensions=False, **options):
    """Explain the decisions of a fitted pipeline (or a fitted final estimator) on ``X`` with LRP.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline or estimator
        Fitted; every step explainable (e.g. ``DenseSIFT``, ``BagOfWords``,
        ``KernelSVC``), see :mod:`bowlrp.base`.  A lone final estimator
        (``KernelSVC``, ``CNNClassifier`` or one of scikit-learn's linear
        models and SVMs) is explained on its own inputs.
    X : images or whatever the first step takes
    target : None, label or array of labels
        What to explain.  Binary models: ``None`` explains ``f(x)``, so positive
        relevance speaks for ``classes_[1]``; ``classes_[0]`` explains ``-f(x)``.
        Multi-class: ``None`` explains the predicted class.
    rule : None, str, bowlrp.rules.Rule or dict
        Rule for the mapping stages: ``"z"`` (proportional, eq. 2.78-2.79,
        exact; the default), ``"epsilon"`` (eq. 2.22), ``"alphabeta"`` (eq.
        2.26), ``"abs"`` (magnitudes only, eq. 2.7), ``"flat"`` (eq. 2.27);
        for a network, one rule for all its layers.  A dict ``{step name:
        rule}`` chooses per step, including the pixel rules of
        :class:`bowlrp.DenseSIFT` (``{"sift": "flat"}``).
    keep_dimensions : bool, default=False
        Keep relevance per descriptor dimension (eq. D.3; ``(n_i, d)``
        arrays from Fisher-vector encoders) in ``descriptors`` and
        ``stages``.  By default each descriptor's dimensions are summed as
        soon as the next stage has used them (one 4000x3000 photograph has
        about 486 MB of per-dimension relevance), and an encoder that can
        hands the pixel rules only what they read (per spatial bin, the sums
        of the positive and negative parts); the pixel maps are the same to
        rounding.
    **options
        Parameters of the rule (``epsilon=1.0``, ``alpha=2, beta=-1``), and
        the options of the final estimator's ``explain``: for kernel models
        ``bias`` (``"keep"``, ``"uniform"``, ``"weights"``; eq. 2.72-2.74),
        ``decomposition`` (``"auto"``, ``"exact"``, ``"taylor"``) and
        ``references`` (Taylor reference samples given as pipeline inputs;
        they are transformed by the pipeline's stages); for a
        :class:`bowlrp.CNNClassifier` ``method``, ``composite`` and
        ``batch_size``.  An option the final estimator does not take is an
        error.

    Returns
    -------
    Explanation

    Examples
    --------
    >>> import bowlrp
    >>> from bowlrp.datasets import make_polygons
    >>> data = make_polygons(n_train=30, n_test_images=1, random_state=0)
    >>> pipe = bowlrp.ExplainablePipeline([
    ...     ("sift", bowlrp.DenseSIFT(scales=(2.0,), steps=(8,))),  # one scale, a coarse grid: quick
    ...     ("bow", bowlrp.BagOfWords(n_words=8, random_state=0)),
    ...     ("svm", bowlrp.KernelSVC(kernel="hik")),
    ... ]).fit(data.images, data.labels)
    >>> exp = bowlrp.explain(pipe, data.test_images[:2])
    >>> exp.rule, exp.pixels[0].shape
    ('z', (102, 102))
    >>> bool(abs(exp.pixels[0].sum() + exp.bias[0] - exp.score[0]) < 1e-8 * abs(exp.score[0]) + 1e-12)
    True

    Other rules for the mapping stages, and per step:

    >>> eps = bowlrp.explain(pipe, data.test_images[:2], rule="epsilon", epsilon=0.1)
    >>> bool((abs(eps.residual) > 0).all())  # epsilon absorbs relevance (eq. 2.22)
    True
    >>> flat = bowlrp.explain(pipe, data.test_images[:2], rule={"sift": "flat"})  # the pixel rule of DenseSIFT
    >>> bool(abs(flat.residual).max() < 1e-8)
    True
    """
    stages, (_, tail) = _split(pipeline)
    options = dict(options)
    rules, tail_rule, rule_name = _stage_rules(stages, tail, rule, options)
    if tail_rule is not None:
        options["rule"] = tail_rule
    references = options.get("references")
    options = _tail_options(tail, options)
    Xt, traces = X, []
    for _, step in stages:
        Xt, tr = step.forward(Xt)
        traces.append(tr)
    if references is not None and stages:
        if stages[0][1].input_kind == "images":
            references = check_images(references, name="references")
        for _, step in stages:
            references = step.transform(references)
        options["references"] = references
    exp = tail.explain(Xt, target=target, **options)
    fields = {"pixels": exp.pixels, "descriptors": exp.descriptors, "features": exp.features}
    R = fields[INPUT_KINDS[tail.input_kind]]
    by_step = {}
    for j, (name, step), tr, r in zip(range(len(stages) - 1, -1, -1), reversed(stages), reversed(traces),
                                      reversed(rules)):
        R = step.relevance(R, tr, r, **({} if keep_dimensions or j == 0 else _reducer(step, stages[j - 1][1])))
        traces[j] = tr = None  # a stage's trace is freed once used: the stages below reuse its memory
        kept = R if keep_dimensions or step.input_kind != "descriptors" else _per_descriptor(R)
        fields[INPUT_KINDS[step.input_kind]] = kept
        by_step[name] = kept
    bias = to_numpy(exp.bias)
    score = to_numpy(exp.score)
    totals = (np.array([float(to_numpy(r).sum()) for r in R]) if isinstance(R, list)
              else to_numpy(R).reshape(len(score), -1).sum(1))

    def as_list(v):
        return None if v is None else [to_numpy(a) for a in v]

    return Explanation(
        pixels=as_list(fields["pixels"]),
        descriptors=as_list(fields["descriptors"]),
        features=None if fields["features"] is None else to_numpy(fields["features"]),
        bias=bias,
        score=score,
        target=to_numpy(exp.target),
        residual=score - totals - bias,
        rule=rule_name if rule_name is not None else exp.rule,
        root=None if exp.root is None else to_numpy(exp.root),
        root_found=None if exp.root_found is None else to_numpy(exp.root_found),
        stages=by_step,
    )


def _reducer(step, below):
    """``{"reduce": f}`` when the stage ``below`` needs only ``f(R)`` of the per-dimension relevance ``R`` that
    ``step`` returns and ``step`` can form it chunk by chunk (the pixel rules read per-bin parts); else ``{}``."""
    if not hasattr(below, "relevance_reducer") or "reduce" not in inspect.signature(step.relevance).parameters:
        return {}
    return {"reduce": below.relevance_reducer()}


def _per_descriptor(R):
    """Per-descriptor sums of per-dimension descriptor relevance (a list of 2-D arrays); else ``R``."""
    if isinstance(R, list) and R and all(getattr(r, "ndim", 1) == 2 for r in R):
        return [r.sum(1) for r in R]
    return R


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

    def explain(self, X, target=None, rule=None, keep_dimensions=False, **options):
        """Explain the pipeline's decisions on ``X``; see :func:`bowlrp.explain`."""
        return explain(self, X, target=target, rule=rule, keep_dimensions=keep_dimensions, **options)
