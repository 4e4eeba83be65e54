"""A sphinx-gallery image scraper for the PNG files that examples write.

bowlrp writes its figures as PNG files (``Explanation.save_png``,
``bowlrp.viz.save_png``, ``bowlrp.evaluation.plots``, the command-line
reports), and matplotlib's scraper only sees figures that are still open.
This scraper shows, after each code block, the PNG files that the block wrote
under the example's folder (sphinx-gallery runs each example there), so an
example's page shows the files a user running it gets.  At most
:data:`MAX_PER_BLOCK` files are shown per block; the page says how many more
there were.

Enabled in ``docs/conf.py`` by its module name: ``"image_scrapers":
("matplotlib", "bowlrp_gallery")``.
"""

import os
import shutil
import time

from sphinx_gallery.scrapers import figure_rst

#: most PNG files shown after one code block
MAX_PER_BLOCK = 6

_BUILD_START_NS = time.time_ns()  # files older than this build are not the examples' output
# {path: mtime} of every file already shown; module state, because sphinx-gallery copies its
# configuration (and the scraper object in it) between code blocks
_SEEN = {}


class PNGFileScraper:
    """Collect the PNG files written by a code block, in name order."""

    def __repr__(self):
        # sphinx-gallery hashes the configuration through repr; keep it stable between builds
        return f"{type(self).__name__}(MAX_PER_BLOCK={MAX_PER_BLOCK})"

    @staticmethod
    def _new_files(root):
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
            for name in sorted(filenames):
                if not name.lower().endswith(".png"):
                    continue
                path = os.path.join(dirpath, name)
                mtime = os.stat(path).st_mtime_ns
                if mtime >= _BUILD_START_NS and _SEEN.get(path) != mtime:
                    _SEEN[path] = mtime
                    found.append(path)
        return found

    def __call__(self, block, block_vars, gallery_conf):
        root = os.path.dirname(os.path.abspath(block_vars["src_file"]))
        found = self._new_files(root)
        if not found:
            return ""
        shown, images = found[:MAX_PER_BLOCK], []
        for path, dest in zip(shown, block_vars["image_path_iterator"]):
            shutil.copyfile(path, dest)
            images.append(dest)
        names = ", ".join(f"``{os.path.relpath(p, root)}``" for p in shown)
        more = len(found) - len(shown)
        text = f"\n\nThe block wrote {names}" + (f" and {more} more PNG files" if more else "") + ":\n"
        return text + figure_rst(images, gallery_conf["src_dir"])


def _get_sg_image_scraper():
    return PNGFileScraper()
