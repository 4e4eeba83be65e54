"""PNG figures of the evaluation results (matplotlib, the optional ``plot`` extra)."""

import numpy as np

__all__ = ["plot_perturbation_curves", "plot_context_ratio", "plot_spray", "plot_spectrum", "plot_embedding",
           "plot_cluster_means", "plot_spray_report"]


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

    Examples
    --------
    >>> import os, tempfile, numpy as np, matplotlib.image
    >>> from bowlrp.evaluation import PerturbationResult
    >>> curves = {"lrp": [2.0, 1.0, 0.5], "random": [2.0, 1.8, 1.7]}  # one input, two steps
    >>> results = {k: PerturbationResult(np.array([[c]]), "morf", None) for k, c in curves.items()}
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     png = plot_perturbation_curves(results, os.path.join(folder, "aopc.png"), relative_to="random")
    ...     matplotlib.image.imread(png).shape  # two panels of 5.5 x 4 inches at 120 dpi, RGBA
    (480, 1320, 4)
    >>> plot_perturbation_curves(results, "aopc.png", relative_to="baseline")
    Traceback (most recent call last):
    ...
    ValueError: relative_to='baseline' is not one of ['lrp', 'random']
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

    Examples
    --------
    >>> import os, tempfile, matplotlib.image
    >>> per_class = {"cat": {"mean": 0.5, "median": 0.4}, "dog": {"mean": 1.2, "median": 1.0}}
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     png = plot_context_ratio({"bow": per_class, "fisher": per_class}, os.path.join(folder, "mu.png"))
    ...     matplotlib.image.imread(png).shape  # 1.2 inches per bar, 4 inches high, 120 dpi
    (480, 576, 4)
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


def _relevance_cmap():
    from matplotlib.colors import ListedColormap  # noqa: PLC0415

    from ..viz import heatmap_rgb  # noqa: PLC0415

    return ListedColormap(heatmap_rgb(np.linspace(-1, 1, 256)[None], 1.0)[0] / 255.0, name="bowlrp_relevance")


def _cluster_colours(k):
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if k <= 10 else "tab20")
    return [cmap(c % cmap.N) for c in range(k)]


def plot_spectrum(spray, path=None, ax=None, title=None):
    """The smallest eigenvalues of ``L_sym`` with the eigengap marked (thesis Fig. 6.3).

    Draws into ``ax`` when given, else into a new figure written to ``path``.
    Returns ``path`` (or ``ax``).

    Examples
    --------
    >>> import os, tempfile, numpy as np, matplotlib.image
    >>> from bowlrp.evaluation import SpRAy
    >>> maps = np.random.default_rng(0).random((12, 8, 8)) * 0.1
    >>> maps[:6, :4, :4] += 1.0  # six maps look top-left, six bottom-right
    >>> maps[6:, 4:, 4:] += 1.0
    >>> spray = SpRAy(grid=(2, 2), n_neighbors=3, n_eigenvalues=4, embedding="spectral", random_state=0).fit(maps)
    >>> spray.n_clusters_, spray.eigengap_
    (2, 1.0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     matplotlib.image.imread(plot_spectrum(spray, os.path.join(folder, "spectrum.png"))).shape
    (480, 600, 4)
    """
    plt = _pyplot()
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5, 4))
    ev = np.asarray(spray.eigenvalues_)
    idx = np.arange(1, len(ev) + 1)
    k, gap = spray.n_clusters_, spray.eigengap_
    ax.plot(idx, ev, "o-", color="0.3", ms=5)
    ax.plot(idx[:k], ev[:k], "o", color="tab:red", ms=7, label=f"{k} cluster(s) before the gap")
    if k < len(ev):
        ax.annotate("", xy=(k + 0.5, ev[k]), xytext=(k + 0.5, ev[k - 1]),
                    arrowprops=dict(arrowstyle="<->", color="tab:red", lw=1.5))
        ax.text(k + 0.65, (ev[k] + ev[k - 1]) / 2, f"eigengap {gap:.3f}", color="tab:red", va="center", fontsize=8)
    ax.set_xticks(idx)
    ax.set_xlabel("index i")
    ax.set_ylabel("eigenvalue lambda_i of L_sym")
    ax.set_title(title or f"spectrum of {len(spray.labels_)} relevance maps")
    ax.legend(fontsize=8, loc="lower right")
    if own:
        return _save(fig, path)
    return ax


