"""
Which model choices work on real photographs: an ablation on textures
=====================================================================

The brick, grass and gravel photographs of scikit-image (512 x 512, CC0) cut
into 64 x 64 tiles (64 per class, 192 in all) are classified by variants of
the ready-made models of :mod:`bowlrp.apps.models`; each variant is scored by
stratified 4-fold cross-validation (every tile is held out once), so the
figures are accuracies on tiles the model did not see.  This is how the
defaults of ``bow-hik``, ``bow-chi2`` and ``fv-linear`` were chosen
(``docs/photographs.md``).

Run: ``python examples/texture_ablation.py [--quick] [--json out.json]`` (about an hour on 2
cores; ``--quick``: five variants).  The documentation builds this page with
``BOWLRP_DOCS_FAST=1``: three variants (the toy model upright and rotated, fv-linear), 2 folds
on 128 x 128 tiles (48), so its figures are far noisier than the table in docs/photographs.md.
"""

import argparse
import json
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_score

from bowlrp.apps.models import make_model
from bowlrp.datasets import load_textures

TOY_SIFT = {"sift__scales": (2.0, 3.0), "sift__steps": (6, 9)}

# %%
# The variants
# ------------
# Each row: a label, a ready-made model of :func:`bowlrp.apps.models.make_model` and the
# parameters it overrides (``<step>__<parameter>``, as in scikit-learn).

VARIANTS = [
    # (label, model, parameter overrides)
    ("toy model of the thesis (sigma 2, 3; steps 6, 9), upright", "bow-hik", {**TOY_SIFT, "sift__rotate": False}),
    ("toy model, rotated", "bow-hik", TOY_SIFT),
    ("toy model, rotated, 64 words", "bow-hik", {**TOY_SIFT, "bow__n_words": 64}),
    ("toy model, rotated, 256 words", "bow-hik", {**TOY_SIFT, "bow__n_words": 256}),
    ("sigma 2, 3; steps 3, 4, rotated", "bow-hik", {"sift__scales": (2.0, 3.0), "sift__steps": (3, 4)}),
    ("sigma 1.5, 2, 3; steps 4, 4, 6, upright", "bow-hik", {"sift__rotate": False}),
    ("sigma 1.5, 2, 3; steps 4, 4, 6, rotated (bow-hik)", "bow-hik", {}),
    ("bow-hik, 64 words", "bow-hik", {"bow__n_words": 64}),
    ("bow-hik, 256 words", "bow-hik", {"bow__n_words": 256}),
    ("bow-hik, hard assignment", "bow-hik", {"bow__mapping": "hard"}),
    ("bow-chi2", "bow-chi2", {}),
    ("bow-additive-chi2", "bow-additive-chi2", {}),
    ("fv-linear, upright (sigma 4/3, 2, 8/3, step 4, K 32, PCA 32)", "fv-linear", {"sift__rotate": False}),
    ("fv-linear (rotated)", "fv-linear", {}),
    ("fv-linear, upright, K 64", "fv-linear", {"sift__rotate": False, "fv__n_components": 64}),
    ("fv-linear, upright, K 16, PCA 16", "fv-linear", {"sift__rotate": False, "fv__n_components": 16,
                                                       "fv__pca": 16}),
]

QUICK = [0, 1, 6, 10, 13]
FAST = os.environ.get("BOWLRP_DOCS_FAST", "0") == "1"

ap = argparse.ArgumentParser(description="Which model choices work on real photographs: an ablation "
                             "on textures.")
ap.add_argument("--quick", action="store_true", help="only the main variants")
ap.add_argument("--folds", type=int, default=2 if FAST else 4, help="cross-validation folds")
ap.add_argument("--json", help="write the table as JSON here")
args = ap.parse_args()

# %%
# Cross-validated accuracy of each variant
# ----------------------------------------
# ``cross_val_score`` refits the whole pipeline (dense SIFT, vocabulary or
# Gaussian mixture, SVM) in every fold, so no tile that scores a fold helped
# to build its model.

tile = 128 if FAST else 64
data = load_textures(tile_size=tile)
X, y = list(data.images), data.target
cv = StratifiedKFold(args.folds, shuffle=True, random_state=0)
rows = []
for k, (label, name, params) in enumerate(VARIANTS):
    if (args.quick and k not in QUICK) or (FAST and k not in (0, 1, 13)):
        continue
    t = time.perf_counter()
    scores = cross_val_score(make_model(name, params), X, y, cv=cv)
    s = time.perf_counter() - t
    rows.append({"variant": label, "model": name, "params": {k: str(v) for k, v in params.items()},
                 "accuracy": float(scores.mean()), "folds": scores.round(4).tolist(), "seconds": s})
    print(f"{scores.mean():.3f}  (folds {', '.join(f'{v:.3f}' for v in scores)})  {s:5.0f} s  {label}",
          flush=True)
if args.json:
    with open(args.json, "w") as fh:
        json.dump({"n_tiles": len(X), "tile_size": tile, "folds": args.folds, "rows": rows}, fh, indent=2)

# %%
# The table as a figure
# ---------------------
# Bars: the mean accuracy over the folds; dots: the folds.

fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 2.0))
pos = np.arange(len(rows))[::-1]
ax.barh(pos, [r["accuracy"] for r in rows], color="tab:blue")
for p, r in zip(pos, rows):
    ax.plot(r["folds"], [p] * len(r["folds"]), "k.")
ax.set_yticks(pos, [r["variant"] for r in rows], fontsize=8)
ax.set_xlim(min(0.5, min(min(r["folds"]) for r in rows) - 0.05), 1.02)
ax.set_xlabel(f"accuracy on held-out tiles ({args.folds}-fold cross-validation,\n"
              f"{len(X)} tiles of {tile} x {tile} px)")
ax.set_ylabel("variant")
ax.set_title("Model variants on the scikit-image textures\n(bars: mean over the folds; dots: one fold each)",
             fontsize=10)
fig.tight_layout()
