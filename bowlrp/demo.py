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

from .datasets import make_polygons
from .encoders import BagOfWords
from .features import DenseSIFT
from .pipeline import ExplainablePipeline
from .svm import KernelSVC
from .viz import gray_rgb, heatmap_rgb, merge_tiles, save_png, side_by_side

__all__ = ["toy_pipeline", "run_demo", "region_means"]


def toy_pipeline(n_words=128, kernel="hik", C=1.0, random_state=0, verbose=False):
    """The thesis' toy model: SIFT at sigma 2 and 3 (steps 6 and 9), rotated to
    the dominant gradient, rank-mapped BoW (eq. 2.86) per scale, one kernel per scale."""
    return ExplainablePipeline(
        [
            ("sift", DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=True)),
            ("bow", BagOfWords(n_words=n_words, mapping="rank", random_state=random_state)),
            ("svm", KernelSVC(kernel=kernel, C=C, blocks=(n_words, n_words))),
        ],
        verbose=verbose,
    )


def region_means(pixel_maps, polygon_masks, round_masks):
    """Mean pixel relevance on polygons, on round shapes and on the background."""
    P = np.asarray(pixel_maps)
    pm, rm = np.asarray(polygon_masks, bool), np.asarray(round_masks, bool)
    bg = ~(pm | rm)
    return {
        "polygons": float(P[pm].mean()),
        "round_shapes": float(P[rm].mean()),
        "background": float(P[bg].mean()),
    }


def run_demo(out="bowlrp-demo", n_train=2000, n_test_images=4, n_words=128, random_state=0, batch=50, log=print):
    """Run the demo and write its files into ``out``; returns the summary dict.

    Files: ``test_image_<k>.png`` (the large test image beside its merged HIK
    heatmap, eq. 2.62, red positive, blue negative), ``summary.json``.
    """
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    log(f"[1/4] toy polygons: {n_train} training tiles, {n_test_images} large test images")
    data = make_polygons(n_train=n_train, n_test_images=n_test_images, random_state=random_state)

    log("[2/4] training the two-scale HIK model (dense SIFT, k-means 2 x %d, kernel SVM)" % n_words)
    pipe = toy_pipeline(n_words=n_words, random_state=random_state, verbose=True)
    t = time.perf_counter()
    pipe.fit(data.images, data.labels)
    fit_s = time.perf_counter() - t

    X = data.test_images
    t = time.perf_counter()
    acc = float(pipe.score(X, data.test_labels))
    predict_s = time.perf_counter() - t
    log(f"      test accuracy on {len(X)} tiles: {acc:.3f}")

    log("[3/4] explaining the test tiles")
    pixels, residual, score, bias = [], [], [], []
    t = time.perf_counter()
    for a in tqdm(range(0, len(X), batch), unit="batch", desc="explain"):
        exp = pipe.explain(X[a : a + batch])
        pixels.extend(exp.pixels)
        residual.append(exp.residual)
        score.append(exp.score)
        bias.append(exp.bias)
    explain_s = time.perf_counter() - t
    residual, score = np.concatenate(residual), np.concatenate(score)

    log("[4/4] merging tile heatmaps and writing PNG files")
    files = []
    for k, big in enumerate(data.test_big_images):
        sel = np.flatnonzero(data.test_source == k)
        merged = merge_tiles([pixels[i] for i in sel], data.test_origins[sel], big.shape)
        path = os.path.join(out, f"test_image_{k}.png")
        save_png(path, side_by_side(gray_rgb(big), heatmap_rgb(merged)))
        files.append(path)

    means = region_means(pixels, data.test_polygon_masks, data.test_round_masks)
    summary = {
        "model": "two-scale HIK (thesis Sec. 2.4.3)",
        "n_train_tiles": int(n_train),
        "n_test_tiles": int(len(X)),
        "test_accuracy": acc,
        "mean_pixel_relevance": means,
        "conservation": {
            "max_abs_residual": float(np.abs(residual).max()),
            "max_relative_residual": float(np.max(np.abs(residual) / np.maximum(np.abs(score), 1e-300))),
        },
        "seconds": {
            "fit": fit_s,
            "predict": predict_s,
            "explain": explain_s,
            "explain_over_predict": explain_s / predict_s,
            "total": time.perf_counter() - t0,
        },
        "files": files,
    }
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    log(
        "mean pixel relevance: polygons %.3g, round shapes %.3g, background %.3g"
        % (means["polygons"], means["round_shapes"], means["background"])
    )
    log(f"max relative conservation residual: {summary['conservation']['max_relative_residual']:.2e}")
    log(f"wrote {len(files)} heatmaps and summary.json to {out}/ in {summary['seconds']['total']:.0f} s")
    return summary
