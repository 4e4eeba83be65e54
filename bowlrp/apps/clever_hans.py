"""``bowlrp demo clever-hans``: heatmaps and SpRAy find a planted watermark (thesis Ch. 4 and 6).

The thesis' Fisher-vector model recognised horses by a copyright tag in the
corner of a fifth of the horse photographs (Ch. 4); SpRAy (Ch. 6) found that
strategy by clustering the explanations of the horse class.  This demo plants
such a mark (:func:`bowlrp.datasets.watermark.stamp_watermark`, the
``"big-tag"``: a white 24 x 24 label with black bars, bottom-left) in half of
one class's training images, trains a model, and tells the story in numbers:

* accuracy on clean test images and on test images of the *other* class that
  carry the mark: the share of their decisions the mark flips is the model's
  hidden dependence;
* the share of the positive relevance that falls on the mark, against the
  mark's share of the image area;
* SpRAy on the explanations of the marked class (half of its test images
  carry the mark): the eigenvalue spectrum and its eigengap, the clusters, and
  their adjusted Rand index (ARI) against the marked / unmarked truth;
* the same for a model trained on the same images without marks: SpRAy must
  not find a cluster that looks at the mark there.

Studies (:data:`STUDIES`):

``toy``
    The toy polygons (:func:`bowlrp.datasets.make_polygons`) with squarer
    round shapes (``lp_range=(3, 5)``, a harder task, as the horse class was
    hard), the mark in half of the positive tiles, the thesis' two-scale
    Bag-of-Words HIK model (64 words per scale, 600 training tiles).
``photos``
    Tiles of scikit-image's gravel photograph in two classes that look alike
    (alternate tiles), so the mark is the only cue the model has, as the tag
    was the easiest cue for the horse class; a Fisher-vector model
    (``fv-linear``, 4 GMM components on 16 PCA dimensions).
``photos-distinct``
    The same on grass against gravel, classes the texture tells apart: the
    model still leans on the mark (it flips decisions), but the texture
    relevance swamps the mark in the heatmaps and SpRAy does not separate
    the two groups (docs/clever_hans.md has the numbers).

Training tiles are cut from the top half of a photograph, test tiles from
the bottom half (64 x 64 pixels, stride 32).
"""

import html
import json
import os
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score

from ..datasets import make_polygons
from ..datasets.textures import load_textures
from ..datasets.watermark import stamp_watermark, watermark_mask
from ..evaluation import SpRAy
from ..evaluation.spray import pool_relevance
from .demo import toy_pipeline
from .models import make_model

__all__ = ["STUDIES", "SPRAY_NORMALISED", "photo_tiles", "relevance_share", "cheating_clusters", "run_study",
           "spray_choices", "run_clever_hans_demo", "plot_overview"]

#: The studies the demo runs, in order.
STUDIES = ("toy", "photos", "photos-distinct")
#: The mark planted in every study.
PATTERN = "big-tag"
#: A second SpRAy on the same maps: each pooled map scaled to unit L2 norm, blind to the size of the
#: score (SpRAy's defaults compare the maps as they are; docs/clever_hans.md has both).
SPRAY_NORMALISED = {"normalize": "l2"}
#: The toy study's round shapes: lp balls with p in this range (squarer than make_polygons' default).
TOY_LP_RANGE = (3.0, 5.0)
#: A cluster "looks at the mark" when its mean positive relevance share on the mark is this many times the area.
CHEAT_FACTOR = 3.0


def photo_tiles(names=("gravel", "gravel"), tile_size=64, stride=32):
    """Two-class tiles of scikit-image's texture photographs: training tiles from the top half, test from the bottom.

    ``names`` gives each class's photograph; when a photograph serves two
    classes, its tiles are dealt out alternately, so the classes look alike.

    Returns ``(X_train, y_train, X_test, y_test)`` (uint8 tiles, int labels).

    Examples
    --------
    >>> Xtr, ytr, Xte, yte = photo_tiles(("gravel", "gravel"), stride=64)
    >>> Xtr.shape, np.bincount(ytr).tolist(), Xte.shape, Xtr.dtype.name
    ((32, 64, 64), [16, 16], (32, 64, 64), 'uint8')
    """
    names = list(names)
    unique = list(dict.fromkeys(names))
    photos = load_textures(unique, tile_size=min(tile_size, 512)).photographs
    out = {"train": ([], []), "test": ([], [])}
    for k, name in enumerate(names):
        img = photos[unique.index(name)]
        half = img.shape[0] // 2
        users = [j for j, n in enumerate(names) if n == name]
        for split, (r0, r1) in (("train", (0, half)), ("test", (half, img.shape[0]))):
            tiles = [img[r:r + tile_size, c:c + tile_size] for r in range(r0, r1 - tile_size + 1, stride)
                     for c in range(0, img.shape[1] - tile_size + 1, stride)]
            tiles = tiles[users.index(k)::len(users)]
            out[split][0].extend(tiles)
            out[split][1].extend([k] * len(tiles))
    return (np.stack(out["train"][0]), np.asarray(out["train"][1]), np.stack(out["test"][0]),
            np.asarray(out["test"][1]))


