"""Collections of image files larger than one process: explain and train on joblib workers or a Dask cluster.

One code path serves one machine and a cluster: every function here runs
its per-image tasks through :func:`~bowlrp.collection.engine.run_tasks`,
which is ``joblib.Parallel`` in this process, on joblib workers
(``n_jobs``), or on joblib's Dask backend (``client=``, or an enclosing
``joblib.parallel_config(backend="dask")``).  Tasks carry file paths; the
images are read where they are processed, and results go to disk
(:mod:`~bowlrp.collection.store`) or come back small (descriptor samples,
feature rows).

- :func:`explain_collection`: explain every image into an output folder,
  resuming an interrupted run.
- :func:`fit_collection`: fit a pipeline on image files, the descriptor
  sample and the feature matrix computed on the workers.
"""

from .engine import run_tasks
from .explain import ExplainedCollection, explain_collection
from .fit import describe_sample, fit_collection, image_features

__all__ = ["ExplainedCollection", "describe_sample", "explain_collection", "fit_collection", "image_features",
           "run_tasks"]
