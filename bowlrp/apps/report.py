"""The heatmap gallery: per-image PNG panels, thumbnails, ``index.html``, ``summary.csv`` and one ``.npz``.

Heatmaps use the colour map of :mod:`bowlrp.viz` (red positive, white zero,
blue negative) scaled by ``S = max |R|`` of each map (eq. 2.62).  Every
per-image file is written as soon as that image is explained; the page, the
table and the archive of pixel maps are written from the per-image files at
the end, one image at a time, so memory does not grow with the collection.
"""

import csv
import html
import os
import re
import zipfile
from urllib.parse import quote

import cv2
import numpy as np

from ..viz import gray_rgb, heatmap_rgb, save_png

__all__ = [
    "CSV_FIELDS",
    "colour_scale",
    "overlay_rgb",
    "file_id",
    "render_panel",
    "write_image_files",
    "write_index_html",
    "write_pixel_maps",
    "write_summary_csv",
]

#: Columns of ``summary.csv``, in order.
CSV_FIELDS = [
    "index", "path", "id", "predicted", "score", "target", "explained_score", "relevance_sum", "bias",
    "residual", "relative_residual", "folder_class", "height", "width",
    "panel", "heatmap", "thumb_image", "thumb_heatmap", "npz_key", "seconds", "error",
]

THUMB_SIDE = 160
PANEL_SIDE = 420


def file_id(index, path):
    """A file-system and URL safe name for image ``index``: ``0007_brick_000_064``.

    Examples
    --------
    >>> file_id(7, "photos/brick 000 064.png"), file_id(12, "photos/.png")
    ('0007_brick_000_064', '0012_png')
    """
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._")[:60] or "image"
    return f"{index:04d}_{stem}"


def _shrink(arr, side, interpolation=cv2.INTER_AREA):
    """``arr`` with its longer side at most ``side`` (area averaging); the factor used."""
    h, w = arr.shape[:2]
    f = min(1.0, side / max(h, w))
    if f >= 1.0:
        return arr, 1.0
    size = (max(1, int(round(w * f))), max(1, int(round(h * f))))
    return cv2.resize(np.ascontiguousarray(arr), size, interpolation=interpolation), f


def _scale(R):
    S = float(np.max(np.abs(R))) if R.size else 0.0
    return S if S > 0 else 1.0


def overlay_rgb(image, R, scale=None):
    """The heatmap over the grayscale image, opaque where ``|R|`` is near ``S`` (eq. 2.62).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> image, R = np.full((40, 60), 128, np.uint8), np.zeros((40, 60))
    >>> R[:20, :30], R[20:, 30:] = 1.0, -0.5  # for the class top left, against it bottom right
    >>> rgb = overlay_rgb(image, R)
    >>> rgb.shape, rgb.dtype
    ((40, 60, 3), dtype('uint8'))
    >>> rgb[39, 0].tolist(), rgb[0, 0].tolist(), rgb[39, 59].tolist()  # grey where R = 0, red for, blue against
    ([128, 128, 128], [128, 19, 19], [51, 51, 204])
    """
    S = _scale(R) if scale is None else scale
    base = gray_rgb(image).astype(np.float32)
    if base.ndim == 3:
        base = np.repeat(base.mean(axis=2, keepdims=True), 3, axis=2)
    alpha = (np.clip(np.abs(R) / S, 0, 1) ** 0.5 * 0.85)[..., None].astype(np.float32)
    out = base * (1 - alpha) + heatmap_rgb(R, S).astype(np.float32) * alpha
    return np.rint(out).astype(np.uint8)


def _colormap():
    from matplotlib.colors import ListedColormap  # noqa: PLC0415

    return ListedColormap(heatmap_rgb(np.linspace(-1, 1, 256)[None], 1.0)[0] / 255.0, name="bowlrp")