def relevance_share(maps, mask):
    """The share of each map's positive relevance that falls on ``mask``: ``sum_mask R+ / sum R+``.

    Examples
    --------
    >>> mask = np.zeros((2, 2), bool)
    >>> mask[1, 0] = True
    >>> relevance_share([[[1.0, 1.0], [2.0, 0.0]], [[1.0, 0.0], [-3.0, 1.0]]], mask).tolist()
    [0.5, 0.0]
    """
    P = np.clip(np.asarray(maps, dtype=np.float64), 0.0, None)
    total = P.sum(axis=(1, 2))
    return P[:, mask].sum(axis=1) / np.where(total > 0, total, 1.0)


def cheating_clusters(spray, maps, mask, factor=CHEAT_FACTOR):
    """Clusters whose mean map puts more than ``factor`` x the mask's area of its positive relevance on the mask.

    Returns the cluster numbers and every cluster's share.

    Examples
    --------
    >>> from bowlrp.evaluation import SpRAy
    >>> rng = np.random.default_rng(0)
    >>> maps = rng.uniform(0.0, 0.1, size=(20, 16, 16))
    >>> maps[:10, 12:, :4] += 1.0                       # ten maps look at the corner
    >>> mask = np.zeros((16, 16), bool)
    >>> mask[12:, :4] = True
    >>> sp = SpRAy(n_clusters=2, embedding=None, random_state=0).fit(maps)
    >>> on_mark, share = cheating_clusters(sp, maps, mask)
    >>> len(on_mark), round(max(share), 2), round(min(share), 2), float(mask.mean())
    (1, 0.59, 0.09, 0.0625)
    """
    means = spray.cluster_means(maps)
    share = relevance_share(means, mask)
    return [int(c) for c in np.flatnonzero(share > factor * mask.mean())], share.tolist()


def _data(study, n_train, random_state):
    """(X_train, y_train, X_test, y_test, marked class, train marked, test marked, class names, pipeline factory)."""
    rng = np.random.default_rng(random_state)
    if study == "toy":
        d = make_polygons(n_train=n_train, n_test_images=2, lp_range=TOY_LP_RANGE, random_state=random_state)
        Xtr, ytr, Xte, yte = d.images, d.labels, d.test_images, d.test_labels
        names, marked_class = {-1: "round", 1: "polygon"}, 1
        factory = lambda: toy_pipeline(n_words=64, random_state=random_state)  # noqa: E731
    else:
        pair = ("gravel", "gravel") if study == "photos" else ("grass", "gravel")
        Xtr, ytr, Xte, yte = photo_tiles(pair)
        names = {0: "class A (gravel)", 1: "class B (gravel)"} if study == "photos" else {0: "grass", 1: "gravel"}
        marked_class = 0
        factory = lambda: make_model("fv-linear", {"fv__n_components": 4, "fv__pca": 16},  # noqa: E731
                                     random_state=random_state)
    mtr = (ytr == marked_class) & (rng.uniform(size=len(ytr)) < 0.5)
    mte = (yte == marked_class) & (rng.uniform(size=len(yte)) < 0.5)
    return Xtr, ytr, Xte, yte, marked_class, mtr, mte, names, factory


def _spray_summary(sp, maps, truth, mask):
    cheat, cluster_share = cheating_clusters(sp, maps, mask)
    k = int(sp.labels_.max()) + 1
    out = {"n_maps": int(len(maps)), "n_marked": int(truth.sum()), "eigenvalues": sp.eigenvalues_.tolist(),
           "eigengap": float(sp.eigengap_), "n_clusters": int(sp.n_clusters_),
           "cluster_sizes": np.bincount(sp.labels_).tolist(),
           "marked_per_cluster": [int(truth[sp.labels_ == c].sum()) for c in range(k)],
           "ari": float(adjusted_rand_score(truth, sp.labels_)),
           "cluster_positive_relevance_on_mark": cluster_share, "clusters_on_mark": cheat,
           "params": {p: (list(v) if isinstance(v, tuple) else v) for p, v in sp.get_params().items()}}
    # the clusters on the mark (judged by their mean maps, not by the truth) against all the others
    out["ari_on_mark_vs_rest"] = float(adjusted_rand_score(truth, np.isin(sp.labels_, cheat)))
    return out


