"""Interventions of growing scale at the silenced token (experiments/scales.py), measured per
kind and test sentence (a shard each: the ladder is a run's heaviest work, and so spreads
over workers), checked per sentence, then tested per kind and block across its test
sentences, one per template (paired t-test, the plan's correction over blocks; TOST and the
minimum-effect test at ±SESOI; power). The heads they use were chosen on the other prompts.

The positive control (plan: skip_block_control), on one sentence of every template:
skipping a block's whole update at the token is shown beyond ±SESOI at more than that share
of blocks (metrics/outcomes.py share_beyond). The other kinds are observations (scales.csv,
ripple.csv, top_k.csv), not claims.
"""
import pytest

from experiments import judgments
from plugin.protocol import ITEMS_COMBINED, SHARE_BEYOND, claim, decide

REPORT_ORDER = 50        # where the report lists this file's claims (plugin/protocol.py)
# experiments.scales (torch, the engine) is imported by the items that need it: an xdist
# controller imports this file too (for any claim across shards) and needs no torch.


def _skip_without_prompts(study_setup):
    if not study_setup.prompts:
        pytest.skip(study_setup.prompts_problem)


@claim(unit="intervention, test sentence", rule=ITEMS_COMBINED)
def test_an_intervention_changes_nothing_before_its_block(shards, scale_part, study_setup, conclude):
    """Invariant of the hooked forward pass, on the real model, on each test sentence: an
    intervention confined to block L leaves every earlier block's output exactly unchanged.

    The fast ladder runs row L only from block L on (before, it is the clean row by
    construction), except its witness row (scales.WITNESS, the last block's), which runs every
    block: on the fast engine this test is about that row; on --engine naive, about every
    row. tests/engine/test_ladder.py checks every row of the plain pass on tiny models."""
    _skip_without_prompts(study_setup)
    kind, index = scale_part
    verdict = judgments.nothing_before_block(shards.scale_part(kind, index), kind, index)
    decide(conclude, verdict, study_setup.plan.fail_on)


@claim(unit="intervention kind", rule=ITEMS_COMBINED, plan=("manipulation_factor",))
def test_an_intervention_moves_its_own_block(shards, kind, study_setup, record, conclude):
    """Invariant of the hooked forward pass, on the real model: an intervention confined to
    block L moves block L's cosine beyond round-off on some test sentence (plan:
    manipulation_factor). Its per-block statistics are the ladder's rows (scales.csv)."""
    from experiments.scales import KINDS

    _skip_without_prompts(study_setup)
    m = shards.scale(kind)
    rows = judgments.scale_rows(m.cos.double().numpy(), study_setup.plan, f"scale {kind}")
    for r in rows:
        record("scale", {**r.as_row(), "intervention": kind, "order": KINDS.index(kind),
                         "logprob_mean": m.logprob[r.layer].mean().item(), "kl_mean": m.kl[r.layer].mean().item()})
    if kind == "all heads @ token":
        mean = m.ripple.mean(-1)
        for L in range(mean.shape[0]):
            for M in range(mean.shape[1]):
                record("ripple", {"intervention": kind, "layer": L, "read_at": M, "mean_delta": mean[L, M].item()})
    decide(conclude, judgments.moves_own_block(m, study_setup.plan), study_setup.plan.fail_on)


@pytest.mark.xdist_group("ladder-control")
@claim(unit="block, one sentence per template", rule=SHARE_BEYOND,
       plan=("skip_block_control", "sesoi", "alpha", "replication_unit"))
def test_control_skipping_a_block_at_the_token_is_an_effect_at_most_blocks(shards, study_setup, conclude):
    """Positive control: removing a block's whole update at the token is shown beyond ±SESOI
    (minimum-effect test, Bonferroni over blocks, one sentence per template) at more than the
    plan's share of blocks."""
    from experiments.scales import SKIP_BLOCK

    _skip_without_prompts(study_setup)
    rows = judgments.scale_rows(shards.scale(SKIP_BLOCK).cos.double().numpy(), study_setup.plan, f"scale {SKIP_BLOCK}")
    decide(conclude, judgments.positive_control(rows, study_setup.plan), study_setup.plan.fail_on)


@pytest.mark.xdist_group("ladder-top-k")      # reads the ladder's shards that measure top-k (experiments/shards.py)
@claim(unit="k heads, test sentence", rule=ITEMS_COMBINED, plan=("top_k", "manipulation_factor"))
def test_top_k_heads_silenced_together_move_the_last_block(shards, study_setup, record, conclude):
    """Multi-point interventions: the top-k heads (chosen on the selection sentences) silenced
    together move the last block's cosine beyond round-off on every test sentence (the hooks acted)."""
    _skip_without_prompts(study_setup)
    m = shards.top_k()
    rows = judgments.scale_rows(m.cos.double().numpy(), study_setup.plan, "top-k")
    for i, r in enumerate(rows):
        record("top_k", {**r.as_row(), "k": m.ks[i], "logprob_mean": m.logprob[i].mean().item(),
                         "kl_mean": m.kl[i].mean().item()})
    decide(conclude, judgments.top_k_moved(m, study_setup.plan), study_setup.plan.fail_on)


@pytest.mark.xdist_group("ladder-batched-hooks")
@claim(unit="head, test sentence, two routes", rule=ITEMS_COMBINED)
def test_batched_hooks_agree_with_the_exact_sweep(shards, study_setup, conclude):
    """Two routes, one number, on the real model: "top head @ token" through ablate(rows=[L]) in
    one batched hooked pass (resumed per row unless --engine naive) equals the fast sweep's
    number for that head (1e-5)."""
    from experiments.scales import KINDS

    _skip_without_prompts(study_setup)
    if study_setup.options.ablation != "zero":
        pytest.skip("the prompt sweep used another ablation than zeros")
    m = shards.scale(KINDS[0])
    verdict = judgments.batched_equals_sweep(m, shards.prompt_deltas(shards.ladder_indices(KINDS[0])))
    decide(conclude, verdict, study_setup.plan.fail_on)
