"""The toy-polygon demo: thesis Sec. 2.4.3, Fig. 2.13 (left column).

Builds the toy data, trains the two-scale histogram-intersection model,
explains every test tile, merges the tile heatmaps into heatmaps of the large
test images and writes them beside the images, with a JSON summary.
"""

import json
import os
import time

import numpy as np
from tqdm.auto import tqdm

from ..datasets import make_polygons
from ..encoders import BagOfWords
from ..features import DenseSIFT
from ..pipeline import ExplainablePipeline
from ..svm import KernelSVC
from ..viz import gray_rgb, heatmap_rgb, merge_tiles, save_png, side_by_side

__all__ = ["toy_pipeline", "run_demo", "region_means"]


def toy_pipeline(n_words=128, kernel="hik", C=1.0, random_state=0, verbose=False):
    """The thesis' toy model: SIFT at sigma 2 and 3 (steps 6 and 9), rotated to
    the dominant gradient, rank-mapped BoW (eq. 2.86) per scale, one kernel per scale.

    Examples
    --------
    Fitted on six small noise images; the histogram-intersection model is
    explained exactly, so pixels and bias add up to the score:

    >>> import numpy as np
    >>> images = (np.random.default_rng(0).random((6, 40, 40)) * 255).astype(np.uint8)
    >>> pipe = toy_pipeline(n_words=4).fit(images, [-1, 1] * 3)
    >>> pipe.named_steps["svm"].blocks, pipe.named_steps["bow"].mapping
    ((4, 4), 'rank')
    >>> exp = pipe.explain(images[:2])
    >>> exp.pixels[0].shape, bool(np.allclose(exp.pixels[0].sum() + exp.bias[0], exp.score[0]))
    ((40, 40), True)
    """
    return ExplainablePipeline(
        [
            ("sift", DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=True)),
            ("bow", BagOfWords(n_words=n_words, mapping="rank", random_state=random_state)),
            ("svm", KernelSVC(kernel=kernel, C=C, blocks=(n_words, n_words))),
        ],
        verbose=verbose,
    )


def region_means(pixel_maps, polygon_masks, round_masks):
    """Mean pixel relevance on polygons, on round shapes and on the background.

    Examples
    --------
    >>> import numpy as np
    >>> R = np.zeros((1, 4, 4))
    >>> R[0, :2, :2], R[0, 3, 3] = 1.0, -2.0
    >>> polygons, round_shapes = R > 0, R < 0
    >>> region_means(R, polygons, round_shapes)
    {'polygons': 1.0, 'round_shapes': -2.0, 'background': 0.0}
    """
    P = np.asarray(pixel_maps)
    pm, rm = np.asarray(polygon_masks, bool), np.asarray(round_masks, bool)
    bg = ~(pm | rm)
    return {
        "polygons": float(P[pm].mean()),
        "round_shapes": float(P[rm].mean()),
        "background": float(P[bg].mean()),
    }


def _explain_all(pipe, X, batch, desc):
    """Explain ``X`` in batches with a progress bar; returns pixel maps and per-tile arrays."""
    pixels, residual, score, found = [], [], [], []
    for a in tqdm(range(0, len(X), batch), unit="batch", desc=desc):
        exp = pipe.explain(X[a : a + batch])
        pixels.extend(exp.pixels)
        residual.append(exp.residual)
        score.append(exp.score)
        found.append(np.ones(len(exp), bool) if exp.root_found is None else exp.root_found)
    return pixels, np.concatenate(residual), np.concatenate(score), np.concatenate(found)


def run_demo(out="bowlrp-demo", n_train=2000, n_test_images=4, n_words=128, random_state=0, batch=50, log=print):
    """Run the demo and write its files into ``out``; returns the summary dict.

    Two models share the dense SIFT and vocabulary stages (Fig. 2.13): one with
    histogram-intersection kernels (explained exactly, eq. A.3) and one with
    exponential chi2 kernels (explained by Taylor decomposition, eq. A.7), one
    kernel per SIFT scale each.

    Files: ``test_image_<k>.png`` (the large test image, its merged HIK heatmap
    and its merged chi2 heatmap side by side; eq. 2.62, red positive, blue
    negative), ``summary.json``.

    Examples
    --------
    The demo trains on 2000 tiles (minutes); the data settings are checked
    before any work:

    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     run_demo(os.path.join(folder, "demo"), n_train=0, log=lambda line: None)
    Traceback (most recent call last):
    ...
    ValueError: n_train must be an integer >= 1, got 0.
    """
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    log(f"[1/4] toy polygons: {n_train} training tiles, {n_test_images} large test images")
    data = make_polygons(n_train=n_train, n_test_images=n_test_images, random_state=random_state)

    log("[2/4] training: dense SIFT, k-means 2 x %d words, then a HIK and a chi2 kernel SVM" % n_words)
    hik = toy_pipeline(n_words=n_words, random_state=random_state, verbose=True)
    t = time.perf_counter()
    hik.fit(data.images, data.labels)
    chi2 = ExplainablePipeline(hik.steps[:-1] + [
        ("svm", KernelSVC(kernel="chi2", blocks=(n_words, n_words), random_state=random_state))])
    chi2[-1].fit(hik[:-1].transform(data.images), data.labels)
    fit_s = time.perf_counter() - t

    X = data.test_images
    models, summary_models, merged_maps = {"hik": hik, "chi2": chi2}, {}, {}
    log("[3/4] explaining the test tiles")
    for name, pipe in models.items():
        t = time.perf_counter()
        acc = float(pipe.score(X, data.test_labels))
        predict_s = time.perf_counter() - t
        t = time.perf_counter()
        pixels, residual, score, found = _explain_all(pipe, X, batch, f"explain {name}")
        explain_s = time.perf_counter() - t
        rel = np.abs(residual) / np.maximum(np.abs(score), 1e-300)
        means = region_means(pixels, data.test_polygon_masks, data.test_round_masks)
        summary_models[name] = {
            "test_accuracy": acc,
            "mean_pixel_relevance": means,
            "residual": {
                "max_relative": float(rel.max()),
                "median_relative": float(np.median(rel)),
                "roots_found": float(found.mean()),
            },
            "seconds": {"predict": predict_s, "explain": explain_s, "explain_over_predict": explain_s / predict_s},
        }
        merged_maps[name] = [
            merge_tiles([pixels[i] for i in np.flatnonzero(data.test_source == k)],
                        data.test_origins[data.test_source == k], big.shape)
            for k, big in enumerate(data.test_big_images)
        ]
        log(f"      {name}: test accuracy {acc:.3f}; mean pixel relevance polygons {means['polygons']:.3g}, "
            f"round shapes {means['round_shapes']:.3g}, background {means['background']:.3g}; "
            f"median |residual|/|f| {np.median(rel):.2g}")

    log("[4/4] writing merged heatmaps (image | HIK | chi2) and summary.json")
    files = []
    for k, big in enumerate(data.test_big_images):
        path = os.path.join(out, f"test_image_{k}.png")
        save_png(path, side_by_side(gray_rgb(big), *(heatmap_rgb(merged_maps[n][k]) for n in models)))
        files.append(path)
    summary = {
        "data": {"n_train_tiles": int(n_train), "n_test_tiles": int(len(X)), "seed": random_state},
        "models": summary_models,
        "seconds": {"fit_both": fit_s, "total": time.perf_counter() - t0},
        "files": files,
    }
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    log(f"wrote {len(files)} heatmaps and summary.json to {out}/ in {summary['seconds']['total']:.0f} s")
    return summary
