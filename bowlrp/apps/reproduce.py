"""The reproduction table: every finding of the papers that bowlrp can test, measured again.

:func:`run_reproduce` trains the models, measures each finding and writes
one Markdown page (``docs/reproduction.md``): per finding the paper's claim
(with its section, figure or equation), bowlrp's measurement with its
protocol and error bars, and whether it reproduces (yes / partly / no, and
why), then the details behind each row.  ``bowlrp reproduce`` and
``python examples/reproduce.py`` run it; ``fast=True`` shrinks every
experiment to a quick check of the machinery (its numbers are not results).

The findings (one group each):

* ``toy`` -- thesis Sec. 2.4.3 (Fig. 2.13): toy accuracy of the HIK and chi2
  Bag-of-Words models and what closes the gap to the thesis; relevance on
  polygons and round shapes; relevance against the polygons' vertex count;
* ``fisher`` -- thesis Fig. 4.3 / App. C.2: rules on Fisher vectors by
  descriptor replacement;
* ``cnn`` -- paper 003 Fig. 4: LRP, Deconvolution and sensitivity on a CNN
  by region perturbation, with uniform noise and with blur;
* ``context`` -- thesis Fig. 4.6: context use mu of Fisher-vector models
  (with and without a spatial pyramid, all or fewer training tiles) and of
  the CNN;
* ``properties`` -- papers 000, 002, 004: deep Taylor decomposition's
  conservation and positivity, PatternNet on the linear toy, Guided
  Backprop's class insensitivity;
* ``zennit`` -- bowlrp's LRP rules against zennit's on identical weights
  (when torch and zennit can be imported).
"""

import os
import platform
import time

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from ..cnn import CNNClassifier
from ..datasets import make_polygons
from ..features import DenseSIFT
from ._repro_cnn import run_cnn_methods, run_properties
from ._repro_common import Clock, Finding, Row, md_table
from ._repro_fisher import context_rows, run_fisher_rules
from ._repro_toy import run_toy
from ._repro_zennit import zennit_agreement

__all__ = ["FINDINGS", "GROUPS", "SIZES", "run_reproduce", "format_markdown"]

FINDINGS = ("toy", "fisher", "cnn", "context", "properties", "zennit")
#: Findings run in one process each group: the context toy's CNN is shared; the toy and the Fisher-vector
#: findings each compute the SIFT descriptors they need (a few CPU minutes twice, for a process more).
GROUPS = (("toy",), ("fisher",), ("cnn", "context", "properties", "zennit"))

#: Experiment sizes: ``"full"`` is the table in docs/, ``"fast"`` a quick check of the machinery.
SIZES = {
    "full": dict(
        n_train=2000, n_train_more=4000, n_test_images=4, n_words=128, vocab_sizes=(64, 128, 256),
        max_descriptors=50000, cv_folds=3, C_grid=(0.1, 1.0, 10.0, 100.0), gamma_mults=(0.5, 1.0, 2.0),
        n_synthetic_shapes=400, n_explain_tiles=None, n_mu_tiles=None,
        fv_components=32, fv_pca=32, n_eval_descriptors=40, desc_batch=2, desc_steps=30, desc_repeats=3,
        n_train_context=2000, n_train_context_small=500, n_test_images_context=4, cnn_epochs=20,
        n_eval_pixels=80, pix_steps=30, pix_repeats=3,
        n_dtd_tiles=400, pattern_seeds=5, pattern_samples=20000, gbp_nets=3, gbp_images=10, zennit_tiles=8,
    ),
    "fast": dict(
        n_train=96, n_train_more=128, n_test_images=1, n_words=8, vocab_sizes=(4, 8),
        max_descriptors=2000, cv_folds=2, C_grid=(1.0, 10.0), gamma_mults=(1.0,),
        n_synthetic_shapes=40, n_explain_tiles=20, n_mu_tiles=20,
        fv_components=4, fv_pca=8, n_eval_descriptors=4, desc_batch=2, desc_steps=4, desc_repeats=1,
        n_train_context=96, n_train_context_small=64, n_test_images_context=1, cnn_epochs=1,
        n_eval_pixels=6, pix_steps=4, pix_repeats=1,
        n_dtd_tiles=40, pattern_seeds=2, pattern_samples=2000, gbp_nets=1, gbp_images=3, zennit_tiles=2,
    ),
}


