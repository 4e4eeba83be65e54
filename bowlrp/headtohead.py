"""Deprecated location of the head-to-head comparison; it moved to :mod:`bowlrp.apps.head_to_head`."""

import warnings

from .apps.head_to_head import CNN_METHODS, fisher_pipeline, format_table, run_head_to_head

__all__ = ["fisher_pipeline", "run_head_to_head", "format_table", "CNN_METHODS"]

warnings.warn(
    "bowlrp.headtohead moved to bowlrp.apps.head_to_head; import fisher_pipeline, run_head_to_head and "
    "format_table from there (this alias will be removed)",
    DeprecationWarning,
    stacklevel=2,
)
