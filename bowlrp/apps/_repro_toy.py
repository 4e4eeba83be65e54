"""Thesis Sec. 2.4.3 (Fig. 2.13): the toy polygons with Bag-of-Words kernel SVMs.

What is measured: tile accuracy of the two-scale HIK and chi2 models of
:func:`bowlrp.apps.demo.toy_pipeline`, and what moves it (vocabulary size,
C and the kernel parameters by cross-validation, more training tiles); the
mean pixel relevance on polygons, round shapes and background; and whether
polygons with more vertices get less relevance, per polygon of the large
test images (vertex counts estimated from each polygon's outline).
"""

import cv2
import numpy as np
from scipy.stats import spearmanr
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from tqdm.auto import tqdm

from ..pipeline import ExplainablePipeline
from ..svm import KernelSVC
from ..viz import merge_tiles
from ._repro_common import Clock, Finding, Row, binomial_se, g, md_table, mean_se, pm
from .demo import toy_pipeline

__all__ = ["estimate_vertices", "polygon_shapes", "run_toy"]

#: Polygons of make_polygons have 4 to 7 vertices; the estimator searches a wider range.
_HARMONICS = range(3, 10)


def estimate_vertices(mask, n_angles=720):
    """Number of corners of one convex shape from its pixel mask (None for a shape too small).

    The distance from the centroid to the outline, as a function of the
    angle, repeats ``n`` times around a regular ``n``-gon; the estimate is
    the strongest harmonic 3..9 of that profile.
    """
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    c = max(contours, key=len)[:, 0, :].astype(np.float64)  # (k, 2) as (x, y)
    if len(c) < 16:
        return None
    mom = cv2.moments(m, binaryImage=True)
    cx, cy = mom["m10"] / mom["m00"], mom["m01"] / mom["m00"]
    theta = np.arctan2(c[:, 1] - cy, c[:, 0] - cx)
    r = np.hypot(c[:, 0] - cx, c[:, 1] - cy)
    order = np.argsort(theta)
    grid = np.linspace(-np.pi, np.pi, n_angles, endpoint=False)
    profile = np.interp(grid, theta[order], r[order], period=2 * np.pi)
    spectrum = np.abs(np.fft.rfft(profile - profile.mean()))
    return int(max(_HARMONICS, key=lambda k: spectrum[k]))


def polygon_shapes(big_mask):
    """Label image and list of ``(label, n_vertices)`` for the polygons of one large mask."""
    n, labels = cv2.connectedComponents(np.asarray(big_mask, np.uint8), connectivity=8)
    shapes = []
    for k in range(1, n):
        v = estimate_vertices(labels == k)
        if v is not None:
            shapes.append((k, v))
    return labels, shapes