class _Context:
    """Data, descriptors and CNNs shared by the findings, made once on first use."""

    def __init__(self, sizes, seed, n_jobs, verbose, log):
        self.sizes, self.seed, self.n_jobs, self.verbose, self.log = sizes, seed, n_jobs, verbose, log
        self._cache, self.memo = {}, {}

    def _get(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _sift(self, images, what):
        self.log(f"  dense SIFT (sigma 2 and 3, rotated) on {len(images)} {what}")
        return DenseSIFT(scales=(2.0, 3.0), steps=(6, 9), rotate=True, n_jobs=self.n_jobs).transform(images)

    @property
    def toy(self):
        """The plain toy polygons (thesis Sec. 2.4.3): ``n_train_more`` training tiles; the first ``n_train`` are the demo's."""
        return self._get("toy", lambda: make_polygons(n_train=self.sizes["n_train_more"],
                                                      n_test_images=self.sizes["n_test_images"],
                                                      random_state=self.seed))

    def toy_sift_train(self, n):
        """SIFT descriptor sets of the first ``n`` toy training tiles (extended when more are asked for)."""
        have = self._cache.get("toy_sift_train", [])
        if len(have) < n:
            have = list(have) + list(self._sift(self.toy.images[len(have):n], "toy training tiles"))
            self._cache["toy_sift_train"] = have
        return have[:n]

    @property
    def toy_sift_test(self):
        return self._get("toy_sift_test", lambda: self._sift(self.toy.test_images, "toy test tiles"))

    @property
    def context(self):
        """Toy polygons with a label-correlated striped surround (the head-to-head's data)."""
        return self._get("context", lambda: make_polygons(n_train=self.sizes["n_train_context"],
                                                          n_test_images=self.sizes["n_test_images_context"],
                                                          context=0.8, context_amplitude=0.15,
                                                          random_state=self.seed))

    @property
    def context_sift_train(self):
        return self._get("context_sift", lambda: self._sift(self.context.images, "context training tiles"))

    def cnn(self, n_train):
        """The head-to-head's CNN trained on the first ``n_train`` context tiles."""
        def make():
            self.log(f"  training the CNN on {n_train} context tiles, {self.sizes['cnn_epochs']} epochs")
            d = self.context
            return CNNClassifier(epochs=self.sizes["cnn_epochs"], augment=True, nonpositive_bias=True,
                                 learning_rate=3e-3, random_state=self.seed,
                                 verbose=self.verbose).fit(d.images[:n_train], d.labels[:n_train])
        return self._get(("cnn", n_train), make)


def _run_zennit(ctx, log=print):
    clock = Clock()
    cnn = ctx.cnn(ctx.sizes["n_train_context"])
    X = ctx.context.test_images[: ctx.sizes["zennit_tiles"]]
    x = (X / 255.0)[:, None].astype(np.float64)
    t = np.zeros(len(x), dtype=int)
    res = zennit_agreement(cnn.model_, x, t)
    if res is None:
        row = Row(source="zennit (style guide's reference implementation)",
                  claim="bowlrp's LRP rules agree with zennit's on identical weights",
                  measured="not measured: torch or zennit cannot be imported here",
                  protocol="install torch (CPU) and zennit; tests/test_zennit.py runs the same comparison",
                  verdict="not measured", reason="zennit is not installed")
        return Finding("zennit", "Agreement with zennit", [row], "zennit was not importable.", clock.total)
    lay, net = res["layers"], res["networks"]
    worst_l, worst_n = max(lay.values()), max(net.values())
    ok = worst_l < 1e-10 and worst_n < 1e-10
    off = sorted({k[0] for k, v in lay.items() if v >= 1e-10} | {k for k, v in net.items() if v >= 1e-10})
    near = worst_l < 1e-6 and worst_n < 1e-6
    row = Row(
        source="zennit (style guide's reference implementation)",
        claim="bowlrp's LRP rules (epsilon, z+, alpha-beta 2/1, flat, w-square, zB) agree with zennit's on "
              "identical weights",
        measured=f"max relative difference {worst_l:.1e} layer by layer, {worst_n:.1e} end to end",
        protocol=(f"the trained toy CNN's weights in torch float64, {len(x)} test tiles; every linear layer with "
                  "its own input and a random signed output relevance, and 6 composites on the whole network; "
                  "max |bowlrp - zennit| / max |zennit|; zennit stabiliser 1e-300"),
        verdict="yes" if ok else ("partly" if near else "no"),
        reason=(("equal to rounding" if ok else
                 f"equal to float64 rounding except {', '.join(off)}, which differ at float32 rounding: bowlrp "
                 "squares the network's float32 weights in float32 before it switches to float64")
                + "; bowlrp AlphaBeta(2, -1) is zennit AlphaBeta(alpha=2, beta=1), and zennit's default w-square "
                f"keeps b^2 in its denominator (difference {res['wsquare_default']:.1e}; bowlrp follows paper 000 "
                "eq. 12, zennit with zero_params=['bias'] agrees)") if near else "a rule differs beyond rounding",
        numbers={"layers": {f"{k[0]} @ layer {k[1]}": v for k, v in lay.items()}, "networks": net,
                 "wsquare_default": res["wsquare_default"]})
    by_rule = {}
    for (name, k), v in lay.items():
        by_rule.setdefault(name, []).append(v)
    details = "\n".join([
        "### Agreement with zennit",
        "",
        md_table(["rule (layer by layer)", "layers", "max relative difference"],
                 [(k, len(v), f"{max(v):.1e}") for k, v in by_rule.items()]),
        "",
        md_table(["composite (end to end)", "max relative difference"], [(k, f"{v:.1e}") for k, v in net.items()]),
    ])
    return Finding("zennit", "Agreement with zennit", [row], details, clock.total)


def _run_one(key, ctx, log):
    sz = ctx.sizes
    if key == "toy":
        return run_toy(ctx, log)
    if key == "fisher":
        return run_fisher_rules(ctx, log)
    if key == "cnn":
        return run_cnn_methods(ctx, ctx.cnn(sz["n_train_context"]), log)
    if key == "context":
        models = {n: ctx.cnn(n) for n in (sz["n_train_context"], sz["n_train_context_small"])}
        return context_rows(ctx, models, log)
    if key == "properties":
        return run_properties(ctx, ctx.cnn(sz["n_train_context"]), log)
    return _run_zennit(ctx, log)


def _check_only(only):
    if only is None:
        return list(FINDINGS)
    keys = [k.strip() for k in (only.split(",") if isinstance(only, str) else only) if k.strip()]
    bad = [k for k in keys if k not in FINDINGS]
    if bad or not keys:
        raise ValueError(f"unknown finding(s) {bad or only!r} (only= or --only); valid: {', '.join(FINDINGS)}")
    return [k for k in FINDINGS if k in keys]


def _run_group(keys, sizes, seed, n_jobs, verbose, log):
    """Run the findings ``keys`` (one group of :data:`GROUPS`) in this process; returns ``(findings, cpu seconds)``."""
    cpu0 = time.process_time()
    ctx = _Context(sizes, seed, n_jobs, verbose, log)
    out = []
    with threadpool_limits(limits=n_jobs, user_api="blas"):
        for key in keys:
            log(f"[{key}] started")
            t = time.perf_counter()
            f = _run_one(key, ctx, log)
            f.seconds = time.perf_counter() - t  # includes the shared data and models it made first
            out.append(f)
            for r in f.rows:
                log(f"[{key}] {r.source}: {r.verdict} ({r.reason})")
    return out, time.process_time() - cpu0


def format_markdown(findings, meta):
    """The reproduction page: the summary table, then the details of each group of findings.

    ``findings`` are the ``Finding`` objects :func:`run_reproduce` measures
    (each with its table rows); ``meta`` says how the page was made.

    Examples
    --------
    >>> from bowlrp.apps._repro_common import Finding, Row
    >>> row = Row("thesis Sec. 2.4.3", "a claim", "what bowlrp measured", "how", "partly", "why only in part")
    >>> meta = dict(command="bowlrp reproduce", setting="full", date="2026-01-01", version="0.1.0", python="3.11",
    ...             processes=1, n_jobs=2, cpus=2, seconds=60.0, cpu_seconds=90.0, seed=0)
    >>> page = format_markdown([Finding("toy", "Toy polygons", [row], "the details", 12.0)], meta).splitlines()
    >>> for line in page[0], page[4], next(line for line in page if line.startswith("| 1 |")):
    ...     print(line)
    # Reproduction of the papers' findings
    1 findings: 0 reproduce, 1 in part, 0 do not.
    | 1 | thesis Sec. 2.4.3 | a claim | what bowlrp measured | how | **partly**: why only in part |
    """
    rows = [r for f in findings for r in f.rows]
    counts = {v: sum(r.verdict == v for r in rows) for v in ("yes", "partly", "no", "not measured")}
    lines = [
        "# Reproduction of the papers' findings",
        "",
        f"Generated by `{meta['command']}` ({meta['setting']} setting) on {meta['date']}: bowlrp {meta['version']}, "
        f"Python {meta['python']}, {meta['processes']} process(es) of {meta['n_jobs']} threads on a machine with "
        f"{meta['cpus']} CPUs; "
        f"{meta['seconds'] / 60:.1f} minutes wall-clock, {meta['cpu_seconds'] / 60:.1f} minutes of CPU time "
        f"(seed {meta['seed']}; on an idle machine the wall-clock time is at most about the CPU time). "
        "Do not edit by hand: rerun the command.",
        "",
        f"{len(rows)} findings: {counts['yes']} reproduce, {counts['partly']} in part, {counts['no']} do not"
        + (f", {counts['not measured']} not measured" if counts["not measured"] else "") + ".",
        "",
    ]
    if meta["setting"] == "fast":
        lines += ["**Fast setting: tiny data and models; the numbers check the machinery and are not results.**", ""]
    lines += [md_table(["#", "source", "claim", "bowlrp measures", "protocol", "reproduces"],
                       [(i + 1, r.source, r.claim, r.measured, r.protocol, f"**{r.verdict}**: {r.reason}")
                        for i, r in enumerate(rows)]), ""]
    lines += ["## Details", ""]
    for f in findings:
        lines += [f"## {f.title}", "", f"({f.seconds:.0f} s)", "", f.details, ""]
    return "\n".join(lines).rstrip() + "\n"


def run_reproduce(out=os.path.join("docs", "reproduction.md"), fast=False, only=None, n_jobs=2, random_state=0,
                  parallel=True, verbose=False, log=print, command="bowlrp reproduce"):
    """Measure every finding and write the reproduction table to ``out``; returns ``(findings, meta)``.

    Parameters
    ----------
    out : str
        The Markdown file to write (its folder is created).
    fast : bool
        Tiny data, models and evaluations: a check that everything runs
        (about a minute), not a measurement.
    only : None, str or list of str
        A subset of :data:`FINDINGS` (comma-separated in a string).
    n_jobs : int
        Threads for dense SIFT and BLAS (per process).
    parallel : bool
        Run the two groups of findings that share no data (:data:`GROUPS`)
        in two processes at once.
    random_state : int
        Seed of every dataset, model and perturbation.
    verbose : bool
        Progress bars of the CNN training.
    log : callable
        Progress messages (``print`` in the worker processes).
    command : str
        How the page says it was generated.

    Examples
    --------
    Even the fast setting takes about a minute; the findings asked for are
    checked first:

    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     run_reproduce(os.path.join(folder, "reproduction.md"), fast=True, only="toys,cnn")
    Traceback (most recent call last):
    ...
    ValueError: unknown finding(s) ['toys'] (only= or --only); valid: toy, fisher, cnn, context, properties, zennit
    """
    keys = _check_only(only)
    setting = "fast" if fast else "full"
    sizes = SIZES[setting]
    clock = Clock()
    groups = [[k for k in grp if k in keys] for grp in GROUPS]
    groups = [grp for grp in groups if grp]
    if parallel and len(groups) > 1:
        log(f"running {len(groups)} groups of findings in parallel processes: "
            + "; ".join(", ".join(grp) for grp in groups))
        # loky starts fresh interpreters: a forked child of a process whose OpenMP thread pool is running
        # (k-means, SIFT) can hang in it, and multiprocessing's "spawn" would run a calling script again
        done = Parallel(n_jobs=len(groups), backend="loky")(
            delayed(_run_group)(grp, sizes, random_state, n_jobs, verbose, print) for grp in groups)
    else:
        done = [_run_group(grp, sizes, random_state, n_jobs, verbose, log) for grp in groups]
    by_key = {f.key: f for found, _ in done for f in found}
    findings = [by_key[k] for k in keys]
    cpu = sum(c for _, c in done)
    from .. import __version__  # noqa: PLC0415

    meta = {"command": command + (" --fast" if fast else "") + (f" --only {','.join(keys)}" if only else ""),
            "setting": setting, "date": time.strftime("%Y-%m-%d"), "version": __version__,
            "python": platform.python_version(), "n_jobs": n_jobs, "cpus": os.cpu_count(),
            "seconds": clock.total, "cpu_seconds": cpu, "seed": random_state,
            "processes": len(done) if parallel else 1}
    folder = os.path.dirname(out)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(format_markdown(findings, meta))
    log(f"wrote {out} in {clock.total / 60:.1f} minutes ({meta['cpu_seconds'] / 60:.1f} CPU minutes)")
    return findings, meta
