"""Interventions of growing scale at the pineapple token (experiments/scales.py), each tested per
block across the first 8 prompts (paired t-test, Bonferroni over blocks; TOST at ±SESOI).

Detection criterion for a positive control (stated, not tuned): the intervention is
DETECTED when at least one block shows an "effect" -- significant after Bonferroni over the
blocks AND not equivalent to zero within ±SESOI (its 90% CI reaches past the band). The
report (scales.csv, scales.png) gives the number of such blocks per intervention.
"""
import pytest
import torch

from experiments.scales import KINDS, MACROSCOPIC, SCALE_PROMPTS
from metrics.statistics import block_stats, category

pytestmark = pytest.mark.study


def _rows(scale_run, setup, kind):
    return block_stats(scale_run.cos[kind].numpy(), sesoi=setup.sesoi)


@pytest.mark.parametrize("kind", MACROSCOPIC)
def test_macroscopic_interventions_are_detected(scale_run, setup, kind, record):
    rows = _rows(scale_run, setup, kind)
    for r in rows:
        record("scale", {**r.as_row(), "intervention": kind, "category": category(r),
                         "logprob_mean": scale_run.logprob[kind][r.layer].mean().item(),
                         "kl_mean": scale_run.kl[kind][r.layer].mean().item()})
    detected = [r.layer for r in rows if category(r) == "effect"]
    assert detected, f"{kind}: no block with an effect beyond ±{setup.sesoi} (the control is not seen)"


def test_the_smallest_intervention_is_recorded_beside_them(scale_run, setup, record):
    kind = KINDS[0]
    for r in _rows(scale_run, setup, kind):
        record("scale", {**r.as_row(), "intervention": kind, "category": category(r),
                         "logprob_mean": scale_run.logprob[kind][r.layer].mean().item(),
                         "kl_mean": scale_run.kl[kind][r.layer].mean().item()})


def test_skipping_a_block_at_the_token_is_detected_at_most_blocks(scale_run, setup):
    """The largest intervention, x0 (block skipped at the token), is an effect at a majority of blocks."""
    rows = _rows(scale_run, setup, "update x0 @ token")
    n = sum(category(r) == "effect" for r in rows)
    assert n > len(rows) / 2, f"update x0 is an effect at only {n} of {len(rows)} blocks"


def test_top_k_heads_together_move_the_final_cosine(scale_run, setup, record):
    """Multi-point: the top-k heads (chosen on the other prompts) silenced together; recorded
    per k, and the largest k must be detected at the last block's output."""
    rows = block_stats(scale_run.top_cos.numpy(), layers=scale_run.top_k, sesoi=setup.sesoi)
    for i, r in enumerate(rows):
        row = r.as_row()
        row["k"] = row.pop("layer")
        record("top_k", {**row, "category": category(r), "logprob_mean": scale_run.top_logprob[i].mean().item(),
                         "kl_mean": scale_run.top_kl[i].mean().item()})
    assert category(rows[-1]) == "effect", f"top-{rows[-1].layer} heads: {category(rows[-1])}"


def test_batched_hooks_agree_with_the_exact_sweep(scale_run, prompt_run, setup):
    """Cross-check of two independent routes on the real model: "top head @ token" through
    ablate(rows=[L]) in one batched pass equals the fast sweep's number for that head (1e-5)."""
    if setup.ablation != "zero":
        pytest.skip("the sweep used mean ablation")
    got = scale_run.cos["top head @ token"]
    want = torch.stack([prompt_run.deltas[L, h, :SCALE_PROMPTS] for L, h in enumerate(scale_run.top_heads)])
    assert (got - want).abs().max().item() <= 1e-5
