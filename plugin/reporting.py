"""The report: written by the controller (or the only process) once the claims across shards
ran, from the rows every item shipped and the objects the claims kept (report/results.py);
then the verdict in the terminal, right in each of its three states:

    complete      every study item ran: results/<model>/<question>/ published as a whole
    claims failed the same, with the failed claims named first
    partial       some study items did not run (-k, a crashed worker): nothing is published,
                  the previous complete report stays
    not written   the disk refused the report (full, read-only, not writable): one line says
                  so, nothing is published, the previous report stays (exit status 74)
An interrupted run (Ctrl-C, SIGTERM) says so and publishes nothing (plugin/faults.py).
"""
from __future__ import annotations

import contextlib
import resource
import threading

import pytest

from plugin import faults
from plugin.options import OPTIONS


def pytest_report_header(config):
    plan = config.stash[OPTIONS].plan
    return [f"analysis plan: analysis_plan.toml sha256 {plan.short_digest}"
            + (" (overridden: " + ", ".join(f"{k}={v}" for k, v in plan.overrides) + ")" if plan.overrides else "")]


@contextlib.contextmanager
def workers_stopping(config):
    """Under xdist, stop the finished workers while the report is written, not after it: each
    worker's process takes about a second to wind down (torch, the model) once told to exit,
    and xdist's own sessionfinish, which tells them and waits, ran after the report. Its
    teardown (pytest-xdist's NodeManager.teardown_nodes) runs here in a thread; xdist's call
    then finds nothing left to stop."""
    nodes = getattr(config.pluginmanager.get_plugin("dsession"), "nodemanager", None)
    if nodes is None:                   # -n 0, or xdist absent
        yield
        return
    stopping = threading.Thread(target=nodes.teardown_nodes, name="stop-workers", daemon=True)
    stopping.start()
    try:
        yield
    finally:
        stopping.join()


def peak_rss_gib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def mapped_weights_gib(files: set[str]) -> float:
    """How much of this process's resident memory is the weight files `files` (real paths,
    models/placement.weight_files) mapped from disk: pages the page cache holds once for every
    process that maps them (models/placement.weights_shared). From Linux's /proc/self/smaps; 0.0
    where it cannot be read."""
    total, counting = 0, False
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                first = line.split(maxsplit=1)[0] if line.strip() else ""
                if not first.endswith(":"):                   # a mapping's header: address range ... path
                    fields = line.split(maxsplit=5)
                    counting = len(fields) == 6 and fields[5].strip() in files
                elif counting and first == "Rss:":
                    total += int(line.split()[1])             # KiB
    except (OSError, ValueError, IndexError):
        return 0.0
    return total / 2**20


def run_weights_gib(config) -> float:
    """mapped_weights_gib of this run's model (its checkpoint's files; 0.0 for none on disk)."""
    from models.loading import checkpoint_folder
    from models.placement import weight_files

    return mapped_weights_gib(weight_files(checkpoint_folder(config.getoption("model"))))


