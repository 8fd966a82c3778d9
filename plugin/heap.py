"""The garbage collector in a run: what lives to the end is frozen out of its sweeps.

A run's process holds a few million objects that live until it exits: the modules of torch,
transformers and matplotlib, the collected items, the rows the items ship. Python's cyclic
garbage collector walks all of them on each full collection. pytest forces two at the end (its
unraisable-exception plugin), and the interpreter runs one more as it exits. On this project's
2-core machine, a SmolLM2 study spent 1.3-1.5 s between its last line and the process's end
(2026-12-06). That time is not parallel: it is part of every run's serial part.

`gc.freeze()` moves every object alive at that moment into a permanent generation, which later
collections skip (the Python documentation's own advice for long-lived state). Each process of
a run freezes three times: once its imports and options are done (pytest_configure), once its
items are collected, and once its tests have run (pytest_sessionfinish, before the report).
Young objects are still collected as before, between those points.

The cost: an object frozen while it was already cyclic garbage is never freed. At the first
two points such garbage is what the imports left behind; at the last, the process is about to
end. The tool's own test suite starts every pytest run it checks in a subprocess of its own,
so no test process keeps another run's frozen objects.
"""
from __future__ import annotations

import gc

import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    gc.freeze()                         # pytest's, torch's and the plugin's modules


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    gc.freeze()                         # the items and what their modules imported (transformers)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    gc.freeze()                         # the run's rows, results and model, kept to the end
