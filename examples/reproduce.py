"""
The papers' findings, measured again
====================================

Every finding of the thesis and the four papers that bowlrp can test is one
row of a table: the paper's claim (section, figure or equation), bowlrp's
measurement with its protocol and standard errors, and whether it
reproduces (yes / partly / no, with the reason).  The rows cover the toy
polygons of thesis Sec. 2.4.3 (accuracy, where the relevance goes, vertex
count), the rules on Fisher vectors (Fig. 4.3), LRP against Deconvolution
and sensitivity on a CNN (paper 003 Fig. 4), context use mu (Fig. 4.6),
the properties of papers 000, 002 and 004, and agreement with zennit.

``python examples/reproduce.py`` (or ``bowlrp reproduce``) runs the full
measurement and writes ``docs/reproduction.md``; the page in the
documentation is that file.  The documentation builds this example with
``BOWLRP_DOCS_FAST=1``: tiny data and models, written to
``example_out/reproduce/reproduction.md``, which checks that every
measurement runs but whose numbers are not results.
"""

import argparse
import os

import matplotlib.pyplot as plt

from bowlrp.apps.reproduce import FINDINGS, run_reproduce

FAST = os.environ.get("BOWLRP_DOCS_FAST", "0") == "1"

p = argparse.ArgumentParser(description="Measure the papers' findings and write the reproduction table")
p.add_argument("--out", default=os.path.join("example_out", "reproduce", "reproduction.md") if FAST
               else os.path.join("docs", "reproduction.md"), help="Markdown file to write")
p.add_argument("--fast", action="store_true", default=FAST, help="tiny sizes: a check, not a measurement")
p.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(FINDINGS)}")
p.add_argument("--n-jobs", type=int, default=2, help="threads for SIFT and BLAS")
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()

# %%
# Measure every finding and write the table
# -----------------------------------------

# The two groups of findings that share no data run in two worker processes at once.
findings, meta = run_reproduce(a.out, fast=a.fast, only=a.only, n_jobs=a.n_jobs, random_state=a.seed,
                               command="python examples/reproduce.py")

# %%
# The verdicts
# ------------
# One bar per finding, coloured by whether it reproduces; the table itself
# (claims, measurements, protocols and reasons) is in the Markdown file.

rows = [r for f in findings for r in f.rows]
colours = {"yes": "tab:green", "partly": "tab:orange", "no": "tab:red", "not measured": "tab:gray"}
score = {"yes": 1.0, "partly": 0.5, "no": 0.15, "not measured": 0.05}
fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1))
labels = [f"{i + 1}. {r.source}" for i, r in enumerate(rows)]
ax.barh(labels, [score[r.verdict] for r in rows], color=[colours[r.verdict] for r in rows])
for i, r in enumerate(rows):
    ax.text(score[r.verdict] + 0.02, i, r.verdict, va="center")
ax.invert_yaxis()
ax.set_xlim(0, 1.3)
ax.set_xticks([])
ax.set_xlabel("reproduces: yes (green), partly (orange), no (red)")
ax.set_ylabel("finding")
ax.set_title(f"{len(rows)} findings, {meta['setting']} setting, {meta['seconds'] / 60:.1f} minutes")
fig.tight_layout()
for i, r in enumerate(rows):
    print(f"{i + 1:2d}. [{r.verdict}] {r.source}: {r.measured}")
print(f"table written to {a.out}")