def colour_scale(fig, mappable, cax, S, label):
    """A colour bar from ``-S`` to ``S`` with five labelled ticks (no offset text).

    A scale outside ``1e-2 .. 1e2`` puts its power of ten into the label.

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> fig = Figure()
    >>> ax, cax = fig.add_subplot(121), fig.add_subplot(122)
    >>> shown = ax.imshow(np.array([[-0.004, 0.004]]), vmin=-0.004, vmax=0.004)
    >>> bar = colour_scale(fig, shown, cax, 0.004, "pixel relevance\\nred: for")
    >>> [t.get_text() for t in bar.ax.get_yticklabels()], bar.ax.get_ylabel()
    (['-4', '-2', '0', '2', '4'], 'pixel relevance (x 1e-3)\\nred: for')
    """
    ticks = [-S, -S / 2, 0.0, S / 2, S]
    cb = fig.colorbar(mappable, cax=cax, ticks=ticks)
    e = int(np.floor(np.log10(S))) if S > 0 else 0
    if -2 <= e <= 2:
        e = 0
    unit = 10.0 ** e
    cb.ax.set_yticklabels([f"{t / unit:.3g}" for t in ticks], fontsize=7)
    first, _, rest = label.partition("\n")
    cb.set_label(first + (f" (x 1e{e})" if e else "") + ("\n" + rest if rest else ""), fontsize=7)
    return cb


