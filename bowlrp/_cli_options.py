"""Option types and options shared by the commands of :mod:`bowlrp.cli`, and the error they report in one line."""

import argparse
import os


class CommandError(Exception):
    """A user error the command reports in one line (exit status 2).

    Examples
    --------
    >>> import contextlib, io, tempfile
    >>> from bowlrp.cli import main
    >>> with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stderr(io.StringIO()) as err:
    ...     status = main(["reproduce", "--out", folder])
    ...     message = err.getvalue().replace(repr(folder), "<folder>")
    >>> status, message.split(";")[0]
    (2, 'bowlrp reproduce: error: --out <folder> is a folder')
    """



# ------------------------------------------------------------------ option types
def _int_at_least(low):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
        return v
    parse.__name__ = f"integer >= {low}"
    return parse


def _share(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {v:g}")
    return v


def _unit(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {v:g}")
    return v


_FROM_MODEL = -1  # --max-side not given: the model's own cap


def _max_side(text):
    """``--max-side``: pixels, or 0 for no cap."""
    v = _int_at_least(0)(text)
    return None if v == 0 else v


def _cap(args):
    return "model" if args.max_side == _FROM_MODEL else args.max_side


def _model_name(text):
    from .apps.models import model_names  # noqa: PLC0415

    if text not in model_names():
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; valid models are {', '.join(model_names())}")
    return text


# ------------------------------------------------------------------ helpers
def _params(items, option):
    from .apps.models import parse_params  # noqa: PLC0415

    try:
        return parse_params(items)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}") from None


def _output_folder(path, option="--out"):
    if os.path.exists(path) and not os.path.isdir(path):
        raise CommandError(f"{option} {path!r} is an existing file; give a folder (it is created if missing)")
    return path


def _load(path):
    from .apps.modelfile import load_model  # noqa: PLC0415

    return load_model(path)


def _add_threads(p, default=1, what="1"):
    p.add_argument("--threads", type=_int_at_least(1), default=default,
                   help=f"BLAS and OpenMP threads in this process (default: {what}; parallelise with --n-jobs). "
                   "On a busy 2-core machine threaded k-means made fitting a vocabulary 10x slower")


def _threads(args):
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    threads = getattr(args, "threads", None)
    if threads is None and args.command == "demo" and args.name in ("textures", "clever-hans"):
        threads = 1
    return threadpool_limits(limits=threads)


def _add_scheduler(p):
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://host:8786; needs "
                   "dask.distributed). The workers read the images and write the results themselves: the "
                   "paths must mean the same on every worker (a shared file system)")


def _scheduler(args):
    if args.scheduler is not None and args.n_jobs not in (None, 1):
        raise CommandError("give --n-jobs (workers on this machine) or --scheduler (a Dask cluster), not both")
    return args.scheduler


def _class_of_folder(path, classes):
    name = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return name if name in classes else None
