"""Collection: one test item per layer x head, per block, per prompt, per scale kind and per
scale kind x test sentence;
every study item in the xdist group of the shard it needs, in the order shards should start.

    pytest -n auto          (the plugin picks --dist loadgroup: the items of one shard run on
                             one worker, and each shard is computed once per run)

The study's setup (the model's layers x heads, where the words are) is resolved the first
time a study test is collected (plugin/setup.py); a bad question then stops the run with one
line, before any test runs: in this process for `-n 0`, on the controller under xdist.
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from experiments import prompt_set
from plugin.ids import test_of
from plugin.setup import SetupError, resolve_in_background, setup_of

# Shards in the order xdist starts them: first those other shards need (the scale ladder, whose
# shards also measure top-k, chooses its heads on prompt chunks), then the study sentence (it needs none: a
# worker done with its chunks works there while the other finishes its last), then the long
# ones, the longest first, then many short ones that even out the workers' last seconds;
# tests that read several shards (each ladder kind, and top-k, on every test sentence, "ladder-"; "late")
# and the golden gate, which reads them all, last. Matched by name prefix; anything else
# comes after. The plugin turns off xdist's own reordering (by the number of items in a
# group: it once started the ladder, 5 items a sentence, before the chunks it waits for, 4).
SCHEDULE = ("head-means", "prompts-", "study", "scales-", "ioi-", "ladder-", "late", "golden")
PLACEHOLDER = "setup-failed"
GROUPS = pytest.StashKey[set]()     # the shard groups of the study items collected in this run
COLLECTED = pytest.StashKey[set]()  # the tests (ids without parameters) whose items this run collected
PRINTED = pytest.StashKey[bool]()   # the setup's lines were shown
BACKGROUND = pytest.StashKey[bool]()  # the controller resolves its setup in a thread


def pytest_configure(config):
    config.addinivalue_line("markers", "xdist_group(name): the shard whose items run on one xdist worker")
    leave_out_tool_tests(config)
    if hasattr(config, "workerinput") and config.workerinput.get("study_loadgroup"):
        # A worker re-reads the command line, where a bare -n says nothing of groups: the
        # controller's choice (below) reaches it through workerinput.
        config.option.loadgroup = True


@pytest.hookimpl(optionalhook=True)   # pytest-xdist's
def pytest_configure_node(node):
    node.workerinput["study_loadgroup"] = node.config.option.dist == "loadgroup"


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    # Before pytest-xdist turns a bare -n / --tx into --dist load: the study's items are
    # grouped by shard, so that each worker computes the shards of its own groups. Only on
    # the controller: a worker keeps the --tx option, and must never distribute again.
    option = config.option
    if hasattr(config, "workerinput"):
        return
    if getattr(option, "dist", None) == "no" and (getattr(option, "numprocesses", None) or getattr(option, "tx", None)):
        option.dist = "loadgroup"
    if getattr(option, "dist", None) == "loadgroup":
        # Start the groups in the order the items were sorted in (SCHEDULE), not by their size.
        option.loadscopereorder = False


def is_claim(node) -> bool:
    """Is this test (an item, or a function being collected) a claim (plugin/protocol.py)?"""
    return bool(node.get_closest_marker("claim") or node.get_closest_marker("study")
                or node.get_closest_marker("ioi"))


CLAIM_MARKS = ("study", "ioi", "claim")
TOOL_TESTS = "tests"                # the tool's own tests: none of them is a claim (tests/plugin/test_layering.py)
_MARK_NAME = re.compile(r"(?:\w|:|\+|-|\.|\[|\]|\\|/)+")   # an identifier of pytest's -m grammar


def selects_claims_only(markexpr: str) -> bool:
    """Can `-m markexpr` select nothing but claims? True when the expression is false for every
    test that carries none of CLAIM_MARKS, whatever other marks it has (every assignment of the
    other names it mentions is tried). "study", "ioi and not slow": True; "", "not slow",
    "study or slow", "not study": False."""
    from _pytest.mark.expression import Expression

    if not markexpr.strip():
        return False
    try:
        expression = Expression.compile(markexpr)
    except SyntaxError:
        return False                        # pytest itself reports the bad expression
    others = sorted({n for n in _MARK_NAME.findall(markexpr)} - {"and", "or", "not", *CLAIM_MARKS})
    if len(others) > 12:
        return False                        # too many to try: collect everything, as pytest would
    for values in itertools.product((False, True), repeat=len(others)):
        marks = dict(zip(others, values))
        if expression.evaluate(lambda name, /, **kwargs: marks.get(name, False)):
            return False
    return True


def leave_out_tool_tests(config) -> None:
    """`pytest -m study` (and -m ioi, -m claim) does not import the tool's own tests: none is a
    claim, and importing their ~60 modules (Hypothesis, the reference engine, ...) was a third
    of a study run's serial part. Only where pyproject's testpaths chose the folders: a path
    named on the command line is collected as asked."""
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return
    if selects_claims_only(config.option.markexpr or ""):
        tests = config.rootpath / TOOL_TESTS
        config.args[:] = [arg for arg in config.args if Path(arg).resolve() != tests]


def _group(name: str):
    return pytest.mark.xdist_group(name)


def _params(setup, argname: str) -> list:
    """The parameters of a study argument, each carrying its shard's xdist group."""
    from experiments import ioi, scales       # not at import: collecting no study test needs no torch

    if argname == "site":
        return [pytest.param((L, h), id=f"L{L:02d}-H{h:02d}", marks=_group("study"))
                for L in range(setup.n_layers) for h in range(setup.n_heads)]
    if argname == "block":
        return [pytest.param(L, id=f"L{L:02d}", marks=_group("study")) for L in range(setup.n_layers)]
    if argname == "prompt_index":
        return [pytest.param(i, id=f"P{i:02d}", marks=_group(f"prompts-{prompt_set.chunk_label(c)}"))
                for c in prompt_set.chunks(len(setup.prompts)) for i in c] or [
            pytest.param(None, id="no-prompt-set", marks=pytest.mark.skip(reason=setup.prompts_problem))]
    if argname == "ioi_chunk":
        return [pytest.param(c, id=ioi.chunk_label(c), marks=_group(f"ioi-{ioi.chunk_label(c)}"))
                for c in prompt_set.chunks(len(setup.ioi_pairs), ioi.IOI_CHUNK)] or [
            pytest.param(None, id="no-ioi-pairs", marks=pytest.mark.skip(reason=setup.ioi_problem))]
    if argname == "kind":
        return [pytest.param(k, id=scales.slug(k), marks=_group(f"ladder-{scales.slug(k)}")) for k in scales.KINDS]
    if argname == "scale_part":
        from experiments.shards import scale_part_name

        templates = setup.templates
        return [pytest.param((k, i), id=f"{scales.slug(k)}-P{i:02d}", marks=_group(scale_part_name(k, i)))
                for k in scales.KINDS for i in range(len(prompt_set.ladder_sentences(
                    templates, setup.plan.scale_test_prompts, k == scales.SKIP_BLOCK)))] or [
            pytest.param(None, id="no-prompt-set", marks=pytest.mark.skip(reason=setup.prompts_problem))]
    raise AssertionError(argname)


