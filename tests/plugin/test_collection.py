"""A study run collects the claims and leaves the tool's own tests alone (plugin/collection.py,
leave_out_tool_tests): importing tests/'s modules was a third of `pytest -m study`'s serial part.
It is safe only because no test under tests/ is a claim, which is checked here too."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from plugin.collection import selects_claims_only
from tests.helpers.tiny_models import tiny_gpt2_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("markexpr, claims_only", [
    ("study", True), ("ioi", True), ("claim", True), ("(study)", True), ("study and not slow", True),
    ("ioi and (gpu or not gpu)", True), ("study or ioi", True), ("claim and benchmark", True),
    ("", False), ("   ", False), ("not slow", False), ("slow", False), ("study or slow", False),
    ("not study", False), ("study or not study", False), ("not slow and not study", False),
    ("(study", False),                                  # not an expression: pytest reports it, we collect all
])
def test_an_expression_selects_claims_only_when_no_other_marks_can_satisfy_it(markexpr, claims_only):
    assert selects_claims_only(markexpr) is claims_only


def _collect(*args: str, model: Path) -> tuple[str, int, int]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", "-p",
                           "no:xdist", f"--model={model}", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    last = proc.stdout.strip().splitlines()[-1]          # "232/242 tests collected (10 deselected) in 1.2s"
    selected = re.search(r"(\d+)(?:/\d+)? tests? collected", last)
    deselected = re.search(r"(\d+) deselected", last)
    assert selected or "no tests collected" in last, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout, int(selected[1]) if selected else 0, int(deselected[1]) if deselected else 0


@pytest.mark.slow
def test_a_study_run_leaves_out_the_tools_tests_and_none_of_them_is_a_claim(tmp_path):
    model = tiny_gpt2_checkpoint(tmp_path / "tiny-random-gpt2")
    out, selected, left = _collect("-m", "study", model=model)
    assert selected > 0 and not any(line.startswith("tests/") for line in out.splitlines()), out[-2000:]
    # Named on the command line, tests/ is collected (its items deselected by -m): the
    # leave-out is pyproject's testpaths only, and it was taken above.
    _, also_selected, with_tests = _collect("-m", "study", "claims", "tests", model=model)
    assert also_selected == selected
    assert with_tests > left + 500, (left, with_tests)
    # No test of the tool is a claim: leaving tests/ out cannot drop one.
    out, selected, _ = _collect("-m", "study or ioi or claim", "tests", model=model)
    assert selected == 0, out[-2000:]


@pytest.mark.slow
def test_xdist_starts_the_shards_in_the_schedules_order_not_by_their_size(tmp_path):
    """xdist's loadgroup starts the groups with the most items first, unless told not to: the
    ladder's kinds at the token (5 items a sentence) then started before the prompt chunks
    (4 items) they choose heads on, and a worker waited seconds for the other's chunks. Under
    -n 2 the groups are handed out in SCHEDULE's order: every chunk before anything that
    needs one, and the ladder's longest shards before its short ones."""
    from plugin.collection import SCHEDULE, _rank

    model = tiny_gpt2_checkpoint(tmp_path / "tiny-random-gpt2")
    probe = tmp_path / "handed-out.txt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCHEDULE_PROBE": str(probe)}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "study", "-n", "2", "-q", "-p", "no:randomly",
                           "-p", "tests.helpers.schedule_probe", f"--model={model}",
                           f"--results-dir={tmp_path / 'results'}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert "passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    groups = probe.read_text().split()
    assert len(groups) == len(set(groups)) > 40, groups
    ranks = [_rank(g) for g in groups]
    assert ranks == sorted(ranks), [g for g, r in zip(groups, ranks)]
    assert [SCHEDULE[r] for r in sorted(set(ranks))][:3] == ["prompts-", "study", "scales-"]
    ladder = [g for g in groups if g.startswith("scales-")]
    assert ladder[0] == "scales-at-token-P00" and ladder[-1].startswith("scales-update-x0-at-token-P")
    assert ladder.index("scales-at-token-P07") < ladder.index("scales-top-head-at-every-token-P00")
