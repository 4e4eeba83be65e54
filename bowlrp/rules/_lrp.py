"""The rules for mapping stages and network layers alike: proportional, epsilon, alpha-beta, z+, magnitude.

Each class gives a rule's mapping form (:meth:`Rule.scales`, eq. 2.11) and its
layer form (:meth:`Rule.relevance`); :mod:`bowlrp.rules` has the table of
formulas.
"""

from .._backend import get_namespace
from .._validation import InvalidParameterError, check_number
from ..messages import FLOOR, RTOL, _divide, _sign, usable
from ._base import Rule, _z_layer


class Proportional(Rule):
    """``R_{i<-j} = z_ij / z_j R_j`` (eq. 2.10; for BoW eq. 2.78-2.79; LRP-0 on layers, eq. 2.21).

    Exact in mapping stages.  Outputs with a vanishing ``z_j`` are not
    reached, so that the stage can apply the zero-mapping case of eq. 2.79
    instead of dividing by zero.  On a layer the bias is part of ``z_j``
    (eq. 2.21); on ReLU networks with zero biases the rule equals gradient x
    input.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> Proportional().relevance(layer, x, R)
    array([[ 6., -3.,  9.]])
    """

    name = "z"
    exact = True
    phis = ("z",)

    def scales(self, sums, magnitude, R, xp):
        (zj,) = sums
        reached = usable(zj, magnitude, xp)
        return (_divide(R, zj, reached, xp),), reached

    def relevance(self, layer, x, R, trace=None):
        return _z_layer(layer, x, R, 0.0)


class Epsilon(Rule):
    """``R_{i<-j} = z_ij / (z_j + epsilon sign(z_j)) R_j`` with ``sign(0) = 1`` (eq. 2.22).

    Not exact: the stabiliser absorbs relevance, and without a bias term what
    reaches the inputs is ``R_j z_j / (z_j + epsilon sign(z_j))`` (eq. 2.23 with
    ``b_j = 0``).  Outputs without a non-zero message are not reached, nor
    (with ``epsilon=0``) outputs whose messages cancel to a vanishing ``z_j``:
    like the proportional rule, the stage then applies its zero-mapping case.
    On a layer the bias is part of ``z_j`` (thesis eq. 2.21).

    Parameters
    ----------
    epsilon : float, default=1.0
        Stabiliser, ``>= 0``.  The thesis uses 1 and 100 for Fisher vectors;
        on a CNN's logits a smaller value (the ``"epsilon"`` composite: 0.01)
        absorbs less.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> rel = Epsilon(1.0).relevance(layer, x, R)  # denominator z_j + 1 = 5
    >>> rel
    array([[ 4.8, -2.4,  7.2]])
    >>> float(rel.sum())  # the stabiliser absorbed 12 / 5
    9.6
    """

    name = "epsilon"
    phis = ("z",)

    def __init__(self, epsilon=1.0):
        self.epsilon = check_number(epsilon, "epsilon", low=0)

    def scales(self, sums, magnitude, R, xp):
        (zj,) = sums
        den = zj + self.epsilon * _sign(zj, xp)
        reached = (magnitude > 0) & usable(den, magnitude, xp)
        return (_divide(R, den, reached, xp),), reached

    def relevance(self, layer, x, R, trace=None):
        return _z_layer(layer, x, R, self.epsilon)