STUDY_ARGS = ("site", "block", "prompt_index", "kind", "scale_part", "ioi_chunk")


def pytest_generate_tests(metafunc):
    marks = metafunc.definition
    if not is_claim(marks):
        return                              # the names below mean something in claims only
    for argname in STUDY_ARGS:
        if argname not in metafunc.fixturenames:
            continue
        try:
            params = _params(setup_of(metafunc.config), argname)
        except SetupError:
            # Reported once, as one line, when collection ends (pytest_collection_modifyitems
            # here, or the controller under xdist); the item exists so the run knows.
            params = [pytest.param(None, id=PLACEHOLDER)]
        metafunc.parametrize(argname, params)


def _rank(group: str) -> int:
    """A shard group's place in SCHEDULE (len(SCHEDULE) for a group that is not a shard's)."""
    return next((rank for rank, prefix in enumerate(SCHEDULE) if group.startswith(prefix)), len(SCHEDULE))


def _order(item) -> int:
    mark = item.get_closest_marker("xdist_group")
    return _rank(mark.args[0] if mark else "")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    study = [item for item in items if is_claim(item)]
    if not study:
        return
    for item in study:                      # every study item runs with the shard it reads
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(_group("study"))
    items.sort(key=_order)                  # stable: the order within a shard is kept
    if hasattr(config, "workerinput"):
        return                              # the controller reports a setup failure
    try:
        setup_of(config)
    except SetupError as err:
        raise pytest.UsageError(str(err)) from None


def pytest_collection_finish(session):
    config = session.config
    if not hasattr(config, "workerinput"):        # -n 0: the items that will run, after -k / -m
        config.stash.setdefault(GROUPS, set()).update(
            item.get_closest_marker("xdist_group").args[0] for item in session.items
            if item.get_closest_marker("xdist_group"))
        config.stash.setdefault(COLLECTED, set()).update(test_of(item.nodeid) for item in session.items)
    print_setup(config)


@pytest.hookimpl(optionalhook=True)   # a hook of pytest-xdist, absent under -p no:xdist
def pytest_xdist_node_collection_finished(node, ids):
    """Controller: a worker whose setup failed collected placeholder items; the controller
    then resolves the setup itself and stops the run with its one line. Otherwise it resolves
    the setup in the background (for the report), and the workers start at once."""
    config = node.config
    config.stash.setdefault(COLLECTED, set()).update(test_of(i) for i in ids)
    config.stash.setdefault(GROUPS, set()).update(i.rpartition("@")[2] for i in ids if "@" in i)
    # The files of claim items (their groups are the shards' own): the controller imports
    # them for their claims across shards (plugin/reduce.py), as it collects nothing itself.
    from plugin.reduce import CLAIM_FILES

    config.stash.setdefault(CLAIM_FILES, set()).update(
        i.split("::")[0] for i in ids if "@" in i and _rank(i.rpartition("@")[2]) < len(SCHEDULE))
    if any(f"[{PLACEHOLDER}]" in i for i in ids):
        try:
            setup_of(config)
        except SetupError as err:
            raise pytest.UsageError(str(err)) from None
    elif config.stash[GROUPS] and not config.stash.get(BACKGROUND, False):
        config.stash[BACKGROUND] = True
        resolve_in_background(config, then=lambda: warm_up(config))


def warm_up(config) -> None:
    """Import what the controller's reduce and report will need (the claim files, scipy,
    matplotlib), while the workers run rather than after them."""
    import importlib

    from plugin.reduce import claims_across_shards

    claims_across_shards(config)
    for module in ("report.results", "report.ioi", "report.claims", "report.plots", "report.html"):
        importlib.import_module(module)


def print_setup(config) -> None:
    """Show what the run resolved (model, tokens, prompt set, results folder), once."""
    from plugin.setup import SETUP

    found = config.stash.get(SETUP, None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if found is None or isinstance(found, SetupError) or reporter is None or config.stash.get(PRINTED, False):
        return
    config.stash[PRINTED] = True
    ioi_collected = any(g.startswith("ioi-") for g in config.stash.get(GROUPS, ()))
    for line in found.header_lines() + (found.ioi_header_lines() if ioi_collected else []):
        reporter.write_line(line)
