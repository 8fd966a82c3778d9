"""Write what a person reads: results/<model>/<question>/ and the terminal verdict.

Input: the rows every test item shipped and the objects the claims across shards kept
(plugin/reduce.py `Collected`). Nothing is recomputed here: blocks.csv prints the very
UnitStats rows that the claims (claims/*.py) judged, scales.csv those of claims/scales.py, and
so on (the README's layout section maps every file to its claim).
Rows are sorted and floats printed with a fixed format, so the same measurements give
byte-identical files however the run was spread over processes.

Only a complete run is published, and as a whole (report/files.py `publish`; a disk that
refuses it raises report.files.NotWritten, with the previous report in place).
"""
from __future__ import annotations

import csv
import io
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

from experiments.analysis import power_text
from experiments.judgments import combine_items
from report import golden
from report.files import publish
from metrics import outcomes
from metrics.statistics import CATEGORIES, counts

SCENARIO_COLUMNS = ("model", "layer", "head", "token", "pair", "clean", "silenced", "delta")
UNIT_COLUMNS = ("n", "mean", "sd", "se", "level", "ci_low", "ci_high", "eq_low", "eq_high", "cohen_d", "t", "p",
                "p_permutation", "p_adjusted", "significant", "sesoi", "p_tost", "p_tost_adjusted", "equivalent",
                "p_beyond", "p_beyond_adjusted", "beyond", "power", "tost_power", "category")
BLOCK_COLUMNS = ("pair", "layer") + UNIT_COLUMNS
HEAD_COLUMNS = ("ablation", "layer", "head") + UNIT_COLUMNS
BASELINE_COLUMNS = ("layer", "readout", "pair", "clean")
POWER_COLUMNS = ("family", "test", "correction", "units", "k", "effect", "draws", "planted_flagged", "predicted",
                 "any_null_flagged", "null_flagged_per_unit")
CONTROL_COLUMNS = ("family", "stratum", "arm", "effect", "decision", "units", "draws", "hits", "realized", "predicted",
                   "tolerance", "calibrated", "violations")
TEMPLATE_COLUMNS = ("layer", "head", "template", "sentences", "mean")
SCALE_COLUMNS = ("intervention", "layer") + UNIT_COLUMNS + ("logprob_mean", "kl_mean")
TOP_K_COLUMNS = ("k",) + UNIT_COLUMNS + ("logprob_mean", "kl_mean")
RIPPLE_COLUMNS = ("intervention", "layer", "read_at", "mean_delta")
CLAIM_COLUMNS = ("test", "statement", "unit", "rule", "data", "outcome", "items", "held", "refuted",
                 "not_established", "errors", "not_run", "detail", "beyond", "not_shown")
SHARD_COLUMNS = ("name", "computations")   # who and how long vary by run: terminal only


def fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else ""
    if isinstance(v, float):
        return f"{v:.9g}"
    return str(v)


def table(rows, columns) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([fmt(r.get(c)) for c in columns])
    return buf.getvalue().encode()


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "scipy", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def _claim_order(doc: dict, test: str) -> tuple:
    """Claims are listed as their files ask (REPORT_ORDER, plugin/protocol.py), then by file and line."""
    return (doc.get("order", 1000), test.split("::")[0], doc.get("line", 0))