def plot_embedding(spray, path=None, ax=None, truth=None, truth_names=("no", "yes"), title=None):
    """The 2-D embedding, coloured by cluster; ``truth`` (0/1 per map, e.g. "carries the mark") sets the marker.

    Returns ``path`` (or ``ax``).

    Examples
    --------
    >>> import os, tempfile, numpy as np, matplotlib.image
    >>> from bowlrp.evaluation import SpRAy
    >>> maps = np.random.default_rng(0).random((12, 8, 8)) * 0.1
    >>> maps[:6, :4, :4] += 1.0  # six maps look top-left, six bottom-right
    >>> maps[6:, 4:, 4:] += 1.0
    >>> spray = SpRAy(grid=(2, 2), n_neighbors=3, n_eigenvalues=4, embedding="spectral", random_state=0).fit(maps)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     png = plot_embedding(spray, os.path.join(folder, "embedding.png"), truth=[0] * 6 + [1] * 6)
    ...     matplotlib.image.imread(png).shape
    (480, 600, 4)
    >>> plot_embedding(SpRAy(grid=(2, 2), n_neighbors=3, embedding=None).fit(maps), "embedding.png")
    Traceback (most recent call last):
    ...
    ValueError: the SpRAy has no embedding; fit it with embedding='tsne' or 'spectral'
    """
    plt = _pyplot()
    if getattr(spray, "embedding_", None) is None:
        raise ValueError("the SpRAy has no embedding; fit it with embedding='tsne' or 'spectral'")
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5, 4))
    Z, labels = np.asarray(spray.embedding_), np.asarray(spray.labels_)
    k = int(labels.max()) + 1
    colours = _cluster_colours(k)
    markers = ("o", "^")
    t = np.zeros(len(Z), dtype=int) if truth is None else np.asarray(truth).astype(int)
    for c in range(k):
        named = False
        for v in np.unique(t):
            sel = (labels == c) & (t == v)
            if sel.any():
                lab = None if named else f"cluster {c} ({int((labels == c).sum())})"
                named = True
                ax.scatter(Z[sel, 0], Z[sel, 1], s=22, color=colours[c], marker=markers[v % 2], label=lab,
                           edgecolors="k", linewidths=0.3)
    if truth is not None:
        for v in np.unique(t):
            ax.scatter([], [], marker=markers[v % 2], color="w", edgecolors="k", label=f"{truth_names[v]}")
    kind = "t-SNE" if getattr(spray, "embedding", "tsne") in ("tsne", True) else "spectral"
    ax.set_xlabel(f"{kind} coordinate 1")
    ax.set_ylabel(f"{kind} coordinate 2")
    ax.set_title(title or f"{kind} embedding, coloured by cluster")
    ax.legend(fontsize=7, title="colour: cluster (size)" + ("; marker: truth" if truth is not None else ""),
              title_fontsize=7, loc="best")
    if own:
        return _save(fig, path)
    return ax


def _pixel_axes(ax):
    """Label an image panel's axes in pixels, with small ticks."""
    ax.set_xlabel("x (pixels)", fontsize=6)
    ax.set_ylabel("y (pixels)", fontsize=6)
    ax.tick_params(labelsize=5, length=2)


