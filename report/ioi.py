"""The IOI study's results: results/<model>/ioi-<hash>/ and its lines in the terminal verdict.

Input: the rows claims/ioi.py shipped (one per pair: clean and donor logit
differences, and the change of every patched head). The per-head statistics (the plan's
ioi_sesoi, corrected over all heads) are computed here, once, on template means (pairs of one
template share its structure: the template is the unit of replication, plan:
replication_unit); they are reported, never asserted (what a model does on IOI is a finding,
not a claim of this suite). ioi_heads_by_template.csv shows each template's mean.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments.analysis import cluster_means, unit_table
from metrics.statistics import counts
from report.results import CLAIM_COLUMNS, UNIT_COLUMNS, claim_table, errors_line, partial_line, publish, table, versions

PAIR_COLUMNS = ("index", "template", "io", "s", "clean", "donor")
HEAD_COLUMNS = ("layer", "head") + UNIT_COLUMNS
TEMPLATE_COLUMNS = ("layer", "head", "template", "pairs", "mean")
SECTIONS = [
    ("ioi_heads.csv", "Per head, across the IOI templates",
     "Change of the logit difference when the head's output at the last position is the donor's; each template's "
     "mean over its pairs is one sample (n = templates), Bonferroni over all heads; intervals at the decision "
     "level; TOST and the minimum-effect test at ±ioi_sesoi; predicted power."),
    ("ioi_pairs.csv", "The pairs", "Each recipient prompt, its names, and the clean logit differences of the "
                                   "recipient and of the donor (read with the recipient's names)."),
]
TOP = 10


@dataclass
class IOIReport:
    folder: Path
    expected: int
    recorded: int
    heads: list = field(default_factory=list)
    clean: list = field(default_factory=list)
    claims: list = field(default_factory=list)
    crashed: list = field(default_factory=list)   # workers that died during the run
    published: bool = False

    @property
    def complete(self) -> bool:
        return self.recorded == self.expected and not self.crashed

    def summary_lines(self) -> list[str]:
        errors = errors_line([c for c in self.claims if c["outcome"] == "error"])
        if not self.complete:
            return errors + ["IOI: " + partial_line(self, "pairs")]
        clean = np.asarray(self.clean)
        top = sorted(self.heads, key=lambda u: -abs(u.mean))[:5]
        return errors + [f"IOI: complete run, {self.recorded} pairs, results in {self.folder}",
                f"IOI clean logit difference: mean {clean.mean():+.2f}, positive in {(clean > 0).sum()} of {len(clean)} "
                "pairs",
                "IOI heads with the largest mean change: " + ", ".join(f"{u.label} {u.mean:+.2f} ({u.category})"
                                                                       for u in top)]


def write_ioi_report(collected) -> IOIReport:
    from report.html import document, facts_of, headline_of
    from report.plots import head_grid

    setup = collected.study_setup
    o, plan = setup.options, setup.plan
    rows = sorted(collected.rows["ioi-pair"], key=lambda r: r["index"])
    claims = claim_table(collected, "ioi", kind_of=lambda data: setup.claim_kind(data).kind)
    report = IOIReport(setup.ioi_folder, len(setup.ioi_pairs), len({r["index"] for r in rows}),
                       crashed=list(collected.crashed), claims=claims)
    if not report.complete:
        return report
    change = np.stack([np.asarray(r["change"]) for r in rows], -1)           # [n_layers, n_heads, n_pairs]
    keys = [(L, h) for L in range(setup.n_layers) for h in range(setup.n_heads)]
    means, templates = cluster_means(change.reshape(len(keys), -1), [r["template"] for r in rows])
    report.heads = unit_table(means, keys, plan, sesoi=plan.ioi_sesoi, label="ioi-heads")
    report.clean = [r["clean"] for r in rows]
    sizes = {t: sum(r["template"] == t for r in rows) for t in templates}
    by_template = [{"layer": L, "head": h, "template": t, "pairs": sizes[t], "mean": float(means[i, k])}
                   for i, (L, h) in enumerate(keys) for k, t in enumerate(templates)]
    files = {"ioi_pairs.csv": table(rows, PAIR_COLUMNS),
             "ioi_heads.csv": table([u.as_row() for u in report.heads], HEAD_COLUMNS),
             "ioi_heads_by_template.csv": table(by_template, TEMPLATE_COLUMNS),
             "claims.csv": table(claims, CLAIM_COLUMNS),
             "ioi.png": head_grid(report.heads, setup.n_layers, setup.n_heads, plan.ioi_sesoi,
                                  f"{setup.model_name}: IOI, mean change of logit(IO) - logit(S)", "logits")}
    top = sorted(report.heads, key=lambda u: -abs(u.mean))[:TOP]
    summary = {
        "model": {"name": setup.model_name, "n_layers": setup.n_layers, "n_heads": setup.n_heads},
        "question": {"task": "indirect object identification: patch one head at the last position from the "
                             "donor (names swapped); logit(IO) - logit(S) at the last position",
                     "pairs": len(rows), "seed": plan.ioi_seed, "digest": setup.ioi_digest()},
        "plan": plan.as_record(), "versions": versions(), "engine": o.engine,
        "claims": {c["test"]: {k: c[k] for k in CLAIM_COLUMNS[2:]} for c in claims},
        "observations": {"clean_logit_difference_mean": float(np.mean(report.clean)),
                         "pairs_with_positive_clean_difference": int(np.sum(np.asarray(report.clean) > 0)),
                         "largest_heads": {u.label: {"mean": u.mean, "category": u.category} for u in top},
                         "categories": counts(report.heads)},
    }
    files["summary.json"] = (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode()
    first = setup.ioi_pairs[0]
    question = (f"Indirect object identification ({len(rows)} prompt pairs such as “{first.recipient}” -> "
                f"“{first.io}”): for every one of the {setup.n_layers} x {setup.n_heads} (L, h), take head h of "
                "block L at the last position from the donor prompt (the two names swapped) and read the logit "
                "difference logit(IO) - logit(S) there. Which heads carry the answer?")
    files["report.html"] = document(
        headline=headline_of(f"{setup.model_name} IOI", claims), question=question,
        facts=facts_of(setup, {"pairs": f"{len(rows)} (seed {plan.ioi_seed}), {len(templates)} templates (the unit "
                                        "of replication)", "SESOI": plan.ioi_sesoi}),
        claims=claims, figures=[("ioi.png", files["ioi.png"])],
        sections=[(n, h, i, files[n]) for n, h, i in SECTIONS])
    publish(report.folder, files)
    report.published = True
    return report
