"""Training a :class:`~bowlrp.cnn.network.Sequential` network: losses, optimisers, the loop.

Losses take the network's outputs ``f`` and integer class indices:

* one output (binary): ``f`` is the score of class 1; ``"cross_entropy"`` is
  the logistic loss ``log(1 + exp(-t f))`` and ``"hinge"`` is
  ``max(0, 1 - t f)`` with ``t = +-1``;
* ``K >= 2`` outputs: ``"cross_entropy"`` is the softmax cross-entropy and
  ``"hinge"`` the one-vs-rest hinge ``sum_k max(0, 1 - t_k f_k)``.

``nonpositive_bias=True`` projects every bias onto ``b <= 0`` after each step
(and at initialisation), the assumption of Deep Taylor Decomposition (paper
000, Sec. III: ``b_j <= 0`` guarantees a root at the origin).
"""

import numpy as np

from .._backend import get_namespace

__all__ = ["loss_and_grad", "SGD", "Adam", "train", "LOSSES", "OPTIMIZERS"]

LOSSES = ("cross_entropy", "hinge")


def loss_and_grad(f, y, loss):
    """Mean loss over the batch and its gradient with respect to ``f`` (n, K).

    One output (two classes): ``y`` in {0, 1} and the logistic or hinge loss
    of ``(2 y - 1) f``; more outputs: softmax cross-entropy or one-vs-rest hinge.

    Examples
    --------
    >>> import numpy as np
    >>> loss, grad = loss_and_grad(np.array([[2.0], [-1.0]]), np.array([1, 1]), "hinge")
    >>> loss, grad  # the second sample is on the wrong side
    (1.0, array([[-0. ],
           [-0.5]]))
    >>> loss, grad = loss_and_grad(np.array([[2.0, 0.0]]), np.array([0]), "cross_entropy")
    >>> round(loss, 4), grad.round(4)
    (0.1269, array([[-0.1192,  0.1192]]))
    """
    xp = get_namespace(f)
    n, K = f.shape
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid losses: {list(LOSSES)}")
    if K == 1:
        t = (2.0 * y - 1.0).astype(f.dtype)[:, None]
        m = t * f
        if loss == "cross_entropy":
            val = xp.logaddexp(0.0, -m)
            e = xp.exp(-xp.abs(m))  # stable sigmoid(-m)
            g = -t * xp.where(m >= 0, e / (1.0 + e), 1.0 / (1.0 + e))
        else:
            val = xp.maximum(0.0, 1.0 - m)
            g = -t * (m < 1)
        return float(val.mean()), g / n
    if loss == "cross_entropy":
        s = f - f.max(1, keepdims=True)
        logp = s - xp.log(xp.exp(s).sum(1, keepdims=True))
        val = -logp[xp.arange(n), y]
        g = xp.exp(logp)
        g[xp.arange(n), y] -= 1.0
        return float(val.mean()), g / n
    t = -xp.ones_like(f)
    t[xp.arange(n), y] = 1.0
    m = t * f
    val = xp.maximum(0.0, 1.0 - m).sum(1)
    return float(val.mean()), (-t * (m < 1)) / n


