"""Explain a collection of photographs, one image at a time, streaming the results to a folder.

:func:`explain_paths` is the one loop: it takes *paths*, and each task
(:func:`explain_one`) reads its image where it runs, explains it, writes that
image's files and returns one small row.  Memory is bounded by the images
in flight (one per worker), never by the size of the collection, and the
same loop runs serially, on joblib workers (``n_jobs``), or on any backend
joblib is configured with (``joblib.parallel_config``).

Output folder::

    index.html        the gallery (bowlrp.apps.report.write_index_html)
    summary.csv       one row per input: path, predicted class, score, target explained, residual, ...
    pixel_maps.npz    the pixel relevance of every image (key: the npz_key column)
    panels/<id>.png   image | heatmap | overlay, titled, with a colour scale
    heatmaps/<id>.png the heatmap at the size the image was explained
    thumbs/           the gallery's thumbnails
"""

import os
import time

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from ..datasets.folder import read_image
from ..rules import get_rule
from . import report

__all__ = ["explain_one", "explain_paths", "check_output_folder"]


def check_output_folder(out, what="--out"):
    """Create the output folder ``out``; an existing file there is an error."""
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise FileExistsError(f"{what} {out!r} is an existing file; give a folder (it is created if missing)")
    os.makedirs(out, exist_ok=True)
    return out


def _label(v):
    return v.item() if isinstance(v, np.generic) else v


def _predict_and_explain(pipeline, image, target, rule, rule_params):
    """The prediction, the decision value of every class, and the explanation of ``target``."""
    classes = [_label(c) for c in pipeline.classes_]
    f = np.asarray(pipeline.decision_function([image]), dtype=np.float64)
    if f.ndim == 1 or f.shape[1] == 1:  # binary: f > 0 speaks for classes[1]
        v = float(f.ravel()[0])
        scores = {classes[0]: -v, classes[1]: v}
    else:
        scores = dict(zip(classes, f[0].tolist()))
    predicted = max(scores, key=scores.get)
    explained = predicted if target is None else target
    exp = pipeline.explain([image], target=explained, rule=rule, **(rule_params or {}))
    return predicted, scores, explained, exp


def explain_one(pipeline, path, out, *, index=0, rule="z", target=None, rule_params=None, max_side=None,
                folder_class=None):
    """Read, explain and write one image; return its row of ``summary.csv``.

    Parameters
    ----------
    pipeline : fitted ExplainablePipeline
    path : str
        The image file; read here with :func:`bowlrp.datasets.read_image`.
    out : str
        The output folder (see the module docstring).
    index : int
        Position in the collection (names the files: ``<index>_<file stem>``).
    rule : str
        Mapping-stage rule (``"z"``, ``"epsilon"``, ``"alphabeta"``, ``"abs"``,
        ``"flat"``), with ``rule_params`` (e.g. ``{"epsilon": 1.0}``).
    target : label or None
        The class to explain; ``None`` explains the predicted class.
    max_side : int or None
        Cap on the longer side when reading (use the model's training cap).
    folder_class : str or None
        The class the image's folder names, shown beside the prediction.

    Returns
    -------
    dict
        The row (:data:`bowlrp.apps.report.CSV_FIELDS`); an image that cannot
        be read or explained (too small for the model's descriptors) gives a
        row with ``error`` set and nothing written.
    """
    t0 = time.perf_counter()
    path = os.fspath(path)
    fid = report.file_id(index, path)
    row = {"index": index, "path": path, "id": fid, "folder_class": folder_class}
    try:
        image = read_image(path, max_side=max_side)
        predicted, scores, explained, exp = _predict_and_explain(pipeline, image, target, rule, rule_params)
    except (OSError, ValueError) as exc:
        row["error"] = str(exc)
        row["seconds"] = round(time.perf_counter() - t0, 4)
        return row
    R = np.asarray(exp.pixels[0], dtype=np.float64)
    f = float(exp.score[0])
    bias = float(exp.bias[0])
    residual = float(exp.residual[0])
    title = (f"{os.path.basename(path)}: predicted {predicted!r} (score {scores[predicted]:.4g})\n"
             f"explained {explained!r}: f(x) = {f:.4g} = {R.sum():.4g} (pixels) + {bias:.4g} (bias) "
             f"+ {residual:.1e} (residual)")
    files = report.write_image_files(out, fid, image, R, title=title, target_name=str(explained), rule=exp.rule)
    row.update(
        predicted=predicted,
        score=scores[predicted],
        target=explained,
        explained_score=f,
        relevance_sum=float(R.sum()),
        bias=bias,
        residual=residual,
        relative_residual=abs(residual) / max(abs(f), 1e-300),
        height=R.shape[0],
        width=R.shape[1],
        panel=files["panel"],
        heatmap=files["heatmap"],
        thumb_image=files["thumb_image"],
        thumb_heatmap=files["thumb_heatmap"],
        npz_key=fid,
        scores=scores,
        seconds=round(time.perf_counter() - t0, 4),
    )
    return row


