"""Write the API reference sources from the code, before Sphinx reads them.

The reference is never a hand-kept list.  At every build this extension
walks bowlrp's public modules (the package and every submodule without a
leading underscore in its dotted path), reads each module's ``__all__``
(or, for a module without one, the classes and functions it defines), and
writes one page per top-level child of the package under ``docs/api/``:
the module's docstring and an autosummary table of its public names.

Each object is documented once, under its shortest public path
(``bowlrp.BagOfWords``, not ``bowlrp.encoders.bow.BagOfWords``); the other
modules that export it list it in a second table that links to that page.
A deprecated alias module (its docstring starts with "Deprecated", as
``bowlrp.demo`` and ``bowlrp.cnn.rules``) is never an object's home: what it
re-exports is documented where it now lives.
Data (constants such as ``bowlrp.svm.kernels.KERNELS``) is documented in
the module whose source assigns it, where autodoc finds the ``#:`` comment
beside the assignment.

``tests/test_docs.py`` checks the result against the package, and
``docs/check_api.py`` checks the built site's object inventory.
"""

import ast
import importlib
import importlib.util
import inspect
import os
import pkgutil
import warnings

PACKAGE = "bowlrp"
API_DIR = "api"


def public_modules(package=PACKAGE):
    """Names of the public modules of ``package``, the package first.

    A module is public when no part of its dotted name starts with an
    underscore (``bowlrp._backend`` and ``bowlrp.__main__`` are not).
    """
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names, key=lambda n: (n.count("."), n))


