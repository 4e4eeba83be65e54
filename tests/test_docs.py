"""The documentation site's machinery.

The API reference is generated from the code (docs/_ext/bowlrp_api.py): it
must list every public name of bowlrp, found here by an independent walk of
the package (docs/check_api.py, which CI also runs on the built site).  The
examples must have the docstring title sphinx-gallery needs, and the
tutorial's commands and code must run as printed.
"""

import ast
import copy
import csv
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import warnings

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
EXAMPLES = os.path.join(ROOT, "examples")


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def apigen():
    return _load(os.path.join(DOCS, "_ext", "bowlrp_api.py"), "_docs_bowlrp_api")


@pytest.fixture(scope="module")
def check_api():
    return _load(os.path.join(DOCS, "check_api.py"), "_docs_check_api")


def _resolve(path):
    modname, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(modname), name)


def _autosummary_entries(text):
    """``[(section module, dotted path, has a stub page)]`` for the autosummary tables in ``text``."""
    entries, module, in_table, toctree = [], None, False, False
    for line in text.splitlines():
        m = re.match(r"\.\. automodule:: (\S+)", line)
        if m:
            module, in_table = m.group(1), False
            continue
        if line.startswith(".. autosummary::"):
            in_table, toctree = True, False
            continue
        if in_table:
            item = line.strip()
            if item.startswith(":toctree:"):
                toctree = True
            elif item and not item.startswith(":"):
                if not line.startswith("   "):
                    in_table = False
                    continue
                path = item.lstrip("~")
                entries.append((module, path if path.startswith("bowlrp.") else f"{module}.{path}", toctree))
    return entries


def _rendered(apigen):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return apigen.render()


