"""Reduce where the shards meet: claims across shards, evaluated once, on the controller.

Map: test items on any worker measure their shard and ship rows (`record`, as
user_properties) with their reports. Reduce: this plugin, in the controller (or the single
process of `-n 0`), gathers every row and evaluates the claims declared across shards
(plugin/protocol.py, `@claim(..., reads=, after=)`) in the claim files the run collected:
each becomes a named test report, like any other item: it shows in the terminal and in
--junitxml, and a failed one makes the exit status non-zero. A claim whose shards were not
all measured (e.g. `-k L03`) is skipped, saying what is missing.

Under xdist, a claim is evaluated as soon as every item of its `after` test ran (its `reads`
rows are then complete), in a thread of the controller beside the workers (`Early`): the
population's claims while the scale ladder runs, rather than after it, when the controller is
the only process working. The claims are taken in their order, each only after the ones
before it (the report's tables they fill come out the same), and their reports are emitted
after the test loop, in that order, as if evaluated there; whatever was not ready by then is
evaluated then. In a single process (-n 0) they are all evaluated after the loop: there a
thread beside the items contends with them for the interpreter (a GPT-2 Large-shaped
one-thread run took 7 s longer with it, its shard work 10 s longer).

Under xdist the controller collects nothing: it imports the files of the claim items its
workers collected (their xdist groups say which), by path, as pytest itself would.
"""
from __future__ import annotations

import inspect
import threading
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _pytest.pathlib import import_path

from metrics import outcomes
from plugin.ids import base_nodeid, test_of
from plugin.options import computes
from plugin.protocol import ACROSS_SHARDS, declaration_of, report_order
from plugin.verdicts import TOOL_ERROR, one_line, outcome_of_exception

# Rows that ride on the report of the phase they describe (the others accumulate on the item
# and are taken once, from its teardown report).
PER_PHASE = ("shard-computed", "item-outcome")
CLAIM_FILES = pytest.StashKey[set]()     # files of the claim items the workers collected (xdist)


class Incomplete(Exception):
    """A claim's input is not complete in this run (some shards were not measured)."""


def claims_across_shards(config) -> list:
    """The claims across shards of the claim files this run collected (imported here if this
    process did not collect them, as an xdist controller does not)."""
    for file in sorted(config.stash.get(CLAIM_FILES, set())):
        path = config.rootpath / file
        if path.suffix == ".py" and path.is_file():
            import_path(path, mode=config.getoption("importmode"), root=config.rootpath,
                        consider_namespace_packages=config.getini("consider_namespace_packages"))
    return list(ACROSS_SHARDS.values())


class Rows:
    """Every row the run's items shipped, by kind, plus what the claims across shards hand to
    the report."""

    def __init__(self, config):
        self.config = config
        self.rows: dict[str, list] = defaultdict(list)
        self.outcomes: dict[str, list] = defaultdict(list)   # test function -> [(nodeid, outcome)]
        self.kept: dict[str, object] = {}                    # objects the claims computed, for the report
        self.crashed: list[str] = []                         # "worker gw1 crashed (...)": the run is partial
        self.claims_timed: list[tuple[float, float]] = []    # (start, stop) of each claim across shards
        self.loop_end: float | None = None                   # when the last item had run

    def take(self, report) -> None:
        """Take the rows a test report carries, and note its outcome under its test's name.

        An item's recorded rows ride on each of its phase reports, accumulated: they are
        taken once, from the teardown report. Shard computations ride on the report of the
        phase they happened in.
        """
        for kind, row in report.user_properties:
            if kind in PER_PHASE or report.when == "teardown":
                self.rows[kind].append(row)
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcomes[test_of(report.nodeid)].append((base_nodeid(report.nodeid), report.outcome))

    @property
    def study_setup(self):
        from plugin.setup import setup_of
        return setup_of(self.config)

    def measured(self, kind: str, *, key, value, expected: set, what: str, where=lambda row: True) -> dict:
        """{key(row): value(row)} over the rows of `kind` that pass `where`; raise Incomplete
        when some expected key is missing (the run did not measure every shard)."""
        found = {key(r): value(r) for r in self.rows[kind] if where(r)}
        missing = expected - set(found)
        if missing:
            raise Incomplete(f"{len(missing)} of {len(expected)} {what} were not measured in this run "
                             "(a partial run: -k, -m or a crashed worker)")
        return found


