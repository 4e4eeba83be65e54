"""The API reference documents what a deprecated alias module re-exports where it now lives."""

import importlib.util
import os
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_deprecated_alias_modules_are_no_home():
    apigen = _load(os.path.join(ROOT, "docs", "_ext", "bowlrp_api.py"), "_docs_bowlrp_api_aliases")
    check_api = _load(os.path.join(ROOT, "docs", "check_api.py"), "_docs_check_api_aliases")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pages, documented, problems = apigen.render()
        names, _ = check_api.without_examples()
    assert problems == []
    # bowlrp.demo re-exports bowlrp.apps.demo; bowlrp.cnn.rules re-exports bowlrp.rules
    assert "bowlrp.apps.demo.run_demo" in documented and "bowlrp.demo.run_demo" not in documented
    assert "bowlrp.rules.AlphaBeta" in documented and "bowlrp.cnn.rules.AlphaBeta" not in documented
    assert "   bowlrp.apps.demo.run_demo" in pages["bowlrp.demo.rst"]  # the alias links there
    # check_api names objects by the same paths
    assert not any(n.startswith(("bowlrp.demo.", "bowlrp.headtohead.", "bowlrp.cnn.rules.")) for n in names)
