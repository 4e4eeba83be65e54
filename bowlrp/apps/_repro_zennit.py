"""bowlrp's LRP rules against zennit's on identical weights, layer by layer and end to end.

zennit (PyTorch) is the reference implementation named in the style guide.
Every rule is applied by both libraries to the same layer, input and output
relevance; whole networks are explained with the same composite.  zennit's
alpha-beta convention differs: bowlrp ``AlphaBeta(2, -1)`` (thesis eq. 2.26,
``alpha + beta = 1``) is zennit ``AlphaBeta(alpha=2, beta=1)`` (``alpha - beta
= 1``).  zennit adds a stabiliser of 1e-6 to every denominator by default; the
comparison sets it to 1e-300 so that the two agree to rounding, not to 1e-6.
"""

import importlib
import importlib.util
import sys
import types

import numpy as np

from ..cnn import AlphaBeta, Composite, Conv2d, Epsilon, Flat, Flatten, Linear, MaxPool2d, ReLU, Sequential
from ..cnn import WSquare, ZBox, ZPlus, explain_model

__all__ = ["import_zennit", "compare_layers", "compare_networks", "rule_pairs", "wsquare_with_bias", "zennit_agreement"]

_TINY = 1e-300


def import_zennit():
    """``(torch, zennit.rules)``, or None when torch or zennit cannot be imported.

    zennit's package ``__init__`` imports torchvision, which is not needed
    here (and a torchvision built for another torch fails to load); when that
    import fails, zennit's ``rules`` module (torch only) is loaded without it.
    """
    try:
        import torch  # noqa: PLC0415
    except Exception:  # noqa: BLE001  (a broken torch install counts as absent)
        return None
    try:
        import zennit.rules as zrules  # noqa: PLC0415
        return torch, zrules
    except ImportError:
        if importlib.util.find_spec("zennit") is None:
            return None
    except Exception:  # noqa: BLE001
        pass
    for name in [m for m in sys.modules if m == "zennit" or m.startswith("zennit.")]:
        del sys.modules[name]
    spec = importlib.util.find_spec("zennit")
    pkg = types.ModuleType("zennit")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    sys.modules["zennit"] = pkg
    try:
        return torch, importlib.import_module("zennit.rules")
    except Exception:  # noqa: BLE001
        del sys.modules["zennit"]
        return None


def rule_pairs(zrules):
    """``{name: (bowlrp rule, factory of the zennit rule)}`` for the rules both libraries have."""
    return {
        "epsilon (0.25)": (Epsilon(0.25), lambda: zrules.Epsilon(epsilon=0.25)),
        "z+": (ZPlus(), lambda: zrules.ZPlus(stabilizer=_TINY)),
        "alpha-beta 2/-1 (zennit 2/1)": (AlphaBeta(2, -1), lambda: zrules.AlphaBeta(alpha=2.0, beta=1.0,
                                                                                      stabilizer=_TINY)),
        "flat": (Flat(), lambda: zrules.Flat(stabilizer=_TINY)),
        # paper 000 eq. 12 has no bias; zennit's default keeps b^2 in the denominator
        "w-square": (WSquare(), lambda: zrules.WSquare(stabilizer=_TINY, zero_params=["bias"])),
        "zB [0, 1]": (ZBox(0.0, 1.0), lambda: zrules.ZBox(low=0.0, high=1.0, stabilizer=_TINY)),
    }


def to_torch(torch, layers):
    """A float64 ``torch.nn.Sequential`` with the weights of bowlrp ``layers`` (Conv2d, Linear, ReLU, MaxPool2d, Flatten)."""
    nn = torch.nn
    mods = []
    for layer in layers:
        if isinstance(layer, Conv2d):
            m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding)
            m.weight.data = torch.tensor(np.asarray(layer.W, np.float64))
            m.bias.data = torch.tensor(np.asarray(layer.b, np.float64))
        elif isinstance(layer, Linear):
            m = nn.Linear(layer.in_features, layer.out_features)
            m.weight.data = torch.tensor(np.asarray(layer.W, np.float64).T.copy())
            m.bias.data = torch.tensor(np.asarray(layer.b, np.float64))
        elif isinstance(layer, ReLU):
            m = nn.ReLU()
        elif isinstance(layer, MaxPool2d):
            m = nn.MaxPool2d(layer.kernel_size, layer.stride)
        elif isinstance(layer, Flatten):
            m = nn.Flatten()
        else:
            raise TypeError(f"no torch counterpart for {type(layer).__name__} in this comparison")
        mods.append(m)
    return nn.Sequential(*mods).double()


def _zennit_relevance(torch, module, rules_by_index, x, R_out):
    """Input relevance of ``module`` (a torch Sequential) with zennit rules on the given sub-modules."""
    handles = [rule.register(module[i]) for i, rule in rules_by_index.items()]
    try:
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        out = module(xt)
        (R,) = torch.autograd.grad(out, xt, grad_outputs=torch.tensor(R_out, dtype=torch.float64))
    finally:
        for h in handles:
            h.remove()
    return R.detach().numpy()


