"""The gallery in a real browser: headless Debian chromium loads index.html and every image renders.

Skipped when no chromium is installed (``apt-get install -y chromium``; see
the README).  The page is opened inside an iframe of a small probe page that
records, after everything has loaded, each image's ``complete`` flag and
``naturalWidth`` (0 for an image the browser could not load or decode) and
``--dump-dom`` prints the result.
"""

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from photo_fixtures import fitted_small_model, synthetic_folder

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def _chromium():
    for c in CANDIDATES:
        path = c if os.path.isabs(c) and os.access(c, os.X_OK) else shutil.which(c)
        if path:
            return path
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install -y chromium)")

PROBE = """<!DOCTYPE html><html><body>
<iframe id="page" src="{url}" width="1200" height="900"></iframe>
<script>
window.addEventListener('load', function () {{
  var d = document.getElementById('page').contentDocument;
  var out = d ? Array.from(d.images).map(function (i) {{
    return {{src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth}};
  }}) : null;
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({{title: d ? d.title : null, images: out}});
  document.body.appendChild(pre);
}});
</script></body></html>
"""


def rendered_images(index_html, tmp_path):
    """Open ``index_html`` in headless chromium; return the page title and ``[{src, complete, width}]``."""
    probe = tmp_path / "probe.html"
    probe.write_text(PROBE.format(url="file://" + os.path.abspath(index_html)), encoding="utf-8")
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--allow-file-access-from-files",
        "--virtual-time-budget=15000", "--dump-dom", "file://" + str(probe),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"chromium printed no probe result (status {proc.returncode}): {proc.stderr[-2000:]}"
    result = json.loads(html.unescape(m.group(1)))
    return result["title"], result["images"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from bowlrp.apps.explain import explain_paths

    root = tmp_path_factory.mktemp("browser")
    paths, bad = synthetic_folder(str(root / "photos"), n_per_class=4)
    pipe, _ = fitted_small_model(str(root / "photos"))
    out = root / "report"
    rows = explain_paths(pipe, paths + [bad], str(out), verbose=False, title="browser test gallery")
    return out, rows


def test_every_image_of_the_gallery_renders(report, tmp_path):
    out, rows = report
    title, images = rendered_images(out / "index.html", tmp_path)
    assert title == "browser test gallery"
    n_ok = sum(not r.get("error") for r in rows)
    assert len(images) == 2 * n_ok
    assert all(i["complete"] and i["width"] > 0 for i in images), [i for i in images if not i["width"]]
    thumbs = {r["thumb_image"] for r in rows if not r.get("error")} | {r["thumb_heatmap"] for r in rows
                                                                        if not r.get("error")}
    assert {i["src"] for i in images} == thumbs


def test_the_probe_sees_a_missing_image(report, tmp_path):
    out, rows = report
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    victim = next(r for r in rows if not r.get("error"))["thumb_heatmap"]
    (copy / victim).write_bytes(np.zeros(10, np.uint8).tobytes())  # not a PNG any more
    _, images = rendered_images(copy / "index.html", tmp_path)
    broken = [i["src"] for i in images if i["width"] == 0]
    assert broken == [victim]