def claim_table(collected, report: str = "study", kind_of=lambda data: "") -> list[dict]:
    """One row per claim declared for `report` (plugin/protocol.py: "study", "ioi", or a claim
    file's own): its statement, unit, rule, the kind of its data (`kind_of(data)`: exploratory
    or confirmatory, data being "population" or "study sentence"), its outcome
    (metrics.outcomes.combine of its items' outcomes), items, detail and the units it names."""
    def belongs(row) -> bool:
        return row.get("report", "study") == report

    docs = {r["test"]: r for r in collected.rows["test-doc"] if belongs(r)}
    said: dict[tuple, dict] = {}
    for r in collected.rows["claim"]:
        if belongs(r):
            said[r["test"], r["item"]] = r              # an item's (or a claim's) last word
    items: dict[str, dict] = {}
    for r in collected.rows["item-outcome"]:
        if not belongs(r):
            continue
        found = items.setdefault(r["test"], {})
        before = found.get(r["item"])
        # one outcome per item: a failed setup or teardown outranks a passed call
        found[r["item"]] = r if before is None else {**r, "outcome": outcomes.combine([before["outcome"], r["outcome"]]),
                                                     "message": before["message"] or r["message"]}
    for test, reports in collected.outcomes.items():       # an item that failed without a word: the tool's
        for nodeid, result in reports:
            if test in docs and result == "failed" and not items.get(test):
                items.setdefault(test, {})[nodeid] = {"item": nodeid, "outcome": outcomes.ERROR, "message": "failed"}
    rows = []
    tests = set(docs) | {test for test, _ in said} | set(items)
    for test in sorted(tests, key=lambda t: _claim_order(docs.get(t, {}), t)):
        found = [{**i, "detail": said.get((test, i["item"]), {}).get("detail", ""),
                  "named": said.get((test, i["item"]), {}).get("named", {})} for i in items.get(test, {}).values()]
        verdict = combine_items(found)
        counts = {o: sum(i["outcome"] == o for i in found) for o in outcomes.SHOWN}
        doc = docs.get(test, {})
        rows.append({"test": test, "statement": doc.get("doc", ""), "unit": doc.get("unit", ""),
                     "rule": doc.get("rule", ""), "data": kind_of(doc.get("data", "population")),
                     "outcome": verdict.outcome, "items": len(found),
                     **{COUNT_COLUMNS[o]: counts[o] for o in outcomes.SHOWN}, "detail": verdict.detail,
                     "beyond": " ".join(verdict.beyond), "not_shown": " ".join(verdict.not_shown)})
    return rows


COUNT_COLUMNS = {"held": "held", "refuted": "refuted", "not established": "not_established", "error": "errors",
                 "not run": "not_run"}


def shard_table(collected) -> list[dict]:
    by_name: dict[str, list] = {}
    for r in collected.rows["shard-computed"]:
        by_name.setdefault(r["name"], []).append(r)
    return [{"name": name, "computations": len(done), "workers": " ".join(sorted({d["worker"] for d in done})),
             "seconds": round(sum(d["seconds"] for d in done), 3)} for name, done in sorted(by_name.items())]


def claims_time_line(timed: list[tuple[float, float]], loop_end: float) -> str:
    """How long the claims across shards took, and how much of it came after the last item ran
    (terminal only: seconds vary by run). Under xdist they run beside the workers as soon as
    their rows are in (plugin/reduce.py), in -n 0 after the last item; only that part adds to
    the run's serial part (tests/benchmarks/test_scaleout_benchmarks.py reads this line)."""
    total = sum(stop - start for start, stop in timed)
    after = sum(max(0.0, stop - max(start, loop_end)) for start, stop in timed)
    return f"claims across shards: {total:.1f} s for {len(timed)} claims, {after:.1f} s of it after the last item"


def partial_line(report, unit: str) -> str:
    """Why a run is partial (its crashed workers, what it recorded) and what became of its report."""
    why = "; ".join(report.crashed + [f"{report.recorded} of {report.expected} {unit} recorded"])
    return f"PARTIAL run, {why}: report not written; {report.folder} keeps the previous complete report, if any"


def errors_line(errors: list[dict]) -> list[str]:
    """The line that says some claims ended in an error of the tool, which is not a result."""
    if not errors:
        return []
    return [f"TOOL ERROR: {len(errors)} claim(s) could not be decided because the tool failed (not a result; "
            "fix the error and run again): " + ", ".join(c["test"].split("::")[-1] for c in errors)]


def work_line(shards: list[dict]) -> str:
    """How the run's work divides (terminal only: seconds vary by run): the seconds spent in
    shard computations, and the largest shard's share, which bounds what more workers gain
    (tests/benchmarks/test_scaleout_benchmarks.py reads this line)."""
    total = sum(s["seconds"] for s in shards)
    largest = max(shards, key=lambda s: s["seconds"])
    return (f"shard work: {total:.1f} s in {len(shards)} shards; the largest, {largest['name']}, "
            f"{largest['seconds']:.1f} s ({largest['seconds'] / total if total else 0:.1%} of it)")


