"""Explain a collection of image files on one machine or a Dask cluster, streaming every result to disk.

:func:`explain_collection` sends one task per image: the image's *path*, the
model file's path and the options.  The task reads the image where it runs,
takes the model from the worker's cache (:func:`~bowlrp.collection.engine.cached_model`,
read once per worker), explains it with
:func:`bowlrp.apps.explain.explain_one`, writes the image's files and then
its row (:mod:`bowlrp.collection.store`), and returns two small values.  The
client keeps no per-image result: the table, the archive and the gallery are
written from the rows on disk at the end.  A rerun into the same folder with
the same model and options skips what is done.
"""

import dataclasses
import hashlib
import os
import pickle
import time

import numpy as np
from joblib import effective_n_jobs

from ..apps import report
from ..apps.explain import check_output_folder, explain_one
from ..apps.modelfile import save_model
from ..rules import get_rule
from .engine import cached_model, check_workers, dask_client, remember_model, run_tasks
from .store import ResultStore, file_digest, source_stamp

__all__ = ["ExplainedCollection", "explain_collection"]

MODEL_FILE = "model.joblib"


def _label(v):
    return v.item() if isinstance(v, np.generic) else v


@dataclasses.dataclass
class ExplainedCollection:
    """What :func:`explain_collection` did; the per-image results stay on disk.

    Attributes
    ----------
    out : str
        The output folder.
    ids : list of str
        File id of every input (``rows/<id>.json``; the key of its map).
    n_images, n_explained, n_resumed, n_failed : int
        Inputs; explained (this run or before); of those, found done at the
        start; not explained (``errors``).
    errors : list of (str, str)
        ``(path, reason)`` of the inputs that could not be explained.
    seconds : float
        Wall time of the run.
    files : dict
        ``summary.csv``, and with the gallery ``index.html`` and
        ``pixel_maps.npz``: paths of the files written at the end.

    Examples
    --------
    >>> import os, tempfile, cv2, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = toy_pipeline(n_words=4).fit(images, [0, 1] * 3)
    >>> folder = tempfile.TemporaryDirectory()
    >>> paths = [os.path.join(folder.name, f"{i}.png") for i in range(3)]
    >>> _ = [cv2.imwrite(p, im) for p, im in zip(paths, images)]
    >>> done = explain_collection(pipe, paths, os.path.join(folder.name, "out"), gallery=False, verbose=False)
    >>> done.ids, done.n_explained, done.pixel_map(0).shape, done.pixel_map("0002_2").shape
    (['0000_0', '0001_1', '0002_2'], 3, (40, 40), (40, 40))
    >>> [row["predicted"] for row in done.rows()] == list(pipe.predict(images[:3]))  # summary.csv's rows
    True
    >>> folder.cleanup()
    """

    out: str
    ids: list
    n_images: int
    n_explained: int
    n_resumed: int
    n_failed: int
    errors: list
    seconds: float
    files: dict

    def rows(self):
        """The rows of ``summary.csv`` (with each image's class scores), in input order, read from disk."""
        return ResultStore(self.out).rows(self.ids)

    def pixel_map(self, i):
        """The pixel relevance of input ``i`` (its position, or its id)."""
        fid = self.ids[i] if not isinstance(i, str) else i
        return ResultStore(self.out).load_map(fid)


def _model_file(model, out, in_process):
    """``(path, pipeline, checksum)``: a model file's path as given, or a fitted pipeline written to ``out``.

    A pipeline explained in this process only is not written (``path`` None).
    """
    if isinstance(model, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(model))
        pipeline, _ = cached_model(path)
        return path, pipeline, file_digest(path)
    if not hasattr(model, "classes_") or not hasattr(model, "explain"):
        raise TypeError(f"model must be a fitted bowlrp.ExplainablePipeline or the path of a model file written "
                        f"by 'bowlrp train', got {type(model).__name__}")
    digest = hashlib.sha256(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)).hexdigest()
    if in_process:
        return None, model, digest
    path = os.path.abspath(os.path.join(out, MODEL_FILE))
    stamp = path + ".sha256"
    try:
        with open(stamp, encoding="ascii") as fh:
            same = fh.read().strip() == digest and os.path.exists(path)
    except OSError:
        same = False
    if not same:
        steps = ", ".join(name for name, _ in getattr(model, "steps", []))
        save_model(path, model, model=f"{type(model).__name__}({steps})")
        with open(stamp, "w", encoding="ascii") as fh:
            fh.write(digest + "\n")
    remember_model(path, model)
    return path, model, digest


