"""Golden results: the study's numbers for a model, checked in, compared on every run.

A golden file holds the clean cosine per block for every pair, the per-(layer, head)
differences of the tested pair and, for the shipped prompt set, each head's mean difference
across prompts (observations a claim must not assert, pinned here for regression), plus the
library versions that produced them. A run
whose numbers differ from it by more than TOLERANCE fails the gate and names every value
that drifted. `pytest --update-golden` rewrites the file on purpose; review its diff
like code.

TOLERANCE is absolute, in cosine units: 2e-5. The same numbers computed by the fast and
the naive engine differ by about 1e-6, and float32 reductions by other BLAS kernels by a
few 1e-6; a real change (a changed kernel, a wrong hook, a perturbed weight) moves the
differences, which are around 1e-3, by far more.
"""
from __future__ import annotations

import json
from pathlib import Path

from report.files import write_atomically

TOLERANCE = 2e-5


KINDS = ("clean_cosine", "deltas", "head_means_across_prompts")


def numbers(m, head_means=None) -> dict:
    """The gated numbers of a StudyMeasurement (experiments/study.py), and optionally each
    head's mean difference across the prompt set [n_layers, n_heads], as plain lists."""
    tested = m.prompt.tested.label
    out = {
        "tokens": m.prompt.tokens.ids,
        "clean_cosine": {p.label: [round(float(v), 9) for v in m.clean_cosine[p.label]] for p in m.prompt.pairs},
        "deltas": {tested: [[round(float(v), 9) for v in row] for row in m.deltas(tested)]},
    }
    if head_means is not None:
        out["head_means_across_prompts"] = {tested: [[round(float(v), 9) for v in row] for row in head_means]}
    return out


def compare(golden: dict, actual: dict, tolerance: float = TOLERANCE) -> list[str]:
    """One line per value that drifted by more than `tolerance` (empty: no drift)."""
    problems = []
    if golden.get("tokens") != actual["tokens"]:
        return [f"token ids changed: golden {golden.get('tokens')}, now {actual['tokens']} "
                "(a tokenizer change; every number below would differ)"]
    for kind in KINDS:
        for pair, want in golden.get(kind, {}).items():
            got = actual.get(kind, {}).get(pair)
            if got is None:
                problems.append(f"{kind}[{pair}]: in the golden file, not computed by this run")
                continue
            flat_want, flat_got, names = _flatten(want), _flatten(got), _names(kind, pair, want)
            if len(flat_want) != len(flat_got):
                problems.append(f"{kind}[{pair}]: golden has {len(flat_want)} values, this run {len(flat_got)}")
                continue
            for name, w, g in zip(names, flat_want, flat_got):
                if abs(w - g) > tolerance:
                    problems.append(f"{name}: golden {w:+.6f}, now {g:+.6f} (|diff| {abs(w - g):.1e} > {tolerance:.0e})")
    return problems


def _flatten(values):
    return [v for row in values for v in row] if values and isinstance(values[0], list) else list(values)


def _names(kind, pair, values):
    if values and isinstance(values[0], list):
        return [f"{kind}[{pair}][L{L:02d}-H{h:02d}]" for L, row in enumerate(values) for h in range(len(row))]
    return [f"{kind}[{pair}][L{L:02d}]" for L in range(len(values))]


class CorruptGoldenFile(ValueError):
    """A golden file that is not the JSON this module writes; the message names the file."""


