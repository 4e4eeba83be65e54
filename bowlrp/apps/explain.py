"""Explain a collection of photographs, one image at a time, streaming the results to a folder.

:func:`explain_one` is the work of one image: it reads the image from its
*path*, explains it, writes that image's files and returns one small row.
:func:`explain_paths` runs it over a list of paths with
:func:`bowlrp.collection.explain_collection`, the one loop for collections:
serially, on joblib workers (``n_jobs``), or on a Dask cluster (``client``),
with results streamed to disk and a rerun resuming what is done.  Memory is
bounded by the images in flight (one per worker), never by the size of the
collection.

Output folder::

    index.html        the gallery (bowlrp.apps.report.write_index_html)
    summary.csv       one row per input: path, predicted class, score, target explained, residual, ...
    pixel_maps.npz    the pixel relevance of every image (key: the npz_key column)
    panels/<id>.png   image | heatmap | overlay, titled, with a colour scale
    heatmaps/<id>.png the heatmap at the size the image was explained
    thumbs/           the gallery's thumbnails
    rows/, run.json   each image's row and what the run was (bowlrp.collection.store), for resuming
"""

import os
import time

import numpy as np

from ..datasets.folder import read_image
from . import report

__all__ = ["explain_one", "explain_paths", "check_output_folder"]


def check_output_folder(out, what="--out"):
    """Create the output folder ``out``; an existing file there is an error.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = check_output_folder(os.path.join(folder, "heatmaps"))
    ...     print(os.path.isdir(out))
    ...     notes = os.path.join(folder, "notes.txt")
    ...     _ = open(notes, "w").close()
    ...     try:
    ...         check_output_folder(notes)
    ...     except FileExistsError as err:
    ...         print(str(err).replace(repr(notes), "<notes.txt>"))
    True
    --out <notes.txt> is an existing file; give a folder (it is created if missing)
    """
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
                folder_class=None, gallery=True):
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
    gallery : bool, default=True
        Write the PNG files of :func:`bowlrp.apps.report.write_image_files`
        and ``maps/<id>.npy``; ``False`` writes only the map (atomically).

    Returns
    -------
    dict
        The row (:data:`bowlrp.apps.report.CSV_FIELDS`); an image that cannot
        be read or explained (too small for the model's descriptors) gives a
        row with ``error`` set and nothing written.

    Examples
    --------
    >>> import os, tempfile, cv2, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = toy_pipeline(n_words=4).fit(images, ["cat", "dog"] * 3)
    >>> folder = tempfile.TemporaryDirectory()
    >>> paths = [os.path.join(folder.name, f"{i}.png") for i in range(2)]
    >>> _ = [cv2.imwrite(p, im) for p, im in zip(paths, images)]
    >>> row = explain_one(pipe, paths[1], folder.name, index=1, gallery=False)
    >>> row["id"], row["predicted"] == pipe.predict(images[1:2])[0], (row["height"], row["width"]), row["npz_key"]
    ('0001_1', True, (40, 40), '0001_1')
    >>> bool(abs(row["explained_score"] - row["relevance_sum"] - row["bias"] - row["residual"]) < 1e-9)
    True
    >>> explain_one(pipe, os.path.join(folder.name, "gone.png"), folder.name)["error"].split(":")[0]  # a row, not raised
    '[Errno 2] No such file or directory'
    >>> folder.cleanup()
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
    if gallery:
        files = report.write_image_files(out, fid, image, R, title=title, target_name=str(explained), rule=exp.rule)
    else:
        from ..collection.store import ResultStore  # noqa: PLC0415  (the collection runs this function)

        files = {"map": ResultStore(out).write_map(fid, R)}
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
        panel=files.get("panel"),
        heatmap=files.get("heatmap"),
        thumb_image=files.get("thumb_image"),
        thumb_heatmap=files.get("thumb_heatmap"),
        npz_key=fid,
        scores=scores,
        seconds=round(time.perf_counter() - t0, 4),
    )
    return row


def explain_paths(pipeline, paths, out, *, rule="z", target=None, rule_params=None, max_side=None,
                  folder_classes=None, n_jobs=None, client=None, gallery=True, title="bowlrp heatmaps", meta=None,
                  verbose=True):
    """Explain every image in ``paths`` and write the gallery, the table and the pixel maps to ``out``.

    :func:`bowlrp.collection.explain_collection`, returning the rows.

    Parameters
    ----------
    pipeline : fitted ExplainablePipeline, or str
        The model, or the path of a model file written by ``bowlrp train``.
    paths : sequence of str
        Image files (see :func:`bowlrp.datasets.find_images` for files and
        folders mixed).
    out : str
        Output folder; created if missing (an existing file is an error).
        A rerun with the same model and options skips the images done.
    rule, target, rule_params, max_side
        As in :func:`explain_one`.
    folder_classes : sequence of (str or None) or None
        The class each image's folder names, when known.
    n_jobs : int or None
        joblib workers (processes); each reads, explains and writes one image
        at a time.  ``None`` or 1: in this process.
    client : dask.distributed.Client, str or None
        Run on a Dask cluster instead (a client or a scheduler address).
    gallery : bool, default=True
        The PNG files, ``index.html`` and ``pixel_maps.npz``; ``False``:
        only the maps (``maps/<id>.npy``) and ``summary.csv``.
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

    Examples
    --------
    >>> import os, tempfile, cv2, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = toy_pipeline(n_words=4).fit(images, ["cat", "dog"] * 3)
    >>> folder = tempfile.TemporaryDirectory()
    >>> paths = [os.path.join(folder.name, f"{i}.png") for i in range(2)]
    >>> _ = [cv2.imwrite(p, im) for p, im in zip(paths, images)]
    >>> out = os.path.join(folder.name, "out")
    >>> rows = explain_paths(pipe, paths, out, target="dog", gallery=False, verbose=False)
    >>> [(r["id"], r["target"]) for r in rows], sorted(os.listdir(out))
    ([('0000_0', 'dog'), ('0001_1', 'dog')], ['maps', 'rows', 'run.json', 'summary.csv'])
    >>> folder.cleanup()
    """
    from ..collection import explain_collection  # noqa: PLC0415  (it builds on explain_one)

    done = explain_collection(pipeline, paths, out, rule=rule, target=target, rule_params=rule_params,
                              max_side=max_side, folder_classes=folder_classes, gallery=gallery, n_jobs=n_jobs,
                              client=client, title=title, meta=meta, verbose=verbose)
    return list(done.rows())
