"""The default study against the code before this speed work, in one run on one machine.

    python -m pytest tests/benchmarks/test_study_time_benchmarks.py --benchmark-only -s -p no:randomly

`./run study` (SmolLM2-135M-Instruct, the exploration half, `pytest -m study -n auto`) is run
at BASELINE, checked out with `git worktree`, and in this working tree, in turns (baseline,
now, baseline, now, ...), ROUNDS times each; each side's pytest time (the seconds pytest's
last line prints) is the median of its rounds. Goal: now <= half the baseline (HALF).

BASELINE is 04e1ce7, the last commit before issue 24's speed work: the revised plan (frozen,
sha256 4aeb3b8ae99a), the statistics of today, the scale ladder not yet resumed, the tool's
tests collected by every `-m study` run. Set STUDY_BASELINE_COMMIT to time another commit.

The two runs must say the same things (checked on the first round's results):
- every file of the results folder exists in both;
- every CSV has the same rows, its words (categories, names) equal and its numbers within
  TOLERANCE: the engine's exact fast paths added since (the resumed ladder, the padded
  batch's packed clean pass and per-head projection) sum float32 products in another order,
  which moves a cosine by about 1e-7 (the engine's bound is 1e-6). Statistics derived from
  the numbers (t, Cohen's d, p-values, power), which divide by small SDs or count discrete
  permutations, within DERIVED_FACTOR x TOLERANCE relative to max(1, |value|). Rows are
  compared as sets: the report order of claims (and so of controls.csv's and power.csv's
  rows) changed when the claims moved to claims/ (issue 23). The benchmark prints which CSVs
  came out byte for byte the same;
- claims.csv: every claim (by name: its file moved) with the same outcome, counts, detail and
  named units;
- shards.csv: how the run divided its work, which this work changed (the ladder's kinds at the
  token share one shard per sentence now): every shard computed exactly once in each run;
- figures and report.html are drawn from these and not compared.
"""
from __future__ import annotations

import csv
import io
import os
import re
import statistics
import subprocess
from pathlib import Path

import pytest

from tests.benchmarks.test_scaleout_benchmarks import study_run
from tests.helpers.baselines import record_ratio

ROOT = Path(__file__).resolve().parents[2]
BASELINE = os.environ.get("STUDY_BASELINE_COMMIT", "04e1ce7f20a8b4b0b1f6f4b804aa1a6745b1ad83")
ROUNDS = 3
HALF = 2.0
# Cosines: the engine's bound 1e-6; log-probabilities (the ladder's logprob_mean, kl_mean):
# within 3e-5 nats (the plain pass itself moves them by 1.7e-5 between two batch shapes).
TOLERANCE = 1e-4
DERIVED = re.compile(r"^(t|cohen_d|p|p_.*|power|tost_power)$")
DERIVED_FACTOR = 10
CLAIM_COLUMNS = ("outcome", "items", "held", "refuted", "not_established", "errors", "not_run", "detail", "beyond",
                 "not_shown")
PYTEST_TIME = re.compile(r" in ([\d.]+)s")


def _study(root: Path, results: Path) -> tuple[float, float, str]:
    """(pytest's own seconds, wall seconds, stdout) of `pytest -m study -n auto` in `root`."""
    wall, out = study_run(results, ["-n", "auto"], {}, root=root)
    found = PYTEST_TIME.search(out.strip().splitlines()[-1])
    assert found, f"{root}: no pytest time on the run's last line\n{out[-3000:]}"
    return float(found[1]), wall, out


def _folder(results: Path) -> Path:
    """The one question folder a run writes (results/<model>/<question>-<hash>/)."""
    found = [p for p in results.glob("*/*") if p.is_dir()]
    assert len(found) == 1, f"expected one results folder under {results}, found {found}"
    return found[0]


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def _numbers_close(a: str, b: str, tolerance: float) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return a == b
    return x == y or abs(x - y) <= tolerance * max(1.0, abs(x), abs(y)) or (x != x and y != y)


