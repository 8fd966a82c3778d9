"""How a test's ending becomes a claim's outcome (metrics/outcomes.py): only an assertion of
the claim's own test can refute it; every other exception is an error of the tool.

    outcome_of_exception(excinfo, own_file)   "refuted" or "error"
    item_outcome(item, call, report)          one item's outcome, shipped with its report

An AssertionError (or pytest.fail) raised in the claim's own file is the claim's test
finding what the claim rules out: refuted. Anything else (a TypeError in a shard, an
AssertionError inside the engine, a fixture that could not be set up) means the tool failed
to decide: error, which fails the run and is never counted as a result.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from metrics import outcomes

TOOL_ERROR = "the tool failed while deciding this claim: an error, not a result"
PYTEST_CODE = Path(pytest.__file__).resolve().parents[1] / "_pytest"         # where pytest.fail raises


def outcome_of_exception(excinfo, own_file: str | Path) -> str:
    """The claim's outcome for the exception that ended it: what `decide` raised
    (plugin.protocol.ClaimFailed: refuted, or what the plan's fail_on adds), "refuted" for an
    assertion (or pytest.fail) raised in `own_file`, else "error"."""
    from plugin.faults import EnvironmentFault
    from plugin.protocol import ClaimFailed

    if excinfo.errisinstance(ClaimFailed):
        return excinfo.value.outcome
    if excinfo.errisinstance(EnvironmentFault):
        return outcomes.ERROR
    if not excinfo.errisinstance((AssertionError, pytest.fail.Exception)):
        return outcomes.ERROR
    # The innermost frame outside pytest itself: pytest.fail raises inside _pytest/outcomes.py.
    frames = [entry for entry in excinfo.traceback if Path(str(entry.path)).resolve().parent != PYTEST_CODE]
    where = Path(str(frames[-1].path)).resolve() if frames else None
    return outcomes.REFUTED if where == Path(own_file).resolve() else outcomes.ERROR


def one_line(excinfo) -> str:
    """The exception in one line: "TypeError: ..."."""
    text = str(excinfo.value).strip().splitlines()
    return f"{excinfo.typename}: {text[0] if text else ''}"[:300]


def said(item) -> str | None:
    """The outcome the item's test said (the `say` fixture), if it said one."""
    found = [row["outcome"] for kind, row in item.user_properties if kind == "claim"]
    return found[-1] if found else None


def item_outcome(item, call, report) -> dict | None:
    """{"outcome", "message"} of one phase's report, or None when the phase decides nothing
    (a passed setup or teardown)."""
    if report.skipped:
        return {"outcome": outcomes.NOT_RUN, "message": ""} if report.when != "teardown" else None
    if report.failed:
        outcome = outcome_of_exception(call.excinfo, item.path) if call.excinfo is not None else outcomes.ERROR
        if report.when != "call":
            outcome = outcomes.ERROR        # a fixture that failed to set up or tear down is the tool's
        message = one_line(call.excinfo) if call.excinfo is not None else "failed"
        if outcome == outcomes.ERROR:
            report.sections.append(("tool error", TOOL_ERROR))
        return {"outcome": outcome, "message": message}
    if report.when == "call":
        return {"outcome": said(item) or outcomes.HELD, "message": ""}
    return None
