"""The terminal verdict says what happened: a complete run, refuted claims first, a partial
run, the three outcomes of a claim, and the kind of run (no model needed). End-to-end runs
of each state: tests/study/test_reports_are_reproducible.py and tests/study/test_known_answers.py (slow)."""
from pathlib import Path

from experiments.plan import RunKind
from report.html import headline_of
from report.results import Report

HELD = {"test": "claims/study_sentence.py::test_a", "outcome": "held", "detail": "all good"}
REFUTED = {"test": "claims/population.py::test_b", "outcome": "refuted", "detail": "block 3 moved"}
OPEN = {"test": "claims/population.py::test_c", "outcome": "not established", "detail": "L01 undecided"}
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


ERROR = {"test": "claims/population.py::test_d", "outcome": "error", "detail": "ERROR (not a result) at 1 of 1"}


def test_an_error_is_said_first_as_not_a_result_and_never_counted_as_refuted():
    lines = report(270, [HELD, REFUTED, ERROR]).summary_lines()
    assert lines[0].startswith("TOOL ERROR: 1 claim(s) could not be decided because the tool failed (not a result")
    assert lines[0].endswith(": test_d")
    assert lines[1] == "CLAIMS FAILED: 1 claim(s) refuted in this run: test_b"          # the error is not among them
    assert "error           test_d  (ERROR (not a result) at 1 of 1)" in lines
    assert report(9, [ERROR]).summary_lines()[0].startswith("TOOL ERROR")              # also in a partial run


def test_the_headline_names_errors_as_not_a_result():
    assert headline_of("m", [HELD, ERROR], KIND) == (
        "Exploratory run, m: 1 of 2 claims held, 0 refuted, 0 not established, 1 ERROR (the tool failed: not a result)")


class Collected:
    """The rows a run's items shipped, as plugin/reduce.Collected holds them."""

    def __init__(self, items, said=(), docs=()):
        self.rows = {"item-outcome": list(items), "claim": list(said), "test-doc": list(docs)}
        self.outcomes = {}


def test_a_claims_outcome_combines_its_items_and_its_detail_names_what_did_not_hold():
    from report.results import claim_table

    t = "claims/study_sentence.py::test_per_head"
    items = [{"test": t, "item": f"L00-H0{h}", "outcome": "held", "message": ""} for h in range(4)]
    items[2] = {"test": t, "item": "L00-H02", "outcome": "not established", "message": ""}
    said = [{"test": t, "item": "L00-H02", "outcome": "not established", "detail": "did nothing",
             "named": {"not shown": ["L00-H02"]}}]
    docs = [{"test": t, "doc": "Per head.", "line": 1, "data": "study sentence"}]
    (row,) = claim_table(Collected(items, said, docs), kind_of=lambda data: f"kind of {data}")
    assert row["outcome"] == "not established" and row["items"] == 4 and row["not_established"] == 1
    assert row["data"] == "kind of study sentence" and row["not_shown"] == "L00-H02"
    assert row["detail"] == "1 of 4 items said: L00-H02: did nothing"
    crashed = items + [{"test": t, "item": "L00-H03", "outcome": "error", "message": "TypeError: x"}]
    (row,) = claim_table(Collected(crashed, said, docs))
    assert row["outcome"] == "error" and row["errors"] == 1 and row["held"] == 2      # the call held, teardown erred
    assert row["detail"].startswith("ERROR (not a result) at 1 of 4 item(s): L00-H03: TypeError: x")
    refuted = items + [{"test": t, "item": "L00-H01", "outcome": "refuted", "message": "AssertionError"}]
    (row,) = claim_table(Collected(refuted, said, docs))
    assert row["outcome"] == "refuted" and "refuted at 1 of 4 items: L00-H01" in row["detail"]


def test_the_claims_across_shards_say_how_long_they_took_and_how_much_after_the_last_item():
    # Three claims around a loop that ended at t = 10: one wholly before, one across, one after.
    timed = [(4.0, 5.5), (9.0, 12.0), (12.0, 12.5)]
    lines = Report(Path("/r"), "m", expected=1, recorded=1, claims=[HELD], claims_timed=timed, loop_end=10.0,
                   shards=[{"name": "s", "computations": 1, "workers": "main", "seconds": 2.0}]).summary_lines()
    assert "claims across shards: 5.0 s for 3 claims, 2.5 s of it after the last item" in lines
    assert not any("claims across shards" in line for line in report(270, [HELD]).summary_lines())