def _row_differences(name: str, old: str, new: str) -> list[str]:
    """Rows in their order (each run writes one CSV's rows in the same order): numbers within
    TOLERANCE (derived statistics: DERIVED_FACTOR x, relative), words equal."""
    old_rows, new_rows = _rows(old), _rows(new)
    if len(old_rows) != len(new_rows) or (old_rows and old_rows[0].keys() != new_rows[0].keys()):
        return [f"{name}: {len(old_rows)} rows then, {len(new_rows)} now, or other columns"]
    problems = []
    for i, (a, b) in enumerate(zip(old_rows, new_rows)):
        for column in a:
            tolerance = TOLERANCE * (DERIVED_FACTOR if DERIVED.match(column) else 1)
            if not _numbers_close(a[column], b[column], tolerance):
                problems.append(f"{name} row {i + 2} {column}: {a[column]} then, {b[column]} now")
    return problems


def _claim_differences(old: str, new: str) -> list[str]:
    by_name = lambda rows: {r["test"].split("::")[-1]: r for r in rows}           # noqa: E731
    then, now = by_name(_rows(old)), by_name(_rows(new))
    if then.keys() != now.keys():
        return [f"claims.csv: claims {sorted(then.keys() ^ now.keys())} in one run only"]
    return [f"claims.csv {name} {column}: {then[name][column]!r} then, {now[name][column]!r} now"
            for name in sorted(then) for column in CLAIM_COLUMNS if then[name][column] != now[name][column]]


def _shard_differences(old: str, new: str) -> list[str]:
    """shards.csv names how a run divided its work, which the speed work changes (the ladder's
    kinds at the token now share one shard per sentence): what must hold in both is that every
    shard was computed exactly once."""
    return [f"shards.csv {side}: {r['name']} computed {r['computations']} times"
            for side, text in (("then", old), ("now", new)) for r in _rows(text) if r["computations"] != "1"]


def same_results(then: Path, now: Path) -> list[str]:
    """What differs between two results folders, as the module's docstring defines "the same"."""
    names = lambda folder: {p.name for p in folder.iterdir() if p.is_file()}      # noqa: E731
    problems = [f"{name}: written by one run only" for name in sorted(names(then) ^ names(now))]
    for name in sorted(names(then) & names(now)):
        if not name.endswith(".csv"):
            continue
        old, new = (then / name).read_text(), (now / name).read_text()
        if name == "claims.csv":
            problems += _claim_differences(old, new)
        elif name == "shards.csv":
            problems += _shard_differences(old, new)
        elif sorted(old.splitlines()) != sorted(new.splitlines()):
            head = lambda text: text.splitlines()[:1]                                 # noqa: E731
            by_rows = lambda text: "\n".join(head(text) + sorted(text.splitlines()[1:]))   # noqa: E731
            problems += _row_differences(name, by_rows(old), by_rows(new))
    return problems


def identical_csvs(then: Path, now: Path) -> list[str]:
    """The CSVs both runs wrote with the same rows, byte for byte."""
    return sorted(p.name for p in now.glob("*.csv") if (then / p.name).is_file()
                  and sorted((then / p.name).read_text().splitlines()) == sorted(p.read_text().splitlines()))


@pytest.fixture(scope="module")
def baseline_tree(tmp_path_factory):
    where = tmp_path_factory.mktemp("baseline") / "tree"
    made = subprocess.run(["git", "worktree", "add", "--detach", str(where), BASELINE], cwd=ROOT, capture_output=True,
                          text=True)
    if made.returncode:
        pytest.fail(f"cannot check out the baseline commit {BASELINE[:12]} ({made.stderr.strip()}): run this "
                    "benchmark in a clone with that commit (git fetch --unshallow), or set STUDY_BASELINE_COMMIT")
    try:
        yield where
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, capture_output=True)


