"""Faults of the environment, each ended in one line that says where, what was kept and what to do:
a full disk, a folder that cannot be created or written, a read-only filesystem, a signal.

    reason(err)                             an OSError in words, said of a folder ("is full (...)")
    results_dir_unusable(err, folder)       --results-dir at start-up
    cache_unusable(err, choice)             STUDY_CACHE at start-up, or a conversion into it that failed
    results_not_written(err, results_dir)   a report publish refused (report/files.NotWritten)
    golden_not_written(err)                 a golden file write_atomically refused
    EnvironmentFault(line)                  raised by an item stopped by such a fault: one line, an error
    interrupted_line(interrupt)             what an interrupted run (Ctrl-C, SIGTERM) says of its report

Lower layers raise plain OSErrors (report/files.py: NotWritten, after removing what it staged;
models/bundled.py: after removing a partial conversion); the plugin, which knows which option
named the folder, turns them into these lines.

SIGTERM (CI timeouts, `timeout`, batch schedulers, container stops) takes pytest's own Ctrl-C
path in every process: a `Terminated` (a KeyboardInterrupt) is raised where the signal lands, so
xdist stops its workers, nothing is published and the previous report stays. Exit statuses:

    0, 1          the claims held; a claim was refuted (pytest's)
    2             interrupted by Ctrl-C (pytest's)
    4             a bad option, or a --results-dir / STUDY_CACHE unusable at start-up (pytest's usage error)
    74            the run measured everything but its report could not be written (EX_IOERR, sysexits.h)
    143           terminated by SIGTERM (128 + 15, what a shell reports for a process SIGTERM ended)
"""
from __future__ import annotations

import errno
import signal
import threading
from pathlib import Path

import pytest

from models.loading import cache_dir

NOT_WRITTEN = 74
TERMINATED = 128 + signal.SIGTERM


class EnvironmentFault(pytest.fail.Exception):
    """An item stopped by a fault of the environment, said in one line (no traceback): an error
    of the tool for the claim it ran, never a refutation (plugin/verdicts.py)."""

    def __init__(self, line: str):
        super().__init__(line, pytrace=False)

# What an errno says about a folder the run writes to.
REASONS = {
    errno.ENOSPC: "is full (no space left on device)",
    errno.EDQUOT: "is over its disk quota",
    errno.EROFS: "is on a read-only filesystem",
    errno.EACCES: "is not writable by this user (permission denied)",
    errno.EPERM: "is not writable by this user (operation not permitted)",
    errno.ENOENT: "cannot be created (no such file or directory)",
    errno.ENOTDIR: "cannot be created (a file stands on its path)",
}
FULL = (errno.ENOSPC, errno.EDQUOT)


def reason(err: OSError) -> str:
    """`err` in words, said of the folder that was being written."""
    return REASONS.get(err.errno, f"cannot be written ({err.strerror or err})")


def _remedy(err: OSError, otherwise: str) -> str:
    return f"free space there or {otherwise}" if err.errno in FULL else otherwise


def results_dir_unusable(err: OSError, folder: Path) -> str:
    return f"--results-dir {folder} {reason(err)}; {_remedy(err, 'pass a folder you can write to')}"


def cache_unusable(err: OSError, choice) -> str:
    """STUDY_CACHE cannot take the conversion of `choice` (a bundled model: models/loading.converted_in_cache),
    at start-up or while converting; the conversion left nothing half-written (models/bundled.py)."""
    fix = _remedy(err, "set STUDY_CACHE to a folder you can write to, or unset it for ~/.cache/head-silencing")
    return f"STUDY_CACHE {cache_dir()} {reason(err)}: {choice.name} is converted and loaded from there; {fix}"


def results_not_written(err, results_dir: Path) -> str:
    """A report.files.NotWritten of a results folder: publish left the previous report in place."""
    return (f"--results-dir {results_dir} {reason(err)}: nothing was published, {err.target} keeps the previous "
            f"complete report, if any; {_remedy(err, 'pass another --results-dir')}")


def golden_not_written(err) -> str:
    """A report.files.NotWritten of a golden file: the previous one is as it was."""
    fix = "free space there" if err.errno in FULL else "make that folder writable"
    return (f"golden file {err.target}: {err.target.parent} {reason(err)}: not written, the previous one is kept; "
            f"{fix}, then rerun with --update-golden")


# ---------------------------------------------------------------------------------------
# SIGTERM: pytest's Ctrl-C path
# ---------------------------------------------------------------------------------------

class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: raised in the main thread where it landed. A KeyboardInterrupt, so that
    pytest, xdist and publish (which puts the previous report back on any exception) treat it
    as Ctrl-C; `except Exception` in library code does not swallow it."""


class SigtermAsCtrlC:
    """This process's SIGTERM handler, and the plugin that gives a run it ended exit status 143.

    The first SIGTERM raises Terminated; later ones are ignored (`timeout` sends one to the child
    and then one to its whole process group: the run is already stopping)."""

    def __init__(self):
        self.received = False

    def __call__(self, signum, frame):
        if not self.received:
            self.received = True
            raise Terminated("SIGTERM")

    @pytest.hookimpl(trylast=True)           # after the report's sessionfinish, which SIGTERM may interrupt
    def pytest_sessionfinish(self, session):
        if self.received:
            session.exitstatus = TERMINATED

    @pytest.hookimpl(wrapper=True)
    def pytest_keyboard_interrupt(self, excinfo):
        # pytest formats the interrupt's traceback for its summary. A signal that lands while a
        # frame has no line number yet (inside C code, during an import: seen twice in CI runs)
        # leaves a traceback entry pytest cannot format: its TypeError turned the interrupted run
        # into a crash with exit status 1. Such entries say nothing a reader needs: drop them.
        try:
            excinfo.traceback = excinfo.traceback.filter(
                lambda entry: getattr(entry._rawentry, "tb_lineno", None) is not None)
        except Exception:                       # a traceback pytest cannot even filter: leave it be
            pass
        return (yield)


def interrupted_line(interrupt: BaseException) -> str:
    """The one sentence an interrupted study run says of its report (Ctrl-C, or SIGTERM: Terminated)."""
    how = " by SIGTERM" if isinstance(interrupt, Terminated) else ""
    return (f"run interrupted{how}: report not written; the results folder keeps the previous complete report, "
            "if any")


def pytest_configure(config):
    # Every process: the controller, each xdist worker, the single process of -n 0.
    if threading.current_thread() is not threading.main_thread():
        return                                # signal handlers can only be set there
    handler = SigtermAsCtrlC()
    previous = signal.signal(signal.SIGTERM, handler)
    config.add_cleanup(lambda: signal.signal(signal.SIGTERM, previous))
    config.pluginmanager.register(handler, "study-sigterm")
