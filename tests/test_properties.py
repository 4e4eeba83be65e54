"""Property tests: whatever the configuration and input, relevance stays finite and exact rules conserve.

Random small Bag-of-Words configurations (mapping, pooling, normalisation,
rule, vocabulary size, levels) meet random and degenerate descriptor sets:
all-zero descriptors, identical descriptors, a single descriptor, descriptors
far from every word, a block without descriptors.  A second property runs
tiny image pipelines end to end on zero, constant and noise images.
"""

import functools
import warnings
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import bowlrp
from bowlrp import BagOfWords
from bowlrp.rules import get_rule
from test_rules import RULE_CASES

DIM = 4
KINDS = ("random", "zeros", "identical", "single", "far", "one_block", "near_word")
POOLINGS = ("sum", 1.0, 2.5, 40.0, "max")


@functools.lru_cache(maxsize=None)
def _fitted(mapping, pooling, normalize, n_words, n_levels, n_ranks, soft_beta, degenerate_training):
    rng = np.random.default_rng(0)
    n = 6 * n_words + 4
    train = rng.random((n, DIM)).astype(np.float32)
    if degenerate_training:  # every training descriptor the same: identical words, zero inertia
        train[:] = train[0]
    sets = [SimpleNamespace(descriptors=train, levels=np.arange(n) % n_levels, n_levels=n_levels)]
    bow = BagOfWords(n_words=n_words, mapping=mapping, pooling=pooling, normalize=normalize,
                     n_ranks=n_ranks, soft_beta=soft_beta, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k-means on identical points warns about fewer distinct clusters
        return bow.fit(sets)


def _descriptor_set(kind, n, n_levels, rng, vocab):
    levels = rng.integers(0, n_levels, n)
    if kind == "random":
        d = rng.random((n, DIM))
    elif kind == "zeros":
        d = np.zeros((n, DIM))
    elif kind == "identical":
        d = np.repeat(rng.random((1, DIM)), n, axis=0)
    elif kind == "single":
        d, levels = rng.random((1, DIM)), levels[:1]
    elif kind == "far":
        d = 1e4 + rng.random((n, DIM)) * 1e3
    elif kind == "one_block":
        d, levels = rng.random((n, DIM)), np.zeros(n, int)
    else:  # exactly on a word: zero distance, ties between duplicate words
        d = np.repeat(vocab[:1], n, axis=0)
    return SimpleNamespace(descriptors=d.astype(np.float32), levels=levels, n_levels=n_levels)


@st.composite
def bow_cases(draw):
    pooling = draw(st.sampled_from(POOLINGS))
    normalize = draw(st.sampled_from(("l1", None, "count") if pooling == "sum" else ("l1", None)))
    config = (
        draw(st.sampled_from(("hard", "rank", "soft"))),
        pooling,
        normalize,
        draw(st.integers(1, 6)),  # n_words
        draw(st.integers(1, 2)),  # n_levels
        draw(st.integers(1, 8)),  # n_ranks
        draw(st.sampled_from(("auto", 0.0, 1e3, 740.0))),  # soft_beta (740: subnormal weights)
        draw(st.booleans()),  # degenerate training set
    )
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))
    sizes = draw(st.lists(st.integers(1, 6), min_size=len(kinds), max_size=len(kinds)))
    rule = draw(st.sampled_from(RULE_CASES))
    relevance = draw(st.sampled_from(("normal", "zeros", "huge")))
    return config, kinds, sizes, rule, relevance, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=40, deadline=None)
@given(bow_cases())
def test_bow_relevance_finite_and_conserved(case):
    config, kinds, sizes, (name, params), relevance, seed = case
    bow = _fitted(*config)
    rng = np.random.default_rng(seed)
    sets = [_descriptor_set(k, n, bow.n_levels_, rng, bow.vocabularies_[0]) for k, n in zip(kinds, sizes)]
    X, trace = bow.forward(sets)
    assert np.isfinite(X).all() and (X >= 0).all()
    R = {"normal": rng.normal(size=X.shape), "zeros": np.zeros(X.shape), "huge": 1e150 * rng.normal(size=X.shape)}[
        relevance
    ]
    rule = get_rule(name, **params)
    Rl = bow.relevance(R, trace, rule)
    assert [len(r) for r in Rl] == [len(s.descriptors) for s in sets]
    for r, rl in zip(R, Rl):
        assert np.isfinite(rl).all(), (rule, rl)
        if rule.exact:
            assert abs(rl.sum() - r.sum()) <= 1e-10 * np.abs(r).sum()


# ------------------------------------------------------------ image pipelines
PIPELINES = (("rank", "sum", "l1"), ("hard", "max", None), ("soft", 2.0, "l1"))


@functools.lru_cache(maxsize=None)
def _pipeline(mapping, pooling, normalize):
    rng = np.random.default_rng(1)
    images = rng.random((16, 30, 30))
    images[::2, 10:20, 10:20] = 1.0  # class 1: a bright square
    labels = np.arange(16) % 2 == 0
    return bowlrp.ExplainablePipeline([
        ("sift", bowlrp.DenseSIFT(scales=(1.5,), steps=(6,))),
        ("bow", BagOfWords(n_words=8, mapping=mapping, pooling=pooling, normalize=normalize, random_state=0)),
        ("svm", bowlrp.KernelSVC(kernel="hik")),
    ]).fit(images, labels.astype(int))


@st.composite
def image_batches(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kinds = draw(st.lists(st.sampled_from(("zero", "constant", "noise", "uint8")), min_size=1, max_size=3))
    images = []
    for k in kinds:
        if k == "zero":
            images.append(np.zeros((30, 30)))
        elif k == "constant":
            images.append(np.full((30, 30), draw(st.floats(0.0, 1.0))))
        elif k == "noise":
            images.append(rng.random((30, 30)))
        else:
            images.append(rng.integers(0, 256, (30, 30)).astype(np.float64) / 255.0)
    return np.stack(images)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(PIPELINES), image_batches(), st.sampled_from(RULE_CASES))
def test_image_pipeline_pixels_finite(config, images, rule_case):
    name, params = rule_case
    pipe = _pipeline(*config)
    exp = pipe.explain(images, rule=name, **params)
    for i, px in enumerate(exp.pixels):
        assert px.shape == (30, 30) and np.isfinite(px).all()
        assert np.isfinite(exp.descriptors[i]).all()
        if get_rule(name, **params).exact:
            scale = abs(exp.score[i]) + np.abs(exp.features[i]).sum()
            assert abs(px.sum() + exp.bias[i] - exp.score[i]) <= 1e-8 * scale + 1e-12