def _synthetic_check(n_shapes, seed):
    """Share of synthetic regular polygons (4-7 corners, radius 14-21 px) whose corners are counted right."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64].astype(np.float64)
    ok = 0
    for _ in range(n_shapes):
        n, R, a = int(rng.integers(4, 8)), rng.uniform(14, 21), rng.uniform(0, 2 * np.pi)
        cy, cx = 32 + rng.uniform(-1, 1), 32 + rng.uniform(-1, 1)
        normals = a + np.pi / n + 2 * np.pi * np.arange(n) / n
        proj = (yy - cy)[None] * np.sin(normals)[:, None, None] + (xx - cx)[None] * np.cos(normals)[:, None, None]
        ok += estimate_vertices(proj.max(0) <= R * np.cos(np.pi / n)) == n
    return ok / n_shapes


def _fit_models(ctx, n_words, n_train, C_hik=1.0, C_chi2=1.0, hik_params=None, chi2_params=None):
    """HIK and chi2 pipelines sharing SIFT and one vocabulary, fitted on the first ``n_train`` tiles."""
    y = ctx.toy.labels[:n_train]
    hik = toy_pipeline(n_words=n_words, C=C_hik, random_state=ctx.seed)
    hik.set_params(sift__n_jobs=ctx.n_jobs, bow__max_descriptors=ctx.sizes["max_descriptors"])
    hik[0].fit(ctx.toy.images[:1])
    key = ("bow", n_words, n_train)
    if key not in ctx.memo:  # one vocabulary per size and training set, shared by the SVM variants
        bow = hik[1].fit(ctx.toy_sift_train(n_train))
        ctx.memo[key] = (bow, bow.transform(ctx.toy_sift_train(n_train)), bow.transform(ctx.toy_sift_test))
    bow, F, Ft = ctx.memo[key]
    hik.steps[1] = ("bow", bow)
    hik[2].set_params(**(hik_params or {}))
    hik[2].fit(F, y)
    chi2 = ExplainablePipeline(hik.steps[:-1] + [
        ("svm", KernelSVC(kernel="chi2", C=C_chi2, blocks=(n_words, n_words), random_state=ctx.seed,
                          **(chi2_params or {})))])
    chi2[-1].fit(F, y)
    return hik, chi2, F, Ft


def _accuracy(model_svm, Ft, labels):
    return float(np.mean(model_svm.predict(Ft) == labels))


def _grid_search(ctx, F, y, n_words):
    """Cross-validated C (and block weights for HIK, gamma for chi2) on the SVM stage."""
    cv = StratifiedKFold(ctx.sizes["cv_folds"], shuffle=True, random_state=ctx.seed)
    out = {}
    probe = KernelSVC(kernel="chi2", blocks=(n_words, n_words)).fit(F[:200], y[:200])
    gamma0 = float(np.mean(probe.kernel_.gammas))
    grids = {
        "hik": (KernelSVC(kernel="hik", blocks=(n_words, n_words)),
                {"C": list(ctx.sizes["C_grid"]), "block_weights": [None, (2.0, 1.0), (1.0, 2.0)]}),
        "chi2": (KernelSVC(kernel="chi2", blocks=(n_words, n_words), random_state=ctx.seed),
                 {"C": list(ctx.sizes["C_grid"]), "gamma": [m * gamma0 for m in ctx.sizes["gamma_mults"]]}),
    }
    for name, (est, grid) in grids.items():
        gs = GridSearchCV(est, grid, cv=cv, n_jobs=1, refit=True)
        gs.fit(F, y)
        out[name] = gs
    return out, gamma0


def _region_stats(pixels, poly, rnd):
    """Per tile: mean relevance on polygon pixels, round-shape pixels and background (nan where absent)."""
    P = np.asarray(pixels, dtype=np.float64)
    res = {}
    for name, m in (("polygons", poly), ("round shapes", rnd), ("background", ~(poly | rnd))):
        cnt = m.sum(axis=(1, 2))
        s = (P * m).sum(axis=(1, 2))
        res[name] = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
    return res


def _explain_tiles(pipe, X, batch, desc):
    out = []
    for a in tqdm(range(0, len(X), batch), unit="batch", desc=desc, leave=False):
        out.extend(pipe.explain(X[a:a + batch]).pixels)
    return out


def _per_polygon(ctx, pixels):
    """Mean relevance of each polygon of the large test images, with its estimated vertex count."""
    d = ctx.toy
    verts, means, where = [], [], []
    for k, big in enumerate(d.test_big_images):
        sel = np.flatnonzero(d.test_source == k)
        merged = merge_tiles([pixels[i] for i in sel], d.test_origins[sel], big.shape)
        labels, shapes = polygon_shapes(d.test_big_polygon_masks[k])
        for lab, v in shapes:
            verts.append(v)
            means.append(float(merged[labels == lab].mean()))
            where.append(k)
    return np.asarray(verts), np.asarray(means), np.asarray(where)


def run_toy(ctx, log=print):
    """Rows and details for thesis Sec. 2.4.3."""
    clock = Clock()
    sz, d = ctx.sizes, ctx.toy
    yt, n_test = d.test_labels, len(d.test_labels)
    base_words, n_base = sz["n_words"], sz["n_train"]
    log(f"  toy: demo defaults ({n_base} tiles, {base_words} words, C=1)")
    hik, chi2, F, Ft = _fit_models(ctx, base_words, n_base)
    acc = {"hik": _accuracy(hik[-1], Ft, yt), "chi2": _accuracy(chi2[-1], Ft, yt)}
    n_demo = min(400, n_test)
    acc_demo = {k: float(np.mean(m[-1].predict(Ft[:n_demo]) == yt[:n_demo])) for k, m in (("hik", hik), ("chi2", chi2))}
    tried = [("demo defaults", base_words, n_base, "C=1", acc["hik"], acc["chi2"])]

    for w in sz["vocab_sizes"]:
        if w == base_words:
            continue
        log(f"  toy: vocabulary {w} words")
        h, c, _, Ftw = _fit_models(ctx, w, n_base)
        tried.append((f"vocabulary {w}", w, n_base, "C=1", _accuracy(h[-1], Ftw, yt), _accuracy(c[-1], Ftw, yt)))

    log("  toy: C, block weights and chi2 width by cross-validation (GridSearchCV on the SVM stage)")
    gs, gamma0 = _grid_search(ctx, F, d.labels[:n_base], base_words)
    cv_acc = {k: _accuracy(v.best_estimator_, Ft, yt) for k, v in gs.items()}
    best = {k: v.best_params_ for k, v in gs.items()}
    tried.append(("cross-validated parameters", base_words, n_base,
                  f"HIK {best['hik']}; chi2 C={best['chi2']['C']}, gamma={best['chi2']['gamma'] / gamma0:g} x mean",
                  cv_acc["hik"], cv_acc["chi2"]))

    n_more = sz["n_train_more"]
    log(f"  toy: {n_more} training tiles")
    h, c, Fm, Ftm = _fit_models(ctx, base_words, n_more)
    tried.append((f"{n_more} training tiles", base_words, n_more, "C=1", _accuracy(h[-1], Ftm, yt),
                  _accuracy(c[-1], Ftm, yt)))
    hb = {k: v for k, v in best["hik"].items()}
    cb = {"gamma": best["chi2"]["gamma"]}
    h2, c2, _, Ftm2 = _fit_models(ctx, base_words, n_more, C_hik=hb.pop("C"), C_chi2=best["chi2"]["C"],
                                  hik_params=hb, chi2_params=cb)
    tried.append((f"{n_more} tiles and the cross-validated parameters", base_words, n_more, "as above",
                  _accuracy(h2[-1], Ftm2, yt), _accuracy(c2[-1], Ftm2, yt)))

    # label ambiguity: negative tiles that show most of a polygon (its centre lies outside)
    poly_px = d.test_polygon_masks.sum(axis=(1, 2))
    ambiguous = float(np.mean((yt < 0) & (poly_px > 150)))

    n_ex = sz["n_explain_tiles"] or n_test
    log(f"  toy: explaining {n_ex} test tiles (HIK exact, chi2 Taylor)")
    px = {"hik": _explain_tiles(hik, d.test_images[:n_ex], 50, "explain hik"),
          "chi2": _explain_tiles(chi2, d.test_images[:n_ex], 50, "explain chi2")}
    px = {k: v + [np.zeros(d.test_images.shape[1:])] * (n_test - n_ex) for k, v in px.items()}  # fast setting only
    regions = {k: _region_stats(v[:n_ex], d.test_polygon_masks[:n_ex], d.test_round_masks[:n_ex])
               for k, v in px.items()}
    polys = {k: _per_polygon(ctx, v) for k, v in px.items()}
    synth = _synthetic_check(sz["n_synthetic_shapes"], ctx.seed)

    rows = []
    best_h = max(t[4] for t in tried)
    best_c = max(t[5] for t in tried)
    gap = acc["chi2"] - acc["hik"]
    se_h, se_c = binomial_se(acc["hik"], n_test), binomial_se(acc["chi2"], n_test)
    close = best_h >= 0.96 and best_c >= 0.96
    rows.append(Row(
        source="thesis Sec. 2.4.3",
        claim="toy tile accuracy about 0.97 for HIK and chi2 models, chi2 ahead by 1.6 points",
        measured=(f"demo defaults: HIK {pm(acc['hik'], se_h)}, chi2 {pm(acc['chi2'], se_c)} "
                  f"(chi2 - HIK {gap:+.3f}); best of the variants tried: HIK {best_h:.3f}, chi2 {best_c:.3f}"),
        protocol=(f"{n_base} training tiles, {n_test} test tiles ({len(d.test_big_images)} large images, stride 34), "
                  "binomial s.e. over tiles (tiles overlap: the true error is larger)"),
        verdict="yes" if close and best_c > best_h else "partly",
        reason=("accuracy within 1 s.e. of 0.97" if close else
                f"accuracy {max(best_h, best_c):.3f} at best; {ambiguous:.1%} of the test tiles are negative yet "
                "show more than 150 polygon pixels (a polygon cut by the border), an error built into the labels")
        + ("; chi2 ahead" if best_c > best_h and gap > 0 else "; chi2 is not ahead of HIK beyond the error bars"),
        numbers={"accuracy": acc, "accuracy_first_400": acc_demo, "tried": tried, "ambiguous_share": ambiguous}))

    reg_cells = []
    ok = True
    for name in ("hik", "chi2"):
        r = regions[name]
        cells = {k: mean_se(v) for k, v in r.items()}
        reg_cells.append((name, cells))
        p, q = cells["polygons"], cells["round shapes"]
        ok &= p[0] > 2 * p[1] and q[0] < -2 * q[1]
    pos_only = all(c["polygons"][0] > 2 * c["polygons"][1] for _, c in reg_cells)
    rows.append(Row(
        source="thesis Sec. 2.4.3, Fig. 2.13",
        claim="pixels of polygons get positive relevance, round shapes negative (weaker), background about zero",
        measured="; ".join(f"{n.upper()}: polygons {g(c['polygons'][0])} ± {g(c['polygons'][1], 2)}, round "
                           f"{g(c['round shapes'][0])} ± {g(c['round shapes'][1], 2)}, background "
                           f"{g(c['background'][0])} ± {g(c['background'][1], 2)}" for n, c in reg_cells),
        protocol="mean pixel relevance per region of each test tile (masks of make_polygons), mean ± s.e. over "
                 "the tiles holding the region; f(x) explained (positive speaks for polygons)",
        verdict="yes" if ok else ("partly" if pos_only else "no"),
        reason="both signs as claimed, beyond 2 s.e." if ok else
        ("polygons positive; round shapes not negative beyond 2 s.e." if pos_only else "polygons not positive"),
        numbers={k: {r: list(mean_se(v)) for r, v in regions[k].items()} for k in regions}))

    vert_rows, rho = [], {}
    for name, (verts, means, _) in polys.items():
        r_, p_ = spearmanr(verts, means) if len(set(verts)) > 1 else (float("nan"), float("nan"))
        rho[name] = (float(r_), float(p_))
        for v in range(4, 8):
            sel = verts == v
            m_, s_ = mean_se(means[sel])
            vert_rows.append((name.upper(), v, int(sel.sum()), f"{g(m_)} ± {g(s_, 2)}" if sel.sum() else "-",
                              f"{np.mean(means[sel] < 0):.2f}" if sel.sum() else "-"))
    neg = all(np.isfinite(r) and r < 0 and p < 0.05 for r, p in rho.values())
    some = any(np.isfinite(r) and r < 0 and p < 0.05 for r, p in rho.values())
    rows.append(Row(
        source="thesis Sec. 2.4.3",
        claim="polygons with more vertices get less (or negative) relevance: they look like round shapes",
        measured="; ".join(f"{n.upper()}: Spearman rho(vertices, mean relevance) = {r:+.2f} (p = {p:.2g}, "
                           f"{len(polys[n][0])} polygons)" for n, (r, p) in rho.items()),
        protocol=("tile maps merged into the large test images (averaged where tiles overlap, as Fig. 2.13); mean "
                  "relevance per polygon; make_polygons does not return vertex counts, so each polygon's count is "
                  f"estimated from its outline (right on {synth:.0%} of synthetic regular 4- to 7-gons of radius 14-21 px)"),
        verdict="yes" if neg else ("partly" if some else "no"),
        reason="relevance falls with the vertex count (p < 0.05)" if neg else
        ("for one kernel only" if some else "no significant trend at this number of polygons"),
        numbers={"spearman": rho, "synthetic_estimator_accuracy": synth}))

    details = [
        "### Toy accuracy: what was tried",
        "",
        md_table(["variant", "words per scale", "training tiles", "SVM parameters", "HIK accuracy", "chi2 accuracy"],
                 [(a, b, c, p, f"{h:.3f}", f"{k:.3f}") for a, b, c, p, h, k in tried]),
        "",
        f"Accuracy on {n_test} test tiles; binomial s.e. about {se_h:.3f}. On the first 400 test tiles (the demo's "
        f"4 images): HIK {acc_demo['hik']:.3f}, chi2 {acc_demo['chi2']:.3f}. Cross-validation: "
        f"{sz['cv_folds']}-fold GridSearchCV on the SVM stage over C {list(sz['C_grid'])}, for HIK also the "
        "kernel weights of the two SIFT scales (None, (2, 1), (1, 2); a stand-in for the thesis' multiple kernel "
        "learning) and for chi2 the width gamma as a multiple "
        f"{list(sz['gamma_mults'])} of 1 / mean chi2 distance (the default; {gamma0:.3g}); the vocabulary is fitted "
        "once on the training tiles, without labels. CV scores: "
        + "; ".join(f"{k.upper()} {v.best_score_:.3f} with {v.best_params_}" for k, v in gs.items()) + ".",
        f"{ambiguous:.1%} of the test tiles are negative but show more than 150 polygon pixels.",
        "",
        "### Relevance per polygon and vertex count",
        "",
        md_table(["model", "vertices (estimated)", "polygons", "mean relevance ± s.e.", "share negative"], vert_rows),
    ]
    return Finding("toy", "Toy polygons, Bag of Words (thesis Sec. 2.4.3)", rows, "\n".join(details), clock.total)
