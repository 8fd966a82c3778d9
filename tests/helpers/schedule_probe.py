"""A pytest plugin for tests/plugin/test_collection.py: the xdist controller writes, in order,
each group its scheduler hands to a worker, one per line, to the file SCHEDULE_PROBE names."""
from __future__ import annotations

import os


def pytest_configure(config):
    path = os.environ.get("SCHEDULE_PROBE")
    if not path or hasattr(config, "workerinput"):
        return
    from xdist.scheduler.loadscope import LoadScopeScheduling

    original = LoadScopeScheduling._assign_work_unit

    def logged(self, node):
        with open(path, "a") as out:
            out.write(next(iter(self.workqueue)) + "\n")        # the unit it is about to pop
        return original(self, node)

    LoadScopeScheduling._assign_work_unit = logged
