"""Files a run leaves for people, written so that no reader and no other run ever sees them
half-written:

    publish(folder, {"summary.json": b"...", ...})   the results folder, replaced as a whole
    write_atomically(path, text)                     one file (golden verdicts), replaced whole

A fault of the environment (a full disk, a folder that cannot be written) raises NotWritten,
an OSError naming the folder or file that was to be written, once nothing of the attempt is
left: no staging folder, no temporary file, the previous content as it was. The plugin says it
in one line (plugin/faults.py).

Two runs of the same question may finish at the same moment (two terminals, two CI jobs on
one disk): their publishes take turns under a lock on the parent folder, so each leaves one
complete report and the last one stays. Both runs measured the same thing, and reports
are byte-identical however a run is spread, so either is the answer.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path


class NotWritten(OSError):
    """`target` could not be written (errno and strerror are the OSError's that stopped it);
    nothing changed there: its previous content, if any, is as it was."""

    def __init__(self, target: Path, err: OSError):
        super().__init__(err.errno, err.strerror or str(err), str(target))
        self.target = Path(target)


@contextlib.contextmanager
def _exclusive(directory: Path):
    """Hold an exclusive lock on `directory` (flock on its own descriptor: nothing is left on
    disk, and the kernel releases it if the process dies)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def publish(folder: Path, files: dict[str, bytes]) -> None:
    """Replace `folder` by a folder holding exactly `files`, never leaving a mixture.

    Everything is written into a staging folder first; the two renames that swap it in run
    under the parent's lock. Between them there is an instant with no folder at all: a reader
    sees the old complete report, the new one, or none, never a half-written one.
    """
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.staging-"))
    except OSError as err:
        raise NotWritten(folder, err) from err
    old = None
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        os.chmod(staging, 0o755)  # mkdtemp makes it private; results are for everyone to read
        with _exclusive(folder.parent):
            if folder.exists():
                old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old-"))
                os.replace(folder, old / folder.name)
            try:
                os.replace(staging, folder)
            except BaseException:
                if old is not None:                  # put the previous report back: nothing lost
                    os.replace(old / folder.name, folder)
                raise
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not (old / folder.name).exists():   # never the previous report itself
            shutil.rmtree(old, ignore_errors=True)
        if isinstance(err, OSError):
            raise NotWritten(folder, err) from err
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_atomically(path: Path, text: str) -> None:
    """Write `path` through a temporary file and a rename: readers and concurrent writers see
    the old content or the new, never a truncated file; NotWritten if the disk refuses it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as err:
        raise NotWritten(path, err) from err
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(err, OSError):
            raise NotWritten(path, err) from err
        raise
