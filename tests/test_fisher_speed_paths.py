"""The fast paths of the Fisher-vector relevance step and of the per-bin pixel rules against slow references.

* the pixel rules split into chunks of descriptors (several chunks, bands of
  rows, chunks across scale levels) give the slow reference's map;
* ``bin_parts`` keeps what every pixel rule reads: the maps from it are the
  maps from the full per-dimension relevance;
* the alpha-beta sums and messages of the (descriptor, component) pairs,
  formed from the weighted scores, are the sums of ``z+, z-`` and ``z+ Tp +
  z- Tn`` written out pair by pair;
* the pixel maps' small products run on one BLAS thread.
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


def test_pixel_maps_run_their_small_products_on_one_blas_thread(two_level_set, monkeypatch):
    """The per-chunk products of the pixel maps (the edge lattice of the split squares) run on one BLAS
    thread, and the setting is restored afterwards."""
    from threadpoolctl import threadpool_limits

    from test_blas import blas_thread_counts

    seen = []
    orig = pixel_maps._add_split_squares
    monkeypatch.setattr(pixel_maps, "_add_split_squares", lambda *a: seen.append(max(blas_thread_counts())) or orig(*a))
    upright = DenseSIFT(scales=(1.6, 2.4), steps=(5, 7)).transform([_textured((70, 83), seed=4)])[0]
    R = np.random.default_rng(7).standard_normal((len(upright), 128))
    with threadpool_limits(2, user_api="blas"):
        before = max(blas_thread_counts())
        got = pixel_relevance(upright, R, "magnitude")
        assert max(blas_thread_counts()) == before
    assert seen and set(seen) == {1}
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


def _sign_case(seed, dense=False):
    rng = np.random.default_rng(seed)
    n, K, D = 40, 5, 3
    mix = fm.Mixture(means=rng.standard_normal((K, D)), sigmas=rng.uniform(0.7, 1.4, (K, D)),
                     weights=rng.dirichlet(np.ones(K)))
    Y = rng.standard_normal((n, D)) * 1.5
    G = rng.dirichlet(np.ones(K) * 0.3, size=n)
    G[G < 0.05] = 0.0
    Y[5] = mix.means[int(np.argmax(G[5]))]  # a mean message exactly 0
    return rng, mix, Y, (G if dense else csr_matrix(G)), G, np.array([0, 17, n])


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("include_weights", [True, False])
def test_sign_messages_are_the_positive_and_negative_parts(include_weights, dense, monkeypatch):
    """The per-pair scores with their weights give ``z+ Tp + z- Tn`` for any scales of both signs, also in
    chunks of a few rows."""
    rng, mix, Y, G, Gd, bounds = _sign_case(7, dense)
    monkeypatch.setattr(fp, "_SCORE_BYTES", 2000)
    pairs = fp.Pairs(Y, G, bounds, mix, np, scores=True)
    assert len(pairs.chunks) > 4
    B = fm.block_size(mix.n_components, mix.n_dims, include_weights)
    Tp, Tn = rng.standard_normal((2, B)) * 10.0 ** rng.integers(-6, 6, (2, B)), rng.standard_normal((2, B))
    got = fp.sign_messages(pairs, Tp, Tn, Y, include_weights, np)
    # slow: every (descriptor, component) message, its positive and negative part scaled
    emb = fm.embed(Y, Gd, mix, include_weights, np)  # (n, B), Psi(l) of eq. 4.1-4.3
    K, D = mix.n_components, mix.n_dims
    want = np.zeros(Y.shape)
    off = K if include_weights else 0
    for lo, hi, a in ((0, 17, 0), (17, len(Y), 1)):
        for l in range(lo, hi):
            z = emb[l]
            msg = np.maximum(z, 0) * Tp[a] + np.minimum(z, 0) * Tn[a]
            ms = msg[off:].reshape(2, K, D).sum((0, 1))
            want[l] = ms + (msg[:off].sum() / D if include_weights else 0.0)
    scale = (np.abs(emb) @ np.abs(np.concatenate([Tp, Tn])).T).max()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14 * scale)


@pytest.mark.parametrize("include_weights", [True, False])
def test_sign_sums_are_the_sums_of_the_positive_and_negative_parts(include_weights):
    _, mix, Y, G, Gd, bounds = _sign_case(8)
    pairs = fp.Pairs(Y, G, bounds, mix, np, scores=True)
    pos, neg = fp.sign_sums(pairs, 2, include_weights, np)
    emb = fm.embed(Y, Gd, mix, include_weights, np)
    for a, (lo, hi) in enumerate(((0, 17), (17, len(Y)))):
        np.testing.assert_allclose(pos[a], np.maximum(emb[lo:hi], 0).sum(0), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(neg[a], np.minimum(emb[lo:hi], 0).sum(0), rtol=1e-13, atol=1e-15)
        assert (pos[a] >= 0).all() and (neg[a] <= 0).all()


@pytest.mark.parametrize("include_weights", [True, False])
def test_abs_sums_and_messages_are_the_magnitudes(include_weights, monkeypatch):
    """The magnitude rule's sums and messages from the weighted scores are those of ``|z|`` pair by pair."""
    rng, mix, Y, G, Gd, bounds = _sign_case(9)
    monkeypatch.setattr(fp, "_SCORE_BYTES", 2000)
    pairs = fp.Pairs(Y, G, bounds, mix, np, scores=True)
    B = fm.block_size(mix.n_components, mix.n_dims, include_weights)
    T = rng.standard_normal((2, B))
    emb = np.abs(fm.embed(Y, Gd, mix, include_weights, np))
    sums = fp.abs_sums(pairs, 2, include_weights, np)
    got = fp.abs_messages(pairs, T, Y, include_weights, np)
    K, D = mix.n_components, mix.n_dims
    off = K if include_weights else 0
    for a, (lo, hi) in enumerate(((0, 17), (17, len(Y)))):
        np.testing.assert_allclose(sums[a], emb[lo:hi].sum(0), rtol=1e-13, atol=1e-15)
        msg = emb[lo:hi] * T[a]
        want = msg[:, off:].reshape(-1, 2, K, D).sum((1, 2)) + (msg[:, :off].sum(1) / D)[:, None]
        np.testing.assert_allclose(got[lo:hi], want, rtol=1e-12, atol=1e-14 * np.abs(msg).sum(1).max())


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


