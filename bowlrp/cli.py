"""The ``bowlrp`` command line: demos, and train / explain / evaluate on an image folder.

::

    bowlrp demo [toy|textures|clever-hans] --out DIR
    bowlrp head-to-head --out DIR
    bowlrp train FOLDER --model bow-hik --out model.joblib [--param bow__n_words=256 ...] [--scheduler ADDRESS]
    bowlrp explain model.joblib IMAGES_OR_FOLDERS... --out report/ [--rule z] [--target CLASS] [--n-jobs N]
                   [--scheduler ADDRESS] [--no-gallery]
    bowlrp evaluate model.joblib FOLDER --out eval/
    bowlrp spray model.joblib IMAGES_OR_FOLDERS... --out spray/ [--class CLASS] [--n-clusters K]
    bowlrp reproduce [--fast] [--only toy,fisher,...] [--out docs/reproduction.md]

Errors in what the user passed (option values, paths, files that are not
models, images too small for the model) are printed as one line,
``bowlrp <command>: error: ...``, with exit status 2; ``--traceback`` shows
the Python traceback instead.  An unexpected failure exits with status 1.

Each command is one ``add_<command>(subparsers)`` function that registers its
options and sets ``func`` to the function running it.
"""

import argparse
import os
import sys
import warnings

from ._cli_options import (_FROM_MODEL, CommandError, _add_scheduler, _add_threads, _cap, _class_of_folder,
                           _int_at_least, _load, _max_side, _model_name, _output_folder, _params, _scheduler, _share,
                           _threads, _unit)