def load(path: Path) -> dict | None:
    """The golden file's contents, None if there is none; CorruptGoldenFile if it cannot be read."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptGoldenFile(f"golden file {path} is corrupted ({err.__class__.__name__}: {err}); restore it "
                                f"with `git checkout -- {path}` or rewrite it with --update-golden") from None
    if not isinstance(data, dict):
        raise CorruptGoldenFile(f"golden file {path} holds a JSON {type(data).__name__}, not an object; restore "
                                f"it with `git checkout -- {path}` or rewrite it with --update-golden")
    return data


def save(path: Path, actual: dict, versions: dict) -> None:
    write_atomically(path, json.dumps({"versions": versions, "tolerance": TOLERANCE, **actual}, indent=1) + "\n")


# Golden verdicts: the outcome of every claim of a run on a real model, pinned for regression
# (an observation of that run, never a claim's assertion). A run whose verdicts differ fails
# the gate, naming each claim; tests/study/test_reports_are_reproducible.py compares them.
GOLDEN = Path(__file__).resolve().parents[1] / "claims" / "golden"
VERDICTS = GOLDEN / "verdicts"


def numbers_path(model: str) -> Path:
    """Where a model's golden numbers live."""
    return GOLDEN / f"{model}.json"


def gate(path: Path, actual: dict, versions: dict, *, update: bool, not_measured: tuple = ()) -> list[str]:
    """Compare `actual` with the golden file: the lines that drifted ([] when none). Kinds in
    `not_measured` are left out on purpose (this run's options do not produce them); every other
    golden value must be present. With `update`, a run that measures everything rewrites the
    file instead (on purpose: review its diff like code); another run is gated as usual."""
    if update and not not_measured:
        save(path, actual, versions)
        return []
    expected = load(path)
    if expected is None:
        return [f"no golden file {path}: create it with --update-golden and commit it"]
    expected = {k: v for k, v in expected.items() if k not in not_measured}
    problems = compare(expected, actual)
    if problems:
        problems.insert(0, f"{len(problems)} value(s) drifted from {path.name} (made with {expected.get('versions')}, "
                           f"now {versions}):")
    return problems


def verdicts_path(model: str, prompt_set: str) -> Path:
    return VERDICTS / f"{model}-{prompt_set}.json"


def verdicts_of(claims_csv: str, summary: dict) -> dict:
    """What a run concluded, from its claims.csv text and summary.json: the run's kind, the plan's
    hash, each claim's outcome (gated by compare_verdicts) and, for the README's tables
    (report/readme.py), each claim's statement and detail (not gated: the numbers in them are
    gated by the golden numbers)."""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(claims_csv)))
    prompt_set = summary["question"].get("prompt_set") or {}
    return {"run": summary["run"]["kind"], "plan_sha256": summary["plan"]["sha256"],
            "model": summary["model"]["name"], "sentences": prompt_set.get("sentences"),
            "templates": prompt_set.get("templates"), "prompt_set": prompt_set.get("name"),
            "claims": {r["test"]: r["outcome"] for r in rows}, "order": [r["test"] for r in rows],
            "data": {r["test"]: r["data"] for r in rows},
            "named": {r["test"]: {"beyond": r["beyond"].split(), "not shown": r["not_shown"].split()}
                      for r in rows if r["beyond"] or r["not_shown"]},
            "shown": {r["test"]: {"statement": r["statement"], "detail": r["detail"]} for r in rows}}


def save_verdicts(verdicts: dict) -> Path:
    """Write a run's verdicts as its golden ones (`--update-golden`), one file per model and prompt set."""
    path = verdicts_path(verdicts["model"], verdicts["prompt_set"])
    write_atomically(path, json.dumps(verdicts, indent=1, sort_keys=True) + "\n")
    return path


def compare_verdicts(golden: dict, actual: dict) -> list[str]:
    """One line per claim whose outcome, data kind or named units (beyond, not shown) changed
    (or appeared, or vanished), and the run's kind. An outcome is only half a verdict: the
    same "refuted" naming other heads is another conclusion."""
    problems = [f"run kind: golden {golden.get('run')}, now {actual['run']}"] if golden.get("run") != actual["run"] else []
    for what in ("claims", "data", "named"):
        want, got = golden.get(what, {}), actual.get(what, {})
        for test in sorted(set(want) | set(got)):
            if want.get(test) != got.get(test):
                label = {"claims": "", "data": " data", "named": " units named"}[what]
                problems.append(f"{test}{label}: golden {want.get(test, 'absent')}, now {got.get(test, 'absent')}")
    return problems
