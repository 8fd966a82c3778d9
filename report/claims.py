"""The report of a claim file's own claims (README, "Your own claim"): results/<model>/<report>-<hash>/.

A claim declared with report="<name>" (plugin/protocol.py) that is neither the study's nor the
IOI study's is listed here: claims.csv (the same columns as the study's), summary.json (the
model, each claim's plan file and its sha256, the outcomes) and report.html (the headline and
the claims). Only a run whose claims all ran is published, as a whole (report/files.py).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from metrics import outcomes
from report.results import CLAIM_COLUMNS, claim_table, errors_line, publish, shard_table, table, versions


@dataclass
class ClaimsReport:
    name: str
    folder: Path
    claims: list = field(default_factory=list)
    crashed: list = field(default_factory=list)
    shards: list = field(default_factory=list)       # the run's shard computations (report/results.shard_table)
    published: bool = False

    @property
    def complete(self) -> bool:
        return not self.crashed and not any(c["outcome"] == outcomes.NOT_RUN for c in self.claims)

    def summary_lines(self) -> list[str]:
        errors = errors_line([c for c in self.claims if c["outcome"] == outcomes.ERROR])
        where = (f"results in {self.folder}" if self.published else
                 f"PARTIAL run ({'; '.join(self.crashed) or 'some claims did not run'}): report not written; "
                 f"{self.folder} keeps the previous complete report, if any")
        twice = [s["name"] for s in self.shards if s["computations"] > 1]
        shards = [f"shards: {sum(s['computations'] for s in self.shards)} computation(s) of {len(self.shards)} shards"
                  + (f"; computed more than once: {twice}" if twice else ", each computed once")] if self.shards else []
        return errors + [f"{self.name}: {len(self.claims)} claim(s), {where}"] + [
            f"{c['outcome']:<15} {c['test'].split('::')[-1]}" + (f"  ({c['detail']})" if c["detail"] else "")
            for c in self.claims] + shards


def own_reports(collected) -> list[str]:
    """The report names a run's claims declared, other than the study's and the IOI study's."""
    return sorted({r.get("report", "study") for r in collected.rows["test-doc"]} - {"study", "ioi"})


def write_claims_report(collected, name: str) -> ClaimsReport:
    """Write the report of the claims declared with report=`name`, when they all ran."""
    from report.html import document, facts_of, headline_of

    setup = collected.study_setup
    claims = claim_table(collected, name, kind_of=lambda data: setup.claim_kind(data).kind)
    docs = {r["test"]: r for r in collected.rows["test-doc"] if r.get("report") == name}
    plans = {r.get("plan_file", ""): r.get("plan_sha256", "") for r in docs.values() if r.get("plan_file")}
    digest = hashlib.sha256(json.dumps([setup.model_name, sorted(plans.items()), sorted(docs)]).encode()).hexdigest()
    report = ClaimsReport(name, setup.options.results_dir / setup.model_name / f"{name}-{digest[:8]}", claims,
                          list(collected.crashed), shard_table(collected))
    if not report.complete:
        return report
    summary = {"report": name, "model": {"name": setup.model_name, "n_layers": setup.n_layers,
                                         "n_heads": setup.n_heads},
               "plans": {file: {"sha256": sha} for file, sha in sorted(plans.items())},
               "versions": versions(), "shards": {s["name"]: s["computations"] for s in report.shards},
               "claims": {c["test"]: {k: c[k] for k in CLAIM_COLUMNS[2:]} for c in claims}}
    files = {"claims.csv": table(claims, CLAIM_COLUMNS),
             "summary.json": (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode()}
    question = "; ".join(c["statement"] for c in claims if c["statement"])
    files["report.html"] = document(
        headline=headline_of(f"{setup.model_name} {name}", claims), question=question,
        facts=facts_of(setup, {f"plan {file}": f"sha256 {sha}" for file, sha in sorted(plans.items())}),
        claims=claims, figures=[], sections=[("claims.csv", "Claims (table)", "Every claim of the file.",
                                               files["claims.csv"])])
    publish(report.folder, files)
    report.published = True
    return report