class Reporting:
    def __init__(self, config):
        self.config = config
        self.report = None
        self.ioi = None
        self.own: list = []                # reports of claim files' own claims (report/claims.py)
        self.not_written: list[str] = []   # one line per report or file the disk refused
        self.interrupted = False
        self.peak_rss = {}                 # process -> GiB: the controller, and each xdist worker
        self.mapped = {}                   # process -> GiB of it that is the weights' shared file pages

    @pytest.hookimpl(optionalhook=True)   # pytest-xdist's
    def pytest_testnodedown(self, node, error):
        if "peak_rss_gib" in getattr(node, "workeroutput", {}):
            self.peak_rss[node.gateway.id] = node.workeroutput["peak_rss_gib"]
            self.mapped[node.gateway.id] = node.workeroutput.get("mapped_weights_gib", 0.0)

    def _collected(self):
        return self.config.pluginmanager.get_plugin("study-reduce").collected

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo):
        # Said here, before pytest formats the interrupt (which can itself fail when the
        # signal lands inside torch's C code), so the user always reads it.
        from plugin.collection import GROUPS

        self.interrupted = True
        if self._collected().rows or self.config.stash.get(GROUPS, None):     # a study or IOI run
            print("\n" + faults.interrupted_line(excinfo.value), flush=True)

    @pytest.hookimpl(tryfirst=True)          # before xdist's, which stops the workers (below)
    def pytest_sessionfinish(self, session, exitstatus):
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self.interrupted = True
        if self.interrupted:
            return
        try:
            with workers_stopping(self.config):
                self._write(session, self._collected())
        except KeyboardInterrupt as interrupt:   # Ctrl-C or SIGTERM while writing: publish put the old report back
            self.interrupted = True
            session.exitstatus = pytest.ExitCode.INTERRUPTED
            if self.report is None and self.ioi is None:     # (a report published before it stands, and says so)
                print("\n" + faults.interrupted_line(interrupt), flush=True)

    def _write(self, session, collected) -> None:
        results_dir = self.config.stash[OPTIONS].results_dir
        if collected.rows.get("scenario"):
            from report.results import write_report

            with self._refused(session, lambda err: faults.results_not_written(err, results_dir)):
                self.report = write_report(collected)
        if collected.rows.get("ioi-pair"):
            from report.ioi import write_ioi_report

            with self._refused(session, lambda err: faults.results_not_written(err, results_dir)):
                self.ioi = write_ioi_report(collected)
        from report.claims import own_reports, write_claims_report

        for name in own_reports(collected):
            with self._refused(session, lambda err: faults.results_not_written(err, results_dir)):
                self.own.append(write_claims_report(collected, name))
        if self.report is not None and self.report.verdicts:
            from report import golden

            with self._refused(session, faults.golden_not_written):
                golden.save_verdicts(self.report.verdicts)

    @contextlib.contextmanager
    def _refused(self, session, say):
        """A file or folder the disk refuses (report.files.NotWritten) becomes one line, said in
        the verdict, and the run's exit status 74; nothing of it was left half-written."""
        from report.files import NotWritten

        try:
            yield
        except NotWritten as err:
            self.not_written.append(say(err))
            session.exitstatus = faults.NOT_WRITTEN

    def pytest_terminal_summary(self, terminalreporter):
        if self.report is not None or self.ioi is not None or self.own or self.not_written:
            terminalreporter.section("study verdict")
            from plugin.collection import print_setup

            print_setup(self.config)             # under xdist, not shown at collection
            for line in (self.report.summary_lines() if self.report else []) + (
                    self.ioi.summary_lines() if self.ioi else []) + [
                    line for own in self.own for line in own.summary_lines()] + self.not_written:
                terminalreporter.write_line(line)
            self.peak_rss["controller" if self.peak_rss else "this process"] = peak_rss_gib()
            self.mapped["controller" if self.mapped else "this process"] = run_weights_gib(self.config)
            terminalreporter.write_line(memory_line(self.peak_rss, self.mapped))


def memory_line(peak: dict, mapped: dict) -> str:
    """The verdict's memory line: each process's peak resident memory, and how much of it is the
    weights' file pages, which every process maps and the machine holds once."""
    line = "peak resident memory: " + ", ".join(f"{name} {gib:.2f} GiB" for name, gib in sorted(peak.items()))
    shared = max(mapped.values(), default=0.0)
    if shared >= 0.01 and len(peak) == 1:
        line += f"; {shared:.2f} GiB of it is the weights' file pages, mapped from disk"
    elif shared >= 0.01:
        line += (f"; up to {shared:.2f} GiB of a process's is the weights' file pages, mapped from disk and held "
                 f"once for all processes")
    return line


def pytest_sessionfinish(session):
    config = session.config
    if hasattr(config, "workeroutput"):                  # an xdist worker: tell the controller
        config.workeroutput["peak_rss_gib"] = peak_rss_gib()
        config.workeroutput["mapped_weights_gib"] = run_weights_gib(config)


def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Reporting(config), "study-reporting")
