"""The seed's claims on its own sentence, on the model the run resolved (--model): the
REPLICATION of the seed's design, one item per layer x head and per block, and the claims
across the blocks, decided once the per-head items ran (on the controller, plugin/reduce.py):
the seed's verdict (no block's t-test survives Bonferroni), each block's mean compared with
±SESOI (a number from one deterministic forward pass: compared directly, not tested), and the
control of the seed's test. Every number comes from the run's "study" shard
(experiments/study.py: one clean pass and one sweep of every single-head silencing, computed
once per run); every judgment from experiments/judgments.py; the per-block table and its power
rows are the very objects blocks.csv and power.csv print.

Each claim here can fail on a model with a planted effect of known size
(tests/study/test_known_answers.py). Invariants of the engine (nothing before the silenced
token changes) are tested where they can fail: tests/engine/.
"""
import numpy as np
import pytest

from experiments import judgments
from experiments.analysis import power_rows
from plugin.protocol import CONTROL, EVERY_UNIT_WITHIN, ITEMS_COMBINED, NONE_FLAGGED, claim, decide

REPORT_ORDER = 10        # where the report lists this file's claims (plugin/protocol.py)

SENTENCE = dict(data="study sentence")


@claim(unit="block (tested vs comparison pair)", rule=EVERY_UNIT_WITHIN, plan=("baseline_exempt_blocks",), **SENTENCE)
def test_pineapple_pizza_beats_butter_pizza_at_almost_every_block(shards, study_setup, record, conclude):
    """Replication of the seed's baseline: on the clean model the tested pair's cosine is above
    the comparison pair's at every block but those the plan exempts (the seed's first and last)."""
    m = shards.study()
    if len(m.prompt.pairs) < 2:
        pytest.skip("the baseline compares two pairs; this run was given one --pair")
    for pair in m.prompt.pairs[:2]:
        record("baseline", {"pair": pair.label, "clean": m.clean_cosine[pair.label].tolist(),
                            "before_norm": m.last_block_before_norm[pair.label]})
    decide(conclude, judgments.baseline(m, study_setup.plan), study_setup.plan.fail_on)


@claim(unit="head (one silencing)", rule=ITEMS_COMBINED, plan=("manipulation_factor", "max_abs_delta_per_head"),
       **SENTENCE)
def test_silencing_one_head_moves_its_token_but_not_the_association_macroscopically(shards, site, study_setup, record,
                                                                                   conclude):
    """Replication of the seed, per head: head h of block L silenced at the token moves the
    token's vector beyond round-off (the hook acted; plan: manipulation_factor), and moves the
    tested pair's cosine at block L by at most the plan's per-head bound."""
    L, h = site
    m = shards.study()
    for pair in m.prompt.pairs:
        clean, silenced = float(m.clean_cosine[pair.label][L]), float(m.silenced_cosine[pair.label][L, h])
        record("scenario", {"layer": L, "head": h, "token": m.prompt.token, "pair": pair.label,
                            "clean": clean, "silenced": silenced, "delta": silenced - clean})
    decide(conclude, judgments.per_head(m, study_setup.plan, L, h), study_setup.plan.fail_on)


@claim(unit="block (its heads' differences)", rule=ITEMS_COMBINED, plan=("alpha", "block_correction"), **SENTENCE)
def test_no_block_heads_shift_the_association_significantly(shards, block, study_setup, conclude):
    """Replication of the seed's test, per block: a one-sample t-test of the block's per-head
    differences is not significant at the plan's per-block level (alpha / n_blocks)."""
    decide(conclude, judgments.per_block(shards.study(), study_setup.plan, block), study_setup.plan.fail_on)


# The claims across the blocks read the rows of the per-head items above.
ACROSS = dict(reads="scenario", data="study sentence",
              after=test_silencing_one_head_moves_its_token_but_not_the_association_macroscopically)


def study_deltas(run) -> np.ndarray:
    """[n_layers, n_heads]: the tested pair's change per single-head silencing, every scenario of the run."""
    s = run.study_setup
    found = run.measured("scenario", key=lambda r: (r["layer"], r["head"]), value=lambda r: r["delta"],
                         where=lambda r: r["pair"] == s.prompt.tested.label,
                         expected={(L, h) for L in range(s.n_layers) for h in range(s.n_heads)},
                         what="single-head silencings")
    return np.array([[found[L, h] for h in range(s.n_heads)] for L in range(s.n_layers)])


def blocks(run):
    """The per-block table of the study sentence (with power), and its power rows: computed once
    for the claims below and handed to the report (blocks.csv, power.csv)."""
    if "blocks" not in run.kept:
        deltas = study_deltas(run)
        run.hand_to_report("blocks", judgments.block_rows(deltas, run.study_setup.plan))
        run.add_to_report("power", power_rows(deltas, "blocks", run.study_setup.plan))
    return run.kept["blocks"]


@claim(unit="block (its heads' differences)", rule=NONE_FLAGGED, plan=("alpha", "block_correction"), **ACROSS)
def test_zero_blocks_significant_after_bonferroni(run):
    """Replication of the seed's verdict: no block's one-sample t-test of its heads'
    differences on the study sentence survives Bonferroni over blocks."""
    decide(run, judgments.seed_verdict(blocks(run)), run.study_setup.plan.fail_on)


@claim(unit="block (mean over its heads)", rule=EVERY_UNIT_WITHIN, plan=("sesoi",), **ACROSS)
def test_every_block_mean_lies_within_sesoi(run):
    """Replication of the seed, with the size that matters: every block's mean head difference on
    the study sentence lies within ±SESOI (a number without sampling error, compared directly)."""
    decide(run, judgments.block_means(study_deltas(run), run.study_setup.plan), run.study_setup.plan.fail_on)


@claim(unit="block (its heads' differences)", rule=CONTROL,
       plan=("sesoi", "control_draws", "control_z", "simulation_seed"), **ACROSS)
def test_control_the_block_test_sees_a_sesoi_shift_as_predicted(run):
    """Control of the seed's unit: a SESOI shift planted into blocks drawn by category, on their
    real sign-flipped noise, is found by the seed's t-test as often as predicted, and the seed's
    verdict follows."""
    control = judgments.control(study_deltas(run), blocks(run), run.study_setup.plan, "blocks", test="significance")
    run.add_to_report("controls", list(control.arms))
    decide(run, judgments.as_verdict(control), run.study_setup.plan.fail_on)
