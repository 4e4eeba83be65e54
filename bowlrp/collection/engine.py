"""One way to run per-image tasks: joblib on one machine, the same joblib call on a Dask cluster.

:func:`run_tasks` is the only loop the collection functions use.  It hands
the tasks to ``joblib.Parallel``; with ``client`` (a ``dask.distributed``
client or a scheduler address) the same call runs on joblib's Dask backend,
and inside a ``joblib.parallel_config(backend="dask")`` block it runs there
without being told.  Tasks are dispatched lazily (joblib's ``pre_dispatch``),
so the client never holds more than a few tasks per worker, and results come
back in the order they finish.

On a cluster, a worker that dies takes its running task with it; the Dask
scheduler gives that task to another worker (up to
``distributed.scheduler.allowed-failures`` times, 3 by default), so no result
is lost and nothing needs to be resubmitted here.

:func:`cached_model` is how a task gets its model: from a file path, loaded
once per worker process and kept while the file is unchanged (the key is the
path, modification time and size).  Paths travel in the tasks, never pixels
or pipelines.
"""

import contextlib
import os
import threading

from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

__all__ = ["cached_model", "check_workers", "dask_client", "model_cache_info", "remember_model", "run_tasks"]

_MODELS = {}  # (abspath, mtime_ns, size) -> (pipeline, metadata)
_LOCK = threading.Lock()
_LOADS = [0]
_KEEP = 2


def _model_key(path):
    st = os.stat(path)
    return (os.path.abspath(path), st.st_mtime_ns, st.st_size)


def remember_model(path, pipeline, metadata=None):
    """Put an already loaded ``pipeline`` into this process's cache under model file ``path``.

    A process that wrote or read the model file itself (the client running
    tasks serially) then does not read it again.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "model.joblib")
    ...     _ = open(path, "w").write("stands in for a model file")
    ...     loads = model_cache_info()["loads"]
    ...     remember_model(path, "the fitted pipeline", {"classes": ["cat", "dog"]})
    ...     print(cached_model(path), model_cache_info()["loads"] - loads)  # from the cache: no read
    ('the fitted pipeline', {'classes': ['cat', 'dog']}) 0
    """
    key = _model_key(path)
    with _LOCK:
        _MODELS[key] = (pipeline, dict(metadata or {}))
        while len(_MODELS) > _KEEP:
            _MODELS.pop(next(iter(_MODELS)))


def cached_model(path):
    """``(pipeline, metadata)`` of model file ``path``, read at most once per process while unchanged.

    Reads with :func:`bowlrp.apps.modelfile.load_model`.  Thread-safe: a Dask
    worker running several tasks at once reads the file once.

    Examples
    --------
    A file that is not a model is refused (a remembered one is returned
    unread, see :func:`remember_model`):

    >>> import os, tempfile
    >>> from bowlrp.apps.modelfile import ModelFileError
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "notes.txt")
    ...     _ = open(path, "w").write("not a model")
    ...     try:
    ...         cached_model(path)
    ...     except ModelFileError as err:
    ...         print(str(err).replace(repr(path), "<path>").split(":")[0])
    <path> is not a bowlrp model file
    """
    from ..apps.modelfile import load_model  # noqa: PLC0415  (apps import the collection functions)

    key = _model_key(path)
    with _LOCK:
        hit = _MODELS.get(key)
        if hit is None:
            pipeline, meta = load_model(path)
            _LOADS[0] += 1
            hit = _MODELS[key] = (pipeline, meta)
            while len(_MODELS) > _KEEP:
                _MODELS.pop(next(iter(_MODELS)))
        return hit


def model_cache_info():
    """How often this process read a model file (``loads``) and which files it holds (``cached``).

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "model.joblib")
    ...     _ = open(path, "w").write("stands in for a model file")
    ...     remember_model(path, "the fitted pipeline")
    ...     info = model_cache_info()
    ...     sorted(info), os.path.abspath(path) in info["cached"]
    (['cached', 'loads'], True)
    """
    with _LOCK:
        return {"loads": _LOADS[0], "cached": [k[0] for k in _MODELS]}


