"""Write a run's results a person can read: results/<model>/{scenarios,blocks}.csv,
summary.json and the study's figures as PNG.

Input is the list of (kind, row) records the tests shipped to the controller, so the
report shows exactly what the tests measured. Rows are sorted and floats printed with a
fixed format, so the same measurements give byte-identical files.

Only a complete run is published, and as a whole: every file is written into a staging
folder first, which then replaces results/<model>/ by rename. A run that is interrupted
or misses scenarios (Ctrl-C, a crashed worker, -k) leaves the previous complete report.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metrics.statistics import block_stats, block_tests, category

SCENARIO_COLUMNS = ("model", "sentence", "layer", "head", "token", "pair", "clean", "silenced", "delta")
# The study's columns first (unchanged), then what can also say "no effect".
STATS_COLUMNS = ("sd", "ci_low", "ci_high", "cohen_d", "p_permutation", "p_holm", "p_bh",
                 "significant_holm", "significant_bh", "sesoi", "p_tost", "p_tost_holm", "equivalent", "category")
BLOCK_COLUMNS = ("pair", "layer", "n", "mean_delta", "t", "p", "threshold", "significant") + STATS_COLUMNS
_DESCRIBED = ("n", "mean", "t", "p", "p_bonferroni", "significant_bonferroni") + STATS_COLUMNS
HEAD_COLUMNS = ("ablation", "layer", "head") + _DESCRIBED
SCALE_COLUMNS = ("intervention", "layer") + _DESCRIBED + ("logprob_mean", "kl_mean")
TOP_K_COLUMNS = ("k",) + _DESCRIBED + ("logprob_mean", "kl_mean")
RIPPLE_COLUMNS = ("intervention", "layer", "read_at", "mean_delta", "p", "p_holm", "significant_holm")


def _fmt(v):
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else ""
    if isinstance(v, float):
        return f"{v:.9g}"
    return str(v)


def publish(folder: Path, files: dict[str, bytes]) -> None:
    """Replace `folder` by a folder holding exactly `files`, never leaving a mixture.

    Between the two renames there is an instant with no folder at all: a reader sees the
    old complete report, the new one, or none, never a half-written one.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.staging-"))
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        os.chmod(staging, 0o755)  # mkdtemp makes it private; results are for everyone to read
        old = None
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{os.getpid()}"
            os.replace(folder, old)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _csv(rows, columns) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_fmt(r[c]) for c in columns])
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


@dataclass
class Report:
    folder: Path
    model: str
    n_layers: int
    n_heads: int
    tested_pair: str
    beats: int | None            # blocks where pair 1 > pair 2 (clean), if recorded
    n_blocks: int
    tests: list                  # BlockTest of the tested pair
    complete: bool
    n_scenarios: int
    published: bool = False
    beyond: dict | None = None
    failed: list = field(default_factory=list)

    @property
    def n_significant(self) -> int:
        return sum(t.significant for t in self.tests)

    def summary_lines(self) -> list[str]:
        if self.published:
            lines = [f"model {self.model}: {self.n_scenarios} scenarios, results in {self.folder}"]
        if self.failed:
            lines.append(f"CLAIMS FAILED: {len(self.failed)} study test(s) failed in this run "
                         "(listed in summary.json); read the numbers below with that in mind")
        else:
            lines = [f"model {self.model}: PARTIAL run, {self.n_scenarios} of {self.n_layers * self.n_heads} "
                     f"scenarios recorded: report not written; {self.folder} keeps the previous "
                     "complete report, if any"]
        if self.beats is not None:
            lines.append(f"baseline: {self.tested_pair} higher than the comparison pair at "
                         f"{self.beats} of {self.n_blocks} blocks")
        if self.tests:
            lines.append(f"{'block':>5} {'mean delta':>11} {'t':>8} {'p':>8}  significant (p < {self.tests[0].threshold:.2g})")
            for t in self.tests:
                lines.append(f"{t.layer:>5} {t.mean_delta:>+11.2e} {t.t:>8.2f} {t.p:>8.3f}  {'YES' if t.significant else 'no'}")
            lines.append(f"verdict: {self.n_significant} of {len(self.tests)} blocks significant after "
                         f"Bonferroni for {self.tested_pair}")
        b = self.beyond or {}
        if b.get("blocks"):
            c = b["blocks"]
            lines.append(f"beyond (SESOI ±{b['sesoi']}): blocks equivalent to no change {c['equivalent']}, "
                         f"significant but negligible {c['negligible effect']}, undecided {c['undecided']} "
                         f"{c['undecided_blocks']}, effect {c['effect']}")
        if b.get("heads"):
            c = b["heads"]
            lines.append(f"heads across {c['n_prompts']} prompts ({c['ablation']} ablation, corrected over "
                         f"{c['n']} heads): effect {c['effect']} {c['effect_heads']}, negligible effect "
                         f"{c['negligible effect']}, equivalent {c['equivalent']}, undecided {c['undecided']}; "
                         f"significant Bonferroni {c['bonferroni']}, Holm {c['holm']}, BH {c['bh']}")
        for kind, c in (b.get("scales") or {}).items():
            lines.append(f"scale {kind:<24} blocks with an effect {c['effect']:>2} of {c['n']}, largest "
                         f"|mean Δ| {c['largest']:.3g}, mean Δlog p {c['logprob']:+.3g} nats, mean KL {c['kl']:.3g}")
        for r in b.get("top_k") or []:
            lines.append(f"top-{r['k']} heads together: mean Δ at the last block {r['mean']:+.3g}, {r['category']}")
        return lines


