"""
Fisher vectors against a small CNN on the same images
=====================================================

Toy polygons with a background texture that follows the label (``--context``,
0..1): a striped disc surrounds most polygons and few round shapes, so a
model can score well by looking at the surround instead of the shape.  A
Fisher-vector model (rotated dense SIFT, PCA, a GMM per scale, linear SVM;
thesis Ch. 4) and a small CNN train on the same tiles.  Each is explained
for the tiles' true class, and the example reports tile accuracy, the
context ratio mu (thesis eq. 4.11; how much positive relevance per pixel
lies outside the objects compared with inside) and the pixel AOPC (paper
003) of LRP, the gradient and Guided Backprop against a random order.
``bowlrp head-to-head`` on the command line runs the same comparison.

``python examples/head_to_head.py --out head-to-head --context 0.8`` runs the
full-size comparison (2000 training tiles, 40 CNN epochs; about 4 minutes on
2 cores) and writes ``heatmaps.png`` and ``summary.json``.  The documentation
builds this page with ``BOWLRP_DOCS_FAST=1``: 300 training tiles, one large
test image, 16 GMM components, 5 CNN epochs, 10 evaluation tiles and 10
perturbation steps.  The CNN is far from trained at that size, so read the
numbers on this page as a demonstration of the output, not as the result;
docs/head_to_head.md has the full-size measurement.
"""

import argparse
import os

import matplotlib.pyplot as plt
import numpy as np

from bowlrp.apps.head_to_head import run_head_to_head

FAST = os.environ.get("BOWLRP_DOCS_FAST", "0") == "1"

p = argparse.ArgumentParser(description="Fisher vectors against a small CNN on the same images")
p.add_argument("--out", default=os.path.join("example_out", "head_to_head"), help="output folder")
p.add_argument("--n-train", type=int, default=300 if FAST else 2000, help="training tiles for both models")
p.add_argument("--context", type=float, default=0.8, help="label correlation of the background texture")
p.add_argument("--n-eval", type=int, default=10 if FAST else 80, help="test tiles for the perturbation test")
p.add_argument("--n-jobs", type=int, default=2, help="threads for SIFT and BLAS")
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
small = dict(n_test_images=1, fv_components=16, cnn_epochs=5, n_steps=10, n_random_repeats=1) if FAST else {}

# %%
# Train, explain and measure both models
# --------------------------------------
# ``heatmaps.png`` has one row per evaluation tile: the tile, the FV model's
# LRP map, and the CNN's LRP map, gradient magnitude and Guided Backprop map,
# each on its own scale (red positive).

summary = run_head_to_head(a.out, n_train=a.n_train, context=a.context, n_eval=a.n_eval, n_jobs=a.n_jobs,
                           random_state=a.seed, verbose=False, **small)

# %%
# Faithfulness and context use side by side
# -----------------------------------------
# Left: AOPC above the random order with its standard error over tiles,
# divided by the mean ``|f(x)|`` so that the SVM margin and the CNN logit
# share one scale.  Right: the median mu per method; below 1, a model's
# positive evidence lies mainly on the objects.

rows = [(f"{model} {method}", m) for model, d in summary["models"].items() for method, m in d["methods"].items()]
names = [r[0] for r in rows]
scale = {f"{model} {method}": d["mean_abs_f0"] for model, d in summary["models"].items() for method in d["methods"]}
gain = np.array([m["aopc_minus_random"] / scale[n] for n, m in rows])
err = np.array([m["aopc_minus_random_se"] / scale[n] for n, m in rows])
mu = np.array([m["mu"]["median"] for _, m in rows])

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.8))
ax0.barh(names, gain, xerr=err, color="tab:red")
ax0.axvline(0, color="k", lw=0.5)
ax0.set_xlabel("(AOPC - random) / mean |f(x)|")
ax0.set_ylabel("model and method")
ax0.set_title(f"pixel perturbation, {summary['data']['n_eval_tiles']} tiles")
ax1.barh(names, mu, color="tab:blue")
ax1.axvline(1, color="k", lw=0.5, ls="--")
ax1.set_xlabel("median context ratio mu (outside / inside)")
ax1.set_ylabel("model and method")
ax1.set_title(f"context use, {summary['data']['n_test_tiles']} test tiles")
fig.tight_layout()
print({model: round(d["test_accuracy"], 3) for model, d in summary["models"].items()})
