"""Head to head: Fisher vectors against a small CNN on the same images.

Toy polygons (thesis Sec. 2.4.3) get a background texture that correlates
with the label (``make_polygons(context=...)``): a striped disc around 90% of
the polygons and 10% of the round shapes at ``context=0.8``.  A Fisher-vector
model (the thesis' Ch. 4 pipeline, scaled down) and the CNN of
``bowlrp.cnn`` are trained on the same tiles and compared on the same test
tiles by

* tile accuracy;
* the context ratio ``mu`` (thesis eq. 4.11): mean positive relevance outside
  the class's objects over the mean inside, per tile, from the object masks
  (polygons for positive tiles, round shapes for negative tiles);
* pixel AOPC (paper 003 eq. 12, region perturbation, most relevant first)
  of LRP, and for the CNN of the gradient and Guided Backprop, each against a
  random order on the same tiles.

Writes ``heatmaps.png`` (tiles | FV LRP | CNN LRP | CNN gradient | CNN Guided
Backprop) and ``summary.json``; prints a table.
"""

import json
import os
import time

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from ..cnn import CNNClassifier
from ..datasets import make_polygons
from ..encoders.fisher import FisherVectorEncoder
from ..evaluation import context_ratio, context_ratio_per_class, region_perturbation
from ..features import DenseSIFT
from ..pipeline import ExplainablePipeline
from ..svm import KernelSVC
from ..viz import gray_rgb, heatmap_rgb, save_png, side_by_side

__all__ = ["fisher_pipeline", "run_head_to_head", "format_table", "CNN_METHODS"]

CNN_METHODS = ("lrp", "gradient", "guided_backprop")


def fisher_pipeline(n_components=32, pca=32, random_state=0, n_jobs=None):
    """The scaled-down Fisher-vector model of ``pipelines/fisher_vector.py``.

    Rotated dense SIFT at sigma 2 and 3 (steps 6 and 9, as the toy model of
    Sec. 2.4.3), PCA to ``pca`` dimensions and a diagonal GMM of
    ``n_components`` per scale, improved Fisher vectors over the whole tile
    (no pyramid), a linear SVM.

    Examples
    --------
    Two components on 4 PCA dimensions give ``K (1 + 2 D) = 18`` Fisher
    vector entries per scale:

    >>> import numpy as np
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = fisher_pipeline(n_components=2, pca=4).fit(images, [0, 1] * 3)
    >>> [name for name, _ in pipe.steps], pipe[:2].transform(images).shape
    (['sift', 'fv', 'svm'], (6, 36))
    """
    return ExplainablePipeline([
        ("sift", DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=True, n_jobs=n_jobs)),
        ("fv", FisherVectorEncoder(n_components=n_components, pca=pca, pyramid=((1, 1),),
                                   random_state=random_state)),
        ("svm", KernelSVC(kernel="linear")),
    ])


def _two_columns(decision_function):
    """``X -> [-f(X), f(X)]``: column 1 follows ``classes_[1]``, column 0 ``classes_[0]``."""
    def predict(X):
        f = np.asarray(decision_function(X), dtype=np.float64).ravel()
        return np.stack([-f, f], axis=1)
    return predict


def _mu_summary(mu, labels):
    finite = np.isfinite(mu)
    per_class = context_ratio_per_class(mu, labels)
    return {
        "mean": float(mu[finite].mean()) if finite.any() else float("nan"),
        "median": float(np.median(mu[finite])) if finite.any() else float("nan"),
        "n": int(finite.sum()),
        "per_class": {str(int(k)): v for k, v in per_class.items()},
    }


def _aopc(result):
    return float(np.asarray(result.aopc).mean())


def _per_image_aopc(result):
    """Eq. 12 per image (averaged over repetitions), shape (n_images,)."""
    c = result.curves
    return (c[:, :, :1] - c).mean(axis=2).mean(axis=1)