class AlphaBeta(Rule):
    """``R_{i<-j} = (alpha z+_ij / z+_j + beta z-_ij / z-_j) R_j`` (eq. 2.26).

    The thesis' convention: ``alpha + beta = 1`` with ``alpha >= 1``, so
    ``beta <= 0`` (``alpha=2, beta=-1`` is "alpha-beta 2/1"; ``alpha=1,
    beta=0`` is the z+ rule).  The positive messages receive ``alpha R_j`` and
    the negative ones ``beta R_j``; relevance is conserved exactly for outputs
    with both positive and negative messages.  Where all messages have one
    sign (or one part vanishes, see the module docstring), only the other part
    is sent: ``alpha R_j`` (or ``beta R_j``), as the equation reads.  On a
    layer ``z+_ij = (x_i w_ij)^+`` for inputs of any sign, and the positive
    (negative) part of the bias enters the positive (negative) denominator
    (paper 000, Supp. Sec. IV), so a positive bias absorbs relevance.

    Parameters
    ----------
    alpha : float, default=2.0
    beta : float, default=-1.0

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> AlphaBeta(2, -1).relevance(layer, x, R)  # 2 x 12 over (2, 3), -1 x 12 to the -1
    array([[  9.6, -12. ,  14.4]])
    >>> AlphaBeta(2, 1)  # the zennit spelling of the same rule
    Traceback (most recent call last):
    ...
    bowlrp._validation.InvalidParameterError: alpha-beta needs alpha + beta = 1 and alpha >= 1 (thesis eq. 2.26), got alpha=2, beta=1 (zennit and paper 000 write beta=1 for what is beta=-1 here); e.g. alpha=2, beta=-1 or alpha=1, beta=0
    """

    name = "alphabeta"
    phis = ("pos", "neg")

    def __init__(self, alpha=2.0, beta=-1.0):
        alpha = check_number(alpha, "alpha")
        beta = check_number(beta, "beta")
        if not (abs(alpha + beta - 1.0) <= 1e-12 and alpha >= 1):
            hint = (f" (zennit and paper 000 write beta={beta:g} for what is beta={-beta:g} here)"
                    if abs(alpha - beta - 1.0) < 1e-12 and beta > 0 else "")
            raise InvalidParameterError(
                f"alpha-beta needs alpha + beta = 1 and alpha >= 1 (thesis eq. 2.26), got alpha={alpha:g}, "
                f"beta={beta:g}{hint}; e.g. alpha=2, beta=-1 or alpha=1, beta=0"
            )
        self.alpha = alpha
        self.beta = beta

    def scales(self, sums, magnitude, R, xp):
        zp, zn = sums
        tiny = xp.maximum(RTOL * magnitude, FLOOR)
        return (
            _divide(self.alpha * R, zp, zp > tiny, xp),
            _divide(self.beta * R, zn, zn < -tiny, xp),
        ), magnitude > 0

    def relevance(self, layer, x, R, trace=None):
        xp = get_namespace(x)
        W, b = layer.W, layer.b
        xpos, xneg = xp.maximum(x, 0), xp.minimum(x, 0)
        Wpos, Wneg = xp.maximum(W, 0), xp.minimum(W, 0)

        def part(Wa, Wb, bias, sign):  # messages x+ Wa + x- Wb (+ the bias part of that sign)
            z = layer.apply(xpos, Wa, bias) + layer.apply(xneg, Wb)
            s = _divide(R, z, sign * z > FLOOR, xp)
            return xpos * layer.apply_T(s, Wa, x.shape) + xneg * layer.apply_T(s, Wb, x.shape)

        out = self.alpha * part(Wpos, Wneg, xp.maximum(b, 0), 1.0)
        if self.beta:
            out = out + self.beta * part(Wneg, Wpos, xp.minimum(b, 0), -1.0)
        return out


class ZPlus(AlphaBeta):
    """The z+-rule of Deep Taylor Decomposition (paper 000, Sec. III.B): ``q_ij = x_i w+_ij``.

    For inputs ``x >= 0`` (ReLU outputs) it is :class:`AlphaBeta` with
    ``alpha=1, beta=0``; a positive bias enters the denominator (paper 000,
    Sec. IV.D).

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> ZPlus().relevance(layer, x, R)  # the positive messages 2 and 3 share R
    array([[4.8, 0. , 7.2]])
    >>> rule = ZPlus()
    >>> rule.alpha, rule.beta
    (1.0, 0.0)
    """

    name = "zplus"

    def __init__(self):
        super().__init__(1.0, 0.0)

    def params(self):
        return {}


class Magnitude(Rule):
    """``R_{i<-j} = |z_ij| / sum_i' |z_i'j| R_j``: magnitudes only.

    Conserves exactly, but every input of an output gets relevance of the
    output's sign: the counter-example of eq. 2.7, compared in Fig. 4.3.  On a
    layer ``|z_ij| = |x_i| |w_ij|`` and the bias is left out, so it conserves
    there too.

    Examples
    --------
    >>> import numpy as np
    >>> from bowlrp.cnn import Linear
    >>> layer = Linear(3, 1, W=np.array([[1.0], [-1.0], [2.0]]))  # no bias
    >>> x = np.array([[2.0, 1.0, 1.5]])  # messages z_i = x_i w_i: 2, -1, 3
    >>> R = np.array([[12.0]])           # relevance of the output
    >>> Magnitude().relevance(layer, x, R)  # |z| = 2, 1, 3: all of the output's sign
    array([[4., 2., 6.]])
    """

    name = "abs"
    exact = True
    phis = ("abs",)

    def scales(self, sums, magnitude, R, xp):
        (za,) = sums
        reached = za > FLOOR
        return (_divide(R, za, reached, xp),), reached

    def relevance(self, layer, x, R, trace=None):
        xp = get_namespace(x)
        ax, aW = xp.abs(x), xp.abs(layer.W)
        den = layer.apply(ax, aW)
        return ax * layer.apply_T(_divide(R, den, den > FLOOR, xp), aW, x.shape)