@contextlib.contextmanager
def dask_client(client):
    """Yield a ``dask.distributed.Client`` for ``client``: a client, a scheduler address, or None.

    An address (``"tcp://host:8786"``, ``"host:8786"``) is connected here and
    closed on exit; a client passed in is left open.  ``None`` yields the
    client of an enclosing ``joblib.parallel_config(backend="dask")`` block,
    or ``None`` when there is none.

    Examples
    --------
    Outside a Dask backend block ``None`` stays ``None`` (run on this
    machine); a client object is handed through unchanged:

    >>> with dask_client(None) as client:
    ...     print(client)
    None
    >>> given = object()  # stands in for a dask.distributed.Client
    >>> with dask_client(given) as client:
    ...     print(client is given)
    True
    """
    if client is None:
        yield _active_dask_client()
        return
    if not isinstance(client, (str, os.PathLike)):
        yield client
        return
    try:
        from distributed import Client  # noqa: PLC0415
    except ImportError:
        raise ImportError(
            f"a scheduler address ({client!r}) needs dask.distributed; install it with "
            "pip install 'dask[distributed]'"
        ) from None
    address = os.fspath(client)
    try:
        own = Client(address, set_as_default=False, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise OSError(
            f"cannot connect to the Dask scheduler at {address!r} ({type(exc).__name__}: {exc}); start one "
            "with 'dask scheduler' and workers with 'dask worker <address>', and give the address it prints"
        ) from None
    try:
        yield own
    finally:
        own.close()


def _active_dask_client():
    """The client of joblib's active Dask backend, or None."""
    try:
        from joblib.parallel import get_active_backend  # noqa: PLC0415

        backend, _ = get_active_backend()
    except Exception:  # noqa: BLE001  (joblib internals moved: behave as without a cluster)
        return None
    return getattr(backend, "client", None) if type(backend).__name__ == "DaskDistributedBackend" else None


def _probe(read, write):
    """Run on a worker: the paths it cannot read and the folders it cannot write."""
    bad = [f"cannot read {p!r}" for p in read if not os.access(p, os.R_OK)]
    bad += [f"cannot write into {p!r}" for p in write if not (os.path.isdir(p) and os.access(p, os.W_OK))]
    return bad


def check_workers(client, read=(), write=()):
    """Raise an ``OSError`` naming the workers of ``client`` that cannot read ``read`` or write ``write``.

    Workers read the images and the model file and write the results
    themselves, so these paths must mean the same on every worker (a shared
    file system).  Checked once per run, before any task is sent.

    Examples
    --------
    A stand-in for a client with one worker, which runs the check here:

    >>> import os
    >>> class OneWorker:
    ...     def run(self, func, *args):  # dask.distributed.Client.run: {worker address: result}
    ...         return {"tcp://10.0.0.5:40000": func(*args)}
    >>> try:
    ...     check_workers(OneWorker(), read=["/no/such/model.joblib"])
    ... except OSError as err:
    ...     print(str(err)[:99])
    1 of 1 Dask workers cannot reach the files of this run (tcp://10.0.0.5:40000: cannot read '/no/such
    >>> check_workers(OneWorker(), read=[os.getcwd()])  # readable everywhere: no error
    """
    read, write = [os.path.abspath(p) for p in read], [os.path.abspath(p) for p in write]
    found = client.run(_probe, read, write)
    if not found:
        raise OSError("the Dask cluster has no workers; start some with 'dask worker <scheduler address>'")
    bad = {w: b for w, b in found.items() if b}
    if bad:
        shown = "; ".join(f"{w}: {', '.join(b)}" for w, b in list(bad.items())[:3])
        raise OSError(
            f"{len(bad)} of {len(found)} Dask workers cannot reach the files of this run ({shown}). Workers "
            "read the images and the model and write the results themselves: put them on a file system "
            "every worker mounts at the same path"
        )


_DASK_BACKEND = []


def _dask_config(client):
    """``parallel_config`` for joblib's Dask backend on ``client``, never falling back to this process.

    joblib runs a call in the calling process when its backend offers one
    worker; for a cluster of one worker thread that would compute on the
    client, so the backend used here offers at least two (the scheduler
    queues the second task).
    """
    if not _DASK_BACKEND:
        try:
            from joblib._dask import DaskDistributedBackend  # noqa: PLC0415
        except ImportError:  # joblib moved it: its own backend, with its one-thread fallback
            _DASK_BACKEND.append(None)
        else:
            class ClusterBackend(DaskDistributedBackend):
                def effective_n_jobs(self, n_jobs):
                    return max(2, super().effective_n_jobs(n_jobs))

            _DASK_BACKEND.append(ClusterBackend)
    cls = _DASK_BACKEND[0]
    return parallel_config(backend=cls(client=client)) if cls else parallel_config(backend="dask", client=client)


def run_tasks(func, tasks, *, n_jobs=None, client=None, total=None, desc="tasks", unit="task", verbose=True):
    """Yield ``func(*args)`` for every ``args`` of ``tasks``, in the order they finish.

    Parameters
    ----------
    func : callable
        A module-level function (it is pickled by reference).
    tasks : iterable of tuple
        Consumed lazily: a few tasks per worker are in flight at a time.
    n_jobs : int or None
        joblib workers (processes) on this machine; ``None`` or 1 runs in this
        process (or on the backend of an enclosing
        ``joblib.parallel_config``).  Not with ``client``.
    client : dask.distributed.Client or None
        Run on this cluster through joblib's Dask backend (every worker
        thread takes tasks).
    total : int or None
        Number of tasks, for the progress bar.
    desc, unit : str
        Progress bar labels.
    verbose : bool
        Show a tqdm progress bar.

    Examples
    --------
    >>> sorted(run_tasks(pow, [(2, 3), (3, 2)], verbose=False))
    [8, 9]
    """
    if client is not None and n_jobs not in (None, -1):
        raise ValueError(f"give n_jobs (workers on this machine) or client (a Dask cluster), not both; got "
                         f"n_jobs={n_jobs!r}")
    jobs = (delayed(func)(*args) for args in tasks)
    config = _dask_config(client) if client is not None else contextlib.nullcontext()
    with config:  # the backend is bound when Parallel is built; results are read outside the block
        parallel = Parallel(n_jobs=-1 if client is not None else n_jobs, return_as="generator_unordered")
        results = parallel(jobs)
    with tqdm(total=total, desc=desc, unit=unit, disable=not verbose) as bar:
        for result in results:
            bar.update()
            yield result
