"""The mutation gate: every single-line mutation in tests/mutants.toml must make the quick
tests of its layer fail.

    python -m tests.helpers.mutation                   # all mutants (./run mutants)
    python -m tests.helpers.mutation tail-values-index donor-pass-without-mask    # some, by name
    python -m tests.helpers.mutation --list

Two layers, each with its own quick tests (SUBSETS), chosen by the mutated file's path:
- engine: mutants of hooks/ against the engine's quick tests on tiny models;
- verdict: mutants of the decision code (VERDICT_FILES: the statistics, power, outcome rules,
  the analysis, how a pytest failure becomes an outcome, in an item or a claim across shards, the
  claims' table and terminal verdict)
  against the verdict's quick tests on synthetic data (no model, no conftest plugin, so no
  torch import). Its subset deselects the frozen-plan test: the plan's digest covers the
  decision code, so any byte changed there would fail it, and it would "kill" every mutant.

The repository (without .git, .venv and results) is copied once to a scratch folder and its
bytecode compiled there (checked by hash, so a mutated file never runs stale code). Each
layer first runs a neutral control: a comment appended to every file its mutants touch must
leave its subset passing (a subset that fails without a real change would count every mutant
killed); the gate stops (exit 2) if it does not. Then each mutant is applied there, its
layer's subset is run with `-x -q --tb=no -p no:randomly` under the derandomized `ci`
Hypothesis profile, and the file is restored in a `finally`. Each run is a child forked from
a zygote process (`serve`) that imported the layer's third-party modules once and none of
this repository, so every run imports the mutated code afresh. The worktree itself is never
written. A mutant is killed when pytest fails (the first failing test is named), survives
when it passes. Exit status: 0 when every mutant is killed, 1 when one survives, 2 when the
list is broken (an `original` not found exactly once, a file of no layer) or a control fails.
"""
from __future__ import annotations

import argparse
import compileall
import importlib
import json
import os
import py_compile
import signal
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = ROOT / "tests" / "mutants.toml"


@dataclass(frozen=True)
class Subset:
    """The quick tests one layer's mutants must fail: files in order (the likely killers
    first, so -x stops early), the extra pytest options that select them, and the third-party
    modules the zygote imports once for all its mutants (`serve`)."""

    name: str
    files: tuple
    options: tuple
    preload: tuple = ()


# The engine's quick tests on tiny models, the pinned killers first so -x stops early. Real
# models (SmolLM2, Gemma-3-270M) are left out: each costs a load, and the tiny models of every
# family see everything the mutants change. The whole subset takes about 40 s on 2 cores.
ENGINE = Subset("engine", (
    "tests/engine/test_engine_pins.py",
    "tests/engine/test_hooks_properties.py",
    "tests/engine/test_interventions_properties.py",
    "tests/engine/test_sweep_exact.py",
    "tests/engine/test_families.py",
    "tests/engine/test_sweep_positions.py",
    "tests/engine/test_sweep_donor.py",
    "tests/engine/test_sweep_padded.py",
    "tests/engine/test_ablation_kinds.py",
    "tests/engine/test_sweep_and_clean.py",
    "tests/engine/test_result_memory.py",
), ("-k", "not smollm2 and not gemma3_270m"))    # no preload: a fork of a process that imported torch risks its thread pools
# The verdict's quick tests on synthetic data (no model). --noconftest skips the suite's
# plugin, whose import of torch would cost every mutant ~2 s; the Hypothesis profiles are
# the one thing of it these tests need. The frozen-plan test is deselected (module docstring).
FROZEN_TEST = "tests/verdicts/test_plan.py::test_the_plan_is_the_frozen_one_and_the_readme_says_which"
VERDICT = Subset("verdict", (
    "tests/verdicts/test_verdict_oracles.py",     # the pinned killers of most verdict mutants first (-x)
    "tests/verdicts/test_judgments.py",
    "tests/verdicts/test_outcomes.py",
    "tests/verdicts/test_verdict.py",
    "tests/verdicts/test_claims_across_shards.py",
    "tests/verdicts/test_statistics.py",
    "tests/verdicts/test_power.py",
    "tests/verdicts/test_plan.py",
), ("--noconftest", "-p", "tests.helpers.hypothesis_profiles", "--deselect", FROZEN_TEST),
    ("numpy", "scipy.special", "scipy.stats", "hypothesis", "pytest"))
