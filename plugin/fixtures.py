"""Fixtures: the run's setup, the model (loaded once per worker, only if a test needs it),
the shards (each computed once per run), and `record` (ship a measured row to the report).
"""
from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import pytest

from models.bundled import SMOLLM2
from models.loading import converted_in_cache, load, resolve
from plugin import faults
from plugin.ids import base_nodeid, statement, test_of
from plugin.protocol import report_order
from plugin.collection import is_claim
from plugin.setup import setup_of
from plugin.store import STORE, ShardStore
from plugin.verdicts import item_outcome

STORE_FOLDER = "shard_store"          # key of workerinput that names the controller's folder


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        folder = Path(config.workerinput[STORE_FOLDER])
        worker = config.workerinput.get("workerid", "worker")
    else:
        folder = Path(tempfile.mkdtemp(prefix="head-silencing-shards-"))
        config.add_cleanup(functools.partial(_remove, folder))
        worker = "main"
    # A worker on another host (xdist --tx ssh=...) has no such folder: it makes its own.
    config.stash[STORE] = ShardStore(folder, worker)


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


@functools.cache
def load_once(choice, device: str, dtype: str = "float32", device_map: str | None = None):
    """(model, tokenizer), loaded at most once per process and (choice, device, dtype, device_map).

    A bare --device cuda under xdist gives worker gwI the GPU I mod count (models/placement.py);
    --device-map auto spreads the blocks over every GPU instead.
    """
    if device_map is None and device == "cuda":
        import os

        import torch

        from models.placement import worker_device
        device = worker_device(device, os.environ.get("PYTEST_XDIST_WORKER"), torch.cuda.device_count())
    try:
        return load(choice, device, dtype, device_map)
    except OSError as err:             # converting a bundled model: the cache refused it (models/loading.prepare)
        if not converted_in_cache(choice):
            raise
        pytest.fail(faults.cache_unusable(err, choice), pytrace=False)


@pytest.hookimpl(optionalhook=True)   # a hook of pytest-xdist, absent under -p no:xdist
def pytest_configure_node(node):
    """Controller: hand every xdist worker the shard store's folder."""
    node.workerinput[STORE_FOLDER] = str(node.config.stash[STORE].folder)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # Ship every shard computed during this phase with this phase's report: the controller
    # counts computations per shard across all workers.
    for done in item.config.stash[STORE].drain():
        report.user_properties.append(("shard-computed", done))
    # And what the phase means for the item's claim: held, refuted (an assertion of the claim's
    # own test), not established (said so), error (any other exception) or not run.
    if is_claim(item):
        found = item_outcome(item, call, report)
        if found is not None:
            report.user_properties.append(("item-outcome", {"test": test_of(item.nodeid), "item": item_id(item.nodeid),
                                                            "report": report_of(item), **found}))
    return report


def report_of(node) -> str:
    """Which report lists a claim item: its declaration's (plugin/protocol.py), else its marker's."""
    marker = node.get_closest_marker("claim")
    if marker:
        return marker.args[0].report
    return "ioi" if node.get_closest_marker("ioi") else "study"


def item_id(nodeid: str) -> str:
    """The item's parameters ("L03-H05"), or "" for an unparametrized test."""
    base = base_nodeid(nodeid)
    return base[base.index("[") + 1:-1] if "[" in base else ""


@pytest.fixture(scope="session")
def study_setup(pytestconfig):
    """The run's study, resolved (plugin/setup.py Setup): its options, the model's layers and
    heads, the study sentence and the sentence population located, the plan."""
    return setup_of(pytestconfig)


@pytest.fixture(scope="session")
def study_model(study_setup):
    """(model, tokenizer) of the study, loaded once per worker."""
    o = study_setup.options
    return load_once(o.choice, o.device, o.dtype, o.device_map)


@pytest.fixture(scope="session")
def shards(study_setup, pytestconfig):
    """The run's shards (experiments/shards.py); the model is loaded only if this worker must compute one."""
    from experiments.shards import Shards

    s, o = study_setup, study_setup.options
    return Shards(lambda: load_once(o.choice, o.device, o.dtype, o.device_map)[0], prompt=s.prompt,
                  prompts=s.prompts, ablation=o.ablation, engine=o.engine, plan=o.plan,
                  get=pytestconfig.stash[STORE].get, ioi_pairs=s.ioi_pairs, templates=s.templates)


@pytest.fixture(scope="session")
def smollm2_study_input(pytestconfig):
    """(SmolLM2-135M-Instruct, the study sentence's ids [1, 9]) whatever --model says: the
    real model every machine has offline, for exactness tests and benchmarks."""
    from experiments.question import SENTENCE
    from plugin.options import OPTIONS

    options = pytestconfig.stash[OPTIONS]
    if options.choice.name == SMOLLM2.name and options.device == "cpu" and options.dtype == "float32":
        model, tokenizer = load_once(options.choice, options.device)   # the study's: reuse it
    else:
        model, tokenizer = load_once(resolve(SMOLLM2.name), "cpu")
    return model, tokenizer(SENTENCE, return_tensors="pt").input_ids


@pytest.fixture(autouse=True)
def state_the_claim(request):
    """Every claim item ships its declaration (plugin/protocol.py: the statement, the first
    paragraph of its docstring; its unit, rule, plan entries, data and report) for the report."""
    if is_claim(request.node) and request.function.__doc__:
        marker = request.node.get_closest_marker("claim")
        declared = marker.args[0].as_row() if marker else {
            "unit": "", "rule": "items combined", "plan_entries": "", "data": "population",
            "report": report_of(request.node)}
        request.node.user_properties.append(("test-doc", {"test": test_of(request.node.nodeid),
                                                          "doc": statement(request.function.__doc__),
                                                          "line": request.function.__code__.co_firstlineno,
                                                          "order": report_order(request.module), **declared}))


@pytest.fixture
def conclude(request):
    """conclude(detail, outcome="held", named=None): what a claim (or one item of it) found, in
    words, for the report's claim line; `named` the units it names by role ({"beyond": [...],
    ...}). An item that concludes "not established" passes without deciding its claim; one that
    refutes must also assert, as any test does."""
    def _conclude(detail: str, outcome: str = "held", named: dict | None = None) -> None:
        request.node.user_properties.append(("claim", {"test": test_of(request.node.nodeid),
                                                       "item": item_id(request.node.nodeid),
                                                       "report": report_of(request.node), "outcome": outcome,
                                                       "detail": detail, "named": named or {}}))
    return _conclude


@pytest.fixture
def record(request):
    """record(kind, row): ship a measured row to the controller's report. Values travel between
    processes (xdist), so numpy numbers and arrays become plain Python ones."""
    def _record(kind: str, row: dict) -> None:
        request.node.user_properties.append((kind, {key: plain(value) for key, value in row.items()}))
    return _record


def plain(value):
    """A value as plain Python (numbers, strings, lists, dicts): what xdist can send."""
    if hasattr(value, "tolist"):                  # numpy arrays and scalars, torch tensors
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value