def render_panel(path, image, R, *, title, target_name, rule, panel_side=PANEL_SIDE):
    """Write the three-panel PNG: the image, its heatmap and an overlay, titled, with a colour scale.

    Parameters
    ----------
    path : str
    image : uint8 array (H, W) or (H, W, 3)
        The image as explained.
    R : float array (H, W)
        Pixel relevance (eq. 2.85).
    title : str
        The figure's title (file name, prediction, score, residual); a
        newline splits it into two lines.
    target_name : str
        The class explained: red speaks for it, blue against.
    rule : str
        The rule's name, for the heatmap's title.
    panel_side : int
        Longer side of each panel in pixels; larger images are shown
        averaged over blocks (the colour scale says so), smaller ones are
        enlarged to at least 200 pixels without smoothing.

    Examples
    --------
    >>> import cv2
    >>> import os, tempfile, numpy as np
    >>> image, R = np.full((40, 60), 128, np.uint8), np.zeros((40, 60))
    >>> R[:20, :30], R[20:, 30:] = 1.0, -0.5  # for the class top left, against it bottom right
    >>> with tempfile.TemporaryDirectory() as out:
    ...     png = render_panel(os.path.join(out, "panel.png"), image, R, title="cat.png", target_name="cat", rule="z")
    ...     cv2.imread(png).shape  # three panels enlarged to 200 px wide, title and colour scale
    (203, 738, 3)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    img_d, f = _shrink(np.asarray(image), panel_side)
    R_d, _ = _shrink(np.asarray(R, dtype=np.float64), panel_side)
    S = _scale(R_d)
    H, W = np.asarray(R).shape
    h, w = R_d.shape
    zoom = max(1.0, 200 / max(h, w))
    pw, ph = w * zoom, h * zoom
    # a fixed layout in pixels (matplotlib's automatic layouts cost 5x the drawing)
    left, gap, top, bottom, cbw, right = 8, 14, 62, 8, 12, 78
    Wf, Hf = left + 3 * pw + 2 * gap + 12 + cbw + right, top + ph + bottom
    dpi = 100
    fig = Figure(figsize=(Wf / dpi, Hf / dpi), dpi=dpi)
    FigureCanvasAgg(fig)

    def axes(x, width):
        return fig.add_axes([x / Wf, bottom / Hf, width / Wf, ph / Hf])

    panels = [axes(left + k * (pw + gap), pw) for k in range(3)]
    panels[0].imshow(img_d, cmap="gray" if img_d.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    shown = "" if f >= 1.0 else f", shown at {f:.2g}x"
    panels[0].set_title(f"image ({W} x {H} px{shown})", fontsize=8)
    im = panels[1].imshow(R_d, cmap=_colormap(), vmin=-S, vmax=S, interpolation="nearest")
    panels[1].set_title(f"heatmap for {target_name!r} (rule {rule})", fontsize=8)
    panels[2].imshow(overlay_rgb(img_d, R_d, S), interpolation="nearest")
    panels[2].set_title("heatmap over the image", fontsize=8)
    for ax in panels:
        ax.set_xticks([])
        ax.set_yticks([])
    cax = axes(left + 3 * pw + 2 * gap + 12, cbw)
    what = "pixel relevance" if f >= 1.0 else "pixel relevance (block means)"
    colour_scale(fig, im, cax, S, f"{what}\nred: for, blue: against")
    fig.text(0.5, 1 - 4 / Hf, title, ha="center", va="top", fontsize=8, linespacing=1.3)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def write_image_files(out, fid, image, R, *, title, target_name, rule):
    """Write one explained image's files under ``out``; return their paths relative to ``out``.

    ``panels/<id>.png`` (:func:`render_panel`), ``heatmaps/<id>.png`` (the
    heatmap at the size the image was explained), ``thumbs/<id>_image.png``
    and ``thumbs/<id>_heatmap.png`` (longer side 160 px) and
    ``maps/<id>.npy`` (the pixel relevance, float64), which
    :func:`write_pixel_maps` gathers into one archive.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> image, R = np.full((40, 60), 128, np.uint8), np.zeros((40, 60))
    >>> R[:20, :30], R[20:, 30:] = 1.0, -0.5  # for the class top left, against it bottom right
    >>> with tempfile.TemporaryDirectory() as out:
    ...     files = write_image_files(out, "0000_cat", image, R, title="cat.png", target_name="cat", rule="z")
    ...     print(files["panel"], files["map"], all(os.path.exists(os.path.join(out, f)) for f in files.values()))
    panels/0000_cat.png maps/0000_cat.npy True
    """
    rel = {
        "panel": f"panels/{fid}.png",
        "heatmap": f"heatmaps/{fid}.png",
        "thumb_image": f"thumbs/{fid}_image.png",
        "thumb_heatmap": f"thumbs/{fid}_heatmap.png",
        "map": f"maps/{fid}.npy",
    }
    for sub in ("panels", "heatmaps", "thumbs", "maps"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    R = np.asarray(R, dtype=np.float64)
    render_panel(os.path.join(out, rel["panel"]), image, R, title=title, target_name=target_name, rule=rule)
    save_png(os.path.join(out, rel["heatmap"]), heatmap_rgb(R))
    save_png(os.path.join(out, rel["thumb_image"]), gray_rgb(_shrink(np.asarray(image), THUMB_SIDE)[0]))
    save_png(os.path.join(out, rel["thumb_heatmap"]), heatmap_rgb(_shrink(R, THUMB_SIDE)[0]))
    np.save(os.path.join(out, rel["map"]), R)
    return rel


def write_summary_csv(path, rows):
    """``summary.csv``: one row per input (:data:`CSV_FIELDS`), failures with their ``error``.

    Examples
    --------
    >>> import csv, os, tempfile
    >>> row = dict(index=0, path="cat.png", id="0000_cat", predicted="cat", score=1.5, target="cat",
    ...            explained_score=1.5, residual=1e-9, relative_residual=7e-10, npz_key="0000_cat")
    >>> failed = dict(index=1, path="empty.png", id="0001_empty", error="the file is empty")
    >>> with tempfile.TemporaryDirectory() as out:
    ...     with open(write_summary_csv(os.path.join(out, "summary.csv"), [row, failed])) as fh:
    ...         [(r["id"], r["predicted"], r["error"]) for r in csv.DictReader(fh)]
    [('0000_cat', 'cat', ''), ('0001_empty', '', 'the file is empty')]
    """
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_FIELDS})
    return path


def write_pixel_maps(path, out, rows, remove=True):
    """Gather the per-image ``maps/<id>.npy`` into one compressed ``.npz``, one map at a time.

    The archive holds one array per explained image, under the key in the
    ``npz_key`` column of ``summary.csv``; ``np.load(path)[key]`` reads it.
    With ``remove``, the ``.npy`` files are deleted once archived.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> row = dict(index=0, path="cat.png", id="0000_cat", predicted="cat", score=1.5, target="cat",
    ...            explained_score=1.5, residual=1e-9, relative_residual=7e-10, npz_key="0000_cat")
    >>> failed = dict(index=1, path="empty.png", id="0001_empty", error="the file is empty")
    >>> with tempfile.TemporaryDirectory() as out:
    ...     os.makedirs(os.path.join(out, "maps"))
    ...     np.save(os.path.join(out, "maps", "0000_cat.npy"), np.ones((40, 60)))
    ...     with np.load(write_pixel_maps(os.path.join(out, "pixel_maps.npz"), out, [row, failed])) as maps:
    ...         print(list(maps), maps["0000_cat"].shape, os.path.exists(os.path.join(out, "maps")))
    ['0000_cat'] (40, 60) False
    """
    tmp = path + ".part"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for row in rows:
            if row.get("error") or not row.get("npz_key"):
                continue
            src = os.path.join(out, "maps", row["npz_key"] + ".npy")
            zf.write(src, arcname=row["npz_key"] + ".npy")
    os.replace(tmp, path)
    if remove:
        for row in rows:
            if not row.get("error") and row.get("npz_key"):
                try:
                    os.remove(os.path.join(out, "maps", row["npz_key"] + ".npy"))
                except FileNotFoundError:
                    pass
        try:
            os.rmdir(os.path.join(out, "maps"))
        except OSError:
            pass
    return path


def _fmt(v, spec):
    return "" if v is None or v == "" else format(float(v), spec)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
.meta{color:#555;font-size:.9em} .grid{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:6px;width:340px;font-size:.82em;background:#fafafa}
.card img{width:160px;height:auto;image-rendering:pixelated;border:1px solid #eee;background:#fff}
.card .pair{display:flex;gap:6px} .card .name{font-weight:600;overflow-wrap:anywhere}
.wrong{border-color:#d33} .bad{color:#b00}
table{border-collapse:collapse;font-size:.85em} th,td{border:1px solid #ccc;padding:2px 6px;text-align:left}
th{background:#eee;cursor:pointer} td.num{text-align:right;font-variant-numeric:tabular-nums}
.legend{display:inline-block;width:160px;height:12px;vertical-align:middle;
background:linear-gradient(to right,#00004d,#0000ff,#ffffff,#ff0000,#800000);border:1px solid #999}
"""

