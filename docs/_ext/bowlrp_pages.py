"""List every top-level page of ``docs/`` in the site's navigation.

Pages that other people add to ``docs/`` (a new Markdown page of results, a
generated table) should appear on the site without an edit to the index,
and an unlisted page would be a build warning ("document isn't included in
any toctree"), an error under ``-W``.  When Sphinx reads the root document,
this extension appends a hidden toctree, captioned "More pages", with every
top-level document that the root document's own toctrees do not name.
"""

import re

_TOCTREE = re.compile(r"```\{toctree\}(.*?)```", re.S)


def _listed(source):
    names = set()
    for block in _TOCTREE.findall(source):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith(":"):
                names.add(line)
    return names


def unlisted_pages(found_docs, root_source, root_doc="index"):
    """Top-level documents (no ``/`` in the name) that ``root_source``'s toctrees leave out."""
    listed = _listed(root_source)
    return sorted(d for d in found_docs if "/" not in d and d != root_doc and d not in listed)


def _on_source_read(app, docname, source):
    if docname != app.config.root_doc:
        return
    extra = unlisted_pages(app.env.found_docs, source[0], app.config.root_doc)
    if extra:
        source[0] += "\n\n```{toctree}\n:caption: More pages\n:maxdepth: 1\n:hidden:\n\n" + "\n".join(extra) + "\n```\n"


def _always_reread_root(app, env, added, changed, removed):
    # the appended list depends on the other files, so an incremental build rereads the root
    return [app.config.root_doc]


def setup(app):
    app.connect("source-read", _on_source_read)
    app.connect("env-get-outdated", _always_reread_root)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
