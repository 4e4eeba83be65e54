"""Command line: ``bowlrp demo`` (or ``python -m bowlrp demo``)."""

import argparse
import sys

__all__ = ["main"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bowlrp", description="Explain Bag-of-Words kernel-SVM pipelines with LRP.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train the thesis' toy-polygon HIK model and write merged heatmaps (Fig. 2.13)",
        description="Toy polygons (thesis Sec. 2.4.3): train, explain the test tiles, write heatmaps and summary.json.",
    )
    demo.add_argument("--out", default="bowlrp-demo", help="output folder (default: bowlrp-demo)")
    demo.add_argument("--n-train", type=int, default=2000, help="training tiles (default: 2000)")
    demo.add_argument("--n-test-images", type=int, default=4, help="large test images, 100 tiles each (default: 4)")
    demo.add_argument("--n-words", type=int, default=128, help="vocabulary size per SIFT scale (default: 128)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    h2h = sub.add_parser(
        "head-to-head",
        help="Fisher vectors against the CNN on polygons with a label-correlated background",
        description="Train a Fisher-vector model and a small CNN on the same tiles and compare accuracy, "
        "context use (mu, eq. 4.11) and pixel AOPC; writes a table, summary.json and heatmaps.png.",
    )
    h2h.add_argument("--out", default="bowlrp-head-to-head", help="output folder (default: bowlrp-head-to-head)")
    h2h.add_argument("--n-train", type=int, default=2000, help="training tiles (default: 2000)")
    h2h.add_argument("--context", type=float, default=0.8,
                     help="how strongly the background texture follows the label, 0..1 (default: 0.8)")
    h2h.add_argument("--n-eval", type=int, default=80, help="tiles for the perturbation test (default: 80)")
    h2h.add_argument("--n-jobs", type=int, default=2, help="parallel jobs (default: 2)")
    h2h.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .apps.demo import run_demo

        if args.n_train < 50 or args.n_test_images < 1:
            parser.error("--n-train must be >= 50 and --n-test-images >= 1")
        run_demo(
            out=args.out,
            n_train=args.n_train,
            n_test_images=args.n_test_images,
            n_words=args.n_words,
            random_state=args.seed,
        )
    elif args.command == "head-to-head":
        from .apps.head_to_head import run_head_to_head

        if args.n_train < 50 or not 0 <= args.context <= 1 or args.n_eval < 1:
            parser.error("--n-train must be >= 50, --context in [0, 1] and --n-eval >= 1")
        run_head_to_head(args.out, n_train=args.n_train, context=args.context, n_eval=args.n_eval,
                         n_jobs=args.n_jobs, random_state=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