_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var tb = th.closest('table').tBodies[0], rows = Array.from(tb.rows);
    var asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v !== undefined ? a.cells[col].dataset.v : a.cells[col].textContent;
      var y = b.cells[col].dataset.v !== undefined ? b.cells[col].dataset.v : b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function(r){ tb.appendChild(r); });
  });
});
"""


def _url(rel):
    return quote(rel, safe="/")


def write_index_html(path, rows, *, title, meta):
    """``index.html``: a static page, every image with its heatmap, grouped by predicted class.

    Each card shows the image and heatmap thumbnails, the predicted class,
    its score, the class explained and the conservation residual
    ``f(x) - sum_p R_p - bias`` (absolute and relative), and links to the
    full-size panel and heatmap.  A table below lists every image again
    and sorts by any column when its header is clicked (a few lines of
    inline JavaScript; no external resources).  Inputs that could not be
    explained are listed with the reason.

    Parameters
    ----------
    path : str
    rows : list of dict
        As returned by :func:`bowlrp.apps.explain.explain_one`.
    title : str
    meta : dict
        Shown above the gallery (model, rule, counts, ...), ``{label: text}``.

    Examples
    --------
    >>> import os, tempfile
    >>> row = dict(index=0, path="cat.png", id="0000_cat", predicted="cat", score=1.5, target="cat",
    ...            explained_score=1.5, residual=1e-9, relative_residual=7e-10, npz_key="0000_cat")
    >>> failed = dict(index=1, path="empty.png", id="0001_empty", error="the file is empty")
    >>> row.update(panel="panels/0000_cat.png", heatmap="heatmaps/0000_cat.png",
    ...            thumb_image="thumbs/0000_cat_image.png", thumb_heatmap="thumbs/0000_cat_heatmap.png")
    >>> with tempfile.TemporaryDirectory() as out:
    ...     with open(write_index_html(os.path.join(out, "index.html"), [row, failed], title="my photos",
    ...                                meta={"model": "bow-hik"})) as fh:
    ...         page = fh.read()
    >>> page.count('<div class="card'), '<h2 id="class-0">predicted: cat</h2>' in page
    (1, True)
    >>> "<li>empty.png: the file is empty</li>" in page  # listed under "not explained"
    True
    """
    e = html.escape
    ok = [r for r in rows if not r.get("error")]
    bad = [r for r in rows if r.get("error")]
    classes = sorted({r["predicted"] for r in ok}, key=str)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>", f"<style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>", '<p class="meta">',
    ]
    parts += [f"<b>{e(str(k))}</b>: {e(str(v))}<br>" for k, v in meta.items()]
    parts.append(
        'Heatmaps: <span class="legend"></span> blue against, white neutral, red for the class explained '
        "(each map scaled by its own max |R|, eq. 2.62). Residual: f(x) &minus; &Sigma; R<sub>p</sub> &minus; "
        "bias, relative to |f(x)|.<br>"
    )
    parts.append('Files: <a href="summary.csv">summary.csv</a>, <a href="pixel_maps.npz">pixel_maps.npz</a></p>')
    nav = " &middot; ".join(
        f'<a href="#class-{k}">{e(str(c))}</a> ({sum(r["predicted"] == c for r in ok)})' for k, c in enumerate(classes)
    )
    failed = f' &middot; <a href="#failed">not explained</a> ({len(bad)})' if bad else ""
    parts.append(f'<p>Predicted classes: {nav}{failed} &middot; <a href="#table">table</a></p>')
    for k, c in enumerate(classes):
        parts.append(f'<h2 id="class-{k}">predicted: {e(str(c))}</h2><div class="grid">')
        for r in sorted((r for r in ok if r["predicted"] == c), key=lambda r: -float(r["score"])):
            wrong = r.get("folder_class") not in (None, "") and r["folder_class"] != r["predicted"]
            folder = f'<br>folder class: <span class="{"bad" if wrong else ""}">{e(str(r["folder_class"]))}</span>' \
                if r.get("folder_class") not in (None, "") else ""
            parts.append(
                f'<div class="card{" wrong" if wrong else ""}">'
                f'<div class="name" title="{e(r["path"])}">{e(os.path.basename(r["path"]))}</div>'
                f'<div class="pair"><a href="{_url(r["panel"])}"><img src="{_url(r["thumb_image"])}" '
                f'alt="image {e(r["id"])}"></a>'
                f'<a href="{_url(r["heatmap"])}"><img src="{_url(r["thumb_heatmap"])}" alt="heatmap {e(r["id"])}"></a></div>'
                f'predicted <b>{e(str(r["predicted"]))}</b>, score {_fmt(r["score"], ".4g")}<br>'
                f'explained {e(str(r["target"]))}: f = {_fmt(r["explained_score"], ".4g")}, '
                f'residual {_fmt(r["residual"], ".2e")} ({_fmt(r["relative_residual"], ".1e")} relative)'
                f'{folder}<br><a href="{_url(r["panel"])}">panel</a> &middot; '
                f'<a href="{_url(r["heatmap"])}">full-size heatmap</a></div>'
            )
        parts.append("</div>")
    if bad:
        parts.append('<h2 id="failed">not explained</h2><ul>')
        parts += [f"<li>{e(r['path'])}: {e(str(r['error']))}</li>" for r in bad]
        parts.append("</ul>")
    cols = ["#", "file", "predicted", "score", "explained", "f(x)", "residual", "relative residual", "folder class"]
    parts.append('<h2 id="table">all images (click a header to sort)</h2><table class="sortable"><thead><tr>')
    parts += [f"<th>{c}</th>" for c in cols]
    parts.append("</tr></thead><tbody>")
    for r in ok:
        cells = [
            (r["index"], str(r["index"])),
            (None, f'<a href="{_url(r["panel"])}">{e(os.path.basename(r["path"]))}</a>'),
            (None, e(str(r["predicted"]))),
            (r["score"], _fmt(r["score"], ".4g")),
            (None, e(str(r["target"]))),
            (r["explained_score"], _fmt(r["explained_score"], ".4g")),
            (r["residual"], _fmt(r["residual"], ".2e")),
            (r["relative_residual"], _fmt(r["relative_residual"], ".1e")),
            (None, e(str(r.get("folder_class") or ""))),
        ]
        tds = "".join(
            f'<td class="num" data-v="{v}">{t}</td>' if v is not None else f"<td>{t}</td>" for v, t in cells
        )
        parts.append(f"<tr>{tds}</tr>")
    parts.append(f"</tbody></table><script>{_SCRIPT}</script></body></html>")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path