class ClaimRun:
    """What a claim across shards takes as its one argument: the run's rows (`rows`, `measured`,
    `study_setup`), the objects the claims hand to the report (`kept`, `hand_to_report`,
    `add_to_report`), and `conclude`, whose words wait here until the claim's report is emitted."""

    def __init__(self, collected: Rows, nodeid: str, report: str):
        self.collected, self.nodeid, self.report = collected, nodeid, report
        self.said: list[dict] = []

    @property
    def config(self):
        return self.collected.config

    @property
    def rows(self) -> dict[str, list]:
        return self.collected.rows

    @property
    def kept(self) -> dict[str, object]:
        return self.collected.kept

    @property
    def study_setup(self):
        return self.collected.study_setup

    def measured(self, kind: str, **how) -> dict:
        return self.collected.measured(kind, **how)

    def hand_to_report(self, name: str, value) -> None:
        """Hand an object a claim computed to the report (which prints it as it is)."""
        self.collected.kept[name] = value

    def add_to_report(self, name: str, rows: list) -> None:
        """Append rows to a list handed to the report (e.g. power rows of several families)."""
        self.collected.kept.setdefault(name, []).extend(rows)

    def conclude(self, detail: str, outcome: str = "held", named: dict | None = None) -> None:
        """What the claim found: its outcome and, in words, its detail for the report's claim
        line; `named` the units it names by role ({"beyond": [...], "not shown": [...]})."""
        self.said.append({"test": self.nodeid, "item": "", "report": self.report, "outcome": outcome,
                          "detail": detail, "named": named or {}})


@dataclass
class Evaluated:
    """A claim across shards, evaluated: what its report and the report's rows will say."""

    nodeid: str
    location: tuple
    keywords: dict
    outcome: str                          # pytest's: passed, failed, skipped
    longrepr: object
    start: float
    stop: float
    rows: list = field(default_factory=list)   # (kind, row): its test-doc, its words, its outcome


class Early:
    """Claims across shards evaluated beside the running items, in a thread, each as soon as it
    is ready and the ones before it are done (module docstring)."""

    def __init__(self, reduce: "Reduce", beside_workers: bool = True):
        self.reduce = reduce
        self.done: list[Evaluated] = []
        self.thread: threading.Thread | None = None
        self.stopped = not beside_workers        # in the process that runs the items: all at the end

    def poke(self) -> None:
        """After a report: start the thread if the next claim became ready (one thread at a time)."""
        if self.stopped or (self.thread is not None and self.thread.is_alive()):
            return
        if self._next() is not None:
            self.thread = threading.Thread(target=self._work, name="claims-across-shards", daemon=True)
            self.thread.start()

    def _next(self):
        claims = self.reduce.claims
        if self.stopped or len(self.done) >= len(claims):
            return None
        following = claims[len(self.done)]
        return following if self.reduce.ready(following) else None

    def _work(self) -> None:
        while (claim := self._next()) is not None:
            self.done.append(self.reduce.evaluate(claim))

    def finish(self) -> list[Evaluated]:
        """Stop (after the claim under way) and hand over the claims evaluated, in order."""
        self.stopped = True
        if self.thread is not None:
            self.thread.join()
        return list(self.done)