def run_study(X_train, y_train, X_test, y_test, marked_class, train_marked, test_marked, make_pipeline,
              pattern=PATTERN, spray_params=None, extra_spray=None, random_state=0):
    """Train on ``X_train`` with the mark in ``train_marked``; measure its use; SpRAy on the marked class.

    Returns a dict of the figures (JSON-ready) and, under ``"_arrays"``, the
    pipeline, the SpRAy, the explained images, their maps and truth.

    Examples
    --------
    A Fisher-vector model on two classes of look-alike gravel tiles, the mark
    on every training tile of class 0 and on a quarter of its test tiles:

    >>> from bowlrp.apps.models import make_model
    >>> Xtr, ytr, Xte, yte = photo_tiles(stride=64)
    >>> r = run_study(Xtr, ytr, Xte, yte, 0, ytr == 0, (yte == 0) & (np.arange(32) % 4 == 0),
    ...               lambda: make_model("fv-linear", {"fv__n_components": 2, "fv__pca": 8}))
    >>> r["other_class_called_marked_class"]           # the mark flips the other class
    {'clean': 0.0, 'with_mark': 1.0}
    >>> r["spray"]["n_maps"], r["positive_relevance_on_mark"]["marked"] > 3 * r["mark_area"]
    (16, True)
    """
    Xtr = stamp_watermark(X_train, train_marked, pattern=pattern) if np.any(train_marked) else X_train
    t = time.perf_counter()
    pipe = make_pipeline().fit(Xtr, y_train)
    fit_s = time.perf_counter() - t
    classes = list(pipe.classes_)
    Xte = stamp_watermark(X_test, test_marked, pattern=pattern) if np.any(test_marked) else X_test
    other = y_test != marked_class
    flipped = stamp_watermark(X_test, other, pattern=pattern)
    p_clean, p_test, p_flip = pipe.predict(X_test), pipe.predict(Xte), pipe.predict(flipped)
    sel = np.flatnonzero(y_test == marked_class)
    t = time.perf_counter()
    exp = pipe.explain(Xte[sel], target=marked_class)
    explain_s = time.perf_counter() - t
    maps = np.stack([np.asarray(m, dtype=np.float64) for m in exp.pixels])
    truth = np.asarray(test_marked)[sel].astype(int)
    mask = watermark_mask(X_test.shape[1:3], pattern)
    share = relevance_share(maps, mask)
    sp = SpRAy(random_state=random_state, **(spray_params or {})).fit(maps)
    res = {
        "n_train": int(len(y_train)), "n_train_marked": int(np.sum(train_marked)),
        "n_test": int(len(y_test)), "marked_class": marked_class if not hasattr(marked_class, "item")
        else marked_class.item(), "classes": [c.item() if hasattr(c, "item") else c for c in classes],
        "accuracy_clean_test": float(np.mean(p_clean == y_test)),
        "accuracy_test_as_planted": float(np.mean(p_test == y_test)),
        "other_class_called_marked_class": {"clean": float(np.mean(p_clean[other] == marked_class)),
                                            "with_mark": float(np.mean(p_flip[other] == marked_class))},
        "accuracy_other_class": {"clean": float(np.mean(p_clean[other] == y_test[other])),
                                 "with_mark": float(np.mean(p_flip[other] == y_test[other]))},
        "mark_area": float(mask.mean()),
        "positive_relevance_on_mark": {"marked": float(share[truth == 1].mean()) if truth.any() else None,
                                       "unmarked": float(share[truth == 0].mean()) if (truth == 0).any() else None},
        "spray": _spray_summary(sp, maps, truth, mask),
        "seconds": {"fit": fit_s, "explain": explain_s},
    }
    if extra_spray is not None:
        res["spray_normalised"] = _spray_summary(
            SpRAy(embedding=None, random_state=random_state, **extra_spray).fit(maps), maps, truth, mask)
    res["_arrays"] = {"pipeline": pipe, "spray": sp, "images": Xte[sel], "maps": maps, "truth": truth, "mask": mask}
    return res


