"""Applications built on the library: the demos and the ``bowlrp`` commands' workflows.

They sit beside the library core and use only its public API:

* :mod:`bowlrp.apps.models` -- ready-made models by name (``bow-hik``, ...);
* :mod:`bowlrp.apps.modelfile` -- saving and loading fitted models with metadata;
* :mod:`bowlrp.apps.train`, :mod:`bowlrp.apps.explain`, :mod:`bowlrp.apps.evaluate`
  -- the ``bowlrp train / explain / evaluate`` workflows;
* :mod:`bowlrp.apps.report` -- the heatmap gallery (HTML, CSV, PNG panels, npz);
* :mod:`bowlrp.apps.spray` -- the ``bowlrp spray`` workflow (SpRAy of one class's explanations);
* :mod:`bowlrp.apps.demo`, :mod:`bowlrp.apps.head_to_head`,
  :mod:`bowlrp.apps.textures_demo`, :mod:`bowlrp.apps.clever_hans` -- the demos.
"""
