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

from .._backend import DEVICES, asarray, get_namespace, namespace_for_device, to_numpy
from .._validation import check_choice, check_images, check_number, resolve_seed, resolve_targets
from ..explanation import Explanation
from ..rules import get_rule
from .analyzers import fit_patterns, method_composite, signed_network, signed_patterns, walk
from .layers import Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU
from .network import Sequential
from .train import LOSSES, OPTIMIZERS, train

__all__ = ["CNNClassifier", "default_layers"]


def default_layers(input_shape, n_outputs):
    """The default network for ``(H, W)`` grayscale images (about 20k weights).

    conv 5x5/2 (8) - ReLU - max 2 - conv 5x5 (16) - ReLU - max 2 - conv 3x3
    (32) - ReLU - max 2 - flatten - dense 64 - ReLU - dense ``n_outputs``.
    On 102 x 102 tiles the last feature map is 4 x 4; the dense layers keep
    where in the tile a shape is, which the toy polygons' label depends on.

    Examples
    --------
    >>> layers = default_layers((102, 102), 1)
    >>> [type(layer).__name__ for layer in layers[-4:]]
    ['Flatten', 'Linear', 'ReLU', 'Linear']
    >>> layers[-3].in_features  # 32 channels of 4 x 4
    512
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

    Examples
    --------
    A tiny network on 12 x 12 images whose class 1 shows a bright square:

    >>> import numpy as np
    >>> from bowlrp.cnn import CNNClassifier, Conv2d, Flatten, Linear, MaxPool2d, ReLU
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(0, 0.2, size=(40, 12, 12))
    >>> y = np.arange(40) % 2
    >>> X[y == 1, 3:9, 3:9] += 0.8
    >>> layers = [Conv2d(1, 4, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(4 * 5 * 5, 1)]
    >>> clf = CNNClassifier(layers, epochs=20, learning_rate=1e-2, nonpositive_bias=True,
    ...                     random_state=0).fit(X, y)
    >>> clf.score(X, y)
    1.0

    ``explain`` runs LRP with the ``"dtd"`` composite by default; with
    non-positive biases the pixel relevance sums to ``f(x)``:

    >>> exp = clf.explain(X[:2])
    >>> exp.rule, exp.pixels[1].shape
    ('lrp:dtd', (12, 12))
    >>> np.allclose([p.sum() for p in exp.pixels], clf.decision_function(X[:2]), rtol=1e-5)
    True
    >>> bool(exp.pixels[1][3:9, 3:9].sum() > 0.5 * exp.pixels[1].sum())  # mostly on the square
    True
    >>> clf.explain(X[:2], rule="epsilon").rule, clf.explain(X[:2], method="guided_backprop").rule
    ('lrp:epsilon', 'guided_backprop')
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

    input_kind = "images"

    # ------------------------------------------------------------------ helpers
    def _xp(self):
        return namespace_for_device(self.device)

    def _check_params(self):
        check_choice(self.loss, "loss", LOSSES)
        check_choice(self.optimizer, "optimizer", sorted(OPTIMIZERS))
        check_choice(self.dtype, "dtype", ("float32", "float64"))
        check_choice(self.device, "device", DEVICES)
        check_number(self.batch_size, "batch_size", low=1, integer=True)
        check_number(self.epochs, "epochs", low=1, integer=True)
        check_number(self.learning_rate, "learning_rate", low=0, low_open=True)
        check_number(self.momentum, "momentum", low=0, high=1, high_open=True)
        check_number(self.weight_decay, "weight_decay", low=0)

    def _check_input(self, X):
        """Validated images as an ``(n, 1, H, W)`` float array of the size the network was trained on."""
        check_is_fitted(self, "model_")
        Xa = _images_to_array(X)
        if Xa.shape[2:] != self.input_shape_:
            raise ValueError(f"images of shape {Xa.shape[2:]} given, but the network was trained on "
                             f"{self.input_shape_} images")
        return Xa

    # ------------------------------------------------------------------ fit / predict
    def fit(self, X, y):
        """Train on images ``X`` and labels ``y``.

        Raises ``FloatingPointError`` when the training loss stops being
        finite (a learning rate that diverges), instead of returning a
        network of NaN weights.
        """
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
        rng = np.random.default_rng(resolve_seed(self.random_state))
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

    def _batches(self, X, dtype, batch=256):
        xp = self._xp()
        for s in range(0, len(X), batch):
            yield asarray(X[s:s + batch], xp, dtype=dtype)

    def _scores(self, X):
        Xa = self._check_input(X)
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
        Xa = self._check_input(X)
        self.patterns_ = fit_patterns(self.model_, self._batches(Xa, np.float64), mean=mean)
        return self

    def explain(self, X, target=None, method="lrp", composite=None, rule=None, batch_size=64):
        """Explain the network's decisions on images ``X``.

        Parameters
        ----------
        X : images (as for fit)
        target : None, label or one label per image
            Two classes: ``None`` explains ``f(x)`` (positive relevance speaks
            for ``classes_[1]``) and ``classes_[0]`` explains ``-f(x)``, with
            the rules applied to the messages of ``-f`` (the output layer
            negated, :func:`bowlrp.cnn.signed_network`).  More classes:
            ``None`` explains the predicted class's output.
        method : str
            One of ``"lrp", "gradient", "gradient_x_input", "deconvnet",
            "guided_backprop", "patternnet", "pattern_attribution"``.
        composite : str, bowlrp.cnn.Composite or None
            LRP rules (``method="lrp"``): a preset name (see
            :func:`bowlrp.cnn.get_composite`) or a Composite; default ``"dtd"``.
        rule : str, bowlrp.rules.Rule or None
            One rule of :mod:`bowlrp.rules` for every convolution and dense
            layer, instead of a composite (``method="lrp"`` only).
        batch_size : int
            Images per backward pass.

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
        check_number(batch_size, "batch_size", low=1, integer=True)
        if rule is not None:
            if composite is not None or method != "lrp":
                raise ValueError("rule= gives one rule for every layer of method='lrp'; pass either rule or "
                                 "composite, not both")
            composite = get_rule(rule)
        if method == "lrp" and composite is None:
            composite = "dtd"
        patterns = getattr(self, "patterns_", None)
        comp = method_composite(method, composite, patterns)
        Xa = self._check_input(X)
        model, signed, signed_comp = self.model_, None, None
        last = max(k for k, layer in enumerate(model) if isinstance(layer, (Conv2d, Linear)))
        n_all = len(Xa)
        per_image = target is not None and np.ndim(target) == 1
        if per_image and len(target) != n_all:
            raise ValueError(f"target must be one label or one per image ({n_all}), got {len(target)}")
        pixels, feats, scores, targets = [], [], [], []
        for start, xb in zip(range(0, n_all, batch_size), self._batches(Xa, np.float64, batch_size)):
            xp = get_namespace(xb)
            n = len(xb)
            out, trace = model.forward(xb)
            tb = np.asarray(target)[start:start + n] if per_image else target
            rows, signs, labels = resolve_targets(self.classes_, to_numpy(out), tb)
            net, net_comp = model, comp
            if (signs < 0).any():  # explain -f with the rules applied to its own messages
                n_out = out.shape[1]
                if signed is None:
                    signed = signed_network(model)
                    signed_comp = method_composite(method, composite, signed_patterns(model, patterns))
                net, net_comp, (out, trace) = signed, signed_comp, signed.forward(xb)
                rows = np.where(signs < 0, rows + n_out, rows)
            idx = xp.asarray(rows)
            score = out[xp.arange(n), idx]
            R = xp.zeros_like(out)
            R[xp.arange(n), idx] = 1.0 if comp.start == "unit" else score
            Rl, kept = walk(net, trace, R, net_comp, record=(last,))
            pixels.append(to_numpy(Rl.sum(1)))
            feats.append(to_numpy(kept[last]).reshape(n, -1))
            scores.append(to_numpy(score))
            targets.append(np.asarray(labels))
        pixels = np.concatenate(pixels)
        score = np.concatenate(scores)
        name = f"lrp:{comp.name}" if method == "lrp" else method
        return Explanation(
            pixels=list(pixels), descriptors=None, features=np.concatenate(feats),
            bias=np.zeros(len(score)), score=score, target=np.concatenate(targets),
            residual=score - pixels.reshape(len(score), -1).sum(1), rule=name)

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