#: The SpRAy choices :func:`spray_choices` measures; ``n_neighbors`` None is SpRAy's default
#: (:func:`bowlrp.evaluation.spray.default_neighbors`), ``"ln"`` is ``ceil(ln n)``.
CHOICES = {"grid": ((2, 2), (4, 4), (8, 8), (10, 10), (16, 16)), "n_neighbors": (None, "ln", 8),
           "normalize": ("none", "l2", "sum", "max"), "part": ("signed", "absolute")}


def spray_choices(maps, truth, choices=None, random_state=0):
    """ARI of SpRAy (its own number of clusters) against ``truth`` for every combination of ``choices``.

    One factor at a time around the defaults would miss interactions; the
    grid is small (maps are pooled once per grid and part).  Returns a list
    of dicts ``grid, n_neighbors, normalize, part, n_clusters, eigengap, ari``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> maps = rng.uniform(0.0, 0.1, size=(30, 16, 16))
    >>> maps[::2, 12:, :4] += 1.0
    >>> truth = np.arange(30) % 2 == 0
    >>> rows = spray_choices(maps, truth, {"grid": ((4, 4),), "n_neighbors": (None, 3), "normalize": ("none",),
    ...                                    "part": ("signed",)})
    >>> [(r["n_neighbors"], r["n_clusters"], r["ari"]) for r in rows]
    [('default', 2, 1.0), (3, 2, 1.0)]
    """
    choices = {**CHOICES, **(choices or {})}
    rows = []
    for grid in choices["grid"]:
        for part in choices["part"]:
            pooled = pool_relevance(maps, grid, part)
            for normalize in choices["normalize"]:
                for k in choices["n_neighbors"]:
                    n_neighbors = int(np.ceil(np.log(len(pooled)))) if k == "ln" else k
                    sp = SpRAy(grid=grid, part=part, normalize=normalize, n_neighbors=n_neighbors, embedding=None,
                               random_state=random_state).fit(pooled)
                    label = {None: "default", "ln": "ceil(ln n)"}.get(k, k)
                    rows.append({"grid": f"{grid[0]}x{grid[1]}", "n_neighbors": label,
                                 "normalize": normalize, "part": part, "n_clusters": int(sp.n_clusters_),
                                 "eigengap": round(float(sp.eigengap_), 4),
                                 "ari": round(float(adjusted_rand_score(truth, sp.labels_)), 4)})
    return rows


def _panel(ax, img, title):
    ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("x (pixels)", fontsize=7)
    ax.set_ylabel("y (pixels)", fontsize=7)
    ax.tick_params(labelsize=6)


