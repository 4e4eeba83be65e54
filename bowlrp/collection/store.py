"""Results on disk, one file per image, each written atomically, so that a rerun can tell what is done.

Layout of an output folder::

    run.json          what produced the results: model checksum, rule, target, size cap, gallery
    rows/<id>.json    one image's summary row; written last, so it marks the image as done
    maps/<id>.npy     its pixel relevance (float64, the image's size)

Every file is written to a hidden temporary name in its folder and renamed
into place (``os.replace``): a process killed mid-write leaves a temporary
file, never a half-written result under the real name.  An image counts as
done when its row exists, parses, belongs to this run (same ``run.json``
key), names the same image file with the same size and modification time,
and its pixel map is on disk (or in the archive ``pixel_maps.npz``).  This is
atomic against interrupted and killed processes; it is not a journal
against power loss.

One file per image rather than one chunked array store (zarr): the maps of
photographs differ in size, so one array would need padding to the largest
image or one array per image anyway; independent files need no locks
between workers writing at the same time, a rename gives each image an
all-or-nothing commit that the rerun check can trust, and ``numpy.load``
reads them without another dependency.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile

import numpy as np

__all__ = ["ResultStore", "file_digest", "source_stamp", "write_atomic"]

MANIFEST = "run.json"
ROWS = "rows"
MAPS = "maps"
ARCHIVE = "pixel_maps.npz"
FORMAT = "bowlrp-collection"


def write_atomic(path, write):
    """Write ``path`` through ``write(file object)`` into a temporary file renamed into place.

    Examples
    --------
    A writer that fails leaves neither the file nor its temporary behind:

    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     done = write_atomic(os.path.join(folder, "a.txt"), lambda fh: fh.write(b"whole"))
    ...     try:
    ...         write_atomic(os.path.join(folder, "b.txt"), lambda fh: fh.write(b"half") and 1 / 0)
    ...     except ZeroDivisionError:
    ...         pass
    ...     os.path.basename(done), os.listdir(folder)
    ('a.txt', ['a.txt'])
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def file_digest(path, chunk=1 << 20):
    """SHA-256 of a file's bytes (hex).

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "model.joblib")
    ...     _ = open(path, "wb").write(b"12345")
    ...     file_digest(path)[:16], len(file_digest(path, chunk=2))  # read in chunks of 2 bytes: same digest
    ('5994471abb01112a', 64)
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def source_stamp(path):
    """``[size, mtime_ns]`` of an image file, or None when it cannot be read; a changed file is redone.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "cat.png")
    ...     _ = open(path, "wb").write(b"12345")
    ...     size, mtime_ns = source_stamp(path)
    ...     size, mtime_ns == os.stat(path).st_mtime_ns, source_stamp(os.path.join(folder, "gone.png"))
    (5, True, None)
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


def _row_to_json(row):
    row = dict(row)
    scores = row.pop("scores", None)
    # class labels may be ints or strings: keep them as a list of pairs, not as JSON object keys
    row["scores"] = None if scores is None else [[k, v] for k, v in scores.items()]
    return json.dumps(row).encode("utf-8")


def _row_from_json(data):
    row = json.loads(data)
    if row.get("scores") is not None:
        row["scores"] = {k: v for k, v in row["scores"]}
    return row


