"""Forward messages and their safe division: what every LRP rule of :mod:`bowlrp.rules` is built from.

A mapping stage's forward messages ``z_ij`` are transformed elementwise
(:func:`phi`: the message, its positive or negative part, its magnitude, or 1
where it is non-zero), summed per output, and divided into the output's
relevance (eq. 2.11).  A denominator is usable only when it is not vanishing
against the messages it sums (:func:`usable`, ``RTOL`` and ``FLOOR``); see
:mod:`bowlrp.rules` for why.  :func:`redistribute_sparse` applies a rule to
messages stored sparsely (Bag-of-Words assignments), with ``bincount`` for
the column sums.

The names are re-exported by :mod:`bowlrp.rules`.
"""

import numpy as np

__all__ = ["phi", "usable", "redistribute_sparse", "PHIS", "RTOL", "FLOOR"]

PHIS = ("z", "pos", "neg", "abs", "one")

#: Denominators below ``RTOL * sum_i |z_ij|`` count as zero (see the module docstring).
RTOL = 1e-10
#: ... and so do denominators below this absolute floor (``R / FLOOR`` stays finite for ``|R| < 1e18``).
FLOOR = 1e-290


def phi(name, z, xp):
    """Elementwise transform ``name`` of forward messages ``z`` (see module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([1.0, -2.0, 0.0, 3.0])
    >>> phi("pos", z, np), phi("one", z, np)
    (array([1., 0., 0., 3.]), array([1., 1., 0., 1.]))
    >>> phi("square", z, np)
    Traceback (most recent call last):
    ...
    ValueError: unknown message transform 'square'; valid: ['z', 'pos', 'neg', 'abs', 'one']
    """
    if name == "z":
        return z
    if name == "pos":
        return xp.maximum(z, 0.0)
    if name == "neg":
        return xp.minimum(z, 0.0)
    if name == "abs":
        return xp.abs(z)
    if name == "one":
        return (z != 0).astype(z.dtype)
    raise ValueError(f"unknown message transform {name!r}; valid: {list(PHIS)}")


def usable(den, magnitude, xp):
    """Where ``den`` is a usable denominator: ``|den| > max(RTOL * magnitude, FLOOR)``.

    Examples
    --------
    >>> import numpy as np
    >>> usable(np.array([1e-12, 0.5, 0.0]), np.array([1.0, 1.0, 0.0]), np)  # 1e-12 vanishes against 1.0
    array([False,  True, False])
    """
    return xp.abs(den) > xp.maximum(RTOL * magnitude, FLOOR)


def _divide(num, den, ok, xp, out=None):
    """``num / den`` where ``ok``, else 0, without warnings (on NumPy one masked pass instead of three).

    ``out``: a float64 array of the broadcast shape to write into (a caller's reused buffer).
    """
    if xp is np:
        num, den, ok = np.asarray(num), np.asarray(den), np.asarray(ok)
        if out is None:
            shape = np.broadcast_shapes(num.shape, den.shape, ok.shape)
            out = np.zeros(shape, dtype=np.result_type(num, den, 1.0))
        else:
            out.fill(0.0)
        return np.divide(num, den, out=out, where=ok)
    if out is None:
        return xp.where(ok, num / xp.where(ok, den, 1.0), 0.0)
    xp.divide(num, xp.where(ok, den, 1.0), out=out)
    out *= ok
    return out


def _sign(z, xp):
    """``sign(z)`` with ``sign(0) = +1`` (paper 000, Supp. Sec. IV)."""
    return xp.where(z >= 0, 1.0, -1.0).astype(z.dtype)


def redistribute_sparse(rule, z, cols, n_cols, R, xp):
    """Apply ``rule`` to sparse forward messages.

    Parameters
    ----------
    rule : Rule
    z : array (n_entries,)
        Forward messages ``z_ij`` that may be non-zero.
    cols : int array (n_entries,)
        Output ``j`` of each message.
    n_cols : int
    R : array (n_cols,)
        Relevance of the outputs.

    Returns
    -------
    messages : array (n_entries,)
        ``R_{i<-j}`` for each stored message.
    reached : bool array (n_cols,)
        Outputs whose relevance the messages carry back.

    Examples
    --------
    Three messages into two outputs; the proportional rule (eq. 2.11) splits
    ``R_0 = 4`` as 1 : 3 and passes ``R_1 = 1`` to its only input.  A third
    output that no message reaches is reported as not reached:

    >>> import numpy as np
    >>> from bowlrp.rules import Proportional
    >>> z, cols = np.array([1.0, 3.0, 2.0]), np.array([0, 0, 1])
    >>> redistribute_sparse(Proportional(), z, cols, 3, np.array([4.0, 1.0, 2.0]), np)
    (array([1., 3., 1.]), array([ True,  True, False]))
    """
    magnitude = xp.bincount(cols, weights=xp.abs(z), minlength=n_cols)
    transformed = [phi(p, z, xp) for p in rule.phis]
    sums = tuple(xp.bincount(cols, weights=t, minlength=n_cols) for t in transformed)
    scales, reached = rule.scales(sums, magnitude, R, xp)
    messages = sum(t * s[cols] for t, s in zip(transformed, scales))
    return messages, reached