SUBSETS = (ENGINE, VERDICT)
VERDICT_FILES = ("metrics/statistics.py", "metrics/power.py", "metrics/outcomes.py", "experiments/analysis.py",
                 "experiments/judgments.py", "plugin/verdicts.py", "plugin/reduce.py", "report/results.py")
TIMEOUT_S = 600          # a mutant that hangs the tests counts as killed (by the timeout)
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "results", "__pycache__", ".hypothesis", ".cache",
                                     ".benchmarks", ".pytest_cache")


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    original: str
    replacement: str
    why: str


class BrokenList(ValueError):
    """tests/mutants.toml names a line that is not in its file exactly once."""


def subset_of(mutant: Mutant) -> Subset:
    """The layer whose quick tests must kill `mutant`, from its file's path."""
    if mutant.file.startswith("hooks/"):
        return ENGINE
    if mutant.file in VERDICT_FILES:
        return VERDICT
    raise BrokenList(f"mutant {mutant.name}: {mutant.file} is in no layer (hooks/ or {', '.join(VERDICT_FILES)}): "
                     "add its layer to tests/helpers/mutation.py SUBSETS first")


def load(path: Path = MUTANTS) -> list[Mutant]:
    entries = tomllib.loads(path.read_text())["mutant"]
    mutants = [Mutant(**entry) for entry in entries]
    names = [m.name for m in mutants]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BrokenList(f"{path}: mutant names {twice} appear more than once; give each its own name")
    return mutants


def mutated(text: str, mutant: Mutant) -> str:
    """`text` with the mutant applied; BrokenList unless its original occurs exactly once."""
    count = text.count(mutant.original)
    if count != 1:
        raise BrokenList(f"mutant {mutant.name}: {mutant.original!r} occurs {count} times in {mutant.file} "
                         "(must be exactly once): update tests/mutants.toml to the file's current text")
    if mutant.replacement == mutant.original:
        raise BrokenList(f"mutant {mutant.name}: the replacement equals the original")
    return text.replace(mutant.original, mutant.replacement)


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0].split(" ", 1)[1]
    tail = [line for line in output.splitlines() if line.strip()]
    return tail[-1] if tail else "(no output)"


NEUTRAL = "\n# the mutation gate's control: a comment, no change of behaviour\n"
PYTEST_ARGS = ("-x", "-q", "--tb=no", "-p", "no:randomly", "-p", "no:xdist", "-p", "no:cacheprovider")


def serve(preload) -> None:
    """The zygote (`python -m tests.helpers.mutation --serve MODULE...`, started in the scratch copy):
    import a layer's third-party modules once, then for each request on stdin ({"args", "out",
    "timeout"}) fork a child that runs pytest.main(args) on the scratch copy as it is now, its
    output in the file `out`, and answer {"rc"} (None after the timeout, when the child's
    process group is killed). No module of this repository is imported before a fork, so each
    child imports the mutated code afresh; the fork saves each run the interpreter's start and
    those imports (about 1.5 s of the ~3 s a verdict mutant took on the busy 2-core machine)."""
    for name in preload:
        importlib.import_module(name)
    while line := sys.stdin.readline():
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:                                    # the child: never returns
            code = 3
            try:
                os.setpgid(0, 0)
                out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(out, 1)
                os.dup2(out, 2)
                import pytest
                code = int(pytest.main(request["args"]))
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        deadline = time.monotonic() + request["timeout"]
        while not (ended := os.waitpid(pid, os.WNOHANG))[0] and time.monotonic() < deadline:
            time.sleep(0.02)
        if ended[0]:
            rc = os.waitstatus_to_exitcode(ended[1])
        else:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            rc = None
        print(json.dumps({"rc": rc}), flush=True)


