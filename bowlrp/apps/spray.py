"""``bowlrp spray``: cluster the explanations of one class with SpRAy (thesis Ch. 6) and write the figures.

:func:`spray_paths` explains the images with :func:`bowlrp.apps.explain.explain_paths`
(so the folder also holds the heatmap gallery), runs
:class:`bowlrp.evaluation.SpRAy` on the pixel maps and writes, beside the
gallery::

    spray.html      the SpRAy page: spectrum, embedding, each cluster's mean heatmap and members
    spectrum.png    the eigenvalues of L_sym with the eigengap marked
    embedding.png   the t-SNE embedding coloured by cluster
    clusters.png    each cluster's mean heatmap with example images and their heatmaps
    clusters.csv    path, cluster (one row per explained image)
    spray.json      eigenvalues, eigengap, cluster sizes, the SpRAy parameters
    index.html ...  the gallery of explain_paths (panels, thumbnails, summary.csv, pixel_maps.npz)
"""

import csv
import html
import json
import os
from urllib.parse import quote

import numpy as np

from ..datasets.folder import read_image
from ..evaluation import SpRAy
from ..evaluation.plots import plot_cluster_means, plot_embedding, plot_spectrum
from ..viz import heatmap_rgb, save_png
from .explain import check_output_folder, explain_paths

__all__ = ["class_paths", "spray_paths", "write_spray_html"]


def class_paths(paths, class_name):
    """The images of ``class_name``: those in a folder of that name, or all of ``paths`` when none is.

    Returns ``(selected paths, how)``, ``how`` saying which rule applied.

    Examples
    --------
    >>> paths = ["photos/cat/1.png", "photos/cat/2.png", "photos/dog/3.png"]
    >>> class_paths(paths, "cat")
    (['photos/cat/1.png', 'photos/cat/2.png'], "the 2 images in folders named 'cat'")
    >>> class_paths(paths, "horse")[1]
    "all 3 images (none lies in a folder named 'horse')"
    """
    paths = [os.fspath(p) for p in paths]
    if class_name is None:
        return paths, "all images"
    mine = [p for p in paths if os.path.basename(os.path.dirname(os.path.abspath(p))) == str(class_name)]
    if mine:
        return mine, f"the {len(mine)} images in folders named {class_name!r}"
    return paths, f"all {len(paths)} images (none lies in a folder named {class_name!r})"


def _load_maps(out, rows):
    with np.load(os.path.join(out, "pixel_maps.npz")) as z:
        return [np.asarray(z[r["npz_key"]], dtype=np.float64) for r in rows]