def _example_heatmap(fig, ax, R, cmap, title):
    """One map scaled to max |R| = 1 (eq. 2.62), with its labelled colour scale."""
    R = np.asarray(R, dtype=np.float64)
    im = ax.imshow(R / (float(np.abs(R).max()) or 1.0), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cb.set_label("R / max|R|", fontsize=6)
    cb.ax.tick_params(labelsize=5)


def _examples(labels, c, n, scores=None):
    idx = np.flatnonzero(labels == c)
    if scores is not None:
        idx = idx[np.argsort(-np.asarray(scores)[idx], kind="stable")]
    return idx[:n]


def plot_cluster_means(spray, heatmaps, images, path, n_examples=3, scores=None, title=None):
    """One row per cluster: its mean heatmap, then a few of its images with their heatmaps.

    Each map is scaled to ``max |R| = 1`` before averaging (eq. 2.62); maps of
    different sizes are resized to one (:meth:`SpRAy.cluster_means`).  The
    examples are the highest-``scores`` members when ``scores`` is given.

    Examples
    --------
    >>> import os, tempfile, numpy as np, matplotlib.image
    >>> from bowlrp.evaluation import SpRAy
    >>> maps = np.random.default_rng(0).random((12, 8, 8)) * 0.1
    >>> maps[:6, :4, :4] += 1.0  # six maps look top-left, six bottom-right
    >>> maps[6:, 4:, 4:] += 1.0
    >>> spray = SpRAy(grid=(2, 2), n_neighbors=3, n_eigenvalues=4, embedding="spectral", random_state=0).fit(maps)
    >>> images = (maps * 200).astype(np.uint8)
    >>> with tempfile.TemporaryDirectory() as folder:  # n_examples=0: the mean heatmaps only
    ...     png = plot_cluster_means(spray, maps, images, os.path.join(folder, "means.png"), n_examples=0)
    ...     matplotlib.image.imread(png).shape  # one row per cluster
    (564, 324, 4)
    """
    plt = _pyplot()
    from ..viz import gray_rgb  # noqa: PLC0415

    means = spray.cluster_means(heatmaps)
    maps = list(heatmaps.pixels) if hasattr(heatmaps, "pixels") else list(heatmaps)
    labels = np.asarray(spray.labels_)
    k = len(means)
    cols = 1 + 2 * n_examples
    fig, axes = plt.subplots(k, cols, figsize=(1.9 * cols + 0.8, 2.1 * k + 0.5), squeeze=False)
    cmap = _relevance_cmap()
    for c in range(k):
        ax = axes[c, 0]
        S = float(np.abs(means[c]).max()) or 1.0
        im = ax.imshow(means[c], cmap=cmap, vmin=-S, vmax=S, interpolation="nearest")
        ax.set_title(f"cluster {c}: mean of {int((labels == c).sum())}", fontsize=8)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        cb.set_label("mean R / max|R|", fontsize=7)
        cb.ax.tick_params(labelsize=6)
        for j, i in enumerate(_examples(labels, c, n_examples, scores)):
            img = gray_rgb(np.asarray(images[i]))
            axes[c, 1 + 2 * j].imshow(img, interpolation="nearest")
            axes[c, 1 + 2 * j].set_title(f"image {i}", fontsize=8)
            _example_heatmap(fig, axes[c, 2 + 2 * j], maps[i], cmap, f"heatmap {i} (red: for)")
    for ax in axes.ravel():
        if ax.images:
            _pixel_axes(ax)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_spray(spray, path, labels=None, title=None):
    """SpRAy figure: the spectrum (eigengap marked) and, when there is one, the embedding.

    ``labels`` (0/1 per map, e.g. the truth) sets the embedding's markers.

    Examples
    --------
    >>> import os, tempfile, numpy as np, matplotlib.image
    >>> from bowlrp.evaluation import SpRAy
    >>> maps = np.random.default_rng(0).random((12, 8, 8)) * 0.1
    >>> maps[:6, :4, :4] += 1.0  # six maps look top-left, six bottom-right
    >>> maps[6:, 4:, 4:] += 1.0
    >>> spray = SpRAy(grid=(2, 2), n_neighbors=3, n_eigenvalues=4, embedding="spectral", random_state=0).fit(maps)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     matplotlib.image.imread(plot_spray(spray, os.path.join(folder, "spray.png"))).shape  # two panels
    (480, 1200, 4)
    """
    plt = _pyplot()
    has_emb = getattr(spray, "embedding_", None) is not None
    fig, axes = plt.subplots(1, 2 if has_emb else 1, figsize=(10 if has_emb else 5, 4), squeeze=False)
    plot_spectrum(spray, ax=axes[0, 0])
    if has_emb:
        plot_embedding(spray, ax=axes[0, 1], truth=labels)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_spray_report(spray, heatmaps, images, path, truth=None, truth_names=("no", "yes"), n_examples=2,
                      title=None):
    """Spectrum, embedding and each cluster's mean heatmap with example images, in one PNG.

    Returns ``path``.  ``heatmaps`` (and ``images``) are the maps ``spray``
    was fitted on, in the same order.

    Examples
    --------
    Drawing the figure takes a few seconds; the maps are checked first:

    >>> import os, tempfile, numpy as np, matplotlib.image
    >>> from bowlrp.evaluation import SpRAy
    >>> maps = np.random.default_rng(0).random((12, 8, 8)) * 0.1
    >>> maps[:6, :4, :4] += 1.0  # six maps look top-left, six bottom-right
    >>> maps[6:, 4:, 4:] += 1.0
    >>> spray = SpRAy(grid=(2, 2), n_neighbors=3, n_eigenvalues=4, embedding="spectral", random_state=0).fit(maps)
    >>> images = (maps * 200).astype(np.uint8)
    >>> plot_spray_report(spray, maps[:10], images[:10], "report.png")
    Traceback (most recent call last):
    ...
    ValueError: got 10 maps for 12 clustered ones; pass the maps fitted
    """
    plt = _pyplot()
    from ..viz import gray_rgb  # noqa: PLC0415

    means = spray.cluster_means(heatmaps)
    maps = list(heatmaps.pixels) if hasattr(heatmaps, "pixels") else list(heatmaps)
    labels = np.asarray(spray.labels_)
    k = len(means)
    ncol = 1 + 2 * n_examples
    fig = plt.figure(figsize=(max(10.0, 2.0 * ncol + 1), 4.2 + 2.0 * k))
    grid = fig.add_gridspec(1 + k, ncol, height_ratios=[2.1] + [1.0] * k)
    half = ncol // 2
    plot_spectrum(spray, ax=fig.add_subplot(grid[0, :half]))
    if spray.embedding_ is not None:
        plot_embedding(spray, ax=fig.add_subplot(grid[0, half:]), truth=truth, truth_names=truth_names)
    cmap = _relevance_cmap()
    for c in range(k):
        ax = fig.add_subplot(grid[1 + c, 0])
        S = float(np.abs(means[c]).max()) or 1.0
        im = ax.imshow(means[c], cmap=cmap, vmin=-S, vmax=S, interpolation="nearest")
        extra = ""
        if truth is not None:
            extra = f", {int(np.sum(np.asarray(truth)[labels == c]))} {truth_names[1]}"
        ax.set_title(f"cluster {c} mean ({int((labels == c).sum())} maps{extra})", fontsize=8)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        cb.set_label("mean R / max|R|", fontsize=7)
        cb.ax.tick_params(labelsize=6)
        _pixel_axes(ax)
        for j, i in enumerate(_examples(labels, c, n_examples)):
            a1, a2 = fig.add_subplot(grid[1 + c, 1 + 2 * j]), fig.add_subplot(grid[1 + c, 2 + 2 * j])
            a1.imshow(gray_rgb(np.asarray(images[i])), interpolation="nearest")
            a1.set_title(f"cluster {c}: image {i}", fontsize=8)
            _example_heatmap(fig, a2, maps[i], cmap, "its heatmap (red: for)")
            for a in (a1, a2):
                _pixel_axes(a)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)
