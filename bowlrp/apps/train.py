"""Train a ready-made model on an image folder, with a stratified held-out test split."""

import os
import time

import numpy as np
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split

from ..datasets.folder import load_image_folder
from .modelfile import min_image_side, save_model
from .models import MODELS, make_model

__all__ = ["check_image_sizes", "format_confusion", "train_folder"]


def format_confusion(cm, names):
    """A confusion matrix as aligned text: rows are the true classes, columns the predictions."""
    names = [str(n) for n in names]
    width = max(6, *(len(n) for n in names), len(str(int(np.max(cm)) if np.size(cm) else 0)))
    head = " " * (width + 2) + " ".join(f"{n:>{width}}" for n in names)
    lines = ["true \\ predicted", head]
    for n, row in zip(names, np.asarray(cm)):
        lines.append(f"{n:>{width}}  " + " ".join(f"{int(v):>{width}}" for v in row))
    return "\n".join(lines)


def check_image_sizes(pipeline, images, paths):
    """Raise a ``ValueError`` naming the images smaller than the model's descriptors need."""
    need = min_image_side(pipeline)
    if need is None:
        return
    small = [(p, im.shape[:2]) for p, im in zip(paths, images) if min(im.shape[:2]) < need]
    if small:
        shown = ", ".join(f"{p} ({h} x {w})" for p, (h, w) in small[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        raise ValueError(
            f"{len(small)} image(s) are too small for the model: its largest SIFT scale needs at least "
            f"{need} x {need} pixels; {shown}{more}. Remove them, use larger images (or a larger max side), "
            "or choose smaller scales (--param sift__scales=...)"
        )


def train_folder(folder, model="bow-hik", out=None, *, params=None, test_size=0.25, max_side="model",
                 random_state=0, n_jobs=None, log=print, verbose=True):
    """Train ready-made model ``model`` on ``folder/<class>/*`` and report held-out accuracy.

    Parameters
    ----------
    folder : str
        An image folder (:func:`bowlrp.datasets.load_image_folder`).
    model : str
        A name of :func:`bowlrp.apps.models.model_names`.
    out : str or None
        Where to save the model file (:func:`bowlrp.apps.modelfile.save_model`).
    params : dict or None
        Parameter overrides (``{"bow__n_words": 256}``).
    test_size : float in (0, 1) or 0
        Share of each class held out for testing (stratified); ``0`` trains
        on everything and reports no held-out figures.
    max_side : int, None or "model"
        Cap on the longer side of every image; ``"model"`` uses the model's
        default (640), ``None`` none.
    random_state : int
        Seeds the split and the model.
    n_jobs : int or None
        Threads reading images and computing dense SIFT.
    log : callable
        Where progress lines go.

    Returns
    -------
    pipeline : fitted ExplainablePipeline
    summary : dict
        Sizes, held-out accuracy, confusion matrix, run times.
    """
    t0 = time.perf_counter()
    pipe = make_model(model, params, random_state=random_state)
    if n_jobs is not None:
        pipe.set_params(sift__n_jobs=n_jobs)
    cap = MODELS[model].max_side if max_side == "model" else max_side
    if not (isinstance(test_size, (int, float)) and not isinstance(test_size, bool) and 0 <= test_size < 1):
        raise ValueError(f"test_size must be a share in [0, 1), got {test_size!r}")
    log(f"[1/3] reading {folder} (longer side capped at {cap} px)" if cap else f"[1/3] reading {folder}")
    data = load_image_folder(folder, max_side=cap, gray=True, n_jobs=n_jobs, verbose=verbose)
    names = data.target_names
    y = np.asarray(names, dtype=object)[data.target]
    counts = np.bincount(data.target, minlength=len(names))
    log("      " + ", ".join(f"{n}: {c}" for n, c in zip(names, counts)) + f" images ({len(y)} in all)")
    if len(names) < 2:
        raise ValueError(f"{folder!r} has one class ({names[0]!r}); a classifier needs at least two class folders")
    check_image_sizes(pipe, data.images, data.paths)
    idx = np.arange(len(y))
    if test_size > 0:
        n_test = int(np.ceil(test_size * len(y)))
        if counts.min() < 2 or n_test < len(names):
            raise ValueError(
                f"a held-out split of {test_size:g} needs at least 2 images per class and {len(names)} test "
                f"images; the smallest class has {counts.min()}. Add images, or pass --test-size 0"
            )
        tr, te = train_test_split(idx, test_size=test_size, stratify=data.target, random_state=random_state)
    else:
        tr, te = idx, idx[:0]
    log(f"[2/3] fitting {model} on {len(tr)} images: dense SIFT, "
        f"{'vocabulary' if MODELS[model].encoder == 'bow' else 'PCA and GMM'}, SVM")
    pipe.set_params(verbose=verbose)
    t = time.perf_counter()
    pipe.fit([data.images[i] for i in tr], y[tr].astype(str))
    fit_s = time.perf_counter() - t
    pipe.set_params(verbose=False)
    summary = {
        "model": model, "params": {k: repr(v) for k, v in (params or {}).items()}, "folder": os.path.abspath(folder),
        "class_names": list(names), "n_images": int(len(y)), "n_train": int(len(tr)), "n_test": int(len(te)),
        "test_size": test_size, "random_state": random_state, "max_side": cap,
        "skipped": [list(s) for s in data.skipped],
        "image_shapes": {"min": [int(min(im.shape[k] for im in data.images)) for k in (0, 1)],
                         "max": [int(max(im.shape[k] for im in data.images)) for k in (0, 1)]},
        "train_paths": [os.path.abspath(data.paths[i]) for i in tr],
        "test_paths": [os.path.abspath(data.paths[i]) for i in te],
        "seconds": {"fit": fit_s},
    }
    if len(te):
        log(f"[3/3] testing on {len(te)} held-out images")
        t = time.perf_counter()
        pred = pipe.predict([data.images[i] for i in te])
        summary["seconds"]["predict_test"] = time.perf_counter() - t
        truth = y[te].astype(str)
        cm = confusion_matrix(truth, pred, labels=list(names))
        acc = float(np.mean(pred == truth))
        summary.update(test_accuracy=acc, confusion_matrix=cm.tolist())
        log(f"      held-out accuracy {acc:.3f} ({int(np.sum(pred == truth))} of {len(te)})")
        log("      " + format_confusion(cm, names).replace("\n", "\n      "))
    else:
        log("[3/3] no held-out split (test_size 0): no test figures")
    summary["seconds"]["total"] = time.perf_counter() - t0
    if out is not None:
        save_model(out, pipe, model=model, params=params, class_names=names, max_side=cap, training=summary)
        log(f"saved {out} ({os.path.getsize(out) / 1e6:.1f} MB) in {summary['seconds']['total']:.0f} s")
    return pipe, summary