def _se(v):
    return float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def _upscale(rgb, factor):
    return rgb if factor == 1 else cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)


def _figure(images, columns, factor=2, gap=6):
    """One row per tile: the tile, then one heatmap per column (own eq. 2.62 scale)."""
    rows = []
    for i, img in enumerate(images):
        panels = [_upscale(gray_rgb(img), factor)] + [_upscale(heatmap_rgb(maps[i]), factor) for maps in columns]
        rows.append(side_by_side(*panels, gap=gap))
    out = []
    for k, r in enumerate(rows):
        if k:
            out.append(np.full((gap, r.shape[1], 3), 255, np.uint8))
        out.append(r)
    return np.concatenate(out, axis=0)


def format_table(summary):
    """The summary as a Markdown table (one row per model and explanation method).

    Examples
    --------
    >>> mu = {"median": 0.5, "mean": 0.6, "per_class": {"1": {"median": 0.4}, "-1": {"median": 0.7}}}
    >>> lrp = {"mu": mu, "aopc": 0.3, "aopc_minus_random": 0.2, "aopc_minus_random_se": 0.01,
    ...        "aopc_minus_random_relative": 0.1}
    >>> table = format_table({"models": {"fv": {"test_accuracy": 0.9, "aopc_random": 0.1, "methods": {"lrp": lrp}}}})
    >>> print(table.splitlines()[-1])
    | fv | lrp | 0.900 | 0.50 (0.40 / 0.70) | 0.60 | 0.300 | 0.100 | 0.200 ± 0.010 | 0.100 |
    """
    lines = [
        "| model | method | tile acc. | mu median (+1 / -1) | mu mean | AOPC | random | AOPC - random (± s.e.) | "
        "(AOPC - random) / mean abs f(x) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in summary["models"].items():
        for method, e in m["methods"].items():
            pc = e["mu"]["per_class"]
            med = " / ".join(f"{pc[c]['median']:.2f}" if c in pc else "-" for c in ("1", "-1"))
            lines.append(
                f"| {name} | {method} | {m['test_accuracy']:.3f} | {e['mu']['median']:.2f} ({med}) | "
                f"{e['mu']['mean']:.2f} | {e['aopc']:.3f} | {m['aopc_random']:.3f} | "
                f"{e['aopc_minus_random']:.3f} ± {e['aopc_minus_random_se']:.3f} | "
                f"{e['aopc_minus_random_relative']:.3f} |")
    return "\n".join(lines)


def run_head_to_head(
    out="bowlrp-head-to-head",
    n_train=2000,
    context=0.8,
    *,
    context_amplitude=0.15,
    n_test_images=4,
    n_eval=80,
    n_figure=4,
    fv_components=32,
    fv_pca=32,
    cnn_epochs=40,
    cnn_composite="alphabeta_2_1",
    fv_epsilon=1.0,
    region_size=9,
    n_steps=30,
    n_random_repeats=3,
    n_jobs=2,
    random_state=0,
    log=print,
    verbose=True,
):
    """Train both models on the same context-polygon tiles and compare them; returns the summary dict.

    Parameters
    ----------
    out : str
        Output folder for ``heatmaps.png`` and ``summary.json``.
    n_train : int
        Training tiles (shared by both models).
    context : float in [0, 1]
        Correlation of the background texture with the label
        (``make_polygons(context=...)``); 0 gives the plain toy task.
    context_amplitude : float
        Amplitude of the stripes (0..1 grey scale).
    n_test_images : int
        Large test images, 100 test tiles each; accuracy and ``mu`` use all tiles.
    n_eval : int
        Test tiles (half positive, half negative when possible) for the
        pixel-perturbation test.
    n_figure : int
        Tiles shown in the figure (from the evaluation tiles, alternating classes).
    fv_components, fv_pca : int
        GMM components and PCA dimensions per SIFT scale of the Fisher-vector model.
    cnn_epochs : int
        CNN training epochs (Adam, lr 3e-3, flips/quarter turns, biases <= 0).
    cnn_composite : str
        LRP composite for the CNN (``bowlrp.cnn.get_composite`` preset).
    fv_epsilon : float
        Epsilon of the FV model's epsilon-LRP (mapping and PCA steps).
    region_size, n_steps : int
        Region side and number of perturbation steps ``L`` (eq. 11-12).
    n_random_repeats : int
        Repetitions of the random-order baseline.
    n_jobs : int
        Threads for dense SIFT and for BLAS (the CNN); 2 suits a 2-core machine.
    random_state : int
        Seed of the data, the models and the perturbation noise.
    log : callable
        Progress messages (``print``); ``verbose`` adds progress bars.

    Every tile is explained for its true class (``target=label``): positive
    relevance speaks for that class.  The gradient map is ranked and measured
    by its magnitude ``|df/dx|`` (sensitivity analysis, paper 003); LRP and
    Guided Backprop by their signed values.

    Examples
    --------
    A run trains both models (minutes at the defaults); the data settings
    are checked first:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as out:
    ...     run_head_to_head(out, context=1.5, log=lambda line: None)
    Traceback (most recent call last):
    ...
    ValueError: context must be a number in [0, 1] (0: off), got 1.5.
    """
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    seconds = {}
    with threadpool_limits(limits=n_jobs, user_api="blas"):
        log(f"[1/6] toy polygons with label-correlated texture: context={context}, "
            f"{n_train} training tiles, {n_test_images} large test images")
        t = time.perf_counter()
        data = make_polygons(n_train=n_train, n_test_images=n_test_images, context=context,
                             context_amplitude=context_amplitude, random_state=random_state)
        X, y = data.test_images, data.test_labels
        inside = np.where(y[:, None, None] > 0, data.test_polygon_masks, data.test_round_masks)
        has_obj = np.flatnonzero(inside.any(axis=(1, 2)) & ~inside.all(axis=(1, 2)))
        rng = np.random.default_rng(random_state)
        pos, neg = rng.permutation(np.flatnonzero(y > 0)), rng.permutation(np.flatnonzero(y < 0))
        n_pos = min(len(pos), (n_eval + 1) // 2)
        ev = np.concatenate([pos[:n_pos], neg[: n_eval - n_pos]])
        ev = ev[np.argsort(np.r_[np.arange(n_pos) * 2, np.arange(len(ev) - n_pos) * 2 + 1], kind="stable")]
        seconds["data"] = time.perf_counter() - t

        log(f"[2/6] Fisher-vector model: rotated SIFT (sigma 2, 3), PCA {fv_pca}, GMM {fv_components} per scale, "
            "linear SVM")
        t = time.perf_counter()
        fv = fisher_pipeline(fv_components, fv_pca, random_state=random_state, n_jobs=n_jobs)
        fv.fit(data.images, data.labels)
        seconds["fit_fv"] = time.perf_counter() - t

        log(f"[3/6] CNN: {cnn_epochs} epochs on the same tiles")
        t = time.perf_counter()
        cnn = CNNClassifier(epochs=cnn_epochs, augment=True, nonpositive_bias=True, learning_rate=3e-3,
                            random_state=random_state, verbose=verbose)
        cnn.fit(data.images, data.labels)
        seconds["fit_cnn"] = time.perf_counter() - t

        log(f"[4/6] accuracy on {len(X)} test tiles and explanations for the true class")
        t = time.perf_counter()
        acc = {"fv": float(fv.score(X, y)), "cnn": float(cnn.score(X, y))}
        maps = {"fv": {"lrp": list(fv.explain(X, target=y, rule="epsilon", epsilon=fv_epsilon).pixels)}}
        maps["cnn"] = {}
        for method in CNN_METHODS:
            px = cnn.explain(X, target=y, method=method,
                             composite=cnn_composite if method == "lrp" else None).pixels
            maps["cnn"][method] = [np.abs(p) if method == "gradient" else p for p in px]
        seconds["explain"] = time.perf_counter() - t
        log(f"      tile accuracy: FV {acc['fv']:.3f}, CNN {acc['cnn']:.3f}")

        log(f"[5/6] pixel AOPC on {len(ev)} tiles ({region_size}x{region_size} regions, L={n_steps}, "
            f"uniform noise; random order x{n_random_repeats})")
        t = time.perf_counter()
        fns = {"fv": fv.decision_function, "cnn": cnn.decision_function}
        target = (y[ev] == fv.classes_[1]).astype(int)
        models = {}
        kw = dict(region_size=region_size, n_steps=n_steps, replacement="uniform", target=target,
                  random_state=random_state, verbose=verbose)
        for name in ("fv", "cnn"):
            predict = _two_columns(fns[name])
            imgs = [X[i] for i in ev]
            rand = region_perturbation(predict, imgs, None, order="random", n_repeats=n_random_repeats, **kw)
            f0 = float(np.abs(rand.curves[:, :, 0]).mean())
            aopc_random = _aopc(rand)
            rand_i = _per_image_aopc(rand)
            methods = {}
            for method, mp in maps[name].items():
                res = region_perturbation(predict, imgs, [mp[i] for i in ev], order="morf", **kw)
                mu = np.full(len(X), np.nan)  # tiles without an object of their class: no mu
                mu[has_obj] = context_ratio([mp[i] for i in has_obj], masks=list(inside[has_obj]))
                a = _aopc(res)
                methods[method] = {
                    "aopc": a,
                    "aopc_se": _se(_per_image_aopc(res)),
                    "aopc_minus_random": a - aopc_random,
                    "aopc_minus_random_se": _se(_per_image_aopc(res) - rand_i),  # paired over tiles
                    "aopc_minus_random_relative": (a - aopc_random) / f0,
                    "mu": _mu_summary(mu, y),
                }
                log(f"      {name} {method}: AOPC {a:.3f} (random {aopc_random:.3f}), "
                    f"mu median {methods[method]['mu']['median']:.2f}")
            models[name] = {"test_accuracy": acc[name], "aopc_random": aopc_random,
                            "aopc_random_se": _se(rand_i), "mean_abs_f0": f0,
                            "methods": methods}
        seconds["aopc"] = time.perf_counter() - t

        log("[6/6] writing heatmaps.png and summary.json")
        fig = ev[:n_figure]
        path = save_png(os.path.join(out, "heatmaps.png"), _figure(
            [X[i] for i in fig],
            [[maps["fv"]["lrp"][i] for i in fig]] + [[maps["cnn"][m][i] for i in fig] for m in CNN_METHODS]))
    seconds["total"] = time.perf_counter() - t0
    summary = {
        "data": {"n_train_tiles": int(n_train), "n_test_tiles": int(len(X)), "n_eval_tiles": int(len(ev)),
                 "context": context, "context_amplitude": context_amplitude, "seed": random_state},
        "settings": {"fv": {"n_components": fv_components, "pca": fv_pca, "rule": "epsilon",
                            "epsilon": fv_epsilon},
                     "cnn": {"epochs": cnn_epochs, "composite": cnn_composite},
                     "aopc": {"region_size": region_size, "n_steps": n_steps, "replacement": "uniform",
                              "random_repeats": n_random_repeats},
                     "mu": "positive relevance; inside = polygons (label +1) / round shapes (label -1)",
                     "n_jobs": n_jobs},
        "models": models,
        "figure": {"file": path, "tiles": [int(i) for i in fig], "labels": [int(y[i]) for i in fig],
                   "columns": ["tile", "fv lrp", "cnn lrp", "cnn |gradient|", "cnn guided_backprop"]},
        "seconds": seconds,
    }
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    log(format_table(summary))
    log(f"wrote heatmaps.png and summary.json to {out}/ in {seconds['total']:.0f} s")
    return summary
