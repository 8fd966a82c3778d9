"""Per block, on the study's sentence: beyond "not significant" -- is each block's effect
equivalent to no change within ±SESOI (TOST, Holm over blocks), or undecided?

The sample of a block is its heads' differences (silenced - clean) at block L's output, as
in the original t-test; metrics.statistics.block_stats adds Holm and BH beside Bonferroni,
the 95% CI of the mean difference, Cohen's d, a sign-flip permutation test and TOST.
"""
import pytest

from metrics.statistics import block_stats, category

pytestmark = pytest.mark.study


def _stats(study, setup, deltas):
    return block_stats(deltas.numpy(), sesoi=setup.sesoi)


def test_every_block_is_equivalent_to_no_change_or_reported_undecided(study, setup):
    """No block shows an effect beyond ±SESOI; blocks that are not shown equivalent are named
    (undecided = underpowered: the 95% CI still reaches past the SESOI). The report's
    blocks.csv carries every number."""
    rows = _stats(study, setup, study.deltas(study.plan.pairs[0]))
    effects = [(r.layer, f"{r.mean:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]") for r in rows if category(r) == "effect"]
    assert not effects, f"blocks with an effect beyond ±{setup.sesoi}: {effects}"
    undecided = [r.layer for r in rows if category(r) == "undecided"]
    equivalent = [r.layer for r in rows if r.equivalent]
    assert len(equivalent) + len(undecided) == len(rows)
    print(f"equivalent within ±{setup.sesoi}: {len(equivalent)} of {len(rows)} blocks; undecided: {undecided}")


def test_bonferroni_holm_and_bh_agree_that_no_block_is_significant(study, setup):
    rows = _stats(study, setup, study.deltas(study.plan.pairs[0]))
    for method in ("bonferroni", "holm", "bh"):
        flagged = [r.layer for r in rows if getattr(r, f"significant_{method}")]
        assert flagged == [], f"{method}: blocks significant: {flagged}"


def test_confidence_intervals_contain_the_mean_and_tests_agree(study, setup):
    """Internal consistency on the real data: CI brackets the mean; the permutation test and
    the t-test agree on which blocks have p < 0.05 in all but a few borderline cases."""
    rows = _stats(study, setup, study.deltas(study.plan.pairs[0]))
    assert all(r.ci_low <= r.mean <= r.ci_high for r in rows)
    disagree = [r.layer for r in rows if (r.p < 0.05) != (r.p_permutation < 0.05)]
    assert len(disagree) <= 3, f"t-test and sign-flip test disagree at blocks {disagree}"


def test_control_equivalence_is_refused_when_all_but_one_head_is_silenced(study, setup):
    """The same TOST must NOT call a large intervention "equivalent": silencing all heads of a
    block but one moves the cosine far beyond the SESOI at some blocks, and there the
    equivalence claim fails (and the t-test flags it). Otherwise "equivalent" would mean nothing."""
    rows = _stats(study, setup, study.all_but_one_deltas(study.plan.pairs[0]))
    refused = [r.layer for r in rows if category(r) == "effect"]
    assert refused, "TOST called every block equivalent even with all but one head silenced"