def _explain_task(model, path, out, index, folder_class, key, options):
    """One image on a worker: explain it, write its files, then its row; return ``(index, error)``.

    ``model`` is a model file's path (read once per worker) or, in this process, the pipeline.
    """
    pipeline = cached_model(model)[0] if isinstance(model, str) else model
    given = path
    stamp = source_stamp(path)
    row = explain_one(pipeline, os.path.abspath(path), out, index=index, folder_class=folder_class, **options)
    row.update(path=given, run=key, source=stamp)
    ResultStore(out).write_row(row)
    return index, row.get("error")


def explain_collection(model, paths, out, *, rule="z", target=None, rule_params=None, max_side=None,
                       folder_classes=None, gallery=True, n_jobs=None, client=None, resume=True,
                       title="bowlrp heatmaps", meta=None, verbose=True):
    """Explain every image file in ``paths`` into folder ``out``, one task per image, resuming what is done.

    The same call runs in this process, on joblib workers (``n_jobs``) or on
    a Dask cluster (``client``, or inside
    ``joblib.parallel_config(backend="dask")``).  The images, the model file
    and ``out`` must be reachable under the same paths from every worker
    (on a cluster: a shared file system); the workers read the images and
    write the results, and the client receives two values per image.

    Parameters
    ----------
    model : fitted ExplainablePipeline, or str
        A pipeline (written to ``out/model.joblib`` for worker processes to
        read, unless it runs in this process only) or the path of a model
        file written by ``bowlrp train``.
    paths : sequence of str
        Image files (:func:`bowlrp.datasets.find_images` lists folders).
    out : str
        Output folder; created if missing.  Per image: ``rows/<id>.json``,
        the pixel map ``maps/<id>.npy`` and, with ``gallery``, the PNG files
        of :func:`bowlrp.apps.report.write_image_files`; at the end
        ``summary.csv`` and, with ``gallery``, ``index.html`` and
        ``pixel_maps.npz`` (the maps gathered into one archive).
    rule, target, rule_params, max_side
        As in :func:`bowlrp.apps.explain.explain_one`.
    folder_classes : sequence of (str or None) or None
        The class each image's folder names, when known.
    gallery : bool, default=True
        Write the PNG panels, thumbnails, ``index.html`` and the archive.
        ``False`` writes only the maps and the rows (and ``summary.csv``):
        for collections too large to browse, and about 30 times faster on
        small images, where drawing the panels dominates.
    n_jobs : int or None
        joblib worker processes on this machine (``None``: this process).
    client : dask.distributed.Client, str or None
        A Dask client or a scheduler address (``"tcp://host:8786"``).
    resume : bool, default=True
        Keep the images an earlier run into ``out`` explained with the same
        model and options; ``False`` redoes everything.
    title, meta
        The gallery page's title and the lines at its top.
    verbose : bool
        Progress bar.

    Returns
    -------
    ExplainedCollection

    Examples
    --------
    Three images and an empty file, then a rerun that finds the three done:

    >>> import os, tempfile, cv2, numpy as np
    >>> from bowlrp.apps.demo import toy_pipeline
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = toy_pipeline(n_words=4).fit(images, [0, 1] * 3)
    >>> folder = tempfile.TemporaryDirectory()
    >>> paths = [os.path.join(folder.name, f"{i}.png") for i in range(3)]
    >>> _ = [cv2.imwrite(p, im) for p, im in zip(paths, images)]
    >>> _ = open(os.path.join(folder.name, "bad.png"), "w").close()
    >>> out = os.path.join(folder.name, "out")
    >>> run = explain_collection(pipe, paths + [os.path.join(folder.name, "bad.png")], out, gallery=False,
    ...                          verbose=False)
    >>> run.n_explained, run.n_failed, run.errors[0][1].endswith("the file is empty"), sorted(os.listdir(out))
    (3, 1, True, ['maps', 'rows', 'run.json', 'summary.csv'])
    >>> again = explain_collection(pipe, paths, out, gallery=False, verbose=False)
    >>> again.n_resumed, again.n_explained
    (3, 3)
    >>> explain_collection(pipe, paths, out, target="cat")
    Traceback (most recent call last):
    ...
    ValueError: target 'cat' is not a class of the model; its classes are [0, 1]
    >>> folder.cleanup()
    """
    t0 = time.perf_counter()
    out = check_output_folder(out)
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("paths is empty: pass at least one image file (bowlrp.datasets.find_images lists folders)")
    folder_classes = list(folder_classes) if folder_classes is not None else [None] * len(paths)
    if len(folder_classes) != len(paths):
        raise ValueError(f"folder_classes has {len(folder_classes)} entries for {len(paths)} paths")
    get_rule(rule, **(rule_params or {}))  # an unknown rule or parameter fails here, not once per image
    options = {"rule": rule, "target": target, "rule_params": dict(rule_params or {}), "max_side": max_side,
               "gallery": bool(gallery)}
    with dask_client(client) as dask:
        return _run(model, paths, out, options, folder_classes=folder_classes, n_jobs=n_jobs, dask=dask,
                    resume=resume, title=title, meta=meta, verbose=verbose, t0=t0)


