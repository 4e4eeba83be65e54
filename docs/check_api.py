"""Check that a built site documents every public name of bowlrp.

    python docs/check_api.py docs/_build/html

reads the site's object inventory (``objects.inv``) and, independently of
the generator in ``docs/_ext/bowlrp_api.py``, walks bowlrp: the names in
``bowlrp.__all__`` and in the ``__all__`` of every module whose dotted name
has no part starting with an underscore.  A name passes when the inventory
documents it under that path or documents the same object under another
path (``bowlrp.encoders.BagOfWords`` is documented as ``bowlrp.BagOfWords``).
Exits with status 1 and lists what is missing otherwise.
``--missing-examples`` lists the public classes and functions whose
docstring has no ``Examples`` section (the doctests).
"""

import argparse
import importlib
import os
import pkgutil
import re
import sys
import warnings

# the bowlrp of this checkout, as docs/conf.py imports it
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def public_names(package="bowlrp"):
    """``[(module name, name, object)]`` for every public name of ``package``."""
    pkg = importlib.import_module(package)
    modules = [package] + [m.name for m in pkgutil.walk_packages(pkg.__path__, package + ".")
                           if not any(part.startswith("_") for part in m.name.split("."))]
    out = []
    for modname in modules:
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if not isinstance(obj, type(sys)):
                out.append((modname, name, obj))
    return out


def documented_objects(inventory_path):
    """``{id(object): dotted path}`` for the Python objects in a Sphinx inventory."""
    from sphinx.util.inventory import InventoryFile

    with open(inventory_path, "rb") as fh:
        inv = InventoryFile.load(fh, "", os.path.join)
    found = {}
    for role, entries in inv.items():
        if not role.startswith("py:") or role == "py:module":
            continue
        for path in entries:
            if path.startswith("bowlrp"):
                obj = _resolve(path)
                if obj is not None:
                    found.setdefault(id(obj), path)
    return found


def _resolve(path):
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def missing_names(build_dir, package="bowlrp"):
    """``(missing, n_public)``: the public names of ``package`` that the site at
    ``build_dir`` does not document, and how many public names there are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated aliases still count
        documented = documented_objects(os.path.join(build_dir, "objects.inv"))
        names = public_names(package)
    return [f"{m}.{n}" for m, n, obj in names if id(obj) not in documented], len(names)


def without_examples(package="bowlrp"):
    """``(names, n)``: the public classes and functions whose docstring has no numpydoc
    ``Examples`` section, each under the path the reference documents it at, and how many
    public classes and functions there are."""
    import inspect

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        names = public_names(package)
    paths = {}  # one entry per object, under the path the reference documents it at: the shortest
    # outside deprecated alias modules, and among those the one in the package the object comes
    # from (bowlrp.rules.AlphaBeta, not the re-export bowlrp.cnn.AlphaBeta)
    for m, n, obj in names:
        if inspect.isclass(obj) or inspect.isroutine(obj):
            source = (getattr(obj, "__module__", None) or "") + "."
            alias = (sys.modules[m].__doc__ or "").lstrip().startswith("Deprecated")  # not a home
            key = (alias, m.count("."), not source.startswith(m + "."), m)
            if id(obj) not in paths or key < paths[id(obj)][0]:
                paths[id(obj)] = (key, f"{m}.{n}", obj)
    out = []
    for _, path, obj in sorted(paths.values(), key=lambda v: v[1]):
        if not re.search(r"^Examples\n-{8,}$", inspect.getdoc(obj) or "", re.M):
            out.append(path)
    return out, len(paths)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("build_dir", nargs="?", default=os.path.join(os.path.dirname(__file__), "_build", "html"),
                   help="the HTML build folder (default: docs/_build/html)")
    p.add_argument("--missing-examples", action="store_true",
                   help="instead, list the public classes and functions without an Examples section")
    a = p.parse_args(argv)
    if a.missing_examples:
        names, n = without_examples()
        print(f"{len(names)} of {n} public classes and functions have no Examples section:", *names, sep="\n  ")
        return 0
    inv = os.path.join(a.build_dir, "objects.inv")
    if not os.path.exists(inv):
        print(f"{inv} does not exist: build the site first "
              "(python -m sphinx -W --keep-going -b html docs docs/_build/html)", file=sys.stderr)
        return 2
    missing, n = missing_names(a.build_dir)
    if missing:
        print(f"{len(missing)} of {n} public names are not in the API reference:", *missing, sep="\n  ",
              file=sys.stderr)
        return 1
    print(f"all {n} public names of bowlrp are in the API reference at {a.build_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