__all__ = ["main", "build_parser", "CommandError"]


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line: ``bowlrp <command>: error: ...``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# ------------------------------------------------------------------ demo
def add_demo(sub):
    p = sub.add_parser(
        "demo",
        help="toy polygons (thesis Fig. 2.13), the texture photographs of scikit-image, or a planted "
        "watermark found by heatmaps and SpRAy (clever-hans), end to end",
        description="'toy' (default): the thesis' toy polygons (Sec. 2.4.3): train, explain the test tiles, "
        "write heatmaps and summary.json. 'textures': the brick, grass and gravel photographs that ship "
        "with scikit-image, written as an image folder, then 'bowlrp train', 'explain' (a gallery) and "
        "'evaluate' on it. 'clever-hans': a watermark planted in half of one class's training images (toy "
        "polygons and photographs): accuracy with and without the mark, the relevance on the mark, SpRAy's "
        "clusters against the truth, for that model and a clean one; figures, summary.json, index.html.",
    )
    p.add_argument("name", nargs="?", default="toy", choices=("toy", "textures", "clever-hans"),
                   help="which demo (default: toy)")
    p.add_argument("--out", default=None,
                   help="output folder (default: bowlrp-demo, bowlrp-textures or clever-hans)")
    p.add_argument("--n-train", type=_int_at_least(50), default=2000, help="toy: training tiles (default: 2000)")
    p.add_argument("--n-test-images", type=_int_at_least(1), default=4,
                   help="toy: large test images, 100 tiles each (default: 4)")
    p.add_argument("--n-words", type=_int_at_least(2), default=128,
                   help="toy: vocabulary size per SIFT scale (default: 128)")
    p.add_argument("--tile-size", type=_int_at_least(32), default=64,
                   help="textures: side of the tiles cut from the 512 x 512 photographs (default: 64)")
    p.add_argument("--model", type=_model_name, default="bow-hik", help="textures: model (default: bow-hik)")
    p.add_argument("--no-evaluate", action="store_true", help="textures: skip the faithfulness evaluation")
    p.add_argument("--n-jobs", type=int, default=None, help="textures: parallel workers (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    _add_threads(p, default=None, what="1 for textures, no limit for toy")
    p.set_defaults(func=run_demo)


def run_demo(args):
    if args.name == "toy":
        from .apps.demo import run_demo as toy  # noqa: PLC0415

        out = _output_folder(args.out or "bowlrp-demo")
        toy(out=out, n_train=args.n_train, n_test_images=args.n_test_images, n_words=args.n_words,
            random_state=args.seed)
    elif args.name == "clever-hans":
        from .apps.clever_hans import run_clever_hans_demo  # noqa: PLC0415

        run_clever_hans_demo(_output_folder(args.out or "clever-hans"), random_state=args.seed)
    else:
        from .apps.textures_demo import run_textures_demo  # noqa: PLC0415

        out = _output_folder(args.out or "bowlrp-textures")
        run_textures_demo(out, tile_size=args.tile_size, model=args.model, evaluate=not args.no_evaluate,
                          n_jobs=args.n_jobs, random_state=args.seed)
    return 0


# ------------------------------------------------------------------ head to head
def add_head_to_head(sub):
    p = sub.add_parser(
        "head-to-head",
        help="Fisher vectors against the CNN on polygons with a label-correlated background",
        description="Train a Fisher-vector model and a small CNN on the same tiles and compare accuracy, "
        "context use (mu, eq. 4.11) and pixel AOPC; writes a table, summary.json and heatmaps.png.",
    )
    p.add_argument("--out", default="bowlrp-head-to-head", help="output folder (default: bowlrp-head-to-head)")
    p.add_argument("--n-train", type=_int_at_least(50), default=2000, help="training tiles (default: 2000)")
    p.add_argument("--context", type=_unit, default=0.8,
                   help="how strongly the background texture follows the label, 0..1 (default: 0.8)")
    p.add_argument("--n-eval", type=_int_at_least(1), default=80, help="tiles for the perturbation test (default: 80)")
    p.add_argument("--n-jobs", type=int, default=2, help="parallel jobs (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=run_head_to_head)


def run_head_to_head(args):
    from .apps.head_to_head import run_head_to_head as h2h  # noqa: PLC0415

    h2h(_output_folder(args.out), n_train=args.n_train, context=args.context, n_eval=args.n_eval,
        n_jobs=args.n_jobs, random_state=args.seed)
    return 0


# ------------------------------------------------------------------ train
def add_train(sub):
    from .apps.models import MODELS  # noqa: PLC0415

    models = "; ".join(f"{k}: {v.description}" for k, v in MODELS.items())
    p = sub.add_parser(
        "train",
        help="train a ready-made model on an image folder (one sub-folder per class)",
        description="Read FOLDER/<class>/*.png|jpg|tif|bmp|webp, hold out a stratified test split, fit the "
        f"model, print held-out accuracy and the confusion matrix, and save the model file. Models: {models}.",
    )
    p.add_argument("folder", help="image folder with one sub-folder per class")
    p.add_argument("--model", type=_model_name, default="bow-hik", help="ready-made model (default: bow-hik)")
    p.add_argument("--out", required=True, help="model file to write, e.g. model.joblib")
    p.add_argument("--param", action="append", default=[], metavar="STEP__NAME=VALUE",
                   help="override a model parameter, e.g. --param bow__n_words=256 (repeatable)")
    p.add_argument("--test-size", type=_share, default=0.25,
                   help="share of each class held out for testing, 0 for none (default: 0.25)")
    p.add_argument("--max-side", type=_max_side, default=_FROM_MODEL,
                   help="cap on the longer image side in pixels, 0 for none (default: the model's, 640)")
    p.add_argument("--n-jobs", type=int, default=None,
                   help="worker processes reading images, computing dense SIFT and the features (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the split and the model (default: 0)")
    _add_scheduler(p)
    _add_threads(p)
    p.set_defaults(func=run_train)


def run_train(args):
    from .apps.models import make_model  # noqa: PLC0415
    from .apps.train import train_folder  # noqa: PLC0415

    if os.path.isdir(args.out):
        raise CommandError(f"--out {args.out!r} is a folder; give the model file's name, e.g. {args.out}/model.joblib")
    params = _params(args.param, "--param")
    make_model(args.model, params)  # unknown parameters fail here, before any image is read
    train_folder(args.folder, args.model, args.out, params=params, test_size=args.test_size,
                 max_side=_cap(args), random_state=args.seed, n_jobs=args.n_jobs, client=_scheduler(args))
    return 0


# ------------------------------------------------------------------ explain
def add_explain(sub):
    p = sub.add_parser(
        "explain",
        help="explain images with a trained model: heatmaps, index.html, summary.csv, pixel maps",
        description="Explain every image (files and folders, mixed) one at a time and write, into --out: "
        "one PNG panel per image (image, heatmap, overlay), index.html (a static gallery grouped by "
        "predicted class), summary.csv and pixel_maps.npz. Rerun the same command after an interruption: "
        "the images already explained are kept.",
    )
    p.add_argument("model", help="model file written by 'bowlrp train'")
    p.add_argument("inputs", nargs="+", help="image files and folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--rule", default="z",
                   help="mapping-stage rule: z (exact), epsilon, alphabeta, abs, flat (default: z)")
    p.add_argument("--rule-param", action="append", default=[], metavar="NAME=VALUE",
                   help="rule parameter, e.g. --rule-param epsilon=1.0 or alpha=2 beta=-1 (repeatable)")
    p.add_argument("--target", default=None,
                   help="class to explain in every image (default: each image's predicted class)")
    p.add_argument("--max-side", type=_max_side, default=_FROM_MODEL,
                   help="cap on the longer image side, 0 for none (default: the cap the model was trained with)")
    p.add_argument("--n-jobs", type=int, default=None, help="parallel worker processes (default: 1)")
    p.add_argument("--no-gallery", action="store_true",
                   help="write only the pixel maps (maps/<id>.npy) and summary.csv: no PNG files, no index.html")
    _add_scheduler(p)
    _add_threads(p)
    p.set_defaults(func=run_explain)


def run_explain(args):
    from .collection import explain_collection  # noqa: PLC0415
    from .collection.engine import remember_model  # noqa: PLC0415
    from .datasets.folder import find_images, warn_skipped  # noqa: PLC0415

    out = _output_folder(args.out)
    rule_params = _params(args.rule_param, "--rule-param")
    client = _scheduler(args)
    pipeline, meta = _load(args.model)
    remember_model(args.model, pipeline, meta)
    classes = [c.item() if hasattr(c, "item") else c for c in pipeline.classes_]
    target = args.target
    if target is not None and target not in [str(c) for c in classes]:
        raise CommandError(f"--target {target!r} is not a class of the model; its classes are "
                           f"{', '.join(map(str, classes))} (or leave --target out to explain each prediction)")
    if target is not None:
        target = classes[[str(c) for c in classes].index(target)]
    paths, skipped = find_images(args.inputs)
    warn_skipped(skipped)
    cap = meta.get("max_side") if _cap(args) == "model" else args.max_side
    done = explain_collection(
        args.model, paths, out, rule=args.rule, target=target, rule_params=rule_params, max_side=cap,
        folder_classes=[_class_of_folder(p, [str(c) for c in classes]) for p in paths], n_jobs=args.n_jobs,
        client=client, gallery=not args.no_gallery,
        title=f"bowlrp: {meta.get('model')} explained with rule {args.rule}",
        meta={"model": f"{meta.get('model')} ({os.path.abspath(args.model)})",
              "classes": ", ".join(map(str, classes)), "rule": args.rule + (f" {rule_params}" if rule_params else ""),
              "images read with longer side capped at": f"{cap} px" if cap else "no cap"},
    )
    bad = done.errors
    for path, error in bad[:10]:
        print(f"bowlrp explain: warning: not explained: {path}: {error}", file=sys.stderr)
    if len(bad) > 10:
        print(f"bowlrp explain: warning: ... and {len(bad) - 10} more (see summary.csv)", file=sys.stderr)
    if len(bad) == done.n_images:
        raise CommandError(f"none of the {done.n_images} input image(s) could be explained; first: "
                           f"{bad[0][0]}: {bad[0][1]}")
    kept = f" ({done.n_resumed} kept from an earlier run)" if done.n_resumed else ""
    where = os.path.join(out, "index.html") if not args.no_gallery else os.path.join(out, "summary.csv")
    print(f"explained {done.n_explained} of {done.n_images} images{kept}; open {where}")
    return 0


# ------------------------------------------------------------------ evaluate
def add_evaluate(sub):
    p = sub.add_parser(
        "evaluate",
        help="accuracy and faithfulness (pixel and descriptor perturbation) of a trained model",
        description="On FOLDER/<class>/*: accuracy and confusion matrix; on a class-balanced sample, pixel "
        "AOPC of LRP against occlusion and a random order, and descriptor-replacement AOPC against a "
        "random order; writes evaluation.json and PNG plots into --out. Images the model was trained on "
        "are left out unless --include-train.",
    )
    p.add_argument("model", help="model file written by 'bowlrp train'")
    p.add_argument("folder", help="image folder with one sub-folder per class of the model")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--n-sample", type=_int_at_least(2), default=12,
                   help="images for the perturbation tests, balanced over classes (default: 12)")
    p.add_argument("--n-steps", type=_int_at_least(1), default=16,
                   help="perturbation steps: regions, and batches of descriptors, replaced (default: 16); "
                   "costs n-sample x (n-steps + 1) x (2 + n-repeats) predictions")
    p.add_argument("--region-size", type=_int_at_least(1), default=None,
                   help="side of the perturbed regions in pixels (default: 1/8 of the smallest image side)")
    p.add_argument("--n-repeats", type=_int_at_least(1), default=2,
                   help="repetitions of the random baselines (default: 2)")
    p.add_argument("--replacement", choices=("uniform", "blur", "mean"), default="uniform",
                   help="what replaces a perturbed region (default: uniform noise, as in the paper)")
    p.add_argument("--include-train", action="store_true", help="also evaluate on the images the model was trained on")
    p.add_argument("--max-side", type=_max_side, default=_FROM_MODEL,
                   help="cap on the longer image side, 0 for none (default: the model's training cap)")
    p.add_argument("--n-jobs", type=int, default=None, help="parallel workers (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    _add_threads(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args):
    from .apps.evaluate import evaluate_folder  # noqa: PLC0415

    out = _output_folder(args.out)
    pipeline, meta = _load(args.model)
    evaluate_folder(pipeline, meta, args.folder, out, n_sample=args.n_sample, region_size=args.region_size,
                    n_steps=args.n_steps,
                    n_repeats=args.n_repeats, replacement=args.replacement, include_train=args.include_train,
                    max_side=_cap(args), n_jobs=args.n_jobs, random_state=args.seed)
    print(f"wrote {os.path.join(out, 'evaluation.json')} and plots")
    return 0


# ------------------------------------------------------------------ spray
def add_spray(sub):
    p = sub.add_parser(
        "spray",
        help="cluster the explanations of one class with SpRAy (thesis Ch. 6): spectrum, clusters, mean heatmaps",
        description="Explain the images (of --class: those in folders of that name, all inputs when none is) "
        "for that class, and run SpRAy on the heatmaps: pooled maps, a kNN graph, the "
        "spectrum of its normalised Laplacian. Writes, beside the heatmap gallery: spectrum.png (eigengap "
        "marked), embedding.png, clusters.png (each cluster's mean heatmap and examples), clusters.csv "
        "(path, cluster), spray.json and spray.html. The number of clusters comes from the eigengap "
        "unless --n-clusters is given.",
    )
    p.add_argument("model", help="model file written by 'bowlrp train'")
    p.add_argument("inputs", nargs="+", help="image files and folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--class", dest="class_name", default=None, metavar="CLASS",
                   help="class whose explanations are clustered (default: explain each image's predicted class)")
    p.add_argument("--n-clusters", type=_int_at_least(1), default=None,
                   help="number of clusters (default: from the eigengap)")
    p.add_argument("--grid", type=_int_at_least(1), default=None, metavar="N",
                   help="pool each heatmap onto an N x N grid (default: SpRAy's, 10)")
    p.add_argument("--n-neighbors", type=_int_at_least(1), default=None,
                   help="neighbours of the kNN graph (default: max(12, ceil(ln n)), below the number of images)")
    p.add_argument("--normalize", choices=("none", "l2", "sum", "max"), default=None,
                   help="scale each pooled map before the graph: none compares the maps as they are, so relevance "
                   "a mark adds counts; l2 compares where the relevance lies whatever the score (default: none)")
    p.add_argument("--rule", default="z", help="mapping-stage rule, as in 'bowlrp explain' (default: z)")
    p.add_argument("--max-side", type=_max_side, default=_FROM_MODEL,
                   help="cap on the longer image side, 0 for none (default: the cap the model was trained with)")
    p.add_argument("--n-jobs", type=int, default=None, help="parallel worker processes (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed of k-means and t-SNE (default: 0)")
    _add_threads(p)
    p.set_defaults(func=run_spray)


def run_spray(args):
    from .apps.spray import class_paths, spray_paths  # noqa: PLC0415
    from .datasets.folder import find_images, warn_skipped  # noqa: PLC0415

    out = _output_folder(args.out)
    pipeline, meta = _load(args.model)
    classes = [c.item() if hasattr(c, "item") else c for c in pipeline.classes_]
    target = args.class_name
    if target is not None:
        if target not in [str(c) for c in classes]:
            raise CommandError(f"--class {target!r} is not a class of the model; its classes are "
                               f"{', '.join(map(str, classes))}")
        target = classes[[str(c) for c in classes].index(target)]
    paths, skipped = find_images(args.inputs)
    warn_skipped(skipped)
    paths, how = class_paths(paths, args.class_name)
    if len(paths) < 3:
        raise CommandError(f"SpRAy needs at least 3 images, found {len(paths)} ({how}); give more images")
    params = {}
    if args.grid is not None:
        params["grid"] = (args.grid, args.grid)
    if args.n_neighbors is not None:
        if args.n_neighbors >= len(paths):
            raise CommandError(f"--n-neighbors {args.n_neighbors} must be below the number of images, {len(paths)}")
        params["n_neighbors"] = args.n_neighbors
    if args.normalize is not None:
        params["normalize"] = args.normalize
    if args.n_clusters is not None and args.n_clusters > len(paths):
        raise CommandError(f"--n-clusters {args.n_clusters} is more than the {len(paths)} images")
    cap = meta.get("max_side") if _cap(args) == "model" else args.max_side
    print(f"SpRAy on {how}")
    summary = spray_paths(pipeline, paths, out, target=target, n_clusters=args.n_clusters, spray_params=params,
                          rule=args.rule, max_side=cap, n_jobs=args.n_jobs, random_state=args.seed,
                          meta={"model": f"{meta.get('model')} ({os.path.abspath(args.model)})",
                                "class": "predicted class" if target is None else str(target), "images": how})
    print(f"{summary['n_clusters']} cluster(s) of sizes {summary['cluster_sizes']} (eigengap "
          f"{summary['eigengap']:.3f}); open {os.path.join(out, 'spray.html')}")
    return 0


# ------------------------------------------------------------------ reproduce
def add_reproduce(sub):
    from .apps.reproduce import FINDINGS  # noqa: PLC0415

    p = sub.add_parser(
        "reproduce",
        help="measure the papers' findings again and write the reproduction table (docs/reproduction.md)",
        description="Train the models and measure every finding of the thesis and papers that bowlrp can test; "
        "write one Markdown page with, per finding, the paper's claim, the measurement with its protocol and "
        "standard errors, and whether it reproduces. The two groups of findings that share no data run in two "
        "processes. --fast shrinks everything to a check that it runs (its numbers are not results).",
    )
    p.add_argument("--out", default=os.path.join("docs", "reproduction.md"),
                   help="Markdown file to write (default: docs/reproduction.md)")
    p.add_argument("--fast", action="store_true", help="tiny data and models: a quick check, not a measurement")
    p.add_argument("--only", default=None, metavar="FINDINGS",
                   help=f"comma-separated subset of: {', '.join(FINDINGS)} (default: all)")
    p.add_argument("--n-jobs", type=_int_at_least(1), default=2,
                   help="threads for dense SIFT and BLAS per process (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=run_reproduce)


def run_reproduce(args):
    from .apps.reproduce import run_reproduce as reproduce  # noqa: PLC0415

    if os.path.isdir(args.out):
        raise CommandError(f"--out {args.out!r} is a folder; give the Markdown file's name, "
                           f"e.g. {os.path.join(args.out, 'reproduction.md')}")
    reproduce(args.out, fast=args.fast, only=args.only, n_jobs=args.n_jobs, random_state=args.seed)
    return 0


# ------------------------------------------------------------------ main
COMMANDS = [add_demo, add_head_to_head, add_train, add_explain, add_evaluate, add_spray, add_reproduce]


def build_parser():
    """The ``bowlrp`` argument parser with every sub-command of :data:`COMMANDS`.

    Examples
    --------
    >>> args = build_parser().parse_args(["explain", "model.joblib", "photos/", "--out", "report", "--rule", "epsilon"])
    >>> args.command, args.model, args.inputs, args.out, args.rule, args.n_jobs, args.no_gallery
    ('explain', 'model.joblib', ['photos/'], 'report', 'epsilon', None, False)
    """
    parser = _Parser(prog="bowlrp", description="Explain Bag-of-Words and Fisher-vector kernel-SVM image "
                     "classifiers with Layer-wise Relevance Propagation.")
    parser.add_argument("--traceback", action="store_true", help="show Python tracebacks of errors (for bug reports)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv=None):
    """Run ``bowlrp`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Run as the command (``argv`` None), it first sets glibc's allocator to
    keep freed memory for reuse (:mod:`bowlrp._malloc`): explaining image
    after image then touches no fresh pages.

    Examples
    --------
    A bad value is one line on standard error and exit status 2; a usage
    error exits through argparse with status 2:

    >>> import contextlib, io
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err):
    ...     status = main(["reproduce", "--only", "toys"])
    >>> status, err.getvalue()
    (2, "bowlrp reproduce: error: unknown finding(s) ['toys'] (only= or --only); valid: toy, fisher, cnn, context, properties, zennit\\n")
    >>> with contextlib.redirect_stderr(io.StringIO()) as err:
    ...     try:
    ...         main(["train"])
    ...     except SystemExit as exit:
    ...         print(exit.code, err.getvalue().strip())
    2 bowlrp train: error: the following arguments are required: folder, --out (see 'bowlrp train --help')
    """
    if argv is None:  # the command owns its process: freed arrays are kept for the next image
        from ._malloc import retain_freed_memory  # noqa: PLC0415

        retain_freed_memory()
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"bowlrp {args.command}"
    from .apps.modelfile import ModelFileError  # noqa: PLC0415

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {_one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            with _threads(args):
                return args.func(args) or 0
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        except (CommandError, ModelFileError, ValueError, TypeError, OSError, ImportError) as exc:
            if args.traceback:
                raise
            print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001  (a bug: say so in one line, exit 1)
            if args.traceback:
                raise
            print(f"{prog}: error: unexpected {type(exc).__name__}: {_one_line(exc)} "
                  "(rerun with 'bowlrp --traceback ...' and report it)", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