def _rel_diff(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def wsquare_with_bias(zrules):
    """zennit's default w-square rule (``b^2`` in the denominator), paired with bowlrp's (paper 000 eq. 12)."""
    return {"w-square, zennit default (b^2 in the denominator)": (WSquare(), lambda: zrules.WSquare(stabilizer=_TINY))}


def compare_layers(net, x, seed=0, pairs=None):
    """Max relative difference (``max |bowlrp - zennit| / max |zennit|``) per rule and linear layer of ``net``.

    Each linear layer gets the input it sees when ``net`` runs on ``x``
    (the pixels for the first, clipped to [0, 1] for zB) and a random
    output relevance, half of it negative.  ``pairs(zrules)`` gives other
    rule pairs than :func:`rule_pairs`.
    """
    found = import_zennit()
    if found is None:
        return None
    torch, zrules = found
    _, trace = net.forward(x)
    rng = np.random.default_rng(seed)
    out = {}
    for k, layer in enumerate(net):
        if not isinstance(layer, (Conv2d, Linear)):
            continue
        xin = np.asarray(trace.inputs[k], np.float64)
        z = layer.apply(xin, layer.W, layer.b)
        R = rng.uniform(-1.0, 1.0, z.shape) * np.abs(z)
        tmod = to_torch(torch, [layer])
        for name, (ours, theirs) in (pairs or rule_pairs)(zrules).items():
            if name.startswith("zB") and k != 0:
                continue  # zB is the pixel-layer rule (inputs in its box)
            mine = ours.relevance(layer, xin, R)
            ref = _zennit_relevance(torch, tmod, {0: theirs()}, xin, R)
            out[(name, k)] = _rel_diff(mine, ref)
    return out


def _composites(zrules):
    """``{name: (bowlrp Composite, {layer kind: zennit factory}, first-layer zennit factory)}``."""
    eps, zp = (lambda: zrules.Epsilon(epsilon=0.01)), (lambda: zrules.ZPlus(stabilizer=_TINY))
    ab = lambda: zrules.AlphaBeta(alpha=2.0, beta=1.0, stabilizer=_TINY)  # noqa: E731
    return {
        "epsilon 0.01 everywhere": (Composite({"conv": Epsilon(0.01), "linear": Epsilon(0.01)}), eps, None),
        "z+ everywhere": (Composite({"conv": ZPlus(), "linear": ZPlus()}), zp, None),
        "alpha-beta 2/-1 everywhere": (Composite({"conv": AlphaBeta(2, -1), "linear": AlphaBeta(2, -1)}), ab, None),
        "flat first, epsilon above": (Composite({"conv": Epsilon(0.01), "linear": Epsilon(0.01)}, first_map=Flat()),
                                      eps, lambda: zrules.Flat(stabilizer=_TINY)),
        "w-square first, z+ above": (Composite({"conv": ZPlus(), "linear": ZPlus()}, first_map=WSquare()),
                                     zp, lambda: zrules.WSquare(stabilizer=_TINY, zero_params=["bias"])),
        "zB first, z+ above (DTD, winner-take-all pooling)": (
            Composite({"conv": ZPlus(), "linear": ZPlus()}, first_map=ZBox(0.0, 1.0)), zp,
            lambda: zrules.ZBox(low=0.0, high=1.0, stabilizer=_TINY)),
    }


def compare_networks(net, x, targets):
    """Max relative difference of the pixel relevance per composite, the whole network explained."""
    found = import_zennit()
    if found is None:
        return None
    torch, zrules = found
    tnet = to_torch(torch, net.layers)
    linear = [k for k, layer in enumerate(net) if isinstance(layer, (Conv2d, Linear))]
    out = {}
    for name, (comp, upper, first) in _composites(zrules).items():
        mine, score, _ = explain_model(net, x, targets, method="lrp", composite=comp)
        f = net(x).reshape(len(x), -1)
        R_out = np.zeros_like(f)
        R_out[np.arange(len(x)), targets] = f[np.arange(len(x)), targets]
        rules = {k: (first() if first is not None and k == linear[0] else upper()) for k in linear}
        ref = _zennit_relevance(torch, tnet, rules, x, R_out)
        out[name] = _rel_diff(mine, ref)
    return out


def zennit_agreement(net, x, targets, seed=0):
    """``{"layers": {(rule, layer): diff}, "networks": {composite: diff}}``, or None without zennit."""
    layers = compare_layers(net, x, seed)
    if layers is None:
        return None
    return {"layers": layers, "networks": compare_networks(net, x, targets),
            "wsquare_default": max(compare_layers(net, x, seed, pairs=wsquare_with_bias).values())}
