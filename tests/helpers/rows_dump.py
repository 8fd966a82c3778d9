"""A pytest plugin that dumps what a study run's controller gathered, for
tests/study/test_run_study.py only:

    PYTEST_PLUGINS=tests.helpers.rows_dump STUDY_DUMP=/path/rows.pickle pytest -m study ...

writes {"claims": the claims table, "kept": the objects the claims across shards handed to the
report (UnitStats rows, controls, power)} with their floats as computed, so a run can be
compared with the library call (experiments/run.py run_study) bit for bit."""
from __future__ import annotations

import os
import pickle


def pytest_sessionfinish(session):
    path = os.environ.get("STUDY_DUMP")
    reduce = session.config.pluginmanager.get_plugin("study-reduce")
    if not path or reduce is None or hasattr(session.config, "workerinput"):
        return
    from report.results import claim_table

    rows = reduce.collected
    with open(path, "wb") as out:
        pickle.dump({"claims": claim_table(rows), "kept": dict(rows.kept),
                     "scale": list(rows.rows["scale"])}, out)
