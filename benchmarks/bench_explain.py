"""explain() against predict(), and DenseSIFT against OpenCV, measured in one run.

Run: python benchmarks/bench_explain.py [--n-train 1200] [--repeat 3]
Prints ratios, not absolute targets: CI never times anything.
"""

import argparse
import time

import cv2
import numpy as np
from threadpoolctl import threadpool_info

import bowlrp
from bowlrp.datasets import make_polygons
from bowlrp.demo import toy_pipeline
from bowlrp.features.sift import grid_centers


def best(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-train", type=int, default=1200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    data = make_polygons(n_train=args.n_train, n_test_images=2, random_state=0)
    X = data.test_images
    print(f"{len(X)} test tiles of {X.shape[1]}x{X.shape[2]} px; BLAS: "
          f"{', '.join(sorted({i['internal_api'] + ':' + str(i['num_threads']) for i in threadpool_info()}))}")

    # DenseSIFT against cv2.SIFT.compute on the same keypoints
    sift = bowlrp.DenseSIFT(scales=(2.0, 3.0), steps=(6, 9))
    kps = [cv2.KeyPoint(float(x), float(y), 2 * s) for s, st in zip((2.0, 3.0), (6, 9))
           for x, y in grid_centers(X.shape[1:], s, st)]
    ocv = cv2.SIFT_create()
    t_cv = best(lambda: [ocv.compute(im, kps) for im in X], args.repeat)
    t_up = best(lambda: sift.transform(X), args.repeat)
    t_rot = best(lambda: sift.set_params(rotate=True).transform(X), args.repeat)
    sift.set_params(rotate=False)
    print(f"OpenCV SIFT.compute      {1e3 * t_cv / len(X):7.2f} ms/image   1.00x")
    print(f"DenseSIFT (upright)      {1e3 * t_up / len(X):7.2f} ms/image   {t_up / t_cv:.2f}x OpenCV")
    print(f"DenseSIFT (rotated)      {1e3 * t_rot / len(X):7.2f} ms/image   {t_rot / t_cv:.2f}x OpenCV")

    # explain() against predict() on the toy model (exact HIK rule)
    pipe = toy_pipeline(random_state=0).fit(data.images, data.labels)
    t_pred = best(lambda: pipe.decision_function(X), args.repeat)
    t_exp = best(lambda: pipe.explain(X), args.repeat)
    sets, trace = pipe.steps[0][1]._forward(X)
    feats = pipe.steps[1][1].transform(sets)
    t_sift_share = best(lambda: pipe.steps[0][1].transform(X), args.repeat)
    t_svm = best(lambda: pipe.steps[2][1].decision_function(feats), args.repeat)
    print(f"predict()                {1e3 * t_pred / len(X):7.2f} ms/image   1.00x "
          f"(SIFT {t_sift_share / t_pred:.0%}, SVM {t_svm / t_pred:.0%})")
    print(f"explain() (HIK, exact)   {1e3 * t_exp / len(X):7.2f} ms/image   {t_exp / t_pred:.2f}x predict "
          "(target: <= 1.5x)")


if __name__ == "__main__":
    main()