class Reduce:
    """Controller-side plugin: gather rows; run the claims across shards once their rows are in."""

    def __init__(self, config):
        self.config = config
        self.collected = Rows(config)
        self.claims: list = []                 # the claims across shards, in their order (known at the first report)
        self.expected: Counter = Counter()     # test id -> its items in this run (xdist: for Early)
        self.finished: Counter = Counter()     # test id -> its items whose teardown was reported
        self.early = Early(self, beside_workers=not computes(config))
        self.session = None
        self.announced = False

    def registered(self) -> list:
        return claims_across_shards(self.config)

    def pytest_sessionstart(self, session):
        self.session = session

    @pytest.hookimpl(optionalhook=True)          # pytest-xdist's: every worker collects the same items
    def pytest_xdist_node_collection_finished(self, node, ids):
        if not self.expected:
            self.expected.update(test_of(i) for i in ids)

    @pytest.hookimpl(optionalhook=True)          # pytest-xdist's: a worker went down
    def pytest_testnodedown(self, node, error):
        # A worker that died (killed, out of memory, a lost host) may have shipped every row
        # of the item it was running, and xdist reports that item as failed: the rows would
        # look complete and a claim refuted by the crash. Such a run is partial, whatever it recorded.
        if error:
            self.collected.crashed.append(f"worker {node.gateway.id} crashed ({str(error).strip()})")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report):
        if not self.announced:
            # Count the claims to come among the run's tests, before the terminal computes
            # its first progress figure (under xdist the collection is known only now).
            from plugin.collection import COLLECTED

            self.announced = True
            self.claims = self.registered()
            tests = self.config.stash.get(COLLECTED, set())
            root = self.config.rootpath
            coming = [c for c in self.claims if declaration_of(c, root).after in tests] if tests else []
            self.config.pluginmanager.get_plugin("session").testscollected += len(coming)
        self.collected.take(report)
        if report.when == "teardown":
            self.finished[test_of(report.nodeid)] += 1
            self.early.poke()

    def ready(self, claim) -> bool:
        """Are the claim's rows complete: every item of its `after` test reported, none lost to
        a crash, the run not stopping?"""
        after = declaration_of(claim, self.config.rootpath).after
        session = self.session
        return (0 < self.expected[after] <= self.finished[after] and not self.collected.crashed
                and bool(self.collected.rows.get(claim.declaration.reads))
                and not (session is not None and (session.shouldfail or session.shouldstop)))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session):
        try:
            result = yield
        except BaseException:
            self.early.stopped = True          # interrupted: no claim is emitted, none is waited for
            raise
        self.collected.loop_end = time.time()
        early = self.early.finish()
        if not session.shouldfail and not session.shouldstop and self.collected.rows:
            for index, claim in enumerate(self.claims or self.registered()):
                if index < len(early):
                    self.emit(early[index])
                elif self.collected.rows.get(claim.declaration.reads):
                    self.emit(self.evaluate(claim))
        return result

    def evaluate(self, claim) -> Evaluated:
        """Run one claim across shards on the rows; its words and outcome wait in the result."""
        path = Path(inspect.getsourcefile(claim)).resolve()
        relpath = path.relative_to(self.config.rootpath).as_posix()
        nodeid = f"{relpath}::{claim.__name__}"
        location = (relpath, inspect.getsourcelines(claim)[1] - 1, claim.__name__)
        declared = declaration_of(claim, self.config.rootpath)
        run = ClaimRun(self.collected, nodeid, declared.report)
        rows = [("test-doc", {"test": nodeid, "doc": declared.statement, "line": location[1] + 1,
                              "order": report_order(inspect.getmodule(claim)), **declared.as_row()})]
        start = time.time()
        ended = []                              # the item-outcome rows: as an item's, one per way it ended
        try:
            claim(run)
            outcome, longrepr = "passed", None
            decided = run.said[-1]["outcome"] if run.said else outcomes.HELD
        except Incomplete as err:
            outcome, longrepr, decided = "skipped", (str(path), location[1] + 1, f"Skipped: {err}"), outcomes.NOT_RUN
        except pytest.skip.Exception as err:
            outcome, longrepr, decided = "skipped", (str(path), location[1] + 1, f"Skipped: {err.msg}"), outcomes.NOT_RUN
        except Exception:
            excinfo = pytest.ExceptionInfo.from_current()
            decided = outcome_of_exception(excinfo, path)
            if decided == outcomes.REFUTED:
                outcome, longrepr = "failed", f"{relpath}:{location[1] + 1}: claim refuted\nE   {excinfo.value}"
            else:                               # a bug, not a refuted claim: say so, and show where
                outcome, longrepr = "failed", f"ERROR: {TOOL_ERROR}\n{traceback.format_exc()}"
            ended.append({"outcome": decided, "message": one_line(excinfo)})
        stop = time.time()
        if decided != outcomes.REFUTED and decided != outcomes.ERROR:
            ended.append({"outcome": decided, "message": ""})
        rows += [("claim", said) for said in run.said]
        rows += [("item-outcome", {"test": nodeid, "item": "", "report": declared.report, **row}) for row in ended]
        keywords = {claim.__name__: 1, declared.report: 1, "claim": 1}
        return Evaluated(nodeid, location, keywords, outcome, longrepr, start, stop, rows)

    def emit(self, done: Evaluated) -> None:
        """Hand an evaluated claim's rows to the run and its reports to pytest."""
        hook = self.config.hook
        self.collected.claims_timed.append((done.start, done.stop))
        hook.pytest_runtest_logstart(nodeid=done.nodeid, location=done.location)
        for kind, row in done.rows:
            self.collected.rows[kind].append(row)
        skipped = done.outcome == "skipped"
        for when in ("setup", "call", "teardown"):
            decides = when == "call" or skipped and when == "setup"
            report = pytest.TestReport(
                nodeid=done.nodeid, location=done.location, keywords=done.keywords,
                outcome=done.outcome if decides else "passed", longrepr=done.longrepr if decides else None,
                when=when, sections=[], duration=done.stop - done.start if when == "call" else 0.0,
                start=done.start, stop=done.stop, user_properties=[])
            if skipped and when == "call":
                continue                     # a skipped item has no call phase
            hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=done.nodeid, location=done.location)


def pytest_configure(config):
    if not hasattr(config, "workerinput"):      # the controller, or the only process
        config.pluginmanager.register(Reduce(config), "study-reduce")