class SGD:
    """Mini-batch SGD with (heavy-ball) momentum and optional weight decay.

    ``step(key, p, g)`` returns the updated parameter ``p`` and keeps the
    velocity of ``key``.

    Examples
    --------
    >>> import numpy as np
    >>> opt = SGD(learning_rate=0.1, momentum=0.9)
    >>> p = opt.step("W", np.array([1.0]), np.array([1.0]))  # 1 - 0.1
    >>> opt.step("W", p, np.array([1.0]))  # 0.9 - 0.9 * 0.1 - 0.1
    array([0.71])
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, weight_decay=0.0):
        self.learning_rate, self.momentum, self.weight_decay = learning_rate, momentum, weight_decay
        self.state = {}

    def step(self, key, p, g):
        if self.weight_decay:
            g = g + self.weight_decay * p
        v = self.state.get(key)
        v = -self.learning_rate * g if v is None else self.momentum * v - self.learning_rate * g
        self.state[key] = v
        return p + v


class Adam:
    """Adam (Kingma & Ba) with bias correction and optional weight decay.

    Examples
    --------
    >>> import numpy as np
    >>> Adam(learning_rate=0.1).step("W", np.array([1.0]), np.array([5.0]))  # a first step is lr, whatever |g|
    array([0.9])
    """

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.learning_rate, self.beta1, self.beta2, self.eps = learning_rate, beta1, beta2, eps
        self.weight_decay = weight_decay
        self.state = {}

    def step(self, key, p, g):
        xp = get_namespace(p)
        if self.weight_decay:
            g = g + self.weight_decay * p
        m, v, t = self.state.get(key, (xp.zeros_like(p), xp.zeros_like(p), 0))
        t += 1
        m = self.beta1 * m + (1 - self.beta1) * g
        v = self.beta2 * v + (1 - self.beta2) * g * g
        self.state[key] = (m, v, t)
        mh = m / (1 - self.beta1**t)
        vh = v / (1 - self.beta2**t)
        return p - self.learning_rate * mh / (xp.sqrt(vh) + self.eps)


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def _clip_bias(model, xp):
    for layer in model:
        if "b" in layer.params:
            layer.b = xp.minimum(layer.b, 0)


def train(model, X, y, *, loss="cross_entropy", optimizer="adam", learning_rate=1e-3, momentum=0.9,
          weight_decay=0.0, batch_size=32, epochs=10, nonpositive_bias=False, rng=None,
          augment=False, verbose=False, callback=None):
    """Train ``model`` in place on ``X`` (N, C, H, W) and class indices ``y``.

    ``augment=True`` applies a random one of the 8 flips / quarter turns of
    the square (dihedral group) to each batch (labels must be invariant).
    Returns the list of mean training losses per epoch.  ``callback(epoch,
    loss)`` is called after each epoch; ``verbose=True`` shows a tqdm bar.
    A loss that is not finite (a learning rate that diverges) stops training
    with a ``FloatingPointError``.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Flatten, Linear, Sequential
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((64, 1, 1, 2))
    >>> y = (X[:, 0, 0, 0] > 0).astype(int)  # the sign of the first input
    >>> net = Sequential([Flatten(), Linear(2, 1)]).init(rng)
    >>> losses = train(net, X, y, epochs=5, learning_rate=0.1, rng=0)
    >>> len(losses), bool(losses[-1] < losses[0])
    (5, True)
    """
    xp = get_namespace(X)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid optimizers: {sorted(OPTIMIZERS)}")
    kwargs = {"learning_rate": learning_rate, "weight_decay": weight_decay}
    if optimizer == "sgd":
        kwargs["momentum"] = momentum
    opt = OPTIMIZERS[optimizer](**kwargs)
    rng = np.random.default_rng(rng)
    if nonpositive_bias:
        _clip_bias(model, xp)
    n = len(X)
    history = []
    bar = None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * (-(-n // batch_size)), desc="training CNN", unit="batch")
    for epoch in range(epochs):
        order = xp.asarray(rng.permutation(n))
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb = X[idx]
            if augment:
                k, flip = int(rng.integers(4)), bool(rng.integers(2))
                xb = xp.rot90(xb, k, axes=(2, 3))
                xb = xp.ascontiguousarray(xb[..., ::-1] if flip else xb)
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below, not as warnings
                out, trace = model.forward(xb)
                val, g = loss_and_grad(out, y[idx], loss)
            if not np.isfinite(val):
                if bar is not None:
                    bar.close()
                raise FloatingPointError(
                    f"training diverged: the {loss} loss is {val} in epoch {epoch + 1}, after "
                    f"{start // batch_size} batch(es) of that epoch; lower learning_rate (now {learning_rate:g}) "
                    "or check the inputs"
                )
            with np.errstate(over="ignore", invalid="ignore"):
                _, grads = model.backward(g, trace)
                for k, layer in enumerate(model):
                    for p in layer.params:
                        setattr(layer, p, opt.step((k, p), getattr(layer, p), grads[k][p]))
            if nonpositive_bias:
                _clip_bias(model, xp)
            total += val * len(idx)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{val:.3f}")
        finite = xp.stack([xp.isfinite(getattr(layer, p)).all() for layer in model for p in layer.params])
        if not bool(finite.all()):  # one read from the device per epoch
            if bar is not None:
                bar.close()
            raise FloatingPointError(f"training diverged: the weights are not finite after epoch {epoch + 1}; "
                                     f"lower learning_rate (now {learning_rate:g})")
        history.append(total / n)
        if callback is not None:
            callback(epoch, history[-1])
    if bar is not None:
        bar.close()
    return history
