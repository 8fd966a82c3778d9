"""Faults of the environment, each ended in one line that says where, what was kept and what to do:
a full disk, a folder that cannot be created or written, a read-only filesystem.

    reason(err)                             an OSError in words, said of a folder ("is full (...)")
    results_dir_unusable(err, folder)       --results-dir at start-up
    cache_unusable(err, choice)             STUDY_CACHE at start-up, or a conversion into it that failed
    results_not_written(err, results_dir)   a report publish refused (report/files.NotWritten)
    golden_not_written(err)                 a golden file write_atomically refused

Lower layers raise plain OSErrors (report/files.py: NotWritten, after removing what it staged;
models/bundled.py: after removing a partial conversion); the plugin, which knows which option
named the folder, turns them into these lines. Exit statuses:

    0, 1          the claims held; a claim was refuted (pytest's)
    2             interrupted by Ctrl-C (pytest's)
    4             a bad option, or a --results-dir / STUDY_CACHE unusable at start-up (pytest's usage error)
    74            the run measured everything but its report could not be written (EX_IOERR, sysexits.h)
"""
from __future__ import annotations

import errno
from pathlib import Path

from models.loading import cache_dir

NOT_WRITTEN = 74

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
