"""The terminal verdict says what happened: a complete run, refuted claims first, a partial
run, the three outcomes of a claim, and the kind of run (no model needed). End-to-end runs
of each state: tests/test_reports_are_reproducible.py and tests/test_known_answers.py (slow)."""
from pathlib import Path

from experiments.plan import RunKind
from report.html import headline_of
from report.results import Report

HELD = {"test": "tests/test_study.py::test_a", "outcome": "held", "detail": "all good"}
REFUTED = {"test": "tests/across_shards.py::test_b", "outcome": "refuted", "detail": "block 3 moved"}
OPEN = {"test": "tests/across_shards.py::test_c", "outcome": "not established", "detail": "L01 undecided"}
KIND = RunKind("exploratory", "explored before the plan")


def report(recorded, claims, kind=None):
    return Report(Path("/results/m/q"), "m", expected=270, recorded=recorded, claims=claims, kind=kind)


def test_a_complete_run_says_it_is_complete_which_kind_it_is_and_lists_its_claims():
    lines = report(270, [HELD], KIND).summary_lines()
    assert lines[0] == "model m: complete run, 270 scenarios, results in /results/m/q"
    assert lines[1] == "exploratory run: explored before the plan"
    assert not any("PARTIAL" in line or "FAILED" in line for line in lines)
    assert "held            test_a  (all good)" in lines


def test_a_run_with_a_refuted_claim_says_so_first_and_still_points_to_its_results():
    lines = report(270, [HELD, REFUTED]).summary_lines()
    assert lines[0] == "CLAIMS FAILED: 1 claim(s) refuted in this run: test_b"
    assert lines[1].startswith("model m: complete run") and "PARTIAL" not in "".join(lines)
    assert "refuted         test_b  (block 3 moved)" in lines


def test_a_claim_not_established_is_shown_as_such_and_does_not_fail_the_run():
    lines = report(270, [HELD, OPEN]).summary_lines()
    assert not lines[0].startswith("CLAIMS FAILED")
    assert "not established test_c  (L01 undecided)" in lines


def test_the_headline_counts_the_three_outcomes_and_names_the_kind():
    assert headline_of("m", [HELD, REFUTED, OPEN], KIND) == (
        "Exploratory run, m: 1 of 3 claims held, 1 refuted, 1 not established")


def test_a_partial_run_says_it_wrote_nothing():
    lines = report(9, [HELD, REFUTED]).summary_lines()
    assert lines[0] == ("model m: PARTIAL run, 9 of 270 scenarios recorded: report not written; /results/m/q "
                        "keeps the previous complete report, if any")
    assert not report(9, []).complete and report(270, []).complete