@dataclass
class Report:
    folder: Path
    model: str
    expected: int                 # study scenarios a complete run records
    recorded: int
    claims: list = field(default_factory=list)
    baseline: dict | None = None
    blocks: list = field(default_factory=list)
    heads: list = field(default_factory=list)
    shards: list = field(default_factory=list)
    kind: object = None           # experiments.plan.RunKind: exploratory, confirmatory or known-answer
    crashed: list = field(default_factory=list)   # workers that died during the run
    claims_timed: list = field(default_factory=list)   # (start, stop) of each claim across shards
    loop_end: float | None = None                 # when the last item had run
    published: bool = False
    verdicts: dict | None = None  # the run's conclusions, for --update-golden to pin (report/golden.py)

    @property
    def complete(self) -> bool:
        return self.recorded == self.expected and not self.crashed

    @property
    def failed(self) -> list:
        return [c for c in self.claims if c["outcome"] == outcomes.REFUTED]

    @property
    def errors(self) -> list:
        return [c for c in self.claims if c["outcome"] == outcomes.ERROR]

    def summary_lines(self) -> list[str]:
        head = errors_line(self.errors)
        if not self.complete:
            head += [f"model {self.model}: " + partial_line(self, "scenarios")]
        elif self.failed:
            head += [f"CLAIMS FAILED: {len(self.failed)} claim(s) refuted in this run: "
                     + ", ".join(c["test"].split("::")[-1] for c in self.failed),
                     f"model {self.model}: complete run, {self.recorded} scenarios, results in {self.folder}"]
        else:
            head += [f"model {self.model}: complete run, {self.recorded} scenarios, results in {self.folder}"]
        if self.kind is not None:
            head.append(f"{self.kind.kind} run: {self.kind.why}")
        lines = head + [f"{c['outcome']:<15} {c['test'].split('::')[-1]}" + (f"  ({c['detail']})" if c["detail"] else "")
                        for c in self.claims]
        if self.shards:
            twice = [s["name"] for s in self.shards if s["computations"] > 1]
            lines.append(f"shards: {sum(s['computations'] for s in self.shards)} computation(s) of "
                         f"{len(self.shards)} shards" + (f"; computed more than once: {twice}" if twice else
                                                        ", each computed once"))
            lines.append(work_line(self.shards))
        if self.claims_timed and self.loop_end is not None:
            lines.append(claims_time_line(self.claims_timed, self.loop_end))
        if self.heads:
            found = counts(self.heads)
            lines.append(f"heads across sentences (±SESOI, Bonferroni over {found['n']}): "
                         + ", ".join(f"{c} {found[c]}" for c in CATEGORIES))
        if self.blocks:
            lines.append(f"{'block':>5} {'mean delta':>11} {'interval at the decision level':>32} {'p':>8} "
                         f"{'power':>6} {'TOST power':>10}  category (the seed's unit)")
            for r in self.blocks:
                lines.append(f"{r.layer:>5} {r.mean:>+11.2e} {r.interval():>32} {r.p:>8.3f} {power_text(r.power):>6} "
                             f"{power_text(r.tost_power):>10}  {r.verdict}")
        return lines


def _unit_rows(units, **extra) -> list[dict]:
    return [{**extra, **u.as_row()} for u in units]


def by_template(collected, setup) -> list[dict]:
    """Each head's mean difference per template (the samples heads.csv tests), so a reader sees the spread."""
    if "heads by template" not in collected.kept:
        return []
    keys, templates, means = collected.kept["heads by template"]
    sizes = {t: setup.templates.count(t) for t in templates}
    return [{"layer": L, "head": h, "template": t, "sentences": sizes[t], "mean": float(means[i, k])}
            for i, (L, h) in enumerate(keys) for k, t in enumerate(templates)]