def _heat(fig, ax, R, title, label):
    from ..evaluation.plots import _relevance_cmap  # noqa: PLC0415

    S = float(np.abs(R).max()) or 1.0
    im = ax.imshow(R, cmap=_relevance_cmap(), vmin=-S, vmax=S, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("x (pixels)", fontsize=7)
    ax.set_ylabel("y (pixels)", fontsize=7)
    ax.tick_params(labelsize=6)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cb.set_label(label, fontsize=7)
    cb.ax.tick_params(labelsize=6)


def plot_overview(results, path, titles=None):
    """One row per study: a marked test image, its heatmap, each SpRAy cluster's mean heatmap, the spectrum.

    ``results`` maps a row title to a :func:`run_study` result; returns ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> from bowlrp.apps.models import make_model
    >>> Xtr, ytr, Xte, yte = photo_tiles(stride=64)
    >>> r = run_study(Xtr, ytr, Xte, yte, 0, ytr == 0, (yte == 0) & (np.arange(32) % 2 == 0),
    ...               lambda: make_model("fv-linear", {"fv__n_components": 2, "fv__pca": 8}))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = plot_overview({"photos": r}, os.path.join(folder, "overview.png"))
    ...     os.path.getsize(path) > 10_000
    True
    """
    from ..evaluation.plots import _pyplot, _save, plot_spectrum  # noqa: PLC0415

    plt = _pyplot()
    ncl = max(int(r["_arrays"]["spray"].labels_.max()) + 1 for r in results.values())
    ncl = min(ncl, 3)
    cols = 3 + ncl
    fig, axes = plt.subplots(len(results), cols, figsize=(2.9 * cols, 2.9 * len(results) + 0.4), squeeze=False)
    for row, (name, r) in enumerate(results.items()):
        a = r["_arrays"]
        sp, truth, maps = a["spray"], a["truth"], a["maps"]
        i = int(np.flatnonzero(truth == 1)[0]) if truth.any() else 0
        label = (titles or {}).get(name, name)
        _panel(axes[row, 0], a["images"][i], f"{label}\ntest image {'with' if truth[i] else 'without'} mark")
        share = relevance_share(maps[i:i + 1], a["mask"])[0]
        _heat(fig, axes[row, 1], maps[i], f"its heatmap: {share:.0%} of R+\non the mark ({a['mask'].mean():.0%} of area)",
              "relevance R")
        means = sp.cluster_means(maps)
        for c in range(ncl):
            ax = axes[row, 2 + c]
            if c >= len(means):
                ax.axis("off")
                continue
            n_c, m_c = int((sp.labels_ == c).sum()), int(truth[sp.labels_ == c].sum())
            _heat(fig, ax, means[c], f"SpRAy cluster {c}: {n_c} maps,\n{m_c} with the mark", "mean R / max|R|")
        plot_spectrum(sp, ax=axes[row, -1],
                      title=f"spectrum: eigengap {sp.eigengap_:.2f}\n-> {sp.n_clusters_} cluster(s), "
                      f"ARI {r['spray']['ari']:.2f}")
        axes[row, -1].title.set_fontsize(8)
    fig.suptitle("Clever Hans: a watermark in half of one class's training images, found by LRP and SpRAy",
                 fontsize=10)
    return _save(fig, path)


def _fmt(v):
    return "-" if v is None else f"{v:.2f}"


def _write_html(path, summary, figures):
    e = html.escape
    rows = []
    for name, r in summary["studies"].items():
        s = r["spray"]
        rel = r["positive_relevance_on_mark"]
        rows.append(
            f"<tr><td>{e(name)}</td><td>{r['accuracy_clean_test']:.3f}</td>"
            f"<td>{r['other_class_called_marked_class']['clean']:.2f} &rarr; "
            f"{r['other_class_called_marked_class']['with_mark']:.2f}</td>"
            f"<td>{_fmt(rel['marked'])} / {_fmt(rel['unmarked'])} / {r['mark_area']:.3f}</td>"
            f"<td>{s['n_clusters']} (gap {s['eigengap']:.3f})</td><td>{s['cluster_sizes']} / {s['marked_per_cluster']}</td>"
            f"<td>{s['ari']:.3f}</td><td>{s['clusters_on_mark'] or 'none'}</td>"
            + (f"<td>{r['spray_normalised']['n_clusters']} / {r['spray_normalised']['ari']:.3f}</td>"
               if "spray_normalised" in r else "<td>-</td>") + "</tr>")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>bowlrp: Clever Hans</title>',
        "<style>body{font-family:system-ui,Helvetica,Arial,sans-serif;margin:1.5em;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;font-size:.9em}"
        "img{max-width:100%;border:1px solid #ddd;margin:6px 0}</style></head><body>",
        "<h1>Find the Clever Hans: a planted watermark, found by heatmaps and SpRAy</h1>",
        f"<p>The mark ({e(summary['pattern'])}, bottom-left) was planted in half of one class's training images "
        "and in half of that class's test images. Each study trains the model once with the marks ('cheat') and "
        "once without ('clean') and explains the marked class's test images. "
        f"Total {summary['seconds']['total']:.0f} s.</p>",
        "<table><tr><th>study</th><th>clean test accuracy</th><th>other class called the marked class: "
        "clean &rarr; with the mark</th><th>share of R+ on the mark: marked / unmarked images / mark area</th>"
        "<th>SpRAy clusters (eigengap)</th><th>cluster sizes / marked per cluster</th><th>ARI vs truth</th>"
        "<th>clusters on the mark</th><th>maps scaled to unit L2 norm: clusters / ARI</th></tr>",
        *rows, "</table>",
    ]
    for title, fig in figures:
        parts.append(f"<h2>{e(title)}</h2><img src=\"{e(fig)}\" alt=\"{e(title)}\">")
    parts.append('<p>Files: <a href="summary.json">summary.json</a>, spray_choices_*.csv.</p></body></html>')
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path