def public_names(module):
    """The public names of ``module``: its ``__all__``, or else what it defines."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return sorted(
        name for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", None) == module.__name__
    )


def is_deprecated_alias(module):
    """Whether ``module`` is a deprecated alias: its docstring starts with "Deprecated"."""
    return (getattr(module, "__doc__", None) or "").lstrip().startswith("Deprecated")


def _is_code(obj):
    return inspect.isclass(obj) or inspect.isroutine(obj)


def collect(package=PACKAGE):
    """Map every public module to ``[(name, canonical dotted path), ...]``.

    Returns ``(modules, canonical, problems)``: ``modules`` maps a module name
    to its entries in ``__all__`` order; ``canonical`` maps each documented
    dotted path to the object; ``problems`` lists modules that failed to
    import and names in ``__all__`` that the module does not have.
    """
    modules, objects, problems, deprecated = {}, {}, [], set()
    for modname in public_modules(package):
        try:
            mod = importlib.import_module(modname)
        except Exception as exc:  # an optional dependency missing, a syntax error, ...
            problems.append(f"cannot import {modname}: {type(exc).__name__}: {exc}")
            continue
        if is_deprecated_alias(mod):
            deprecated.add(modname)
        entries = []
        for name in public_names(mod):
            if not hasattr(mod, name):
                problems.append(f"{modname}.__all__ lists {name!r}, which {modname} does not define")
                continue
            obj = getattr(mod, name)
            if inspect.ismodule(obj):
                continue  # submodules get their own section
            entries.append([name, obj])
            # one object under one name; the name keeps small ints and strings that merely
            # compare identical (interned) apart
            objects.setdefault((id(obj), name), []).append(f"{modname}.{name}")
        modules[modname] = entries
    canonical, where = {}, {}
    for paths in objects.values():
        # shortest public path; for data, one in the module that assigns it (see module docstring);
        # never a path that is also a module's name (bowlrp.cnn.train, the function, shadows the
        # module bowlrp.cnn.train in its package: it is documented as bowlrp.cnn.train.train)
        obj = _resolve(paths[0])
        source = getattr(obj, "__module__", None) or ""
        # among paths of one depth, the one in the package the object comes from
        # (bowlrp.rules.AlphaBeta rather than its re-export bowlrp.cnn.AlphaBeta); a deprecated
        # alias module last (bowlrp.apps.demo.run_demo, not bowlrp.demo.run_demo)
        paths = sorted(paths, key=lambda p: (p.rsplit(".", 1)[0] in deprecated, p.count("."),
                                             not (source + ".").startswith(p.rsplit(".", 1)[0] + "."), p))
        homes = [p for p in paths if p not in modules] or paths
        if not _is_code(obj):
            homes = [p for p in homes if _assigns(*p.rsplit(".", 1))] or homes
        home = homes[0]
        for p in paths:
            where[p] = home
        canonical[home] = obj
    out = {m: [(name, where[f"{m}.{name}"]) for name, _ in entries] for m, entries in modules.items()}
    return out, canonical, problems


def _assigns(modname, name):
    """Whether the source of ``modname`` assigns ``name`` at module level."""
    spec = importlib.util.find_spec(modname)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return False
    with open(spec.origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
    return False


def _resolve(path):
    modname, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(modname), name)


def _kind(obj):
    if inspect.isclass(obj):
        return "class"
    if inspect.isroutine(obj):
        return "function"
    return "data"


def _heading(text, char):
    return f"{text}\n{char * len(text)}\n"


def _relative(path, modname):
    # autosummary resolves names against the current module and asks for them relative to it
    return path[len(modname) + 1:] if path.startswith(modname + ".") else path


def _tables(modname, entries, canonical):
    own = [_relative(path, modname) for name, path in entries if path == f"{modname}.{name}"]
    other = [_relative(path, modname) for name, path in entries if path != f"{modname}.{name}"]
    lines = []
    if own:
        lines += [".. autosummary::", "   :toctree: generated/", "   :nosignatures:", ""]
        lines += [f"   {path}" for path in own] + [""]
    if other:
        lines += [f"Also exported by ``{modname}`` and documented where listed:", "",
                  ".. autosummary::", "   :nosignatures:", ""]
        lines += [f"   {path}" for path in other] + [""]
    if not entries:
        lines += ["This module exports no names of its own.", ""]
    return lines


def render(package=PACKAGE):
    """Return ``(pages, documented, problems)`` for the API reference.

    ``pages`` maps a file name under ``docs/api`` to its reST text,
    ``documented`` is the set of dotted paths that get a page of their own.
    """
    modules, canonical, problems = collect(package)
    top = [m for m in modules if m.count(".") == 1]
    pages = {}
    index = [
        ".. This file is written by docs/_ext/bowlrp_api.py at every build; edit that, not this.",
        "",
        _heading("API reference", "="),
        f"Generated from the code at every build: every name in ``{package}.__all__`` and in the",
        "``__all__`` of every public module below.  Each object is documented once, under its",
        "shortest public path; modules that re-export it link there.",
        "",
        _heading(f"``{package}``", "-"),
        f".. automodule:: {package}",
        "   :no-members:",
        "",
    ]
    index += _tables(package, modules.get(package, []), canonical)
    index += ["", _heading("Modules", "-"), ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {m}" for m in top] + [""]
    pages["index.rst"] = "\n".join(index)
    for child in top:
        lines = [
            ".. This file is written by docs/_ext/bowlrp_api.py at every build; edit that, not this.",
            "",
            _heading(f"``{child}``", "="),
            f".. automodule:: {child}",
            "   :no-members:",
            "",
        ]
        lines += _tables(child, modules[child], canonical)
        for sub in [m for m in modules if m.startswith(child + ".")]:
            lines += ["", _heading(f"``{sub}``", "-"), f".. automodule:: {sub}", "   :no-members:", ""]
            lines += _tables(sub, modules[sub], canonical)
        pages[f"{child}.rst"] = "\n".join(lines)
    return pages, set(canonical), problems


def write(srcdir, package=PACKAGE):
    """Write the pages under ``srcdir/api``; files whose text is unchanged are left alone."""
    pages, documented, problems = render(package)
    folder = os.path.join(srcdir, API_DIR)
    os.makedirs(folder, exist_ok=True)
    for name, text in pages.items():
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                if fh.read() == text:
                    continue
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    stale = {f for f in os.listdir(folder) if f.endswith(".rst")} - set(pages)
    for f in stale:  # a module that was removed or renamed
        os.remove(os.path.join(folder, f))
    # autosummary writes one stub per documented object into api/generated and never
    # removes one; a stub left from a renamed object would be an orphan page
    generated = os.path.join(folder, "generated")
    if os.path.isdir(generated):
        keep = {f"{path}.rst" for path in documented}
        for f in os.listdir(generated):
            if f.endswith(".rst") and f not in keep:
                os.remove(os.path.join(generated, f))
    return problems


def _on_config_inited(app, config):
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        problems = write(app.srcdir)
    for p in problems:
        logger.warning("API reference: %s", p)


def setup(app):
    # config-inited runs before Sphinx looks for source files and before autosummary
    # writes its stub pages, so both see the pages written here.
    app.connect("config-inited", _on_config_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
