"""Explain a Bag-of-Words kernel-SVM pipeline on toy polygons, step by step.

Run: python examples/explain_toy.py   (about 30 s on 2 cores; writes PNG files to ./example_out)
"""

import os

import numpy as np

import bowlrp
from bowlrp.datasets import make_polygons

data = make_polygons(n_train=1200, n_test_images=1, random_state=0)

pipe = bowlrp.ExplainablePipeline([
    ("sift", bowlrp.DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=True)),
    ("bow", bowlrp.BagOfWords(n_words=128, mapping="rank", random_state=0)),
    ("svm", bowlrp.KernelSVC(kernel="hik", blocks=(128, 128))),
]).fit(data.images, data.labels)
print("tile accuracy:", pipe.score(data.test_images, data.test_labels))

exp = pipe.explain(data.test_images)            # one forward, one backward pass
i = int(np.argmax(exp.score))                   # the most confident polygon tile
print(f"tile {i}: f(x) = {exp.score[i]:.4f} = pixels {exp.pixels[i].sum():.4f} + bias {exp.bias[i]:.4f}"
      f" (residual {exp.residual[i]:.1e})")
print(f"  {len(exp.descriptors[i])} descriptors, {exp.features.shape[1]} Bag-of-Words features")

os.makedirs("example_out", exist_ok=True)
exp.save_png("example_out/tile.png", i=i, image=data.test_images[i])
merged = exp.merge(data.test_origins, data.test_big_images[0].shape)   # average of overlapping tiles
bowlrp.viz.save_png("example_out/merged.png", bowlrp.viz.side_by_side(
    bowlrp.viz.gray_rgb(data.test_big_images[0]), bowlrp.viz.heatmap_rgb(merged)))
print("wrote example_out/tile.png and example_out/merged.png")
