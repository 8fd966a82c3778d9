"""The mutation gate: every single-line mutation of hooks/ in tests/mutants.toml must make the
engine's quick tests fail.

    python -m tests.mutation                   # all mutants (./run mutants)
    python -m tests.mutation tail-values-index donor-pass-without-mask    # some, by name
    python -m tests.mutation --list

The repository (without .git, .venv and results) is copied once to a scratch folder; each
mutant is applied there, SUBSET is run with `-x -q -p no:randomly` under the derandomized
`ci` Hypothesis profile, and the file is restored in a `finally`. The worktree itself is
never written. A mutant is killed when pytest fails (the first failing test is named),
survives when it passes. Exit status: 0 when every mutant is killed, 1 when one survives,
2 when the list is broken (an `original` not found exactly once).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "tests" / "mutants.toml"
# The engine's quick tests on tiny models, the pinned killers first so -x stops early. Real
# models (SmolLM2, Gemma-3-270M) are left out: each costs a load, and the tiny models of every
# family see everything the mutants change. The whole subset takes about 40 s on 2 cores.
SUBSET = [
    "tests/test_engine_pins.py",
    "tests/test_hooks_properties.py",
    "tests/test_interventions_properties.py",
    "tests/test_sweep_exact.py",
    "tests/test_families.py",
    "tests/test_sweep_positions.py",
    "tests/test_sweep_donor.py",
    "tests/test_sweep_padded.py",
    "tests/test_ablation_kinds.py",
]
DESELECT = "not smollm2 and not gemma3_270m"
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


def run_one(scratch: Path, mutant: Mutant, python: str) -> tuple[bool, str, float]:
    """(killed, first failing test or why it counts, seconds) of one mutant in `scratch`."""
    target = scratch / mutant.file
    original = target.read_text()
    start = time.perf_counter()
    try:
        target.write_text(mutated(original, mutant))
        env = {**os.environ, "HYPOTHESIS_PROFILE": "ci", "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTEST_XDIST_WORKER", None)
        cmd = [python, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:xdist", "-p", "no:cacheprovider",
               "-k", DESELECT, *SUBSET]
        try:
            done = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return True, f"timed out after {TIMEOUT_S} s", time.perf_counter() - start
        output = done.stdout + done.stderr
        if done.returncode == 0:
            return False, "every test passed", time.perf_counter() - start
        if done.returncode == 5:
            raise RuntimeError(f"mutant {mutant.name}: pytest collected no tests in {scratch}:\n{output[-2000:]}")
        return True, first_failure(output), time.perf_counter() - start
    finally:
        target.write_text(original)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run only these mutants (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
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
    except BrokenList as err:
        print(f"mutation list: {err}", file=sys.stderr)
        return 2
    if args.list:
        for m in mutants:
            print(f"{m.name:32} {m.file:24} {m.why}")
        return 0

    start = time.perf_counter()
    survivors = []
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        scratch = Path(tmp) / "repo"
        shutil.copytree(ROOT, scratch, ignore=COPY_IGNORE)
        for k, m in enumerate(mutants, 1):
            killed, detail, seconds = run_one(scratch, m, sys.executable)
            verdict = "killed  " if killed else "SURVIVED"
            print(f"[{k:2d}/{len(mutants)}] {verdict} {m.name:32} {seconds:5.1f} s  {detail}", flush=True)
            if not killed:
                survivors.append(m)
    minutes = (time.perf_counter() - start) / 60
    print(f"\nmutation score: {len(mutants) - len(survivors)}/{len(mutants)} killed in {minutes:.1f} min")
    for m in survivors:
        print(f"  survived: {m.name} ({m.file}: {m.original!r} -> {m.replacement!r}): {m.why}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
