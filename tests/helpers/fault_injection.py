"""A pytest plugin that plants one fault in a study run, for tests/plugin/test_plugin_runs.py only.

    PYTEST_PLUGINS=tests.helpers.fault_injection STUDY_FAULT="kill gw1 after 2" pytest -m study -n 2 ...

"kill gw1 after 2" kills xdist worker gw1 with SIGKILL (no cleanup, no report: as the kernel's
OOM killer or a lost machine would) right after its second test item finished, when that
item's rows have reached the controller; "kill gw1 during 2" kills it as its second item starts
its call, so that item's rows never leave the worker.

"full results-dir" makes the filesystem of --results-dir full for the process that publishes
(the controller, or the only process): every file written there through Path.write_bytes
(report/files.py's publish) gets half its bytes, then OSError ENOSPC, as a full disk answers.

"sigterm while publishing" sends the publishing process SIGTERM as it writes the first file of
its report, so that the signal lands inside publish (report/files.py).

"full cache" makes STUDY_CACHE full while a bundled model is converted into it, in every
process: the conversion writes half a weights file, then OSError ENOSPC (nothing is converted
for real: it fails at once).

Without STUDY_FAULT, or in a process it does not name, the plugin does nothing.
"""
from __future__ import annotations

import errno
import os
import pathlib
import signal

_seen = 0


def _target() -> tuple[str, str, int] | None:
    fault = os.environ.get("STUDY_FAULT", "").split()
    if len(fault) != 4 or fault[0] != "kill" or fault[2] not in ("after", "during"):
        return None
    return fault[1], fault[2], int(fault[3])


def _count(when: str) -> None:
    global _seen
    target = _target()
    if target is None or os.environ.get("PYTEST_XDIST_WORKER") != target[0] or target[1] != when:
        return
    _seen += 1
    if _seen == target[2]:
        os.kill(os.getpid(), signal.SIGKILL)


def pytest_runtest_call(item):
    _count("during")


def pytest_runtest_logfinish(nodeid, location):
    _count("after")


def _on_writes_under(folder: pathlib.Path, fault) -> None:
    """Writes under `folder` through Path.write_bytes become fault(write_bytes, path, data)."""
    write_bytes = pathlib.Path.write_bytes

    def write(path, data):
        if not pathlib.Path(os.path.abspath(path)).is_relative_to(folder):
            return write_bytes(path, data)
        return fault(write_bytes, path, data)
    pathlib.Path.write_bytes = write


def _full(write_bytes, path, data):
    write_bytes(path, bytes(data)[:len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _sigterm(write_bytes, path, data):
    os.kill(os.getpid(), signal.SIGTERM)        # its handler runs at the next bytecode, mid-publish
    return write_bytes(path, data)


def _half_a_conversion(model, target, workdir):
    target.mkdir(parents=True, exist_ok=True)
    (target / "model.safetensors").write_bytes(b"\0" * 4096)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def pytest_configure(config):
    fault = os.environ.get("STUDY_FAULT")
    results_dir = pathlib.Path(os.path.abspath(config.getoption("results_dir")))
    if fault == "full results-dir" and not hasattr(config, "workerinput"):
        _on_writes_under(results_dir, _full)
    if fault == "sigterm while publishing" and not hasattr(config, "workerinput"):
        _on_writes_under(results_dir, _sigterm)
    if fault == "full cache":
        from models import bundled

        bundled._write_checkpoint = _half_a_conversion
