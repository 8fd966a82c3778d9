"""A pytest plugin that plants one error of the tool in a study run (tests/plugin/test_errors_in_runs.py):

    PYTEST_PLUGINS=tests.helpers.planted_errors STUDY_ERROR="item L01-H02" pytest -m study ...

    item <id>    the per-head item test_silencing_...[<id>] raises a TypeError in its judgment,
                 after its rows were recorded (the run stays complete, its report is written)
    claim        the claims across shards that judge the study sentence's blocks raise (their
                 shared helper, claims/study_sentence.blocks)
    shard top-k  the top-k rows raise while they are computed (in the ladder's shards that measure
                 them, on whichever worker computes them)

Each is a bug of the tool, not a finding: the claim it touches must end in "error", never
"refuted". Without STUDY_ERROR the plugin does nothing.
"""
from __future__ import annotations

import os

import pytest

PER_HEAD = "test_silencing_one_head_moves_its_token_but_not_the_association_macroscopically"


class PlantedError(TypeError):
    """The error this plugin plants (a TypeError: the kind of bug a refactor leaves)."""


def _fault() -> tuple[str, str]:
    kind, _, target = os.environ.get("STUDY_ERROR", "").partition(" ")
    return kind, target


def _raise(*args, **kwargs):
    raise PlantedError("planted by tests/helpers/planted_errors.py")


def pytest_configure(config):
    kind, target = _fault()
    if kind == "claim":
        import claims.study_sentence as claims
        claims.blocks = _raise
    if kind == "shard" and target == "top-k":
        from experiments import scales
        scales.top_k_rows = _raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    kind, target = _fault()
    if not (kind == "item" and PER_HEAD in item.nodeid and f"[{target}]" in item.nodeid):
        return (yield)
    from experiments import judgments

    original = judgments.per_head
    judgments.per_head = _raise             # called right after the item recorded its rows
    try:
        return (yield)
    finally:
        judgments.per_head = original