def explain_paths(pipeline, paths, out, *, rule="z", target=None, rule_params=None, max_side=None,
                  folder_classes=None, n_jobs=None, title="bowlrp heatmaps", meta=None, verbose=True):
    """Explain every image in ``paths`` and write the gallery, the table and the pixel maps to ``out``.

    Parameters
    ----------
    pipeline : fitted ExplainablePipeline
    paths : sequence of str
        Image files (see :func:`bowlrp.datasets.find_images` for files and
        folders mixed).
    out : str
        Output folder; created if missing (an existing file is an error).
    rule, target, rule_params, max_side
        As in :func:`explain_one`.
    folder_classes : sequence of (str or None) or None
        The class each image's folder names, when known.
    n_jobs : int or None
        joblib workers (processes); each reads, explains and writes one image
        at a time.  ``None`` or 1: in this process.
    title : str
        The page's title.
    meta : dict or None
        Lines shown at the top of the page.
    verbose : bool
        Progress bar.

    Returns
    -------
    list of dict
        The rows of ``summary.csv``, in the order of ``paths``.
    """
    out = check_output_folder(out)
    paths = [os.fspath(p) for p in paths]
    folder_classes = list(folder_classes) if folder_classes is not None else [None] * len(paths)
    get_rule(rule, **(rule_params or {}))  # an unknown rule or parameter fails here, not once per image
    if target is not None:
        known = [_label(c) for c in pipeline.classes_]
        if target not in known:
            raise ValueError(f"target {target!r} is not a class of the model; its classes are {known}")
    jobs = (
        delayed(explain_one)(pipeline, p, out, index=i, rule=rule, target=target, rule_params=rule_params,
                             max_side=max_side, folder_class=folder_classes[i])
        for i, p in enumerate(paths)
    )
    parallel = Parallel(n_jobs=n_jobs, return_as="generator")
    rows = []
    bar = tqdm(parallel(jobs), total=len(paths), desc="explaining", unit="image", disable=not verbose)
    for row in bar:
        rows.append(row)
    ok = [r for r in rows if not r.get("error")]
    report.write_summary_csv(os.path.join(out, "summary.csv"), rows)
    report.write_pixel_maps(os.path.join(out, "pixel_maps.npz"), out, rows)
    info = dict(meta or {})
    info["images"] = f"{len(ok)} explained" + (f", {len(rows) - len(ok)} not explained" if len(ok) < len(rows) else "")
    if ok:
        rel = np.array([r["relative_residual"] for r in ok])
        info["conservation"] = f"median |residual| / |f(x)| {np.median(rel):.1e}, maximum {rel.max():.1e}"
        known = [r for r in ok if r.get("folder_class") not in (None, "")]
        if known:
            acc = np.mean([r["folder_class"] == r["predicted"] for r in known])
            info["agreement with folder classes"] = f"{acc:.3f} ({len(known)} images in class folders)"
    report.write_index_html(os.path.join(out, "index.html"), rows, title=title, meta=info)
    return rows