def _count(rows) -> dict:
    out = {c: sum(r["category"] == c for r in rows) for c in ("effect", "negligible effect", "equivalent", "undecided")}
    out["n"] = len(rows)
    return out


def _beyond(setup, block_rows, tested, heads, scales, top_k) -> dict:
    """The summary of the statistics beyond the study (summary.json "beyond", terminal lines)."""
    out = {"sesoi": setup.sesoi}
    mine = [r for r in block_rows if r["pair"] == tested]
    if mine:
        out["blocks"] = {**_count(mine), "undecided_blocks": [r["layer"] for r in mine if r["category"] == "undecided"]}
    if heads:
        out["heads"] = {**_count(heads), "n_prompts": heads[0]["n"], "ablation": heads[0]["ablation"],
                        "effect_heads": [f"L{r['layer']:02d}-H{r['head']:02d}" for r in heads if r["category"] == "effect"],
                        "bonferroni": sum(r["significant_bonferroni"] for r in heads),
                        "holm": sum(r["significant_holm"] for r in heads), "bh": sum(r["significant_bh"] for r in heads)}
    kinds = list(dict.fromkeys(r["intervention"] for r in scales))
    out["scales"] = {}
    for kind in kinds:
        rows = [r for r in scales if r["intervention"] == kind]
        out["scales"][kind] = {**_count(rows), "largest": max(abs(r["mean"]) for r in rows),
                               "logprob": float(np.mean([r["logprob_mean"] for r in rows])),
                               "kl": float(np.mean([r["kl_mean"] for r in rows]))}
    out["top_k"] = [{"k": r["k"], "mean": r["mean"], "category": r["category"]} for r in top_k]
    return out