def write_report(collected) -> Report:
    """Write the run's report (when complete) and return what the terminal verdict prints."""
    from models.loading import provenance
    from report.html import page
    from report.plots import figures

    setup = collected.study_setup
    o = setup.options
    tested = setup.prompt.tested.label
    scenarios = sorted(({"model": setup.model_name, **r} for r in collected.rows["scenario"]),
                       key=lambda r: (r["pair"], r["layer"], r["head"]))
    recorded = len({(r["layer"], r["head"]) for r in scenarios})
    claims = claim_table(collected, kind_of=lambda data: setup.claim_kind(data).kind)
    blocks = collected.kept.get("blocks", [])
    report = Report(setup.results_folder, setup.model_name, setup.n_layers * setup.n_heads, recorded, claims,
                    blocks=blocks, heads=collected.kept.get("heads", []), shards=shard_table(collected),
                    kind=setup.kind, crashed=list(collected.crashed), claims_timed=list(collected.claims_timed),
                    loop_end=collected.loop_end)
    if not report.complete:
        return report

    baseline = sorted(({"layer": L, "readout": "block output (last: after the final norm)", "pair": r["pair"],
                        "clean": c} for r in collected.rows["baseline"] for L, c in enumerate(r["clean"])),
                      key=lambda r: (r["pair"], r["layer"]))
    baseline += sorted(({"layer": setup.n_layers - 1, "readout": "last block output before the final norm",
                         "pair": r["pair"], "clean": r["before_norm"]} for r in collected.rows["baseline"]),
                       key=lambda r: r["pair"])
    heads = report.heads
    tables = {
        "claims.csv": (claims, CLAIM_COLUMNS),
        "scenarios.csv": (scenarios, SCENARIO_COLUMNS),
        "baseline.csv": (baseline, BASELINE_COLUMNS),
        "blocks.csv": (_unit_rows(blocks, pair=tested), BLOCK_COLUMNS),
        "heads.csv": (_unit_rows(heads, ablation=o.ablation), HEAD_COLUMNS),
        "heads_by_template.csv": (by_template(collected, setup), TEMPLATE_COLUMNS),
        "sentence_shares.csv": (_unit_rows(collected.kept.get("sentence shares", []), ablation=o.ablation),
                                HEAD_COLUMNS),
        "power.csv": ([r.as_row() for r in collected.kept.get("power", [])], POWER_COLUMNS),
        "controls.csv": ([c.as_row() for c in collected.kept.get("controls", [])], CONTROL_COLUMNS),
        "scales.csv": (sorted(collected.rows["scale"], key=lambda r: (r["order"], r["layer"])), SCALE_COLUMNS),
        "top_k.csv": (sorted(collected.rows["top_k"], key=lambda r: r["k"]), TOP_K_COLUMNS),
        "ripple.csv": (sorted(collected.rows["ripple"], key=lambda r: (r["layer"], r["read_at"])), RIPPLE_COLUMNS),
        "shards.csv": (report.shards, SHARD_COLUMNS),
    }
    files = {name: table(rows, columns) for name, (rows, columns) in tables.items() if rows}
    summary = {
        "model": {"name": setup.model_name, **provenance(o.choice),
                  "n_layers": setup.n_layers, "n_heads": setup.n_heads},
        "question": {"sentence": o.question.sentence, "silenced_word": o.question.silence_word,
                     "tokens": setup.prompt.tokens.pieces, "token_ids": setup.prompt.tokens.ids,
                     "silenced_token_index": setup.prompt.token,
                     "pairs": {p.label: [p.i, p.j] for p in setup.prompt.pairs},
                     "prompt_set": {"file": o.prompts_path.name, "name": setup.prompt_set_name,
                                    "sentences": len(setup.prompts), "templates": len(set(setup.templates)),
                                    "ablation": o.ablation} if setup.prompts else None,
                     "digest": setup.question_digest()},
        "run": {"kind": report.kind.kind, "why": report.kind.why},
        "engine": o.engine,
        "dtype": o.dtype,
        "plan": o.plan.as_record(),
        "versions": versions(),
        "claims": {c["test"]: {k: c[k] for k in CLAIM_COLUMNS[2:]} for c in claims},
        "shards": {s["name"]: s["computations"] for s in report.shards},
        "observations": collected.kept.get("observations", {}),
    }
    files["summary.json"] = (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode()
    files.update(figures(setup, collected))
    files["report.html"] = page(setup, collected, claims, files)
    publish(report.folder, files)
    report.published = True
    if o.update_golden and setup.prompts:          # pinned on purpose by the plugin, once published
        report.verdicts = golden.verdicts_of(files["claims.csv"].decode(), summary)
    return report
