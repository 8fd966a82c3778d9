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
import numpy as np
import pytest
import torch

from experiments.analysis import share_verdict, unit_table
from experiments.manipulation import moved, threshold
from experiments.scales import KINDS, SKIP_BLOCK

pytestmark = pytest.mark.study


def _rows(setup, cos, label):
    keys = [(L, None) for L in range(cos.shape[0])]
    return unit_table(cos.double().numpy(), keys, setup.plan, label=label)


def _skip_without_prompts(setup):
    if not setup.prompts:
        pytest.skip(setup.prompts_problem)


def test_an_intervention_changes_nothing_before_its_block(shards, scale_part, setup):
    """Invariant of the hooked forward pass, on the real model, on each test sentence: an
    intervention confined to block L leaves every earlier block's output exactly unchanged.

    The fast ladder runs row L only from block L on (before, it is the clean row by
    construction), except its witness row (scales.WITNESS, the last block's), which runs every
    block: on the fast engine this test is about that row; on --engine naive, about every
    row. tests/test_ladder.py checks every row of the plain pass on tiny models."""
    _skip_without_prompts(setup)
    kind, index = scale_part
    m = shards.scale_part(kind, index)                          # ripple [n_layers, n_blocks, 1 sentence]
    n = m.ripple.shape[0]
    earlier = [L for L in range(n) if not torch.all(m.ripple[L, :L] == 0)]
    assert not earlier, f"{kind}, test sentence {index}: blocks before the intervened one changed, for {earlier}"


def test_an_intervention_moves_its_own_block(shards, kind, setup, record):
    """Invariant of the hooked forward pass, on the real model: an intervention confined to
    block L moves block L's cosine beyond round-off on some test sentence (plan:
    manipulation_factor). Its per-block statistics are the ladder's rows (scales.csv)."""
    _skip_without_prompts(setup)
    m = shards.scale(kind)
    rows = _rows(setup, m.cos, f"scale {kind}")
    for r in rows:
        record("scale", {**r.as_row(), "intervention": kind, "order": KINDS.index(kind),
                         "logprob_mean": m.logprob[r.layer].mean().item(), "kl_mean": m.kl[r.layer].mean().item()})
    if kind == "all heads @ token":
        mean = m.ripple.mean(-1)
        for L in range(mean.shape[0]):
            for M in range(mean.shape[1]):
                record("ripple", {"intervention": kind, "layer": L, "read_at": M, "mean_delta": mean[L, M].item()})
    still = [L for L in range(m.ripple.shape[0]) if not moved(m.ripple[L, L].abs().max(), setup.plan)]
    assert not still, (f"{kind}: the intervened block's cosine did not move beyond {threshold(setup.plan):.0e} at "
                       f"blocks {still}")


@pytest.mark.xdist_group("ladder-control")
def test_control_skipping_a_block_at_the_token_is_an_effect_at_most_blocks(shards, setup, say):
    """Positive control: removing a block's whole update at the token is shown beyond ±SESOI
    (minimum-effect test, Bonferroni over blocks, one sentence per template) at more than the
    plan's share of blocks."""
    _skip_without_prompts(setup)
    rows = _rows(setup, shards.scale(SKIP_BLOCK).cos, f"scale {SKIP_BLOCK}")
    verdict = share_verdict(rows, setup.plan, share=setup.plan.skip_block_control, bound=setup.plan.sesoi,
                            what="blocks")
    say(verdict.detail, outcome=verdict.outcome, named=verdict.named())
    assert not setup.plan.fails_run(verdict.outcome), f"'{SKIP_BLOCK}': {verdict.detail}"


@pytest.mark.xdist_group("top-k")
def test_top_k_heads_silenced_together_move_the_last_block(shards, setup, record):
    """Multi-point interventions: the top-k heads (chosen on the selection sentences) silenced
    together move the last block's cosine beyond round-off on every test sentence (the hooks acted)."""
    _skip_without_prompts(setup)
    m = shards.top_k()
    rows = _rows(setup, m.cos, "top-k")
    for i, r in enumerate(rows):
        row = r.as_row()
        record("top_k", {**row, "k": m.ks[i], "logprob_mean": m.logprob[i].mean().item(),
                         "kl_mean": m.kl[i].mean().item()})
    unmoved = [(k, p) for (i, k) in enumerate(m.ks) for p in range(m.cos.shape[1])
               if not moved(m.cos[i, p].abs(), setup.plan)]
    assert not unmoved, f"(k, prompt) whose last block did not move: {unmoved}"


@pytest.mark.xdist_group("ladder-batched-hooks")
def test_batched_hooks_agree_with_the_exact_sweep(shards, setup):
    """Two routes, one number, on the real model: "top head @ token" through ablate(rows=[L]) in
    one batched hooked pass (resumed per row unless --engine naive) equals the fast sweep's
    number for that head (1e-5)."""
    _skip_without_prompts(setup)
    if setup.options.ablation != "zero":
        pytest.skip("the prompt sweep used another ablation than zeros")
    m = shards.scale(KINDS[0])
    swept = shards.prompt_deltas(shards.ladder_indices(KINDS[0]))
    want = np.stack([swept[L, h] for L, h in enumerate(m.top_heads)])
    assert np.abs(m.cos.double().numpy() - want).max() <= 1e-5