@pytest.mark.parametrize("rule", [("alphabeta", {}), ("alphabeta", {"alpha": 1, "beta": 0}), ("abs", {}), ("z", {})])
def test_pca_sign_rules_in_chunks_on_threads_match_the_messages(rule, monkeypatch):
    """The PCA step's sign rules, in chunks of a few rows in each thread's reused buffers and on two threads
    at once, give ``R_{i<-j}`` of the messages ``z_ji = W_ji c_i`` written out (eq. 2.31)."""
    from concurrent.futures import ThreadPoolExecutor

    from bowlrp.encoders import pca
    from bowlrp.rules import get_rule

    rule = get_rule(rule[0], **rule[1])
    rng = np.random.default_rng(11)
    n, d_in, d_out = 60, 9, 4
    Cs = [rng.standard_normal((n, d_in)) for _ in range(4)]
    W = rng.standard_normal((d_out, d_in))
    Rs = [rng.standard_normal((n, d_out)) for _ in range(4)]
    want = []
    for C, R in zip(Cs, Rs):  # slow: each descriptor's messages, one output at a time
        out = np.zeros((n, d_in))
        for t in range(n):
            for j in range(d_out):
                z = W[j] * C[t]
                if rule.name == "alphabeta":
                    zp, zn = np.maximum(z, 0), np.minimum(z, 0)
                    out[t] += rule.alpha * zp / zp.sum() * R[t, j] if zp.sum() > 0 else 0.0
                    out[t] += rule.beta * zn / zn.sum() * R[t, j] if zn.sum() < 0 else 0.0
                elif rule.name == "abs":
                    out[t] += np.abs(z) / np.abs(z).sum() * R[t, j]
                else:
                    out[t] += z / z.sum() * R[t, j]
        want.append(out)
    monkeypatch.setattr(pca, "_CHUNK_BYTES", 8 * 6 * (d_in + d_out) * 7)  # chunks of 7 rows
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(lambda cr: pca.linear_map_relevance(cr[0], W, cr[1], rule, np, Y=cr[0] @ W.T),
                            zip(Cs, Rs)))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12 * np.abs(w).max())


@pytest.mark.parametrize("rule", ["z", "alphabeta"])
def test_explanations_from_several_threads_share_the_level_threads(fv_pipeline, rule, monkeypatch):
    """Four callers explaining at once queue their levels on the process's two kept level threads, whose work
    arrays serve one task at a time: each gets the maps it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    import bowlrp.encoders.fisher as fisher

    pipe, X = fv_pipeline
    alone = [pipe.explain(X[i : i + 1], rule=rule) for i in range(2)]
    monkeypatch.setattr(fisher, "task_threads", lambda *a: 2)  # levels on the shared pool, whatever was measured
    with ThreadPoolExecutor(max_workers=4) as callers:
        together = list(callers.map(lambda i: pipe.explain(X[i % 2 : i % 2 + 1], rule=rule), range(8)))
    for i, exp in enumerate(together):
        ref = alone[i % 2]
        np.testing.assert_allclose(exp.pixels[0], ref.pixels[0], rtol=1e-12, atol=1e-15 * np.abs(ref.pixels[0]).max())
        np.testing.assert_allclose(exp.descriptors[0], ref.descriptors[0], rtol=1e-12,
                                   atol=1e-15 * np.abs(ref.descriptors[0]).max())
