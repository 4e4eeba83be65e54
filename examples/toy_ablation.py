"""
Which choices matter on the toy-polygon task
============================================

Trains the two-scale HIK pipeline of thesis Sec. 2.4.3 under variations of the
data (shape size, how square the round shapes may be), of the descriptor
(upright or rotated to its dominant gradient) and of the training-set size,
and tests every variant on the same test images.  docs/toy_polygons.md
discusses the full-size table: rotation invariance matters most.

``python examples/toy_ablation.py`` trains with 1200 to 2400 tiles per variant
and tests on 400 tiles (4 large images); it takes a few minutes on 2 cores.
The documentation builds this page with ``BOWLRP_DOCS_FAST=1``: a sixth of
the training tiles, 100 test tiles and a 64-word vocabulary per scale, so the
accuracies on this page are lower and noisier than the full-size ones.
"""

import os
import time

import matplotlib.pyplot as plt

import bowlrp
from bowlrp.apps.demo import toy_pipeline
from bowlrp.datasets import make_polygons

FAST = os.environ.get("BOWLRP_DOCS_FAST", "0") == "1"
SCALE = 6 if FAST else 1  # training tiles are divided by this in the fast setting
N_TEST_IMAGES = 1 if FAST else 4
N_WORDS = 64 if FAST else 128

OLD_SHAPES = dict(shape_radius=(11.0, 17.0), lp_range=(2.0, 3.5))
VARIANTS = [
    ("small shapes, squarish round shapes; upright SIFT", 1200, OLD_SHAPES, False),
    ("small shapes, squarish round shapes; rotated SIFT", 1200, OLD_SHAPES, True),
    ("  ... with twice the training tiles", 2400, OLD_SHAPES, True),
    ("small shapes, round shapes p in [2, 2.6]; rotated", 1200, dict(shape_radius=(11.0, 17.0)), True),
    ("defaults (r 14-21, p 2-2.6); upright SIFT", 1200, {}, False),
    ("defaults; rotated SIFT", 1200, {}, True),
    ("defaults; rotated SIFT, the demo's training-set size", 2000, {}, True),
]

# %%
# Train and test every variant
# ----------------------------

results = []
print(f"{'variant':52s} {'tiles':>6s} {'accuracy':>8s} {'seconds':>8s}")
for name, n_train, data_kw, rotate in VARIANTS:
    t = time.perf_counter()
    n_train //= SCALE
    data = make_polygons(n_train=n_train, n_test_images=N_TEST_IMAGES, random_state=0, **data_kw)
    pipe = toy_pipeline(n_words=N_WORDS, random_state=0)
    pipe.set_params(sift=bowlrp.DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=rotate))
    pipe.fit(data.images, data.labels)
    acc = pipe.score(data.test_images, data.test_labels)
    results.append((f"{name.strip()} [{n_train}]", acc))
    print(f"{name:52s} {n_train:6d} {acc:8.3f} {time.perf_counter() - t:8.1f}", flush=True)

# %%
# Tile accuracy per variant
# -------------------------
# The number in brackets is the count of training tiles.

fig, ax = plt.subplots(figsize=(9, 3.8))
labels, accs = zip(*results)
ax.barh(labels[::-1], accs[::-1], color="tab:green")
ax.set_xlim(0.5, 1.0)
ax.set_xlabel(f"tile accuracy on {100 * N_TEST_IMAGES} test tiles")
ax.set_ylabel("variant [training tiles]")
ax.set_title(f"toy polygons, HIK kernel, {N_WORDS} words per scale")
fig.tight_layout()
