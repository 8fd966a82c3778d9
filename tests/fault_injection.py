"""A pytest plugin that plants one fault in a study run, for tests/test_faults_in_runs.py only.

    PYTEST_PLUGINS=tests.fault_injection STUDY_FAULT="kill gw1 after 2" pytest -m study -n 2 ...

kills xdist worker gw1 with SIGKILL (no cleanup, no report: as the kernel's OOM killer or a
lost machine would) right after its second test item finished, when that item's rows have
reached the controller; "kill gw1 during 2" kills it as its second item starts its call, so
that item's rows never leave the worker. Without STUDY_FAULT, or in a process it does not
name, the plugin does nothing.
"""
from __future__ import annotations

import os
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