def test_api_reference_lists_every_public_name(apigen, check_api):
    pages, documented, problems = _rendered(apigen)
    assert problems == []
    entries = [e for text in pages.values() for e in _autosummary_entries(text)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        public = check_api.public_names()
        stubs = {id(_resolve(path)): path for _, path, toctree in entries if toctree}
        listed = {(module, id(_resolve(path))) for module, path, _ in entries}
    assert len(public) > 50
    missing_page = [f"{m}.{n}" for m, n, obj in public if id(obj) not in stubs]
    assert missing_page == [], "public names without a page of their own in the API reference"
    missing_section = [f"{m}.{n}" for m, n, obj in public if (m, id(obj)) not in listed]
    assert missing_section == [], "public names missing from their module's table"
    # one page per object, and the pages are the ones the generator reports
    assert len(stubs) == len([e for e in entries if e[2]])
    assert set(stubs.values()) == documented


def test_api_reference_follows_the_code(apigen, monkeypatch):
    # a name added to a module's __all__ appears without any edit to the docs
    import bowlrp.viz

    def brand_new_function():
        """A function added after the docs were written."""

    monkeypatch.setattr(bowlrp.viz, "brand_new_function", brand_new_function, raising=False)
    monkeypatch.setattr(bowlrp.viz, "__all__", [*bowlrp.viz.__all__, "brand_new_function"])
    pages, documented, _ = _rendered(apigen)
    assert "bowlrp.viz.brand_new_function" in documented
    assert "   brand_new_function" in pages["bowlrp.viz.rst"]


def test_api_reference_reports_a_broken_all(apigen, monkeypatch):
    import bowlrp.viz

    monkeypatch.setattr(bowlrp.viz, "__all__", [*bowlrp.viz.__all__, "no_such_function"])
    _, _, problems = _rendered(apigen)
    assert problems == ["bowlrp.viz.__all__ lists 'no_such_function', which bowlrp.viz does not define"]


def test_reexported_objects_are_documented_once_under_the_shortest_path(apigen):
    pages, documented, _ = _rendered(apigen)
    assert "bowlrp.BagOfWords" in documented
    assert "bowlrp.encoders.BagOfWords" not in documented
    assert "bowlrp.encoders.bow.BagOfWords" not in documented
    assert "   BagOfWords" in pages["index.rst"]
    assert "   bowlrp.BagOfWords" in pages["bowlrp.encoders.rst"]  # the alias table links there


def _example_files():
    return sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py") and not f.startswith("_"))


@pytest.mark.parametrize("name", _example_files())
def test_example_has_a_gallery_title(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as fh:
        doc = ast.get_docstring(ast.parse(fh.read()), clean=False)
    lines = [ln.rstrip() for ln in (doc or "").strip("\n").splitlines()]
    ok = (len(lines) >= 2 and lines[0].strip() and re.fullmatch(r"([=\-~^\"'`#*+])\1*", lines[1])
          and len(lines[1]) >= len(lines[0]))
    assert ok, (f"examples/{name}: sphinx-gallery needs the module docstring to start with a reST title, "
                "a line underlined by '=' (see examples/GALLERY_HEADER.rst); it starts with "
                f"{lines[:2]!r}")


def test_site_lists_pages_that_no_toctree_names():
    pages = _load(os.path.join(DOCS, "_ext", "bowlrp_pages.py"), "_docs_bowlrp_pages")
    root = "# Title\n\n```{toctree}\n:maxdepth: 1\n:hidden:\n\ninstall\napi/index\n```\n"
    found = {"index", "install", "new_results", "api/index", "api/bowlrp.viz", "auto_examples/index"}
    assert pages.unlisted_pages(found, root) == ["new_results"]


def test_gallery_scraper_shows_the_png_files_a_block_writes(tmp_path):
    pytest.importorskip("sphinx_gallery")
    scraper = _load(os.path.join(DOCS, "_ext", "bowlrp_gallery.py"), "_docs_bowlrp_gallery")._get_sg_image_scraper()
    src = tmp_path / "examples"
    (src / "out").mkdir(parents=True)
    (src / "ex.py").write_text('"""\nT\n=\n"""\n')
    from bowlrp.viz import heatmap_rgb, save_png

    save_png(str(src / "out" / "map.png"), heatmap_rgb(np.eye(8) - 0.5))
    dest = tmp_path / "docs" / "auto_examples" / "images"
    dest.mkdir(parents=True)
    block_vars = {"src_file": str(src / "ex.py"), "image_path_iterator": iter([str(dest / "sphx_glr_ex_001.png")])}
    rst = scraper(None, block_vars, {"src_dir": str(tmp_path / "docs")})
    assert "out/map.png" in rst and "sphx_glr_ex_001.png" in rst
    assert (dest / "sphx_glr_ex_001.png").read_bytes() == (src / "out" / "map.png").read_bytes()
    block_vars["image_path_iterator"] = iter([str(dest / "sphx_glr_ex_002.png")])
    # shown once, also by the copies sphinx-gallery makes of its configuration between blocks
    assert copy.deepcopy(scraper)(None, block_vars, {"src_dir": str(tmp_path / "docs")}) == ""


@pytest.mark.slow
def test_tutorial_runs_as_printed(tmp_path, monkeypatch, capsys):
    # every command and code block of docs/tutorial.md, in order, in an empty folder
    with open(os.path.join(DOCS, "tutorial.md"), encoding="utf-8") as fh:
        blocks = re.findall(r"```(bash|python)\n(.*?)```", fh.read(), re.S)
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    namespace = {"__name__": "__tutorial__"}
    for kind, code in blocks:
        if kind == "python":
            exec(compile(code, "docs/tutorial.md", "exec"), namespace)
            continue
        for line in code.strip().splitlines():
            argv = shlex.split(line)
            argv = [sys.executable, "-m", "bowlrp", *argv[1:]] if argv[0] == "bowlrp" else [sys.executable, *argv[1:]]
            done = subprocess.run(argv, env=env, capture_output=True, text=True)
            assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    out = capsys.readouterr().out
    assert "192 images" in out
    with open(tmp_path / "report" / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 128 and (tmp_path / "report" / "index.html").exists()
    assert max(abs(float(r["relative_residual"])) for r in rows) < 1e-8
    with open(tmp_path / "eval" / "evaluation.json") as fh:
        assert json.load(fh)
    assert (tmp_path / "first.png").exists()
