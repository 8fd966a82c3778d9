"""Each claim's judgment (experiments/judgments.py) on hand-made measurements whose answer is
known: the baseline's exempt blocks, a head that did nothing, a head exactly on the per-head
bound, a block whose heads all move alike, a claim of many items. No model needed."""
from types import SimpleNamespace

import numpy as np
import pytest

from experiments import judgments
from experiments.plan import load_plan

PLAN = load_plan()


def measurement(first, second, deltas=None, token_change=None):
    """A stand-in for experiments.study.StudyMeasurement with the fields the judgments read."""
    pairs = [SimpleNamespace(label="a-b"), SimpleNamespace(label="c-b")]
    deltas = np.zeros((4, 3)) if deltas is None else np.asarray(deltas, dtype=float)
    return SimpleNamespace(
        prompt=SimpleNamespace(pairs=pairs, tested=pairs[0]), n_layers=deltas.shape[0], n_heads=deltas.shape[1],
        clean_cosine={"a-b": np.asarray(first, dtype=float), "c-b": np.asarray(second, dtype=float)},
        last_block_before_norm={"a-b": 0.5, "c-b": 0.4},
        token_change=np.ones_like(deltas) if token_change is None else np.asarray(token_change, dtype=float),
        deltas=lambda label: deltas)


def test_the_baseline_holds_when_only_exempt_blocks_are_below_and_names_the_others():
    assert judgments.baseline(measurement([0.1, 0.5, 0.5, 0.1], [0.2, 0.4, 0.4, 0.2]), PLAN).outcome == "held"
    below = judgments.baseline(measurement([0.5, 0.4, 0.5, 0.5], [0.4, 0.4, 0.4, 0.4]), PLAN)
    assert below.outcome == "refuted" and below.beyond == ("L01",)        # equal is not above
    assert "below at [1]" in below.detail


def test_a_head_that_did_nothing_is_not_established_and_one_on_the_bound_holds():
    bound = PLAN.max_abs_delta_per_head
    deltas = [[0.0, bound, -bound - 1e-9]]
    m = measurement([0.5], [0.4], deltas, token_change=[[0.0, 1.0, 1.0]])
    idle = judgments.per_head(m, PLAN, 0, 0)
    assert idle.outcome == "not established" and idle.not_shown == ("L00-H00",) and "did nothing" in idle.detail
    assert judgments.per_head(m, PLAN, 0, 1).outcome == "held"             # |change| <= bound holds
    beyond = judgments.per_head(m, PLAN, 0, 2)
    assert beyond.outcome == "refuted" and beyond.beyond == ("L00-H02",)


def test_a_block_whose_heads_all_move_alike_is_significant_and_refutes_the_seeds_test():
    deltas = np.array([[0.01, 0.011, 0.012, 0.0105, 0.0108], [0.01, -0.01, 0.002, -0.003, 0.001]])
    m = measurement([0.5, 0.5], [0.4, 0.4], deltas)
    assert judgments.per_block(m, PLAN, 0).outcome == "refuted"
    assert judgments.per_block(m, PLAN, 1).outcome == "held"
    rows = judgments.block_rows(deltas, PLAN)
    assert judgments.seed_verdict(rows).outcome == "refuted" and judgments.seed_verdict(rows).beyond == ("L00",)
    means = judgments.block_means(deltas, PLAN)
    assert means.outcome == "refuted" and means.beyond == ("L00",)       # mean 0.0107 > 0.01, compared directly


def test_a_claim_of_many_items_is_combined_in_the_order_of_their_ids():
    items = [{"item": "L01", "outcome": "not established", "detail": "b", "named": {"not shown": ["L01"]}},
             {"item": "L00", "outcome": "held", "detail": "", "named": {}},
             {"item": "L02", "outcome": "refuted", "detail": "c", "named": {"beyond": ["L02"]}}]
    verdict = judgments.combine_items(items)
    assert verdict.outcome == "refuted" and verdict.beyond == ("L02",) and verdict.not_shown == ("L01",)
    assert verdict.detail == "refuted at 1 of 3 items: L02; 2 of 3 items said: L01: b; L02: c"
    assert judgments.combine_items(list(reversed(items))) == verdict
    assert judgments.combine_items([{"item": "", "outcome": "held", "detail": "one"}]).detail == "one"


@pytest.mark.parametrize("ripple, want", [([[0.0, 0.0], [0.0, 0.3]], "held"), ([[0.2, 0.0], [0.1, 0.3]], "refuted")])
def test_nothing_before_an_intervened_block_is_exactly_zero(ripple, want):
    part = SimpleNamespace(ripple=np.asarray(ripple)[:, :, None])
    assert judgments.nothing_before_block(part, "kind", 0).outcome == want
