"""Reduce where the shards meet: claims that need every shard, evaluated once, on the controller.

Map: test items on any worker measure their shard and ship rows (`record`, as
user_properties) with their reports. Reduce: this plugin, in the controller (or the single
process of `-n 0`), gathers every row, and after the last item ran evaluates the claims of
tests/across_shards.py (`@across_shards`). Each claim becomes a named test report, like any
other item: it shows in the terminal and in --junitxml, and a failed one makes the exit
status non-zero. A claim whose shards were not all measured (e.g. `-k L03`) is skipped,
saying what is missing.
"""
from __future__ import annotations

import importlib
import inspect
import time
import traceback
from collections import defaultdict
from pathlib import Path

import pytest

from metrics import outcomes
from plugin.ids import base_nodeid, statement, test_of
from plugin.verdicts import TOOL_ERROR, one_line, outcome_of_exception

CLAIMS_MODULE = "tests.across_shards"
_REGISTRY: list = []


# Rows that ride on the report of the phase they describe (the others accumulate on the item
# and are taken once, from its teardown report).
PER_PHASE = ("shard-computed", "item-outcome")


class Incomplete(Exception):
    """A claim's input is not complete in this run (some shards were not measured)."""


def across_shards(*, rows: str, measured_by: str, data: str = "population"):
    """Declare a claim that needs the rows of kind `rows` recorded by every item of the test
    `measured_by` (a test id without parameters, e.g. "tests/test_study.py::test_x"); `data` says
    what its data are ("population", or "study sentence": never confirmatory for a model
    explored before the plan). It is
    counted among the run's tests when that test's items are collected, and evaluated once
    they ran.

    The function takes one argument, the run's `Collected` rows, and asserts like a test: an
    assertion in its own file refutes it, any other exception is an error of the tool
    (plugin/verdicts.py). pytest does not collect it as an item of its own (it runs once, on
    the controller).
    """
    def register(fn):
        fn.__test__ = False
        fn.rows, fn.measured_by, fn.data = rows, measured_by, data
        _REGISTRY.append(fn)
        return fn
    return register


class Collected:
    """Every row the run's items shipped, by kind, plus what the reduce claims keep."""

    def __init__(self, config):
        self.config = config
        self.rows: dict[str, list] = defaultdict(list)
        self.outcomes: dict[str, list] = defaultdict(list)   # test function -> [(nodeid, outcome)]
        self.kept: dict[str, object] = {}                    # objects the claims computed, for the report
        self.current = ""                                    # node id of the claim being evaluated
        self.crashed: list[str] = []                         # "worker gw1 crashed (...)": the run is partial

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

    def keep(self, name: str, value) -> None:
        """Hand an object a claim computed to the report (which prints it as it is)."""
        self.kept[name] = value

    def extend(self, name: str, rows: list) -> None:
        """Append rows to a kept list (e.g. power rows of several families)."""
        self.kept.setdefault(name, []).extend(rows)

    def say(self, detail: str, outcome: str = "held", named: dict | None = None) -> None:
        """What the running claim found, in words, for the report's claim line; `named` the
        units it names by role."""
        self.rows["claim"].append({"test": self.current, "item": "", "outcome": outcome, "detail": detail,
                                   "named": named or {}})

    @property
    def setup(self):
        from plugin.setup import setup_of
        return setup_of(self.config)

    def table(self, kind: str, *, key, value, expected: set, what: str, where=lambda row: True) -> dict:
        """{key(row): value(row)} over the rows of `kind` that pass `where`; raise Incomplete
        when some expected key is missing (the run did not measure every shard)."""
        found = {key(r): value(r) for r in self.rows[kind] if where(r)}
        missing = expected - set(found)
        if missing:
            raise Incomplete(f"{len(missing)} of {len(expected)} {what} were not measured in this run "
                             "(a partial run: -k, -m or a crashed worker)")
        return found


class Reduce:
    """Controller-side plugin: gather rows; after the test loop, run the claims across shards."""

    def __init__(self, config):
        self.config = config
        self.collected = Collected(config)
        self.claim_reports: list = []

        self.announced = False

    @staticmethod
    def registered() -> list:
        if not _REGISTRY:
            importlib.import_module(CLAIMS_MODULE)
        return list(_REGISTRY)

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
            tests = self.config.stash.get(COLLECTED, set())
            coming = [c for c in self.registered() if c.measured_by in tests] if tests else []
            self.config.pluginmanager.get_plugin("session").testscollected += len(coming)
        self.collected.take(report)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session):
        result = yield
        if not session.shouldfail and not session.shouldstop and self.collected.rows:
            for claim in self.registered():
                if self.collected.rows.get(claim.rows):
                    self._run(claim)
        return result

    def _run(self, claim) -> None:
        hook = self.config.hook
        path = Path(inspect.getsourcefile(claim)).resolve()
        relpath = path.relative_to(self.config.rootpath).as_posix()
        nodeid = f"{relpath}::{claim.__name__}"
        location = (relpath, inspect.getsourcelines(claim)[1] - 1, claim.__name__)
        hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
        self.collected.current = nodeid
        if claim.__doc__:
            self.collected.rows["test-doc"].append({"test": nodeid, "doc": statement(claim.__doc__),
                                                    "line": location[1] + 1, "data": claim.data})
        start = time.time()
        try:
            claim(self.collected)
            outcome, longrepr = "passed", None
            said = [r["outcome"] for r in self.collected.rows["claim"] if r["test"] == nodeid]
            decided = said[-1] if said else outcomes.HELD
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
            self.collected.rows["item-outcome"].append({"test": nodeid, "item": "", "outcome": decided,
                                                        "message": one_line(excinfo)})
        if decided != outcomes.REFUTED and decided != outcomes.ERROR:
            self.collected.rows["item-outcome"].append({"test": nodeid, "item": "", "outcome": decided, "message": ""})
        stop = time.time()
        for when in ("setup", "call", "teardown"):
            report = pytest.TestReport(
                nodeid=nodeid, location=location, keywords={claim.__name__: 1, "study": 1},
                outcome=outcome if when == "call" or outcome == "skipped" and when == "setup" else "passed",
                longrepr=longrepr if when == "call" or outcome == "skipped" and when == "setup" else None,
                when=when, sections=[], duration=stop - start if when == "call" else 0.0,
                start=start, stop=stop, user_properties=[])
            if outcome == "skipped" and when == "call":
                continue                     # a skipped item has no call phase
            hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)


def pytest_configure(config):
    if not hasattr(config, "workerinput"):      # the controller, or the only process
        config.pluginmanager.register(Reduce(config), "study-reduce")
