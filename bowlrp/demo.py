"""Deprecated location of the toy-polygon demo; it moved to :mod:`bowlrp.apps.demo`."""

import warnings

from .apps.demo import region_means, run_demo, toy_pipeline

__all__ = ["toy_pipeline", "run_demo", "region_means"]

warnings.warn(
    "bowlrp.demo moved to bowlrp.apps.demo; import toy_pipeline, run_demo and region_means from there "
    "(this alias will be removed)",
    DeprecationWarning,
    stacklevel=2,
)
