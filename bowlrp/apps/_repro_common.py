"""Shared pieces of the reproduction runs: rows of the table, error bars, the cached data and models."""

import time
from dataclasses import dataclass, field

import numpy as np

VERDICTS = ("yes", "partly", "no", "not measured")


@dataclass
class Row:
    """One finding of a paper and what bowlrp measured for it.

    ``verdict`` is one of ``"yes"``, ``"partly"``, ``"no"`` (the finding
    reproduces, in part, or not) or ``"not measured"``; ``reason`` says why.
    """

    source: str
    claim: str
    measured: str
    protocol: str
    verdict: str
    reason: str
    numbers: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass
class Finding:
    """The rows of one group of findings, a Markdown section with the details, and the seconds it took."""

    key: str
    title: str
    rows: list
    details: str
    seconds: float = 0.0


def se(values):
    """Standard error of the mean over the finite entries of ``values`` (nan for fewer than 2)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def mean_se(values):
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return (float(v.mean()) if len(v) else float("nan")), se(v)


def binomial_se(p, n):
    """Standard error of an accuracy ``p`` measured on ``n`` samples."""
    return float(np.sqrt(p * (1.0 - p) / n)) if n > 0 else float("nan")


def median_se(values, n_boot=500, seed=0):
    """Median and its bootstrap standard error over the finite entries of ``values``."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return (float(v[0]) if len(v) else float("nan")), float("nan")
    rng = np.random.default_rng(seed)
    boots = np.median(v[rng.integers(0, len(v), (n_boot, len(v)))], axis=1)
    return float(np.median(v)), float(boots.std(ddof=1))


def pm(value, err, digits=3):
    """``"0.945 ± 0.011"`` (the error left out when it is not finite)."""
    if not np.isfinite(err):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {err:.{digits}f}"


def g(value, digits=3):
    """A number in ``digits`` significant digits."""
    return f"{value:.{digits}g}"


def md_table(header, rows):
    """A Markdown table from a header list and rows of cells (each cell converted with str)."""
    esc = [[str(c).replace("|", "\\|").replace("\n", " ") for c in r] for r in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in esc]
    return "\n".join(lines)


def two_columns(decision_function):
    """``X -> [-f(X), f(X)]``: column 1 scores ``classes_[1]``, column 0 ``classes_[0]``."""
    def predict(X):
        f = np.asarray(decision_function(X), dtype=np.float64).ravel()
        return np.stack([-f, f], axis=1)
    return predict


def paired_gain(result, random_result):
    """Per-image ``AOPC(method) - AOPC(random)`` (eq. 12, averaged over repetitions)."""
    return result.aopc_per_input - random_result.aopc_per_input


def balanced_subset(labels, n, seed):
    """Up to ``n`` indices, half of each label (+1 / -1) where possible, alternating."""
    rng = np.random.default_rng(seed)
    pos, neg = rng.permutation(np.flatnonzero(labels > 0)), rng.permutation(np.flatnonzero(labels < 0))
    n_pos = min(len(pos), (n + 1) // 2)
    n_neg = min(len(neg), n - n_pos)
    out = []
    for k in range(max(n_pos, n_neg)):
        if k < n_pos:
            out.append(pos[k])
        if k < n_neg:
            out.append(neg[k])
    return np.asarray(out, dtype=np.intp)


class Clock:
    """Seconds since creation; ``lap()`` returns the seconds since the previous lap."""

    def __init__(self):
        self.t0 = self.t = time.perf_counter()

    def lap(self):
        now = time.perf_counter()
        dt, self.t = now - self.t, now
        return dt

    @property
    def total(self):
        return time.perf_counter() - self.t0