def test_default_study_against_the_code_before(benchmark, baseline_tree, tmp_path):
    benchmark.group = "./run study (SmolLM2, exploration half, -n auto) against the code before"
    times = {"then": [], "now": []}
    walls = {"then": [], "now": []}

    def now_round(i: int) -> None:
        seconds, wall, _ = _study(ROOT, tmp_path / f"now-{i}")
        times["now"].append(seconds)
        walls["now"].append(wall)

    for i in range(ROUNDS):
        seconds, wall, _ = _study(baseline_tree, tmp_path / f"then-{i}")
        times["then"].append(seconds)
        walls["then"].append(wall)
        if i == 0:
            benchmark.pedantic(now_round, args=(i,), rounds=1, iterations=1)
        else:
            now_round(i)
    problems = same_results(_folder(tmp_path / "then-0"), _folder(tmp_path / "now-0"))
    identical = identical_csvs(_folder(tmp_path / "then-0"), _folder(tmp_path / "now-0"))
    then_s, now_s = statistics.median(times["then"]), statistics.median(times["now"])
    ratio = record_ratio(benchmark, fast_s=now_s, plain_s=then_s, plain_side=f"the study at {BASELINE[:7]}, median of "
                         f"{ROUNDS} alternating rounds", baseline=BASELINE, rounds_then=times["then"],
                         rounds_now=times["now"], wall_then=[round(w, 1) for w in walls["then"]],
                         wall_now=[round(w, 1) for w in walls["now"]], same_results=not problems,
                         byte_identical_csvs=identical)
    print(f"\n./run study: pytest time {now_s:.1f} s now, {then_s:.1f} s at {BASELINE[:7]} (rounds now "
          f"{times['now']}, then {times['then']}): {ratio:.2f}x; results the same: {not problems}; CSVs byte for byte the same: {', '.join(identical)}")
    assert not problems, "the two runs say different things:\n" + "\n".join(problems[:40])
    assert ratio >= HALF, f"the study takes {now_s:.1f} s, more than half the baseline's {then_s:.1f} s"


def test_same_results_names_what_differs(tmp_path):
    """The comparison can fail: a changed row, a ladder number beyond the tolerance, a claim's
    outcome, a file written by one run only."""
    then, now = tmp_path / "then", tmp_path / "now"
    then.mkdir(), now.mkdir()
    for folder in (then, now):
        (folder / "heads.csv").write_text("layer,head,mean\n0,0,0.5\n0,1,0.25\n")
        (folder / "scales.csv").write_text("intervention,layer,mean,category\nblock,0,0.01,within SESOI\n")
        (folder / "claims.csv").write_text("test,outcome,items,held,refuted,not_established,errors,not_run,detail,"
                                           "beyond,not_shown\ntests/x.py::test_a,held,1,1,0,0,0,0,d,,\n")
    (now / "claims.csv").write_text((now / "claims.csv").read_text().replace("tests/x.py", "claims/x.py"))
    (now / "heads.csv").write_text("layer,head,mean\n0,1,0.25\n0,0,0.5\n")                 # rows reordered
    (now / "scales.csv").write_text("intervention,layer,mean,category\nblock,0,0.01000001,within SESOI\n")
    assert same_results(then, now) == [] and identical_csvs(then, now) == ["heads.csv"]
    (now / "heads.csv").write_text("layer,head,mean\n0,1,0.25\n0,0,0.5000001\n")       # within TOLERANCE
    assert same_results(then, now) == [] and identical_csvs(then, now) == []
    (now / "heads.csv").write_text("layer,head,mean\n0,1,0.25\n0,0,0.5002\n")
    (now / "scales.csv").write_text("intervention,layer,mean,category\nblock,0,0.0102,within SESOI\n")
    (now / "claims.csv").write_text((now / "claims.csv").read_text().replace("held,1,1", "refuted,1,1"))
    (now / "extra.csv").write_text("x\n")
    problems = same_results(then, now)
    assert [p.split(":")[0].split(" ")[0] for p in problems] == ["extra.csv", "claims.csv", "heads.csv", "scales.csv"]
