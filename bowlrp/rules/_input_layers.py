"""Rules of Deep Taylor Decomposition's input layers (paper 000 Sec. III.B) and the flat rule (eq. 2.27).

``Flat`` also applies to mapping stages; ``WSquare`` and ``ZBox`` to network
layers only.
"""

from numbers import Real

from .._backend import get_namespace
from .._validation import InvalidParameterError, check_number
from ..messages import FLOOR, _divide
from ._base import Rule, _WeightOnly


class Flat(_WeightOnly):
    """``R_{i<-j} = R_j / #{inputs of j}``: every input of an output alike (the flat rule, eq. 2.27).

    In a mapping stage the inputs of an output are those that send it a
    non-zero message (its receptive field in a sparse mapping); in a layer,
    every input the output sees (zero padding is not an input).  Exact.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> Flat().relevance(layer, x, R)
    array([[4., 4., 4.]])
    """

    name = "flat"
    exact = True
    phis = ("one",)

    def scales(self, sums, magnitude, R, xp):
        (n,) = sums
        reached = n > 0
        return (_divide(R, n, reached, xp),), reached

    def _weights(self, W):
        return get_namespace(W).ones_like(W)


class WSquare(_WeightOnly):
    """``R_i = sum_j w_ij^2 / sum_i' w_i'j^2 R_j`` (paper 000, eq. 12); network layers only.

    For a convolution the sum over ``i'`` runs over the inputs an output
    actually sees (zero padding is not an input), so the rule conserves at
    the border too.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> WSquare().relevance(layer, x, R)  # w^2 = 1, 1, 4
    array([[2., 2., 8.]])
    """

    name = "wsquare"
    exact = True
    stages = ("layer",)

    def _weights(self, W):
        return W * W


class ZBox(Rule):
    """The z^B-rule (paper 000, Sec. III.B) for inputs bounded by ``low <= x <= high``; layers only.

    ``q_ij = x_i w_ij - l_i w+_ij - h_i w-_ij >= 0`` when ``l <= x <= h``.
    ``low`` and ``high`` are scalars or arrays broadcastable to one input
    sample (``(C, H, W)``); for bowlrp's images in [0, 1] the default is the
    box ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> ZBox(0.0, 2.0).relevance(layer, x, R)  # q = 2, -1 + 2 (the w < 0 input at h = 2), 3
    array([[4., 2., 6.]])
    """

    name = "zbox"
    exact = True
    stages = ("layer",)

    def __init__(self, low=0.0, high=1.0):
        if isinstance(low, Real) and isinstance(high, Real):
            low, high = check_number(low, "low"), check_number(high, "high")
            if not low <= high:
                raise InvalidParameterError(f"ZBox needs low <= high, got low={low!r}, high={high!r}")
        self.low, self.high = low, high

    def params(self):
        return {"low": self.low, "high": self.high}

    def __eq__(self, other):
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self):
        return hash((type(self), repr(self)))

    def relevance(self, layer, x, R, trace=None):
        xp = get_namespace(x)
        lo = xp.broadcast_to(xp.asarray(self.low, dtype=x.dtype), x.shape[1:])
        hi = xp.broadcast_to(xp.asarray(self.high, dtype=x.dtype), x.shape[1:])
        lo, hi = xp.ascontiguousarray(xp.broadcast_to(lo, x.shape)), xp.ascontiguousarray(xp.broadcast_to(hi, x.shape))
        W = layer.W
        Wpos, Wneg = xp.maximum(W, 0), xp.minimum(W, 0)
        den = layer.apply(x, W) - layer.apply(lo, Wpos) - layer.apply(hi, Wneg)
        s = _divide(R, den, den > FLOOR, xp)
        return x * layer.apply_T(s, W, x.shape) - lo * layer.apply_T(s, Wpos, x.shape) - \
            hi * layer.apply_T(s, Wneg, x.shape)
