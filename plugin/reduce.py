"""Reduce where the shards meet: claims across shards, evaluated once, on the controller.

Map: test items on any worker measure their shard and ship rows (`record`, as
user_properties) with their reports. Reduce: this plugin, in the controller (or the single
process of `-n 0`), gathers every row, and after the last item ran evaluates the claims
declared across shards (plugin/protocol.py, `@claim(..., reads=, after=)`) in the claim files
the run collected: each becomes a named test report, like any other item: it shows in the
terminal and in --junitxml, and a failed one makes the exit status non-zero. A claim whose
shards were not all measured (e.g. `-k L03`) is skipped, saying what is missing.

Under xdist the controller collects nothing: it imports the files of the claim items its
workers collected (their xdist groups say which), by path, as pytest itself would.
"""
from __future__ import annotations

import inspect
import time
import traceback
from collections import defaultdict
from pathlib import Path

import pytest
from _pytest.pathlib import import_path

from metrics import outcomes
from plugin.ids import base_nodeid, test_of
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
    the report. A claim across shards takes it as its one argument."""

    def __init__(self, config):
        self.config = config
        self.rows: dict[str, list] = defaultdict(list)
        self.outcomes: dict[str, list] = defaultdict(list)   # test function -> [(nodeid, outcome)]
        self.kept: dict[str, object] = {}                    # objects the claims computed, for the report
        self.current = ""                                    # node id of the claim being evaluated
        self.current_report = "study"                        # ... and the report that lists it
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

    def hand_to_report(self, name: str, value) -> None:
        """Hand an object a claim computed to the report (which prints it as it is)."""
        self.kept[name] = value

    def add_to_report(self, name: str, rows: list) -> None:
        """Append rows to a list handed to the report (e.g. power rows of several families)."""
        self.kept.setdefault(name, []).extend(rows)

    def conclude(self, detail: str, outcome: str = "held", named: dict | None = None) -> None:
        """What the running claim found: its outcome and, in words, its detail for the report's
        claim line; `named` the units it names by role ({"beyond": [...], "not shown": [...]})."""
        self.rows["claim"].append({"test": self.current, "item": "", "report": self.current_report,
                                   "outcome": outcome, "detail": detail, "named": named or {}})

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


class Reduce:
    """Controller-side plugin: gather rows; after the test loop, run the claims across shards."""

    def __init__(self, config):
        self.config = config
        self.collected = Rows(config)
        self.claim_reports: list = []

        self.announced = False

    def registered(self) -> list:
        return claims_across_shards(self.config)

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
            root = self.config.rootpath
            coming = [c for c in self.registered() if declaration_of(c, root).after in tests] if tests else []
            self.config.pluginmanager.get_plugin("session").testscollected += len(coming)
        self.collected.take(report)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session):
        result = yield
        if not session.shouldfail and not session.shouldstop and self.collected.rows:
            for claim in self.registered():
                if self.collected.rows.get(claim.declaration.reads):
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
        declared = declaration_of(claim, self.config.rootpath)
        self.collected.current_report = declared.report
        self.collected.rows["test-doc"].append({"test": nodeid, "doc": declared.statement, "line": location[1] + 1,
                                                "order": report_order(inspect.getmodule(claim)),
                                                **declared.as_row()})
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
            self.collected.rows["item-outcome"].append({"test": nodeid, "item": "", "report": declared.report,
                                                        "outcome": decided, "message": one_line(excinfo)})
        if decided != outcomes.REFUTED and decided != outcomes.ERROR:
            self.collected.rows["item-outcome"].append({"test": nodeid, "item": "", "report": declared.report,
                                                        "outcome": decided, "message": ""})
        stop = time.time()
        for when in ("setup", "call", "teardown"):
            report = pytest.TestReport(
                nodeid=nodeid, location=location, keywords={claim.__name__: 1, declared.report: 1, "claim": 1},
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
