"""The claim protocol: how a hypothesis is declared, whether it is the study's (claims/) or
a researcher's own file (README, "Your own claim").

A claim is a pytest test function with one declaration:

    @claim(unit="head, across templates", rule=EVERY_UNIT_WITHIN, plan=("sesoi", "alpha"))
    def test_no_head_moves_it(shards, study_setup, record, conclude):        # decided by its items
        ...

    @claim(unit="head, across templates", rule=EVERY_UNIT_WITHIN, plan=("sesoi",),
           reads="prompt", after=test_every_prompt_is_measured)
    def test_no_head_moves_it_across_sentences(run):              # decided once, across shards
        ...

- its statement is the first paragraph of its docstring (what the report prints);
- `unit`: what one sample is (a head across templates, a block on the study sentence, ...);
- `rule`: the outcome rule of metrics/outcomes.py that decides it (RULES below);
- `plan`: the names of the plan entries it reads from analysis_plan.toml, or the claim file's
  own plan (experiments.plan.load_claim_plan(__file__): <file>.plan.toml, whose sha256 the
  report prints);
- `data`: "population" or "study sentence" (whether it can be confirmatory; plan.run_kind);
- `report`: which report lists it ("study", "ioi", or a name of the claim file's own);
- a claim file may set REPORT_ORDER (a number) to say where the report lists its claims;
- `reads` and `after`, for a claim across shards: the kind of rows it reads and the test whose
  items record them, in the same file. Such a claim is evaluated once, on the controller,
  as soon as that test's items ran (plugin/reduce.py: under xdist the controller imports the
  files whose items its workers collected); it takes one argument, the run (`ClaimRun`: its
  rows, `measured`, `study_setup`, what it hands to the report), and reads only the rows of
  `reads`, which are complete once `after`'s items ran.

How a claim ends is decided in one place: a judgment (experiments/judgments.py, or the
claim file's own code) applies a rule of metrics/outcomes.py and returns a Verdict, which
`decide(conclude, verdict, plan.fail_on)` reports and, where the plan says the outcome fails
the run, raises as `ClaimFailed`; a claim of many items ends as metrics.outcomes.combine of
theirs. Only ClaimFailed, or an assertion in the claim's own file, refutes a claim; every other
exception is an error of the tool (plugin/verdicts.py).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import pytest

from metrics import outcomes
from plugin.ids import statement

# The rules a claim can name (metrics/outcomes.py), as the report prints them.
ITEMS_COMBINED = "items combined"          # each item held / refuted / not established, combined
EVERY_UNIT_WITHIN = "every unit within"    # outcomes.every_unit_within
SHARE_BEYOND = "share beyond"              # outcomes.share_beyond
NONE_FLAGGED = "none flagged"              # outcomes.none_flagged
CONTROL = "control"                        # outcomes.control
RULES = (ITEMS_COMBINED, EVERY_UNIT_WITHIN, SHARE_BEYOND, NONE_FLAGGED, CONTROL)
DATA = ("population", "study sentence")


@dataclass(frozen=True)
class Declaration:
    """What a claim is, as declared (see the module docstring)."""

    name: str
    statement: str
    unit: str
    rule: str
    plan: tuple
    data: str
    report: str
    reads: str | None = None
    after: str | None = None           # node id of the test whose items record `reads`, no parameters
    plan_file: str = ""                # a claim file's own plan (experiments.plan.ClaimPlan), if it has one
    plan_sha256: str = ""

    def as_row(self) -> dict:
        return {"unit": self.unit, "rule": self.rule, "plan_entries": " ".join(self.plan), "data": self.data,
                "report": self.report, "plan_file": self.plan_file, "plan_sha256": self.plan_sha256}


ACROSS_SHARDS: dict[tuple[str, str], object] = {}     # (module, name) -> the claim function


class ClaimFailed(AssertionError):
    """A claim's data gave an outcome the plan says fails the run (refuted, or what fail_on
    adds): raised by `decide`, never by the tool's own failures."""

    def __init__(self, outcome: str, detail: str):
        super().__init__(f"{outcome}: {detail}")
        self.outcome = outcome


def decide(conclude, verdict, fail_on) -> None:
    """Report a claim's verdict (`conclude`: the fixture of an item, or the ClaimRun a claim across
    shards takes) and fail the test where the plan says its outcome fails the run."""
    __tracebackhide__ = True               # pytest shows the claim's line, not this one
    say = getattr(conclude, "conclude", conclude)
    say(verdict.detail, outcome=verdict.outcome, named=verdict.named())
    if outcomes.fails_run(verdict.outcome, fail_on):
        raise ClaimFailed(verdict.outcome, verdict.detail)


def node_id(function, root: Path) -> str:
    """The test id of a function: path relative to the run's root, "::", its name."""
    path = Path(inspect.getsourcefile(function)).resolve()
    try:
        path = path.relative_to(root)
    except ValueError:
        pass
    return f"{path.as_posix()}::{function.__name__}"


def claim(*, unit: str, rule: str, plan=(), data: str = "population", report: str = "study",
          reads: str | None = None, after=None):
    """Declare a claim (see the module docstring). A bad declaration is refused at import."""
    if rule not in RULES:
        raise ValueError(f"rule={rule!r}: use one of {RULES} (metrics/outcomes.py)")
    if data not in DATA:
        raise ValueError(f"data={data!r}: use one of {DATA}")
    if (reads is None) != (after is None):
        raise ValueError("a claim across shards names both the rows it reads (reads=) and the test that "
                         "records them (after=)")

    def declare(function):
        if not function.__doc__:
            raise ValueError(f"{function.__name__}: a claim states its hypothesis in its docstring")
        own = hasattr(plan, "digest") and hasattr(plan, "path")           # a ClaimPlan
        found = Declaration(function.__name__, statement(function.__doc__), unit, rule,
                            tuple(plan.values) if own else tuple(plan), data, report, reads, None,
                            plan.path.name if own else "", plan.digest if own else "")
        function.declaration = found
        if reads is None:
            marker = pytest.mark.ioi if report == "ioi" else pytest.mark.study
            return pytest.mark.claim(found)(marker(function))
        function.__test__ = False          # evaluated once, on the controller (plugin/reduce.py)
        function.after = after
        ACROSS_SHARDS[function.__module__, function.__name__] = function
        return function
    return declare


def report_order(module) -> int:
    """Where the report lists a claim file's claims (its REPORT_ORDER; files without one last)."""
    return int(getattr(module, "REPORT_ORDER", 1000))


def declaration_of(function, root: Path) -> Declaration:
    """A claim across shards' declaration, with the test it waits for named by its id."""
    from dataclasses import replace
    return replace(function.declaration, after=node_id(function.after, root))
