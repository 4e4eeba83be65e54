"""Fisher vectors against a small CNN on the same images (issue 6, SPEC G3; thesis Ch. 4).

Toy polygons with a background texture that correlates with the label
(``--context``, 0..1).  Trains the scaled-down Fisher-vector model and the
CNN on the same tiles, then reports tile accuracy, the context ratio mu
(thesis eq. 4.11) from the object masks and pixel AOPC (paper 003) of LRP,
gradient and Guided Backprop (CNN) and LRP (FV) against a random order;
writes heatmaps.png and summary.json.  About 5 minutes on 2 cores.

    python examples/head_to_head.py --out head-to-head --context 0.8
"""

import argparse

from bowlrp.apps.head_to_head import run_head_to_head

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bowlrp-head-to-head", help="output folder")
    p.add_argument("--n-train", type=int, default=2000, help="training tiles for both models")
    p.add_argument("--context", type=float, default=0.8, help="label correlation of the background texture")
    p.add_argument("--n-eval", type=int, default=80, help="test tiles for the perturbation test")
    p.add_argument("--n-jobs", type=int, default=2, help="threads for SIFT and BLAS")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    run_head_to_head(a.out, n_train=a.n_train, context=a.context, n_eval=a.n_eval, n_jobs=a.n_jobs,
                     random_state=a.seed)
