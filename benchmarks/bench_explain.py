"""explain() against predict() (exact and Taylor models), in one run; DenseSIFT against OpenCV: bench_sift.py.

Run: python benchmarks/bench_explain.py [--n-train 1200] [--repeat 3]
Prints ratios, not absolute targets: CI never times anything.
"""

import argparse

import numpy as np
from threadpoolctl import threadpool_info

import bowlrp
from bowlrp.datasets import make_polygons
from bowlrp.demo import toy_pipeline
from bowlrp.pipeline import ExplainablePipeline
from _timing import best  # benchmarks/_timing.py


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-train", type=int, default=1200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    data = make_polygons(n_train=args.n_train, n_test_images=2, random_state=0)
    X = data.test_images
    print(f"{len(X)} test tiles of {X.shape[1]}x{X.shape[2]} px; BLAS: "
          f"{', '.join(sorted({i['internal_api'] + ':' + str(i['num_threads']) for i in threadpool_info()}))}")

    # explain() against predict() on the toy models: exact (HIK) and Taylor (rbf, chi2)
    hik = toy_pipeline(random_state=0).fit(data.images, data.labels)
    sift_s = best(lambda: hik.steps[0][1].transform(X), args.repeat)
    feats_train = hik[:-1].transform(data.images)
    print(f"{'model':10s} {'acc':>6s} {'predict ms/img':>15s} {'explain ms/img':>15s} {'explain/predict':>16s} "
          f"{'median |r|/|f|':>15s} {'roots found':>12s}")
    for kernel, C in (("hik", 1.0), ("rbf", 10.0), ("chi2", 1.0)):
        pipe = ExplainablePipeline(hik.steps[:-1] + [
            ("svm", bowlrp.KernelSVC(kernel=kernel, C=C, blocks=(128, 128), random_state=0))])
        pipe[-1].fit(feats_train, data.labels)
        acc = pipe.score(X, data.test_labels)
        t_pred = best(lambda: pipe.decision_function(X), args.repeat)
        t_exp = best(lambda: pipe.explain(X), args.repeat)
        exp = pipe.explain(X)
        rel = np.median(np.abs(exp.residual) / np.abs(exp.score))
        found = 1.0 if exp.root_found is None else exp.root_found.mean()
        print(f"{kernel:10s} {acc:6.3f} {1e3 * t_pred / len(X):15.2f} {1e3 * t_exp / len(X):15.2f} "
              f"{t_exp / t_pred:16.2f} {rel:15.3f} {found:12.2f}")
    print(f"(SIFT is {sift_s / t_pred:.0%} of predict; targets: explain <= 1.5x predict for exact rules, "
          "<= 3x for Taylor kernels)")


if __name__ == "__main__":
    main()
