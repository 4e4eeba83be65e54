"""Relevance rules for the mapping stages, as small validated objects.

A rule turns the forward messages ``z_ij`` of a stage (input ``i`` to output
``j``, aggregated as ``z_j = sum_i z_ij``, eq. 2.8) into the fractions
``v_ij`` with which the relevance ``R_j`` of an output is sent back to its
inputs: ``R_{i<-j} = v_ij R_j`` (eq. 2.11), ``R_i = sum_j R_{i<-j}`` (eq. 2.12).

Rules are created by name with :func:`get_rule`; an unknown name answers with
the valid ones.  Only rules that are implemented are registered.
"""

__all__ = ["Rule", "Proportional", "get_rule", "RULES"]


class Rule:
    """Base class: a rule maps sparse forward messages to redistribution fractions.

    Subclasses implement :meth:`fractions` and set ``name`` and ``exact``
    (whether the rule conserves relevance exactly for outputs it reaches).
    """

    name = None
    exact = False

    def fractions(self, z, cols, n_cols, xp):
        """Return ``(v, reached)`` for sparse forward messages.

        Parameters
        ----------
        z : array of shape (n_entries,)
            Forward messages ``z_ij`` (only the stored, possibly non-zero ones).
        cols : integer array of shape (n_entries,)
            Output index ``j`` of each message.
        n_cols : int
            Number of outputs.
        xp : module
            NumPy or CuPy.

        Returns
        -------
        v : array of shape (n_entries,)
            Fraction of ``R_j`` sent along each message.
        reached : bool array of shape (n_cols,)
            Outputs whose relevance the messages redistribute; the caller
            decides where the relevance of the other outputs goes (eq. 2.79).
        """
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self), tuple(sorted(vars(self).items()))))


class Proportional(Rule):
    """Proportional rule ``v_ij = z_ij / z_j`` (eq. 2.10, for BoW eq. 2.78-2.79).

    Conserves relevance exactly for every output with ``z_j != 0``.  Outputs
    with ``z_j = 0`` are reported as not reached, so that the calling stage can
    apply the zero-mapping case of eq. 2.79 instead of dividing by zero.
    """

    name = "z"
    exact = True

    def fractions(self, z, cols, n_cols, xp):
        zj = xp.bincount(cols, weights=z, minlength=n_cols)
        reached = zj != 0
        denom = xp.where(reached, zj, 1.0)
        return z / denom[cols], reached


RULES = {"z": Proportional}
_ALIASES = {"proportional": "z"}


def get_rule(rule):
    """Return a :class:`Rule` instance for ``rule`` (a name or a Rule).

    Examples
    --------
    >>> get_rule("z")
    Proportional()
    """
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, str):
        key = _ALIASES.get(rule.lower(), rule.lower())
        if key in RULES:
            return RULES[key]()
    valid = sorted(RULES) + sorted(_ALIASES)
    raise ValueError(f"unknown rule {rule!r}; valid rules are {valid}")
