"""The terminal verdict says what happened, in each of its three states (no model needed).
End-to-end runs of each state: tests/test_reports_are_reproducible.py (slow)."""
from pathlib import Path

from report.results import Report

HELD = {"test": "tests/test_study.py::test_a", "outcome": "held", "detail": "all good"}
REFUTED = {"test": "tests/across_shards.py::test_b", "outcome": "refuted", "detail": "block 3 moved"}


def report(recorded, claims):
    return Report(Path("/results/m/q"), "m", expected=270, recorded=recorded, claims=claims)


def test_a_complete_run_says_it_is_complete_and_lists_its_claims():
    lines = report(270, [HELD]).summary_lines()
    assert lines[0] == "model m: complete run, 270 scenarios, results in /results/m/q"
    assert not any("PARTIAL" in line or "FAILED" in line for line in lines)
    assert "held      test_a  (all good)" in lines


def test_a_run_with_a_refuted_claim_says_so_first_and_still_points_to_its_results():
    lines = report(270, [HELD, REFUTED]).summary_lines()
    assert lines[0] == "CLAIMS FAILED: 1 claim(s) refuted in this run: test_b"
    assert lines[1].startswith("model m: complete run") and "PARTIAL" not in "".join(lines)
    assert "refuted   test_b  (block 3 moved)" in lines


def test_a_partial_run_says_it_wrote_nothing():
    lines = report(9, [HELD, REFUTED]).summary_lines()
    assert lines[0] == ("model m: PARTIAL run, 9 of 270 scenarios recorded: report not written; /results/m/q "
                        "keeps the previous complete report, if any")
    assert not report(9, []).complete and report(270, []).complete
