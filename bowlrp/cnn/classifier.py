"""A scikit-learn classifier around a small CNN, explained like the Bag-of-Words pipelines.

:class:`CNNClassifier` takes the same images as ``DenseSIFT`` (grayscale,
uint8 in 0..255 or float in [0, 1], one stack or a list of equally sized
images), trains a :class:`~.layers.Sequential` network, and explains its
decisions with :meth:`CNNClassifier.explain`, which returns the same
:class:`bowlrp.Explanation` as ``bowlrp.explain`` on a pipeline.
"""

import json

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .._backend import asarray, get_namespace, to_numpy
from .._validation import check_images
from ..pipeline import Explanation
from .analyzers import METHODS, backward, fit_patterns
from .layers import Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU, Sequential
from .rules import get_composite
from .train import LOSSES, OPTIMIZERS, train

__all__ = ["CNNClassifier", "default_layers"]


def default_layers(input_shape, n_outputs):
    """The default network for ``(H, W)`` grayscale images (about 20k weights).

    conv 5x5/2 (8) - ReLU - max 2 - conv 5x5 (16) - ReLU - max 2 - conv 3x3
    (32) - ReLU - max 2 - flatten - dense 64 - ReLU - dense ``n_outputs``.
    On 102 x 102 tiles the last feature map is 4 x 4; the dense layers keep
    where in the tile a shape is, which the toy polygons' label depends on.
    """
    layers = [Conv2d(1, 8, 5, stride=2), ReLU(), MaxPool2d(2),
              Conv2d(8, 16, 5), ReLU(), MaxPool2d(2),
              Conv2d(16, 32, 3), ReLU(), MaxPool2d(2), Flatten()]
    shape = Sequential(layers).output_shape((1,) + tuple(input_shape))
    return layers + [Linear(shape[0], 64), ReLU(), Linear(64, n_outputs)]


