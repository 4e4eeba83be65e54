"""Fisher-vector encoding and explanation: throughput, explain/predict, peak memory.

Run: python benchmarks/bench_fisher.py [--repeat 3] [--components 256] [--pca 80]

Measured in one run, on one 480x360 image with dense SIFT every 4 pixels:

* the machine's float32 (and float64) matrix-multiply rate (2048^2 GEMM);
* Fisher-vector encoding throughput in descriptors per second, and as a share
  of that rate (counting the ``2 n K D`` multiply-adds of each of the four
  products: posteriors ``Y^2 P``, ``Y M``, statistics ``G^T Y``, ``G^T Y^2``;
  plus the PCA projection);
* the encoder's relevance step (proportional rule, per descriptor dimension,
  through the PCA) against its forward step, and whole-pipeline explain()
  against predict() (SIFT included);
* peak memory (tracemalloc: NumPy allocations) of encoding and of explaining
  the image, against the size a descriptors x Fisher-dimensions matrix would
  have.

Prints numbers, not pass/fail: CI never times anything.
"""

import argparse
import os
import sys
import time
import tracemalloc

import cv2
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _timing import best  # noqa: E402  (benchmarks/_timing.py)
from bowlrp.encoders.fisher import FisherVectorEncoder  # noqa: E402
from pipelines.fisher_vector import THESIS_PYRAMID, THESIS_SCALES, make_pipeline  # noqa: E402


def gemm_rate(dtype, threads=None, n=2048, repeat=3):
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    b = a.T.copy()
    with threadpool_limits(threads, user_api="blas"):
        t = best(lambda: a @ b, repeat)
    return 2 * n**3 / t


def peak(f):
    tracemalloc.start()
    tracemalloc.reset_peak()
    f()
    _, p = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return p


def image(seed, shape=(360, 480)):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 3.0)
    img = (img - img.min()) / (img.max() - img.min())
    for _ in range(6):  # a few bright and dark squares for structure
        r, c, s = rng.integers(20, shape[0] - 60), rng.integers(20, shape[1] - 60), rng.integers(10, 40)
        img[r : r + s, c : c + s] = rng.random()
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--components", type=int, default=256)
    ap.add_argument("--pca", type=int, default=80)
    ap.add_argument("--fit-iter", type=int, default=5)
    args = ap.parse_args()
    K, D = args.components, args.pca
    blas = ", ".join(sorted({i["internal_api"] + ":" + str(i["num_threads"]) for i in threadpool_info()}))
    print(f"BLAS: {blas}")
    r32, r32_1 = gemm_rate(np.float32), gemm_rate(np.float32, 1)
    r64 = gemm_rate(np.float64)
    print(f"GEMM 2048^2: float32 {r32 / 1e9:.1f} GFLOP/s (1 thread {r32_1 / 1e9:.1f}), float64 {r64 / 1e9:.1f}")

    images = [image(s) for s in range(4)]
    pipe = make_pipeline(scales=THESIS_SCALES, steps=4, n_components=K, pca=D, pyramid=THESIS_PYRAMID,
                         max_descriptors=20000, max_iter=args.fit_iter)
    t = time.perf_counter()
    pipe.fit(images, [0, 1, 0, 1])
    print(f"fit on 4 images (GMM K={K}, PCA {D}, {args.fit_iter} EM iterations): {time.perf_counter() - t:.1f} s")
    sift, fv, svm = (s for _, s in pipe.steps)
    x = [images[0]]
    sets = sift.transform(x)
    n = len(sets[0])
    F = fv.n_features_out_
    print(f"one 480x360 image: {n} descriptors ({sift.scales} scales, step 4), {F} Fisher dimensions; "
          f"a dense descriptors x dimensions float64 matrix would take {n * F * 8 / 2**30:.0f} GiB")

    flops = 2.0 * n * (4 * K * D + fv.n_dims_in_ * D)
    for dtype in ("float64", "float32"):
        enc = FisherVectorEncoder(**{**fv.get_params(), "dtype": dtype})
        for a in ("pcas_", "gmms_", "means_", "sigmas_", "weights_", "n_levels_", "n_dims_in_", "n_dims_",
                  "block_size_", "block_sizes_", "feature_layout_", "n_features_out_"):
            setattr(enc, a, getattr(fv, a))
        te = best(lambda: enc.transform(sets), args.repeat)
        Ft, tr = enc.forward(sets)
        R = svm.explain(Ft).features
        tb = best(lambda: enc.relevance(R, tr, "z"), args.repeat)
        print(f"encode {dtype}: {te * 1e3:.0f} ms = {n / te:,.0f} descriptors/s = "
              f"{flops / te / 1e9:.1f} GFLOP/s = {flops / te / r32:.0%} of float32 GEMM; "
              f"relevance (z, per dimension, through PCA): {tb * 1e3:.0f} ms = {tb / te:.2f}x encode")
        for rule in ("epsilon", "alphabeta"):
            tr_ = best(lambda: enc.relevance(R, tr, rule), 1)
            print(f"  relevance {rule}: {tr_ * 1e3:.0f} ms")

    tp = best(lambda: pipe.predict(x), args.repeat)
    tx = best(lambda: pipe.explain(x, rule="z"), args.repeat)
    print(f"pipeline on the image: predict {tp * 1e3:.0f} ms, explain {tx * 1e3:.0f} ms, ratio {tx / tp:.2f}")

    pe = peak(lambda: fv.transform(sets))
    px = peak(lambda: pipe.explain(x, rule="z"))
    print(f"peak memory (tracemalloc): encoding {pe / 2**20:.0f} MiB, explaining (SIFT to pixels) "
          f"{px / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
