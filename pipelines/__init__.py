"""Ready-made pipeline configurations (import from a checkout: ``from pipelines import toy_polygons``).

Each module exposes ``make_pipeline(**overrides)`` returning an unfitted
:class:`bowlrp.ExplainablePipeline`.  The configurations the installed
package itself needs (the demo's) live in :mod:`bowlrp.apps.demo` and are re-exported
here, so there is one definition of each.
"""