def _run(model, paths, out, options, *, folder_classes, n_jobs, dask, resume, title, meta, verbose, t0):
    """The body of :func:`explain_collection`, with the Dask client (or None) resolved."""
    target, gallery = options["target"], options["gallery"]
    in_process = dask is None and effective_n_jobs(n_jobs) == 1
    model_file, pipeline, digest = _model_file(model, out, in_process)
    known = [_label(c) for c in pipeline.classes_]
    if target is not None and target not in known:
        raise ValueError(f"target {target!r} is not a class of the model; its classes are {known}")
    store = ResultStore(out)
    key, resumed = store.open_run(dict(options, model_sha256=digest), resume=resume)
    ids = [report.file_id(i, p) for i, p in enumerate(paths)]
    archived = store.archived() if resumed and gallery else set()
    pending = [i for i in range(len(paths)) if not (resumed and store.is_done(ids[i], paths[i], key, archived))]
    n_resumed = len(paths) - len(pending)
    if dask is not None and pending:
        check_workers(dask, read=[model_file] + [paths[i] for i in pending[:1]], write=[out])
    ref = model_file if model_file is not None else pipeline
    tasks = ((ref, paths[i], out, i, folder_classes[i], key, options) for i in pending)
    desc = "explaining" + (f" ({n_resumed} done before)" if n_resumed else "")
    for _ in run_tasks(_explain_task, tasks, n_jobs=n_jobs, client=dask, total=len(pending), desc=desc,
                       unit="image", verbose=verbose):
        pass
    files = {"summary_csv": report.write_summary_csv(os.path.join(out, "summary.csv"), store.rows(ids))}
    errors, n_ok, residuals, agree = [], 0, [], []
    for row in store.rows(ids):
        if row.get("error"):
            errors.append((row["path"], row["error"]))
            continue
        n_ok += 1
        if gallery:
            residuals.append(row["relative_residual"])
            if row.get("folder_class") not in (None, ""):
                agree.append(row["folder_class"] == row["predicted"])
    if gallery:
        files["pixel_maps"] = store.archive_maps(store.rows(ids), remove=True)
        info = dict(meta or {})
        info["images"] = f"{n_ok} explained" + (f", {len(errors)} not explained" if errors else "")
        if residuals:
            rel = np.asarray(residuals)
            info["conservation"] = f"median |residual| / |f(x)| {np.median(rel):.1e}, maximum {rel.max():.1e}"
        if agree:
            info["agreement with folder classes"] = f"{sum(agree) / len(agree):.3f} ({len(agree)} images in class folders)"
        files["index_html"] = report.write_index_html(os.path.join(out, "index.html"), list(store.rows(ids)),
                                                      title=title, meta=info)
    return ExplainedCollection(out=out, ids=ids, n_images=len(paths), n_explained=n_ok, n_resumed=n_resumed,
                               n_failed=len(errors), errors=errors, seconds=time.perf_counter() - t0, files=files)
