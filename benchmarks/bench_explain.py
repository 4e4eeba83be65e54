"""explain() against predict() (exact and Taylor models), in one run; DenseSIFT against OpenCV: bench_sift.py.

Run: python benchmarks/bench_explain.py [--n-train 2000] [--test-images 4] [--rounds 3]

The demo's toy models (bowlrp.apps.demo.toy_pipeline: rotated SIFT at sigma
2 and 3, rank-mapped BoW with 128 words per scale, one kernel per scale),
trained on ``--n-train`` tiles of make_polygons(random_state=0) and timed on
the 100 test tiles of each of ``--test-images`` large images.  Each round
runs predict (decision_function) and explain once, in turn, and the fastest
round of each is kept, so the ratios come from one run and a busy machine
disturbs them least.  Two clocks: wall time (what a user waits, with every
thread the libraries use) and the CPU time of the process, all threads
together (the work done, steadier on a shared machine).  "svm" is the final
estimator's explain() alone on the features, against its decision_function.
Prints ratios, not absolute targets: CI never times anything.
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_info

import bowlrp
from bowlrp.apps.demo import toy_pipeline
from bowlrp.datasets import make_polygons
from bowlrp.pipeline import ExplainablePipeline
from bowlrp.svm.kernels import n_threads
from bench_sift import interleaved_best  # benchmarks/bench_sift.py

TARGETS = {"hik": 1.5, "rbf": 2.0, "chi2": 2.0}  # explain / predict: exact rules, Taylor kernels


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--test-images", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kernels", default="hik,rbf,chi2")
    args = ap.parse_args()
    data = make_polygons(n_train=args.n_train, n_test_images=args.test_images, random_state=0)
    X = data.test_images
    print(f"{len(X)} test tiles of {X.shape[1]}x{X.shape[2]} px, {args.n_train} training tiles; BLAS: "
          f"{', '.join(sorted({i['internal_api'] + ':' + str(i['num_threads']) for i in threadpool_info()}))}; "
          f"kernel threads: {n_threads()}")

    hik = toy_pipeline(random_state=0).fit(data.images, data.labels)
    feats_train, feats = hik[:-1].transform(data.images), hik[:-1].transform(X)
    print(f"{'model':6s} {'acc':>6s} {'SVs':>5s} | {'predict':>8s} {'explain':>8s} ms/img  {'wall':>5s} "
          f"{'CPU':>5s} {'target':>7s} | {'svm wall':>8s} {'svm CPU':>8s} | {'median |r|/|f|':>14s} "
          f"{'roots found':>11s}")
    for kernel in args.kernels.split(","):
        C = {"rbf": 10.0}.get(kernel, 1.0)
        svm = bowlrp.KernelSVC(kernel=kernel, C=C, blocks=(128, 128), random_state=0).fit(feats_train, data.labels)
        pipe = ExplainablePipeline(hik.steps[:-1] + [("svm", svm)])
        acc = pipe.score(X, data.test_labels)
        methods = {"predict": lambda: pipe.decision_function(X), "explain": lambda: pipe.explain(X),
                   "svm predict": lambda: svm.decision_function(feats), "svm explain": lambda: svm.explain(feats)}
        wall = interleaved_best(methods, args.rounds, time.perf_counter)
        cpu = interleaved_best(methods, args.rounds, time.process_time)
        exp = svm.explain(feats)
        rel = np.median(np.abs(exp.residual) / np.abs(exp.score))
        found = 1.0 if exp.root_found is None else exp.root_found.mean()
        print(f"{kernel:6s} {acc:6.3f} {svm.support_vectors_.shape[0]:5d} | "
              f"{1e3 * wall['predict'] / len(X):8.2f} {1e3 * wall['explain'] / len(X):8.2f}         "
              f"{wall['explain'] / wall['predict']:5.2f} {cpu['explain'] / cpu['predict']:5.2f} "
              f"{'<= ' + str(TARGETS.get(kernel, '')):>7s} | {wall['svm explain'] / wall['svm predict']:8.2f} "
              f"{cpu['svm explain'] / cpu['svm predict']:8.2f} | {rel:14.4f} {found:11.2f}", flush=True)
    print("(wall, CPU: explain / predict of the whole pipeline; svm: of the final estimator on the features)")


if __name__ == "__main__":
    main()