def spray_paths(pipeline, paths, out, *, target=None, n_clusters=None, spray_params=None, rule="z",
                rule_params=None, max_side=None, n_jobs=None, n_examples=3, title=None, meta=None,
                random_state=0, verbose=True, log=print):
    """Explain ``paths`` for ``target`` and cluster the explanations with SpRAy; write the files into ``out``.

    Parameters
    ----------
    pipeline : fitted ExplainablePipeline
    paths : sequence of str
        Image files (:func:`class_paths` picks one class's from a folder).
    out : str
        Output folder (created if missing).
    target : label or None
        The class explained in every image; None: each image's predicted class.
    n_clusters : int or None
        None: the eigengap decides (``SpRAy.n_clusters_``).
    spray_params : dict or None
        Other :class:`~bowlrp.evaluation.SpRAy` parameters (``grid``, ``part``,
        ``normalize``, ``n_neighbors``, ...).
    rule, rule_params, max_side, n_jobs
        As in :func:`bowlrp.apps.explain.explain_paths`.
    n_examples : int
        Example images per cluster in ``clusters.png``.

    Returns
    -------
    dict
        The content of ``spray.json`` (also: ``labels``, ``paths``).

    Examples
    --------
    A full run explains and draws every image (seconds even for small
    ones); too few images are refused before anything is explained:

    >>> import tempfile
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> with tempfile.TemporaryDirectory() as out:
    ...     spray_paths(toy_pipeline(), ["cat/1.png", "cat/2.png"], out)
    Traceback (most recent call last):
    ...
    ValueError: SpRAy needs at least 3 images, got 2; give more images of the class
    """
    out = check_output_folder(out)
    paths = [os.fspath(p) for p in paths]
    if len(paths) < 3:
        raise ValueError(f"SpRAy needs at least 3 images, got {len(paths)}; give more images of the class")
    rows = explain_paths(pipeline, paths, out, rule=rule, target=target, rule_params=rule_params,
                         max_side=max_side, n_jobs=n_jobs, title=title or "bowlrp: heatmaps for SpRAy",
                         meta=meta, verbose=verbose)
    ok = [r for r in rows if not r.get("error")]
    if len(ok) < 3:
        raise ValueError(f"only {len(ok)} of {len(rows)} images could be explained; SpRAy needs at least 3 "
                         "(see summary.csv for the reasons)")
    maps = _load_maps(out, ok)
    params = dict(spray_params or {})
    sp = SpRAy(n_clusters=n_clusters, random_state=random_state, **params).fit(maps)
    log(f"SpRAy on {len(ok)} explanations: eigenvalues {np.round(sp.eigenvalues_, 3).tolist()}; "
        f"eigengap {sp.eigengap_:.3f} after {sp.n_clusters_} -> {int(sp.labels_.max()) + 1} cluster(s)")
    images = [read_image(r["path"], max_side=max_side) for r in ok]
    what = f"{target!r}" if target is not None else "the predicted class"
    plot_spectrum(sp, os.path.join(out, "spectrum.png"), title=f"SpRAy spectrum: {len(ok)} explanations of {what}")
    if sp.embedding_ is not None:
        plot_embedding(sp, os.path.join(out, "embedding.png"), title="t-SNE embedding of the explanations")
    plot_cluster_means(sp, maps, images, os.path.join(out, "clusters.png"), n_examples=n_examples,
                       scores=[r["explained_score"] for r in ok],
                       title=f"SpRAy clusters of the explanations of {what}")
    means = sp.cluster_means(maps)
    os.makedirs(os.path.join(out, "clusters"), exist_ok=True)
    for c, m in enumerate(means):
        save_png(os.path.join(out, "clusters", f"mean_{c}.png"), heatmap_rgb(m))
    with open(os.path.join(out, "clusters.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "cluster", "explained_score", "panel"])
        for r, c in zip(ok, sp.labels_):
            w.writerow([r["path"], int(c), r["explained_score"], r["panel"]])
    summary = {
        "n_images": len(rows), "n_explained": len(ok), "target": None if target is None else str(target),
        "eigenvalues": sp.eigenvalues_.tolist(), "eigengap": sp.eigengap_, "n_clusters_eigengap": sp.n_clusters_,
        "n_clusters": int(sp.labels_.max()) + 1, "cluster_sizes": np.bincount(sp.labels_).tolist(),
        "spray": {k: (list(v) if isinstance(v, tuple) else v) for k, v in sp.get_params().items()},
    }
    with open(os.path.join(out, "spray.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, default=str)
    write_spray_html(os.path.join(out, "spray.html"), sp, ok, summary, title=title or f"SpRAy: explanations of {what}",
                     meta=meta)
    summary.update(labels=sp.labels_.tolist(), paths=[r["path"] for r in ok])
    return summary


def _url(rel):
    return quote(rel, safe="/")


def write_spray_html(path, spray, rows, summary, *, title, meta=None):
    """``spray.html``: a static page with the spectrum, the embedding and every cluster's members.

    ``rows`` are the explained images' rows (:func:`bowlrp.apps.explain.explain_one`),
    in the order ``spray`` was fitted on; ``summary`` is what :func:`spray_paths`
    writes to ``spray.json``.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from bowlrp.evaluation import SpRAy
    >>> maps = np.random.default_rng(0).random((6, 8, 8)) * 0.1
    >>> maps[:3, :4, :4] += 1.0  # three maps look top-left, three bottom-right
    >>> maps[3:, 4:, 4:] += 1.0
    >>> spray = SpRAy(grid=(2, 2), n_neighbors=2, n_eigenvalues=4, embedding=None).fit(maps)
    >>> rows = [{"path": f"cat/{i}.png", "id": f"000{i}_{i}", "explained_score": 1.0,
    ...          "panel": f"panels/000{i}_{i}.png", "thumb_heatmap": f"thumbs/000{i}_{i}_heatmap.png"} for i in range(6)]
    >>> summary = {"n_explained": 6, "eigenvalues": spray.eigenvalues_.tolist(), "eigengap": spray.eigengap_,
    ...            "n_clusters_eigengap": spray.n_clusters_, "n_clusters": int(spray.labels_.max()) + 1,
    ...            "cluster_sizes": np.bincount(spray.labels_).tolist()}
    >>> with tempfile.TemporaryDirectory() as out:
    ...     with open(write_spray_html(os.path.join(out, "spray.html"), spray, rows, summary, title="cats")) as fh:
    ...         page = fh.read()
    >>> page.count("<h2>cluster"), "<h2>cluster 1: 3 image(s)</h2>" in page, page.count('<img src="thumbs/')
    (2, True, 6)
    """
    e = html.escape
    ev = ", ".join(f"{v:.3f}" for v in summary["eigenvalues"])
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
        "<style>body{font-family:system-ui,Helvetica,Arial,sans-serif;margin:1.5em;color:#222}"
        "img.fig{max-width:48%;border:1px solid #ddd;margin:4px}"
        ".grid{display:flex;flex-wrap:wrap;gap:6px}.grid img{width:96px;image-rendering:pixelated}"
        "h2{border-bottom:1px solid #ccc;font-size:1.1em}.meta{color:#555;font-size:.9em}</style></head><body>",
        f"<h1>{e(title)}</h1>", '<p class="meta">',
    ]
    parts += [f"<b>{e(str(k))}</b>: {e(str(v))}<br>" for k, v in (meta or {}).items()]
    parts.append(
        f"{summary['n_explained']} explanations; smallest eigenvalues of L<sub>sym</sub>: {ev}.<br>"
        f"Eigengap {summary['eigengap']:.3f} after &lambda;<sub>{summary['n_clusters_eigengap']}</sub>: "
        f"{summary['n_clusters_eigengap']} group(s); clustered into {summary['n_clusters']} "
        f"(sizes {summary['cluster_sizes']}).<br>"
        'Files: <a href="index.html">the heatmap gallery</a>, <a href="clusters.csv">clusters.csv</a>, '
        '<a href="spray.json">spray.json</a>, <a href="summary.csv">summary.csv</a></p>'
    )
    parts.append('<img class="fig" src="spectrum.png" alt="spectrum">')
    if spray.embedding_ is not None:
        parts.append('<img class="fig" src="embedding.png" alt="embedding">')
    parts.append('<p><img src="clusters.png" alt="cluster means" style="max-width:100%"></p>')
    for c in range(summary["n_clusters"]):
        members = [r for r, lab in zip(rows, spray.labels_) if lab == c]
        parts.append(f'<h2>cluster {c}: {len(members)} image(s)</h2><p><img src="clusters/mean_{c}.png" '
                     f'alt="mean heatmap of cluster {c}" width="128" style="image-rendering:pixelated"> '
                     "mean heatmap (each map scaled to max |R| = 1; red for the class, blue against)</p>"
                     '<div class="grid">')
        for r in sorted(members, key=lambda r: -float(r["explained_score"])):
            parts.append(f'<a href="{_url(r["panel"])}" title="{e(r["path"])} (f = {r["explained_score"]:.3g})">'
                         f'<img src="{_url(r["thumb_heatmap"])}" alt="heatmap {e(r["id"])}"></a>')
        parts.append("</div>")
    parts.append("</body></html>")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path