class ResultStore:
    """The per-image results of one output folder (see the module docstring).

    Parameters
    ----------
    out : str
        The output folder; it must exist.

    Examples
    --------
    One image's results, the check a rerun makes, and a run with other
    settings that drops the earlier rows:

    >>> import os, tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as out:
    ...     image = os.path.join(out, "cat.png")
    ...     _ = open(image, "wb").write(b"stands in for an image")
    ...     store = ResultStore(out)
    ...     key, resumed = store.open_run({"rule": "z"})
    ...     print(key, resumed, store.write_map("cat", np.ones((2, 3))))
    ...     _ = store.write_row({"id": "cat", "run": key, "path": image, "source": source_stamp(image),
    ...                          "scores": {"cat": 1.5, "dog": -1.5}})
    ...     print(store.is_done("cat", image, key), store.read_row("cat")["scores"], store.load_map("cat").shape)
    ...     print(ResultStore(out).open_run({"rule": "flat"}), store.read_row("cat"))
    dc51bd057ee91bbc False maps/cat.npy
    True {'cat': 1.5, 'dog': -1.5} (2, 3)
    ('23dbdc1caec40869', False) None
    """

    def __init__(self, out):
        self.out = os.fspath(out)

    # ------------------------------------------------------------ paths
    def row_path(self, fid):
        return os.path.join(self.out, ROWS, fid + ".json")

    def map_path(self, fid):
        return os.path.join(self.out, MAPS, fid + ".npy")

    @property
    def archive_path(self):
        return os.path.join(self.out, ARCHIVE)

    # ------------------------------------------------------------ the run
    def open_run(self, settings, resume=True):
        """Start or continue the run described by ``settings`` (a JSON-able dict); return ``(key, resumed)``.

        ``key`` is a checksum of ``settings`` that every row of this run
        carries.  With ``resume`` and the same settings in ``run.json``,
        earlier rows stay valid; otherwise their rows are removed (the other
        files are overwritten as the images are redone).  Temporary files
        that killed processes left behind are removed.
        """
        text = json.dumps(settings, sort_keys=True)
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        manifest = os.path.join(self.out, MANIFEST)
        previous = None
        with contextlib.suppress(OSError, ValueError):
            with open(manifest, encoding="utf-8") as fh:
                previous = json.load(fh).get("key")
        for sub in (ROWS, MAPS):
            os.makedirs(os.path.join(self.out, sub), exist_ok=True)
        resumed = bool(resume) and previous == key
        with os.scandir(os.path.join(self.out, ROWS)) as it:
            for entry in it:
                if (entry.name.startswith(".") and entry.name.endswith(".part")) or not resumed:
                    with contextlib.suppress(OSError):
                        os.remove(entry.path)
        with os.scandir(os.path.join(self.out, MAPS)) as it:
            for entry in it:
                if entry.name.startswith(".") and entry.name.endswith(".part"):
                    with contextlib.suppress(OSError):
                        os.remove(entry.path)
        doc = {"format": FORMAT, "version": 1, "key": key, "settings": settings}
        write_atomic(manifest, lambda fh: fh.write(json.dumps(doc, indent=1, sort_keys=True).encode("utf-8")))
        return key, resumed

    # ------------------------------------------------------------ rows and maps
    def write_row(self, row):
        """Write one image's row (its ``id`` names the file), atomically."""
        data = _row_to_json(row)
        return write_atomic(self.row_path(row["id"]), lambda fh: fh.write(data))

    def read_row(self, fid):
        """The row of image ``fid``, or None when it is missing or unreadable."""
        try:
            with open(self.row_path(fid), "rb") as fh:
                return _row_from_json(fh.read())
        except (OSError, ValueError):
            return None

    def write_map(self, fid, R):
        """Write one pixel map as ``maps/<id>.npy`` (float64), atomically; return its path relative to out."""
        R = np.asarray(R, dtype=np.float64)
        os.makedirs(os.path.join(self.out, MAPS), exist_ok=True)  # explain_one(gallery=False) runs without open_run
        write_atomic(self.map_path(fid), lambda fh: np.save(fh, R))
        return f"{MAPS}/{fid}.npy"

    def archived(self):
        """The ids whose maps the archive ``pixel_maps.npz`` holds (empty without one)."""
        try:
            with zipfile.ZipFile(self.archive_path) as zf:
                return {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
        except (OSError, zipfile.BadZipFile):
            return set()

    def is_done(self, fid, path, key, archived=()):
        """Whether image ``fid`` (file ``path``) was explained by run ``key`` and its results are whole."""
        row = self.read_row(fid)
        if row is None or row.get("error") or row.get("run") != key:
            return False
        if row.get("path") != os.fspath(path) or row.get("source") != source_stamp(path):
            return False
        return os.path.exists(self.map_path(fid)) or fid in archived

    def rows(self, ids):
        """The rows of ``ids``, in that order, read one at a time."""
        for fid in ids:
            row = self.read_row(fid)
            if row is None:
                raise FileNotFoundError(f"the result of image {fid!r} is missing from {self.row_path(fid)!r}")
            yield row

    def load_map(self, fid):
        """The pixel map of image ``fid``, from ``maps/`` or the archive."""
        if os.path.exists(self.map_path(fid)):
            return np.load(self.map_path(fid))
        with np.load(self.archive_path) as z:
            return z[fid]

    def archive_maps(self, rows, remove=True):
        """Gather the maps of ``rows`` into ``pixel_maps.npz``, one map at a time.

        A map is taken from ``maps/<id>.npy`` or, for an image done in an
        earlier run of this folder, from the previous archive.  The archive
        holds one array per explained image under its ``npz_key``;
        ``numpy.load(path)[key]`` reads it.  With ``remove`` the ``.npy``
        files are deleted once archived.
        """
        old = None
        with contextlib.suppress(OSError, zipfile.BadZipFile):
            old = zipfile.ZipFile(self.archive_path)
        written = []
        try:
            def write(fh):
                with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
                    for row in rows:
                        fid = row.get("npz_key")
                        if row.get("error") or not fid:
                            continue
                        src = self.map_path(fid)
                        if os.path.exists(src):
                            zf.write(src, arcname=fid + ".npy")
                            written.append(src)
                        elif old is not None and fid + ".npy" in old.NameToInfo:
                            with old.open(fid + ".npy") as a, zf.open(fid + ".npy", "w", force_zip64=True) as b:
                                shutil.copyfileobj(a, b, 1 << 20)
                        else:
                            raise FileNotFoundError(f"the pixel map of image {fid!r} is missing from {src!r}")

            write_atomic(self.archive_path, write)
        finally:
            if old is not None:
                old.close()
        if remove:
            for src in written:
                with contextlib.suppress(OSError):
                    os.remove(src)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(self.out, MAPS))
        return self.archive_path