def write_report(results_dir: Path, setup, records, failed: list[str] | None = None) -> Report:
    """`failed`: node ids of the study's tests that failed in this run (they are named in
    summary.json and the verdict, so a report never reads as a clean result when a claim
    or a control broke)."""
    plan = setup.plan
    folder = results_dir / setup.choice.name
    scen = sorted((r for k, r in records if k == "scenario"), key=lambda r: (r["pair"], r["layer"], r["head"]))
    base = sorted((r for k, r in records if k == "baseline"), key=lambda r: (r["pair"], r["layer"]))
    controls = sorted((r for k, r in records if k == "control"), key=lambda r: (r["name"], r.get("layer", -1)))
    common = {"model": setup.choice.name, "sentence": plan.question.sentence}
    scen = [{**common, **r} for r in scen]
    pairs = [p.label for p in plan.pairs]
    tested = pairs[0]

    block_rows, tests_by_pair = [], {}
    for pair in pairs:
        rows = [r for r in scen if r["pair"] == pair]
        layers = sorted({r["layer"] for r in rows})
        full = [L for L in layers if sum(r["layer"] == L for r in rows) == setup.n_heads]
        if not full:
            continue
        deltas = np.array([[r["delta"] for r in rows if r["layer"] == L] for L in full])
        tests = block_tests(deltas, full)
        # Bonferroni over every block of the model, even when a partial run tested fewer.
        tests = [type(t)(t.layer, t.n, t.mean_delta, t.t, t.p, 0.05 / setup.n_layers,
                         t.p < 0.05 / setup.n_layers) for t in tests]
        tests_by_pair[pair] = tests
        described = {r.layer: r for r in block_stats(deltas, full, sesoi=setup.sesoi)}
        block_rows += [{"pair": pair, **t.as_row(), **described[t.layer].as_row(),
                        "category": category(described[t.layer])} for t in tests]

    clean = {pair: {r["layer"]: r["clean"] for r in base if r["pair"] == pair} for pair in pairs}
    beats = None
    if len(pairs) > 1 and len(clean[pairs[0]]) == setup.n_layers and len(clean[pairs[1]]) == setup.n_layers:
        beats = sum(clean[pairs[0]][L] > clean[pairs[1]][L] for L in range(setup.n_layers))

    n_expected = setup.n_layers * setup.n_heads
    n_scen = len({(r["layer"], r["head"]) for r in scen})
    report = Report(folder, setup.choice.name, setup.n_layers, setup.n_heads, tested, beats,
                    setup.n_layers, tests_by_pair.get(tested, []), n_scen == n_expected, n_scen,
                    failed=sorted(failed or []))

    summary = {
        "model": setup.choice.name,
        "model_source": setup.choice.source,
        "why_this_model": setup.choice.reason,
        "n_layers": setup.n_layers,
        "n_heads": setup.n_heads,
        "engine": setup.engine,
        "versions": versions(),
        "sentence": plan.question.sentence,
        "tokens": plan.tokens.pieces,
        "token_ids": plan.tokens.ids,
        "silenced_word": plan.question.silence_word,
        "silenced_token_index": plan.token,
        "pairs": {p.label: [p.i, p.j] for p in plan.pairs},
        "thresholds": {"alpha": 0.05, "bonferroni": 0.05 / setup.n_layers,
                       "max_abs_delta_per_head": setup.max_delta,
                       "baseline_min_fraction": 0.9},
        "complete": report.complete,
        "scenarios_recorded": n_scen,
        "failed_study_tests": sorted(failed or []),
        "clean_cosine": {pair: [clean[pair].get(L) for L in range(setup.n_layers)] for pair in pairs},
        "controls": controls,
        "verdict": {
            "tested_pair": tested,
            "pair_beats_comparison_blocks": beats,
            "blocks": setup.n_layers,
            "significant_blocks_bonferroni": report.n_significant if report.tests else None,
            "max_abs_delta": max((abs(r["delta"]) for r in scen if r["pair"] == tested), default=None),
        },
    }
    heads = sorted((r for k, r in records if k == "head"), key=lambda r: (r["layer"], r["head"]))
    from experiments.scales import KINDS
    order = {kind: i for i, kind in enumerate(KINDS)}
    scales = sorted((r for k, r in records if k == "scale"),
                    key=lambda r: (order.get(r["intervention"], len(order)), r["intervention"], r["layer"]))
    top_k = sorted((r for k, r in records if k == "top_k"), key=lambda r: r["k"])
    ripple = sorted((r for k, r in records if k == "ripple"), key=lambda r: (r["intervention"], r["layer"], r["read_at"]))
    beyond = _beyond(setup, block_rows, tested, heads, scales, top_k)
    summary["beyond"] = beyond
    report.beyond = beyond
    if not report.complete:
        report.published = False
        return report
    from report.html import page
    from report.plots import draw_all, draw_beyond

    files = {
        "scenarios.csv": _csv(scen, SCENARIO_COLUMNS),
        "blocks.csv": _csv(block_rows, BLOCK_COLUMNS),
        "summary.json": (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode(),
        **draw_all(setup, clean, scen, tests_by_pair),
    }
    for name, rows, columns in (("heads.csv", heads, HEAD_COLUMNS), ("scales.csv", scales, SCALE_COLUMNS),
                                ("top_k.csv", top_k, TOP_K_COLUMNS), ("ripple.csv", ripple, RIPPLE_COLUMNS)):
        if rows:
            files[name] = _csv(rows, columns)
    files.update(draw_beyond(setup.choice.name, heads, scales, top_k, ripple, setup.n_layers, setup.n_heads,
                             setup.sesoi))
    report.published = True
    # Without the first line: it names the results folder, and the page must be the same
    # bytes wherever the run wrote it.
    files["report.html"] = page(f"head-silencing: {setup.choice.name}, {report.n_scenarios} scenarios",
                                report.summary_lines()[1:], files)
    publish(folder, files)
    report.published = True
    return report
