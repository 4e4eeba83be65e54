"""bowlrp's LRP rules against zennit's on identical weights (slow: imports torch).

Skipped when torch or zennit cannot be imported.  Install with
``pip install torch`` (a CPU wheel) and ``pip install --no-deps zennit``
(zennit's torchvision dependency is only needed for zennit's torchvision
canonizers, and a torchvision built for another torch pulls in a CUDA torch).
"""

import numpy as np
import pytest

from bowlrp.apps._repro_zennit import compare_layers, compare_networks, import_zennit, wsquare_with_bias
from bowlrp.cnn import AlphaBeta, Sequential, default_layers

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def zen():
    found = import_zennit()  # imported here, so that collecting the default suite does not load torch
    if found is None:
        pytest.skip("torch and zennit are not importable")
    return found


def _net(seed=0, shape=(64, 64), n_out=2):
    """The default CNN on 64x64 inputs, He weights in float64 and small biases of both signs."""
    rng = np.random.default_rng(seed)
    net = Sequential(default_layers(shape, n_out))
    net.init(rng)
    for layer in net:
        if "b" in layer.params:
            layer.b = 0.05 * rng.standard_normal(layer.b.shape)
    x = rng.uniform(0, 1, (3, 1) + shape)
    return net, x


@pytest.fixture(scope="module")
def case(zen):
    return _net()


def test_every_rule_agrees_layer_by_layer(case):
    net, x = case
    diffs = compare_layers(net, x, seed=1)
    names = {k[0] for k in diffs}
    assert names == {"epsilon (0.25)", "z+", "alpha-beta 2/-1 (zennit 2/1)", "flat", "w-square", "zB [0, 1]"}
    assert len({k[1] for k in diffs}) == 5  # every linear layer of the default network
    bad = {k: v for k, v in diffs.items() if not v < 1e-12}
    assert bad == {}


def test_composites_agree_end_to_end(case):
    net, x = case
    diffs = compare_networks(net, x, np.array([0, 1, 0]))
    assert len(diffs) == 6
    bad = {k: v for k, v in diffs.items() if not v < 1e-12}
    assert bad == {}


def test_alpha_beta_conventions_differ_in_sign_only(zen):
    """bowlrp AlphaBeta(2, -1) is zennit's AlphaBeta(alpha=2, beta=1); zennit rejects the bowlrp spelling."""
    _, zrules = zen
    with pytest.raises(ValueError):
        zrules.AlphaBeta(alpha=2.0, beta=-1.0)
    with pytest.raises(ValueError, match="beta=1 for what is beta=-1"):
        AlphaBeta(2, 1)


def test_zennit_default_wsquare_keeps_the_bias(case):
    """zennit's default w-square has b^2 in its denominator; paper 000 eq. 12 (and bowlrp) has none."""
    net, x = case
    diffs = compare_layers(net, x, seed=1, pairs=wsquare_with_bias)
    assert max(diffs.values()) > 1e-6