class Zygote:
    """A `serve` process for one layer, in the scratch copy: run(args) -> (exit status, output)."""

    def __init__(self, scratch: Path, subset: Subset, python: str):
        env = {**os.environ, "HYPOTHESIS_PROFILE": "ci", "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTEST_XDIST_WORKER", None)
        self.out = scratch.parent / f"{subset.name}.out"
        self.process = subprocess.Popen([python, "-m", "tests.helpers.mutation", "--serve", *subset.preload], cwd=scratch,
                                        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, args) -> tuple[int | None, str]:
        request = {"args": list(args), "out": str(self.out), "timeout": TIMEOUT_S}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the mutation gate's zygote ended (exit status {self.process.wait()})")
        return json.loads(answer)["rc"], self.out.read_text(errors="replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.stdin.close()
        self.process.wait()


def run_subset(zygote: Zygote, scratch: Path, subset: Subset, edits: dict) -> tuple[bool, str, float]:
    """(failed, first failing test or why it counts, seconds) of `subset` run in `scratch`
    with `edits` ({file: function of its text}) applied; every file restored in a `finally`."""
    originals = {f: (scratch / f).read_text() for f in edits}
    start = time.perf_counter()
    try:
        for f, edit in edits.items():
            (scratch / f).write_text(edit(originals[f]))
        rc, output = zygote.run([*PYTEST_ARGS, *subset.options, *subset.files])
        if rc is None:
            return True, f"timed out after {TIMEOUT_S} s", time.perf_counter() - start
        if rc == 0:
            return False, "every test passed", time.perf_counter() - start
        if rc == 5:
            raise RuntimeError(f"{subset.name} subset: pytest collected no tests in {scratch}:\n{output[-2000:]}")
        return True, first_failure(output), time.perf_counter() - start
    finally:
        for f, text in originals.items():
            (scratch / f).write_text(text)


def run_one(zygote: Zygote, scratch: Path, mutant: Mutant) -> tuple[bool, str, float]:
    """(killed, first failing test or why it counts, seconds) of one mutant in `scratch`."""
    return run_subset(zygote, scratch, subset_of(mutant), {mutant.file: lambda text: mutated(text, mutant)})


def run_control(zygote: Zygote, scratch: Path, subset: Subset, files) -> tuple[bool, str, float]:
    """(passed, detail, seconds): the subset with a neutral comment appended to each of `files`
    must pass, or it would kill every mutant whatever the mutation."""
    failed, detail, seconds = run_subset(zygote, scratch, subset, {f: lambda text: text + NEUTRAL for f in files})
    return not failed, detail, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.helpers.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run only these mutants (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)     # the zygote: names are modules
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.names)
        return 0
    try:
        mutants = load()
        known = {m.name for m in mutants}
        unknown = [n for n in args.names if n not in known]
        if unknown:
            raise BrokenList(f"no mutant named {unknown}; --list shows them")
        if args.names:
            mutants = [m for m in mutants if m.name in args.names]
        for m in mutants:                   # check the whole list before spending minutes
            mutated((ROOT / m.file).read_text(), m)
            subset_of(m)
    except BrokenList as err:
        print(f"mutation list: {err}", file=sys.stderr)
        return 2
    if args.list:
        for m in mutants:
            print(f"{subset_of(m).name:8} {m.name:32} {m.file:24} {m.why}")
        return 0

    scores, survivors = [], []
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        scratch = Path(tmp) / "repo"
        shutil.copytree(ROOT, scratch, ignore=COPY_IGNORE)
        # Bytecode checked by the source's hash, not its mtime (a mutant written and restored
        # within one second could otherwise run stale code); mutated files never write theirs
        # (PYTHONDONTWRITEBYTECODE), so only unchanged modules skip compiling.
        compileall.compile_dir(scratch, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
        for subset in SUBSETS:
            chosen = [m for m in mutants if subset_of(m) is subset]
            if not chosen:
                continue
            start = time.perf_counter()
            files = sorted({m.file for m in chosen})
            print(f"{subset.name}: {len(chosen)} mutants of {', '.join(files)}", flush=True)
            with Zygote(scratch, subset, sys.executable) as zygote:
                passed, detail, seconds = run_control(zygote, scratch, subset, files)
                print(f"  control  {'passed' if passed else 'FAILED'}   a comment appended to each file   "
                      f"{seconds:5.1f} s  {detail}", flush=True)
                if not passed:
                    print(f"mutation gate: the {subset.name} subset fails without a real change ({detail}): it "
                          "would count every mutant killed; fix the subset first", file=sys.stderr)
                    return 2
                lost = []
                for k, m in enumerate(chosen, 1):
                    killed, detail, seconds = run_one(zygote, scratch, m)
                    verdict = "killed  " if killed else "SURVIVED"
                    print(f"  [{k:2d}/{len(chosen)}] {verdict} {m.name:34} {seconds:5.1f} s  {detail}", flush=True)
                    if not killed:
                        lost.append(m)
            minutes = (time.perf_counter() - start) / 60
            scores.append(f"{subset.name} {len(chosen) - len(lost)}/{len(chosen)} killed in {minutes:.1f} min")
            survivors += lost
    total = len(mutants)
    print(f"\nmutation score: {'; '.join(scores)}; all {total - len(survivors)}/{total}")
    for m in survivors:
        print(f"  survived: {m.name} ({m.file}: {m.original!r} -> {m.replacement!r}): {m.why}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
