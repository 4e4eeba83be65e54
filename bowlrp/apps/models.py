"""Ready-made models by name, built from the public constructors, with parameters a user overrides.

Each model is an unfitted :class:`bowlrp.ExplainablePipeline` of three steps,
``sift`` (:class:`bowlrp.DenseSIFT`), ``bow`` or ``fv``
(:class:`bowlrp.BagOfWords`, :class:`bowlrp.FisherVectorEncoder`) and
``svm`` (:class:`bowlrp.KernelSVC`).  Parameters are overridden with
scikit-learn's nested names (``bow__n_words=256``, ``svm__C=10``); the kernel
blocks follow the vocabulary (one block of ``n_words`` per SIFT scale)
unless ``svm__blocks`` is given.

The defaults were chosen by measurement on the scikit-image texture
photographs (``examples/texture_ablation.py``; the figures are in
``docs/photographs.md``).
"""

import ast
from dataclasses import dataclass, field

from ..encoders import BagOfWords, FisherVectorEncoder
from ..features import DenseSIFT
from ..pipeline import ExplainablePipeline
from ..svm import KernelSVC

__all__ = ["MODELS", "ModelSpec", "make_model", "model_names", "parse_params", "valid_params"]

# Rotated dense SIFT at three scales: on the texture tiles rotation to the dominant
# gradient and a third, finer scale each raised the held-out accuracy (docs/photographs.md).
_BOW_SIFT = dict(scales=(1.5, 2.0, 3.0), steps=(4, 4, 6), rotate=True)
_BOW = dict(n_words=128, mapping="rank")
# The thesis' Fisher-vector model (Ch. 4) scaled down to what a CPU trains in a minute; rotated
# descriptors, as for the Bag of Words, measured better on the texture tiles.
_FV_SIFT = dict(scales=(4 / 3, 2.0, 8 / 3), steps=4, rotate=True)
_FV = dict(n_components=32, pca=32, pyramid=((1, 1),))


@dataclass(frozen=True)
class ModelSpec:
    """A ready-made model: what it is, and its three stages' parameters.

    Examples
    --------
    >>> spec = MODELS["fv-linear"]
    >>> spec.encoder, spec.exact, spec.max_side, [name for name, _ in spec.build().steps]
    ('fv', True, 640, ['sift', 'fv', 'svm'])
    >>> ModelSpec("tiny", dict(scales=2.0, steps=6), "bow", dict(n_words=4), dict(kernel="hik")).build(random_state=1)
    ExplainablePipeline(steps=[('sift', DenseSIFT(scales=2.0, steps=6)),
                               ('bow', BagOfWords(n_words=4, random_state=1)),
                               ('svm', KernelSVC(random_state=1))])
    """

    description: str
    sift: dict
    encoder: str  # "bow" or "fv"
    encoding: dict
    svm: dict
    max_side: int = 640
    exact: bool = True
    notes: dict = field(default_factory=dict)

    def build(self, random_state=0):
        enc = BagOfWords if self.encoder == "bow" else FisherVectorEncoder
        return ExplainablePipeline([
            ("sift", DenseSIFT(**self.sift)),
            (self.encoder, enc(**self.encoding, random_state=random_state)),
            ("svm", KernelSVC(**self.svm, random_state=random_state)),
        ])


MODELS = {
    "bow-hik": ModelSpec(
        "rotated dense SIFT at 3 scales, 128-word rank-mapped Bag of Words per scale, "
        "histogram-intersection SVM (explained exactly)",
        _BOW_SIFT, "bow", _BOW, dict(kernel="hik"),
    ),
    "bow-chi2": ModelSpec(
        "the same Bag of Words, exponential chi2 SVM (explained by Taylor decomposition at a root)",
        _BOW_SIFT, "bow", _BOW, dict(kernel="chi2"), exact=False,
    ),
    "bow-additive-chi2": ModelSpec(
        "the same Bag of Words, additive chi2 SVM (explained exactly)",
        _BOW_SIFT, "bow", _BOW, dict(kernel="additive_chi2"),
    ),
    "fv-linear": ModelSpec(
        "rotated dense SIFT at 3 scales, PCA to 32 dimensions, improved Fisher vectors of a "
        "32-component GMM per scale, linear SVM (explained exactly)",
        _FV_SIFT, "fv", _FV, dict(kernel="linear"),
    ),
}