def run_clever_hans_demo(out="clever-hans", studies=STUDIES, n_train=600, measure_choices=True, random_state=0,
                         log=print):
    """Run the studies into ``out``; returns the summary dict (also ``summary.json``).

    For each study ``s`` (:data:`STUDIES`), a cheating model (``s``) and a
    clean one (``s-clean``); files: ``clever_hans.png`` (the overview),
    ``spray_<run>.png`` (spectrum, embedding and cluster means of each run),
    ``spray_choices_<s>.csv`` (SpRAy's ARI for each choice of grid,
    neighbours, normalisation and part, cheating models), ``summary.json``,
    ``index.html``.

    Examples
    --------
    ``bowlrp demo clever-hans --out clever-hans/`` runs it (3 minutes on 2
    cores); a study it does not know is an error before any work:

    >>> run_clever_hans_demo("clever-hans", studies=("horses",))
    Traceback (most recent call last):
    ...
    ValueError: unknown studies ['horses']; valid studies are ['toy', 'photos', 'photos-distinct']
    """
    import csv  # noqa: PLC0415

    from ..evaluation.plots import plot_spray_report  # noqa: PLC0415

    unknown = [s for s in studies if s not in STUDIES]
    if unknown:
        raise ValueError(f"unknown studies {unknown}; valid studies are {list(STUDIES)}")
    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    results, figures = {}, []
    for study in studies:
        Xtr, ytr, Xte, yte, mc, mtr, mte, names, factory = _data(study, n_train, random_state)
        for cheat in (True, False):
            run = study if cheat else f"{study}-clean"
            log(f"[{run}] training on {len(ytr)} images ({int(mtr.sum()) if cheat else 0} marked) ...")
            r = run_study(Xtr, ytr, Xte, yte, mc, mtr if cheat else np.zeros_like(mtr), mte, factory,
                          extra_spray=SPRAY_NORMALISED, random_state=random_state)
            r["class_names"] = {str(k): v for k, v in names.items()}
            results[run] = r
            s, rel, flip = r["spray"], r["positive_relevance_on_mark"], r["other_class_called_marked_class"]
            log(f"[{run}] accuracy on clean test images {r['accuracy_clean_test']:.3f}; "
                f"{names[[k for k in names if k != mc][0]]!s} images called {names[mc]!s}: {flip['clean']:.0%} clean, "
                f"{flip['with_mark']:.0%} with the mark")
            log(f"[{run}] share of R+ on the mark: {rel['marked']:.3f} (marked images), {rel['unmarked']:.3f} "
                f"(unmarked); the mark covers {r['mark_area']:.3f} of the image")
            log(f"[{run}] SpRAy on {s['n_maps']} explanations ({s['n_marked']} marked): eigenvalues "
                f"{np.round(s['eigenvalues'][:5], 3).tolist()} ..., eigengap {s['eigengap']:.3f} -> "
                f"{s['n_clusters']} cluster(s) {s['cluster_sizes']} (marked {s['marked_per_cluster']}); "
                f"ARI {s['ari']:.3f}; clusters on the mark: {s['clusters_on_mark'] or 'none'}")
            u = r["spray_normalised"]
            log(f"[{run}] SpRAy on maps scaled to unit L2 norm: {u['n_clusters']} cluster(s) "
                f"{u['cluster_sizes']} (marked {u['marked_per_cluster']}), eigengap {u['eigengap']:.3f}; "
                f"ARI {u['ari']:.3f}; clusters on the mark: {u['clusters_on_mark'] or 'none'}")
            a = r["_arrays"]
            fig = os.path.join(out, f"spray_{run}.png")
            plot_spray_report(a["spray"], a["maps"], a["images"], fig, truth=a["truth"],
                              truth_names=("unmarked", "marked"),
                              title=f"{run}: SpRAy on the explanations of {names[mc]} "
                              f"({'model trained with' if cheat else 'clean model, test images with'} the mark)")
            figures.append((f"{run}: SpRAy", os.path.basename(fig)))
            if cheat and measure_choices:
                rows = spray_choices(a["maps"], a["truth"], random_state=random_state)
                with open(os.path.join(out, f"spray_choices_{study}.csv"), "w", newline="", encoding="utf-8") as fh:
                    w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                    w.writeheader()
                    w.writerows(rows)
                r["spray_choices_best"] = max(rows, key=lambda x: x["ari"])
    overview = os.path.join(out, "clever_hans.png")
    plot_overview({k: v for k, v in results.items()}, overview)
    figures.insert(0, ("overview", os.path.basename(overview)))
    summary = {"pattern": PATTERN, "studies": {k: {kk: vv for kk, vv in v.items() if kk != "_arrays"}
                                                  for k, v in results.items()},
               "seconds": {"total": time.perf_counter() - t0}}
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, default=str)
    _write_html(os.path.join(out, "index.html"), summary, figures)
    log(f"wrote {overview}, index.html and summary.json to {out}/ in {summary['seconds']['total']:.0f} s")
    summary["_results"] = results
    return summary
