"""The fast paths of the Fisher-vector relevance step and of the per-bin pixel rules against slow references.

* the pixel rules split into chunks of descriptors (several chunks, bands of
  rows, chunks across scale levels) give the slow reference's map;
* ``bin_parts`` keeps what every pixel rule reads: the maps from it are the
  maps from the full per-dimension relevance;
* the alpha-beta messages of the (descriptor, component) pairs, formed with
  one gathered scale and a sign mask, are ``z+ Tp + z- Tn`` written out pair
  by pair.
"""

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from bowlrp.encoders import fisher_math as fm
from bowlrp.encoders import fisher_pairs as fp
from bowlrp.features import DenseSIFT, pixel_relevance
from bowlrp.features import pixel_maps
from bowlrp.features.pixel_rules import bin_parts

from test_pixels import _clipped_set, _reference, _textured

RULES = ["flat", "bins", "energy", "magnitude"]


@pytest.fixture(scope="module")
def two_level_set():
    """Dense SIFT at two scales, rotated: descriptors of both levels, bins of rotated frames."""
    return DenseSIFT(scales=(1.6, 2.4), steps=(5, 7), rotate=True).transform([_textured((70, 83), seed=4)])[0]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_pixel_rules_match_reference(two_level_set, rule, chunk, monkeypatch):
    ds = two_level_set
    rng = np.random.default_rng(5)
    R = rng.standard_normal((len(ds), 128)) * rng.exponential(size=(len(ds), 1))
    R[3] = 0.0
    want = _reference(ds, R, rule)
    monkeypatch.setattr(pixel_maps, "_CHUNK", chunk)
    got = pixel_relevance(ds, R, rule)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())
    np.testing.assert_allclose(got.sum(), R.sum(), rtol=1e-12)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("kind", ["sift", "clipped"])
def test_bin_parts_give_the_same_maps(two_level_set, rule, kind):
    ds = two_level_set if kind == "sift" else _clipped_set()
    rng = np.random.default_rng(6)
    R = rng.standard_normal((len(ds), 128)) * rng.exponential(size=(len(ds), 1))
    parts = bin_parts(R)
    assert parts.shape == (len(ds), 32)
    np.testing.assert_allclose(parts.sum(1), R.sum(1), rtol=1e-12, atol=1e-15)
    full, small = pixel_relevance(ds, R, rule), pixel_relevance(ds, parts, rule)
    np.testing.assert_allclose(small, full, rtol=1e-10, atol=1e-13 * np.abs(full).max())
    np.testing.assert_allclose(small.sum(), R.sum(), rtol=1e-12)


def test_bin_parts_errors():
    with pytest.raises(ValueError, match="16 dividing d"):
        bin_parts(np.zeros((3, 20)))


@pytest.mark.parametrize("include_weights", [True, False])
def test_sign_messages_are_the_positive_and_negative_parts(include_weights):
    rng = np.random.default_rng(7)
    n, K, D, n_atoms = 40, 5, 3, 2
    mix = fm.Mixture(means=rng.standard_normal((K, D)), sigmas=rng.uniform(0.7, 1.4, (K, D)),
                     weights=rng.dirichlet(np.ones(K)))
    Y = rng.standard_normal((n, D)) * 1.5
    G = rng.dirichlet(np.ones(K) * 0.3, size=n)
    G[G < 0.05] = 0.0
    G = csr_matrix(G)
    bounds = np.array([0, 17, n])
    pairs = fp.Pairs(Y, G, bounds, mix, np)
    B = fm.block_size(K, D, include_weights)
    Tp, Tn = rng.standard_normal((n_atoms, B)), rng.standard_normal((n_atoms, B))
    base = np.where(np.abs(Tp) <= np.abs(Tn), Tp, Tn)
    Cp, Cn = Tp - base, Tn - base
    got = fp.sign_messages(pairs, Cp, Cn, Y, include_weights, np)
    # slow: every (descriptor, component) message, its positive and negative part scaled
    emb = fm.embed(Y, G.toarray(), mix, include_weights, np)  # (n, B), Psi(l) of eq. 4.1-4.3
    want = np.zeros((n, D))
    off = K if include_weights else 0
    for lo, hi, a in ((0, 17, 0), (17, n, 1)):
        for l in range(lo, hi):
            z = emb[l]
            msg = np.maximum(z, 0) * Cp[a] + np.minimum(z, 0) * Cn[a]
            ms = msg[off:].reshape(2, K, D).sum((0, 1))
            want[l] = ms + (msg[:off].sum() / D if include_weights else 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13 * np.abs(want).max())


@pytest.fixture(scope="module")
def fv_pipeline():
    from bowlrp.datasets import make_polygons
    from pipelines.fisher_vector import make_pipeline

    data = make_polygons(n_train=30, n_test_images=1, random_state=2)
    pipe = make_pipeline(scales=(2.0, 3.0), steps=(6, 9), rotate=True, n_components=4, pca=12,
                         pyramid=((1, 1), (2, 2)), max_iter=20).fit(data.images, data.labels)
    return pipe, data.test_images[:2]


@pytest.mark.parametrize("rule", ["z", "alphabeta", "abs"])
def test_encoder_reduce_forms_bin_parts_chunk_by_chunk(fv_pipeline, rule):
    """``FisherVectorEncoder.relevance(reduce=bin_parts)`` gives the per-bin parts of the full per-dimension
    relevance, with the same totals per descriptor, and the pipeline's pixel maps from it are the full ones."""
    pipe, X = fv_pipeline
    sift, fv = pipe.named_steps["sift"], pipe.named_steps["fv"]
    sets = sift.transform(X)
    F, trace = fv.forward(sets)
    R = np.random.default_rng(3).standard_normal(F.shape) * 1e-3
    full = fv.relevance(R, trace, rule)
    small = fv.relevance(R, trace, rule, reduce=sift.relevance_reducer())
    for f, s in zip(full, small):
        assert f.shape[1] == 128 and s.shape == (len(f), 32)
        np.testing.assert_allclose(s, bin_parts(f), rtol=1e-10, atol=1e-12 * np.abs(f).max())
        np.testing.assert_allclose(s.sum(1), f.sum(1), rtol=1e-10, atol=1e-12 * np.abs(f).max())
    lean = pipe.explain(X, rule=rule)  # the pipeline hands the encoder DenseSIFT's reducer
    wide = pipe.explain(X, rule=rule, keep_dimensions=True)
    for a, b in zip(lean.pixels, wide.pixels):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 * np.abs(b).max())
    np.testing.assert_allclose(lean.residual, wide.residual, atol=1e-12)


def test_encoder_reduce_errors(fv_pipeline):
    pipe, X = fv_pipeline
    fv = pipe.named_steps["fv"]
    F, trace = fv.forward(pipe.named_steps["sift"].transform(X))
    with pytest.raises(TypeError, match="reduce must be a callable"):
        fv.relevance(np.ones_like(F), trace, reduce="bin_parts")
    with pytest.raises(ValueError, match=r"reduce must map \(m, 128\) rows to \(m, w\) rows"):
        fv.relevance(np.ones_like(F), trace, reduce=lambda r: r.sum(1))