def model_names():
    """The names :func:`make_model` knows.

    Examples
    --------
    >>> model_names()
    ['bow-hik', 'bow-chi2', 'bow-additive-chi2', 'fv-linear']
    """
    return list(MODELS)


def _spec(name):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models are {model_names()}")
    return MODELS[name]


def valid_params(name):
    """The parameters of model ``name`` a user may override, as ``step__parameter`` names.

    Examples
    --------
    >>> names = valid_params("bow-hik")
    >>> names[:3], "bow__n_words" in names, "svm__C" in names
    (['bow__mapping', 'bow__max_descriptors', 'bow__max_iter'], True, True)
    >>> valid_params("bow")
    Traceback (most recent call last):
    ...
    ValueError: unknown model 'bow'; valid models are ['bow-hik', 'bow-chi2', 'bow-additive-chi2', 'fv-linear']
    """
    pipe = _spec(name).build()
    return sorted(k for k in pipe.get_params(deep=True) if "__" in k)


def parse_params(items):
    """Parse ``["bow__n_words=256", "svm__C=10", ...]`` into a dict.

    Values are Python literals read with :func:`ast.literal_eval` (numbers,
    strings, tuples, ``None``, ``True``); anything else is taken as a string,
    so ``svm__kernel=rbf`` works without quotes.

    Examples
    --------
    >>> parse_params(["bow__n_words=256", "sift__scales=(2.0, 3.0)", "svm__kernel=rbf"])
    {'bow__n_words': 256, 'sift__scales': (2.0, 3.0), 'svm__kernel': 'rbf'}
    """
    out = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"parameter {item!r} must look like step__name=value, e.g. bow__n_words=256")
        text = text.strip()
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[key] = value
    return out


def make_model(name, params=None, random_state=0):
    """An unfitted ready-made model, with ``params`` overriding its defaults.

    Parameters
    ----------
    name : str
        One of :func:`model_names`: ``"bow-hik"``, ``"bow-chi2"``,
        ``"bow-additive-chi2"``, ``"fv-linear"``.
    params : dict or None
        ``{"bow__n_words": 256, "svm__C": 10, ...}``; the names
        :func:`valid_params` lists.  The kernel blocks follow the vocabulary
        size and the number of SIFT scales unless ``svm__blocks`` is given.
    random_state : int, default=0
        Seeds the vocabulary or GMM and the Taylor references.

    Returns
    -------
    ExplainablePipeline

    Examples
    --------
    >>> from bowlrp.apps.models import make_model
    >>> pipe = make_model("bow-hik", {"bow__n_words": 64})
    >>> pipe.named_steps["svm"].blocks
    (64, 64, 64)
    >>> make_model("bow-hik", {"bow__n_word": 64})
    Traceback (most recent call last):
    ...
    ValueError: unknown parameter 'bow__n_word' for model 'bow-hik'; did you mean 'bow__n_words'? ...
    """
    spec = _spec(name)
    pipe = spec.build(random_state=random_state)
    params = dict(params or {})
    valid = sorted(k for k in pipe.get_params(deep=True) if "__" in k)
    for key in params:
        if key not in valid:
            import difflib  # noqa: PLC0415

            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"unknown parameter {key!r} for model {name!r}; {hint}valid parameters are {', '.join(valid)}"
            )
    pipe.set_params(**params)
    if spec.encoder == "bow" and "svm__blocks" not in params:
        sift, bow = pipe.named_steps["sift"], pipe.named_steps["bow"]
        n_scales = len(sift.scales) if isinstance(sift.scales, (tuple, list)) else 1
        pipe.set_params(svm__blocks=(bow.n_words,) * n_scales if isinstance(bow.n_words, int) else None)
    return pipe