def _images_to_array(X, name="images"):
    imgs = check_images(X, allow_color=False, name=name)
    shapes = {im.shape for im in imgs}
    if len(shapes) > 1:
        raise ValueError(f"{name} have different sizes {sorted(shapes)}; a CNN needs equally sized "
                         "images (crop or resize them first)")
    arr = np.stack(imgs)
    arr = arr / 255.0 if arr.dtype.kind in "iu" else arr.astype(np.float64)
    return arr[:, None, :, :]


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """A small convolutional network trained on grayscale images.

    Parameters
    ----------
    layers : list of bowlrp.cnn layers or None
        The network (copied at fit; its first layer must take 1 channel and
        its last must give one output for two classes, one per class
        otherwise).  ``None``: :func:`default_layers`.
    loss : {"cross_entropy", "hinge"}
    optimizer : {"adam", "sgd"}
    learning_rate : float
    momentum : float
        SGD momentum (ignored by Adam).
    weight_decay : float
    batch_size : int
    epochs : int
    nonpositive_bias : bool
        Keep every bias <= 0 during training (projection after each step),
        as Deep Taylor Decomposition assumes (paper 000, Sec. III).
    augment : bool
        Train on a random flip / quarter turn of each batch (for square
        images whose label does not depend on orientation, as the toy polygons).
    dtype : {"float32", "float64"}
        Training precision.  Explanations are always computed in float64.
    device : {"cpu", "cuda"}
        ``"cuda"`` trains and explains with CuPy.
    random_state : int, RandomState, Generator or None
    verbose : bool
        Show a tqdm progress bar while training.

    Attributes
    ----------
    classes_ : ndarray
    model_ : bowlrp.cnn.Sequential
    input_shape_ : (H, W)
    loss_curve_ : list of float
        Mean training loss per epoch.
    patterns_ : list or None
        Set by :meth:`fit_patterns`; needed by PatternNet/PatternAttribution.
    """

    def __init__(self, layers=None, *, loss="cross_entropy", optimizer="adam", learning_rate=2e-3,
                 momentum=0.9, weight_decay=0.0, batch_size=32, epochs=15, nonpositive_bias=False,
                 augment=False, dtype="float32", device="cpu", random_state=None, verbose=False):
        self.layers = layers
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.nonpositive_bias = nonpositive_bias
        self.augment = augment
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    def _xp(self):
        if self.device == "cpu":
            return np
        if self.device == "cuda":
            from .._backend import _cupy, cupy_available

            if not cupy_available():
                raise RuntimeError("device='cuda' needs CuPy and a CUDA device; use device='cpu'")
            return _cupy()
        raise ValueError(f"unknown device {self.device!r}; valid devices: ['cpu', 'cuda']")

    def _check_params(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid losses: {list(LOSSES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid optimizers: {sorted(OPTIMIZERS)}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        for name in ("batch_size", "epochs"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not (self.learning_rate > 0):
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")

    def _input(self, X, xp, dtype=np.float64):
        arr = _images_to_array(X)
        if hasattr(self, "input_shape_") and arr.shape[2:] != self.input_shape_:
            raise ValueError(f"images of shape {arr.shape[2:]} given, but the network was trained on "
                             f"{self.input_shape_} images")
        return asarray(arr, xp, dtype=dtype)

    # ------------------------------------------------------------------ fit / predict
    def fit(self, X, y):
        """Train on images ``X`` and labels ``y``."""
        self._check_params()
        xp = self._xp()
        Xa = _images_to_array(X)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(Xa):
            raise ValueError(f"y must be 1-D with one label per image ({len(Xa)}), got shape {y.shape}")
        check_classification_targets(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes to train, got only {self.classes_.tolist()}")
        n_out = 1 if len(self.classes_) == 2 else len(self.classes_)
        self.input_shape_ = Xa.shape[2:]
        if self.layers is None:
            layers = default_layers(self.input_shape_, n_out)
        else:
            layers = [l if isinstance(l, Layer) else None for l in self.layers]
            if any(l is None for l in layers):
                raise TypeError("layers must be a list of bowlrp.cnn layers (Conv2d, ReLU, MaxPool2d, ...)")
            layers = Sequential.from_config([l.config() for l in layers]).layers  # fresh copies
        model = Sequential(layers)
        out_shape = model.output_shape((1,) + self.input_shape_)
        if out_shape != (n_out,):
            raise ValueError(f"the network's output has shape {out_shape}, but {len(self.classes_)} classes "
                             f"need ({n_out},) (one output for two classes)")
        rng = np.random.default_rng(self._seed())
        model.init(rng)
        dtype = np.dtype(self.dtype)
        model.to(xp, dtype=dtype)
        self.loss_curve_ = train(
            model, asarray(Xa, xp, dtype=dtype), asarray(yi, xp), loss=self.loss, optimizer=self.optimizer,
            learning_rate=self.learning_rate, momentum=self.momentum, weight_decay=self.weight_decay,
            batch_size=self.batch_size, epochs=self.epochs, nonpositive_bias=self.nonpositive_bias,
            augment=self.augment, rng=rng, verbose=self.verbose)
        self.model_ = model
        self.patterns_ = None
        return self

    def _seed(self):
        rs = self.random_state
        if rs is None or isinstance(rs, (int, np.integer)):
            return rs
        if isinstance(rs, np.random.Generator):
            return int(rs.integers(2**63 - 1))
        return int(rs.randint(np.iinfo(np.int32).max))

    def _batches(self, X, dtype, batch=256):
        xp = self._xp()
        for s in range(0, len(X), batch):
            yield asarray(X[s:s + batch], xp, dtype=dtype)

    def _scores(self, X):
        check_is_fitted(self, "model_")
        Xa = _images_to_array(X)
        if Xa.shape[2:] != self.input_shape_:
            raise ValueError(f"images of shape {Xa.shape[2:]} given, but the network was trained on "
                             f"{self.input_shape_} images")
        outs = [to_numpy(self.model_(xb)) for xb in self._batches(Xa, np.dtype(self.dtype))]
        return np.concatenate(outs).astype(np.float64)

    def decision_function(self, X):
        """Scores: ``(n,)`` for two classes (positive speaks for ``classes_[1]``), else ``(n, K)``."""
        f = self._scores(X)
        return f[:, 0] if f.shape[1] == 1 else f

    def predict(self, X):
        f = self._scores(X)
        idx = (f[:, 0] > 0).astype(int) if f.shape[1] == 1 else f.argmax(1)
        return self.classes_[idx]

    def predict_proba(self, X):
        """Sigmoid / softmax of the scores (meaningful for ``loss="cross_entropy"``)."""
        f = self._scores(X)
        if f.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-np.clip(f[:, 0], -500, 500)))
            return np.stack([1 - p, p], axis=1)
        e = np.exp(f - f.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    # ------------------------------------------------------------------ explanations
    def fit_patterns(self, X, mean="regime"):
        """Fit PatternNet/PatternAttribution patterns on images ``X`` (paper 002; see
        :func:`bowlrp.cnn.fit_patterns` for the ``mean`` choice)."""
        check_is_fitted(self, "model_")
        Xa = _images_to_array(X)
        self.patterns_ = fit_patterns(self.model_, self._batches(Xa, np.float64), mean=mean)
        return self

    def _target_index(self, target, n, scores):
        binary = scores.shape[1] == 1
        if target is None:
            if binary:
                return np.zeros(n, int), np.ones(n), np.full(n, self.classes_[1])
            idx = scores.argmax(1)
            return idx, np.ones(n), self.classes_[idx]
        t = np.asarray(target)
        t = np.broadcast_to(t, (n,)) if t.ndim == 0 else t
        if t.shape != (n,):
            raise ValueError(f"target must be one label or one label per image ({n}), got shape {t.shape}")
        pos = np.searchsorted(self.classes_, t)
        pos = np.clip(pos, 0, len(self.classes_) - 1)
        if not np.array_equal(self.classes_[pos], t):
            bad = sorted(set(np.asarray(t).tolist()) - set(self.classes_.tolist()))
            raise ValueError(f"unknown target label(s) {bad}; classes are {self.classes_.tolist()}")
        if binary:
            return np.zeros(n, int), np.where(pos == 1, 1.0, -1.0), t
        return pos, np.ones(n), t

    def explain(self, X, target=None, method="lrp", composite="dtd", batch_size=64):
        """Explain the network's decisions on images ``X``.

        Parameters
        ----------
        X : images (as for fit)
        target : None, label or one label per image
            Two classes: ``None`` explains ``f(x)`` (positive relevance speaks
            for ``classes_[1]``) and ``classes_[0]`` explains ``-f(x)``.  More
            classes: ``None`` explains the predicted class's output.
        method : str
            One of ``"lrp", "gradient", "gradient_x_input", "deconvnet",
            "guided_backprop", "patternnet", "pattern_attribution"``.
        composite : str or bowlrp.cnn.Composite
            LRP rules (``method="lrp"``): a preset name (see
            :func:`bowlrp.cnn.get_composite`) or a Composite.

        Returns
        -------
        bowlrp.Explanation
            ``pixels``: one ``(H, W)`` float64 map per image; ``features``:
            the signal at the input of the last linear layer (``(n, d)``);
            ``descriptors``: None; ``bias``: zeros (relevance absorbed by the
            biases and stabilisers is in ``residual = score - pixels.sum()``);
            ``score``: the explained output; ``rule``: the method, or
            ``"lrp:<composite>"``.
        """
        check_is_fitted(self, "model_")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid methods: {list(METHODS)}")
        comp = get_composite(composite) if method == "lrp" else None
        if method in ("patternnet", "pattern_attribution") and getattr(self, "patterns_", None) is None:
            raise ValueError(f"method {method!r} needs patterns fitted on training data: call "
                             "fit_patterns(images) first")
        Xa = _images_to_array(X)
        if Xa.shape[2:] != self.input_shape_:
            raise ValueError(f"images of shape {Xa.shape[2:]} given, but the network was trained on "
                             f"{self.input_shape_} images")
        model = self.model_
        last = max(k for k, layer in enumerate(model) if isinstance(layer, (Conv2d, Linear)))
        pixels, feats, scores, targets = [], [], [], []
        per_image = target is not None and np.ndim(target) == 1
        if per_image and len(target) != len(Xa):
            raise ValueError(f"target must be one label or one per image ({len(Xa)}), got {len(target)}")
        for start, xb in zip(range(0, len(Xa), batch_size), self._batches(Xa, np.float64, batch_size)):
            xp = get_namespace(xb)
            out, trace = model.forward(xb)
            n = len(xb)
            tb = np.asarray(target)[start:start + n] if per_image else target
            idx, sign, tlab = self._target_index(tb, n, to_numpy(out))
            sign_x = xp.asarray(sign, dtype=out.dtype)
            idx_x = xp.asarray(idx)
            score = sign_x * out[xp.arange(n), idx_x]
            R = xp.zeros_like(out)
            gradient_like = method in ("gradient", "gradient_x_input", "deconvnet", "guided_backprop")
            R[xp.arange(n), idx_x] = sign_x if gradient_like else score
            kw = dict(method=method, composite=comp, patterns=self.patterns_)
            inner = "gradient" if method == "gradient_x_input" else method
            Rf = backward(model, trace, R, **{**kw, "method": inner}, upto=last)
            Rl = backward(model, trace, Rf, **{**kw, "method": inner}, start=last - 1)
            if method == "gradient_x_input":
                Rl = Rl * xb
            pixels.append(to_numpy(Rl.sum(1)))
            feats.append(to_numpy(Rf))
            scores.append(to_numpy(score))
            targets.append(np.asarray(tlab))
        pixels = np.concatenate(pixels)
        score = np.concatenate(scores)
        rule = f"lrp:{comp.name}" if comp is not None else method
        return Explanation(
            pixels=list(pixels), descriptors=None, features=np.concatenate(feats).reshape(len(score), -1),
            bias=np.zeros(len(score)), score=score, target=np.concatenate(targets),
            residual=score - pixels.reshape(len(score), -1).sum(1), rule=rule)

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Write the fitted classifier to ``path`` (``np.savez``; no pickle)."""
        check_is_fitted(self, "model_")
        arrays = {}
        for k, layer in enumerate(self.model_):
            for p in layer.params:
                arrays[f"layer{k}_{p}"] = to_numpy(getattr(layer, p))
        for k, A in enumerate(self.patterns_ or []):
            if A is not None:
                arrays[f"pattern{k}"] = to_numpy(A)
        params = {k: v for k, v in self.get_params().items() if k not in ("layers", "random_state")}
        meta = {"architecture": self.model_.config(), "params": params,
                "input_shape": list(self.input_shape_), "loss_curve": list(self.loss_curve_),
                "has_patterns": self.patterns_ is not None}
        np.savez(path, meta=np.array(json.dumps(meta)), classes=self.classes_, **arrays)

    @classmethod
    def load(cls, path):
        """Read a classifier written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            model = Sequential.from_config(meta["architecture"])
            est = cls(layers=model.layers, **meta["params"])
            xp = est._xp()
            for k, layer in enumerate(model):
                for p in layer.params:
                    setattr(layer, p, asarray(f[f"layer{k}_{p}"], xp))
            est.model_ = model
            est.classes_ = f["classes"]
            est.input_shape_ = tuple(meta["input_shape"])
            est.loss_curve_ = meta["loss_curve"]
            est.patterns_ = None
            if meta["has_patterns"]:
                est.patterns_ = [asarray(f[f"pattern{k}"], xp) if f"pattern{k}" in f else None
                                 for k in range(len(model))]
        return est
