"""How a claim across shards ends (plugin/reduce.py `Reduce.evaluate`), as a truth table: what the
claim did -> pytest's outcome, the claim's outcome and the item-outcome rows the report counts.
The oracle is the protocol's rule (plugin/protocol.py): only ClaimFailed, or an assertion in the
claim's own file, refutes; any other exception is an error of the tool, never "refuted"; a claim
whose rows are incomplete, or that skips, is not run; otherwise its last word decides ("not
established" passes without deciding), and a claim that says nothing held. And when one is
ready to be evaluated early (`Reduce.ready`): every item of its `after` test reported, no
crashed worker, rows to read, the run not stopping. Quick: no model, no torch."""
from pathlib import Path
from types import SimpleNamespace

import pytest

from experiments.analysis import Verdict
from metrics import outcomes
from plugin.protocol import ACROSS_SHARDS, EVERY_UNIT_WITHIN, claim, decide
from plugin.reduce import Incomplete, Reduce

ROOT = Path(__file__).resolve().parents[2]
FAIL_ON = ("refuted",)


def rows_are_recorded():
    """The test whose items would record the rows the claims below read (`after`)."""


def across(function):
    """Declare `function` a claim across shards, without leaving it registered for real runs."""
    declared = claim(unit="unit", rule=EVERY_UNIT_WITHIN, reads="kind", after=rows_are_recorded)(function)
    ACROSS_SHARDS.pop((function.__module__, function.__name__))
    return declared


@across
def says_held(run):
    """Held."""
    decide(run, Verdict(outcomes.HELD, "all within", (), ()), FAIL_ON)


@across
def says_not_established(run):
    """Not established."""
    decide(run, Verdict(outcomes.NOT_ESTABLISHED, "undecided units", (), ()), FAIL_ON)


@across
def says_refuted(run):
    """Refuted."""
    decide(run, Verdict(outcomes.REFUTED, "a unit beyond", (), ()), FAIL_ON)


@across
def asserts(run):
    """An assertion of its own file."""
    assert run.rows["kind"] == [], "its own assertion"


@across
def crashes(run):
    """A bug."""
    raise TypeError("a bug in the claim")


@across
def incomplete(run):
    """Rows missing."""
    raise Incomplete("3 of 4 rows were not measured")


@across
def skips(run):
    """Skips."""
    pytest.skip("nothing to test")


@across
def says_nothing(run):
    """Silent."""


def reduce_for():
    config = SimpleNamespace(rootpath=ROOT, option=SimpleNamespace(dist="no"), stash=pytest.Stash())
    return Reduce(config)


# what the claim does -> (pytest's outcome, [(outcome, message?) of its item-outcome rows], claim rows' outcomes)
TABLE = {
    says_held: ("passed", [(outcomes.HELD, False)], [outcomes.HELD]),
    says_not_established: ("passed", [(outcomes.NOT_ESTABLISHED, False)], [outcomes.NOT_ESTABLISHED]),
    says_refuted: ("failed", [(outcomes.REFUTED, True)], [outcomes.REFUTED]),
    asserts: ("failed", [(outcomes.REFUTED, True)], []),
    crashes: ("failed", [(outcomes.ERROR, True)], []),
    incomplete: ("skipped", [(outcomes.NOT_RUN, False)], []),
    skips: ("skipped", [(outcomes.NOT_RUN, False)], []),
    says_nothing: ("passed", [(outcomes.HELD, False)], []),
}


@pytest.mark.parametrize("function", list(TABLE), ids=[f.__name__ for f in TABLE])
def test_a_claim_across_shards_ends_as_the_protocol_says(function):
    reduce = reduce_for()
    reduce.collected.rows["kind"].append({"x": 1})
    done = reduce.evaluate(function)
    pytest_outcome, ended, said = TABLE[function]
    rows = {}
    for kind, row in done.rows:
        rows.setdefault(kind, []).append(row)
    assert done.outcome == pytest_outcome
    assert [(r["outcome"], bool(r["message"])) for r in rows["item-outcome"]] == ended
    assert [r["outcome"] for r in rows.get("claim", [])] == said
    assert all(r["test"] == f"tests/verdicts/test_claims_across_shards.py::{function.__name__}"
               for r in rows["item-outcome"] + rows["test-doc"])
    if ended[0][0] == outcomes.ERROR:
        assert done.longrepr.startswith("ERROR"), done.longrepr        # said to be the tool's failure
    elif ended[0][0] == outcomes.REFUTED:
        assert "claim refuted" in done.longrepr
    assert "claim" not in reduce.collected.rows and "item-outcome" not in reduce.collected.rows   # not yet emitted


def test_a_claim_is_ready_only_when_its_rows_are_complete_and_the_run_goes_on():
    reduce = reduce_for()
    after = "tests/verdicts/test_claims_across_shards.py::rows_are_recorded"
    reduce.session = SimpleNamespace(shouldfail=False, shouldstop=False)
    assert not reduce.ready(says_held)                                  # none of its items in this run
    reduce.expected[after] = 2
    reduce.finished[after] = 1
    reduce.collected.rows["kind"].append({"x": 1})
    assert not reduce.ready(says_held)                                  # one of two items reported
    reduce.finished[after] = 2
    assert reduce.ready(says_held)
    reduce.collected.crashed.append("worker gw1 crashed")
    assert not reduce.ready(says_held)                                  # a crash: the run is partial
    reduce.collected.crashed.clear()
    reduce.session.shouldfail = True
    assert not reduce.ready(says_held)                                  # -x / --maxfail: no claim is run
    reduce.session.shouldfail = False
    reduce.collected.rows["kind"].clear()
    assert not reduce.ready(says_held)                                  # no rows to read


def test_an_emitted_claim_leaves_its_evaluation_times_for_the_verdict():
    reduce = reduce_for()
    reduce.config.hook = SimpleNamespace(pytest_runtest_logstart=lambda **_: None,
                                         pytest_runtest_logreport=lambda **_: None,
                                         pytest_runtest_logfinish=lambda **_: None)
    reduce.collected.rows["kind"].append({"x": 1})
    done = reduce.evaluate(says_held)
    reduce.emit(done)
    assert reduce.collected.claims_timed == [(done.start, done.stop)] and done.start <= done.stop
