"""The base class of the LRP rules and the proportional form on a layer they share (see :mod:`bowlrp.rules`)."""

from .._backend import get_namespace
from ..messages import FLOOR, _divide, _sign, usable


class Rule:
    """Base class of the LRP rules.

    Attributes
    ----------
    name : str
        Registry name (:func:`get_rule`).
    exact : bool
        Whether the rule conserves relevance exactly for every output it
        reaches in a mapping stage (``sum_i R_{i<-j} = R_j``).
    phis : tuple of str
        The message transforms the mapping form needs.
    stages : tuple of str
        Where the rule applies: ``"mapping"`` (:meth:`scales`) and/or
        ``"layer"`` (:meth:`relevance`).

    Examples
    --------
    A mapping stage passes the column sums of the messages ``z_ij`` (here 3
    inputs, 2 outputs) and gets one scale per output, ``R_{i<-j} = z_ij s_j``:

    >>> import numpy as np
    >>> z = np.array([[2.0, 1.0], [-1.0, 0.0], [3.0, 0.0]])
    >>> rule = Proportional()
    >>> rule.phis, rule.exact, rule.stages
    (('z',), True, ('mapping', 'layer'))
    >>> (s,), reached = rule.scales((z.sum(0),), np.abs(z).sum(0), np.array([12.0, 5.0]), np)
    >>> s, reached
    (array([3., 5.]), array([ True,  True]))
    >>> z * s  # each column sums to its output's relevance
    array([[ 6.,  5.],
           [-3.,  0.],
           [ 9.,  0.]])
    """

    name = None
    exact = False
    phis = ("z",)
    stages = ("mapping", "layer")

    def scales(self, sums, magnitude, R, xp):
        """Per-output scales for each transform in :attr:`phis` (mapping stages, eq. 2.11).

        Parameters
        ----------
        sums : tuple of arrays (n_outputs,)
            ``sum_i phi(z_ij)`` for each ``phi`` in :attr:`phis`, in order.
        magnitude : array (n_outputs,)
            ``sum_i |z_ij|`` (a stage may pass an upper bound of it); zero for
            outputs without a non-zero message.
        R : array (n_outputs,)
            Relevance of the outputs.
        xp : module
            NumPy or CuPy.

        Returns
        -------
        scales : tuple of arrays (n_outputs,)
        reached : bool array (n_outputs,)
            Outputs whose relevance the messages carry back; the stage decides
            where the relevance of the others goes (e.g. eq. 2.79).
        """
        from . import RULES  # noqa: PLC0415 (the registry names every rule)

        raise ValueError(
            f"the {self.name!r} rule applies to network layers only; mapping stages take "
            f"{sorted(n for n, c in RULES.items() if 'mapping' in c.stages)}"
        )

    def relevance(self, layer, x, R, trace=None):
        """Relevance of the inputs ``x`` of a linear layer from the relevance ``R`` of its outputs."""
        raise ValueError(f"the {self.name!r} rule applies to mapping stages only, not to network layers")

    def params(self):
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.params() == other.params()

    def __hash__(self):
        return hash((type(self), tuple(sorted(self.params().items()))))


def _z_layer(layer, x, R, epsilon):
    """Proportional / epsilon rule on a layer: ``x * W^T (R / (z + eps sign z))`` (eq. 2.21-2.22)."""
    xp = get_namespace(x)
    z = layer.apply(x, layer.W, layer.b)
    if epsilon:
        den = z + epsilon * _sign(z, xp)
        ok = xp.abs(den) > FLOOR
    else:
        den = z
        mag = layer.apply(xp.abs(x), xp.abs(layer.W), xp.abs(layer.b))
        ok = usable(den, mag, xp)
    return x * layer.apply_T(_divide(R, den, ok, xp), layer.W, x.shape)


class _WeightOnly(Rule):
    """Rules whose messages depend on the weights only (DTD's w^2 and flat rules)."""

    def _weights(self, W):
        raise NotImplementedError

    def relevance(self, layer, x, R, trace=None):
        xp = get_namespace(x)
        V = self._weights(layer.W.astype(x.dtype, copy=False))  # in the explanation's precision
        den = layer.apply(xp.ones_like(x), V)
        return layer.apply_T(_divide(R, den, den > FLOOR, xp), V, x.shape)
