"""PNG figures of the evaluation results (matplotlib, the optional ``plot`` extra)."""

import numpy as np

__all__ = ["plot_perturbation_curves", "plot_context_ratio", "plot_spray"]


def _pyplot():
    try:
        import matplotlib  # noqa: PLC0415  (optional dependency)

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "bowlrp's plots need matplotlib: pip install 'bowlrp[plot]' (or pip install matplotlib)"
        ) from e
    return plt


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    _pyplot().close(fig)
    return path


def plot_perturbation_curves(results, path, relative_to=None, title=None):
    """Mean perturbation curves of several methods in one PNG (paper 003, Fig. 4).

    Parameters
    ----------
    results : dict of {name: PerturbationResult}
    path : str
        Output PNG file.
    relative_to : str or None
        Name of a baseline (e.g. ``"random"``); adds a second panel with each
        method's AOPC curve minus the baseline's.
    title : str or None

    Returns
    -------
    str : ``path``
    """
    if not results:
        raise ValueError("results is empty: pass {name: PerturbationResult}")
    if relative_to is not None and relative_to not in results:
        raise ValueError(f"relative_to={relative_to!r} is not one of {list(results)}")
    plt = _pyplot()
    ncols = 2 if relative_to is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4), squeeze=False)
    ax = axes[0, 0]
    for name, r in results.items():
        ax.plot(np.arange(r.n_steps + 1), r.mean_curve, label=f"{name} (AOPC {r.aopc:.3g})")
    ax.set_xlabel("perturbation steps k")
    ax.set_ylabel("mean f(x^(k))")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    if relative_to is not None:
        ax = axes[0, 1]
        base = results[relative_to]

        def running(r):
            d = r.mean_drop
            return np.cumsum(d) / np.arange(1, len(d) + 1)

        for name, r in results.items():
            if name != relative_to:
                n = min(r.n_steps, base.n_steps) + 1
                ax.plot(np.arange(n), running(r)[:n] - running(base)[:n], label=name)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("perturbation steps L")
        ax.set_ylabel(f"AOPC(L) - AOPC_{relative_to}(L)")
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_context_ratio(per_class, path, title="context ratio mu per class (eq. 4.11)"):
    """Bar chart of the mean (dot: median) ``mu`` per class from :func:`context_ratio_per_class`.

    ``per_class`` may also map model names to such dicts: one group of bars per model.
    """
    plt = _pyplot()
    if per_class and all(isinstance(v, dict) and "mean" not in v for v in per_class.values()):
        models = per_class
    else:
        models = {"": per_class}
    classes = sorted({c for d in models.values() for c in d}, key=str)
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(classes) * len(models)), 4))
    w = 0.8 / len(models)
    for j, (name, d) in enumerate(models.items()):
        x = np.arange(len(classes)) + j * w
        ax.bar(x, [d.get(c, {}).get("mean", np.nan) for c in classes], width=w, label=name or None)
        ax.plot(x, [d.get(c, {}).get("median", np.nan) for c in classes], "k.", ms=6)
    ax.set_xticks(np.arange(len(classes)) + w * (len(models) - 1) / 2)
    ax.set_xticklabels([str(c) for c in classes])
    ax.set_ylabel("mu (outside / inside)")
    ax.set_title(title)
    if len(models) > 1:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_spray(spray, path, labels=None):
    """SpRAy figure: the Laplacian eigenvalues (eigengap marked) and the t-SNE embedding.

    ``labels`` colours the embedding (default: the cluster labels).
    """
    plt = _pyplot()
    has_emb = getattr(spray, "embedding_", None) is not None
    fig, axes = plt.subplots(1, 2 if has_emb else 1, figsize=(10 if has_emb else 5, 4), squeeze=False)
    ax = axes[0, 0]
    ev = spray.eigenvalues_
    ax.plot(np.arange(1, len(ev) + 1), ev, "o-")
    k = spray.n_clusters_
    ax.axvline(k + 0.5, color="r", ls="--", label=f"eigengap: {k} cluster(s)")
    ax.set_xlabel("index")
    ax.set_ylabel("eigenvalue of the normalised Laplacian")
    ax.legend(fontsize=8)
    if has_emb:
        ax = axes[0, 1]
        c = spray.labels_ if labels is None else np.asarray(labels)
        sc = ax.scatter(spray.embedding_[:, 0], spray.embedding_[:, 1], c=c, cmap="tab10", s=12)
        ax.set_title("t-SNE of the pooled relevance maps")
        fig.colorbar(sc, ax=ax)
    return _save(fig, path)
