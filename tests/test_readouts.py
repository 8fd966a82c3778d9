"""More readouts (metrics/readouts.py): the ripple of an intervention into later blocks, and
output-level effects (log-prob of " pizza" at its position; KL of the next-token
distribution at the last position). Real-model claims are marked `study`; the readout
functions themselves are checked on a tiny model against the model's own logits.
"""
import pytest
import torch

from metrics.readouts import cosine_per_block, kl, log_prob_of, next_token_log_probs
from metrics.statistics import adjust, one_sample_t
from tests.tiny_models import tiny

RIPPLE_KIND = "all heads @ token"


def test_log_prob_and_kl_match_the_models_own_logits():
    model = tiny("llama")
    ids = torch.tensor([[5, 7, 9, 11, 13]])
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    logp = next_token_log_probs(model, out.hidden_states[-1], [2, 4])
    want = torch.log_softmax(out.logits[:, [2, 4]].float(), -1)
    torch.testing.assert_close(logp, want, rtol=1e-5, atol=1e-5)
    assert log_prob_of(logp[:, 0], 11).item() == pytest.approx(want[0, 0, 11].item(), abs=1e-5)
    assert kl(logp[:, 1], logp[:, 1]).item() == 0.0
    other = torch.log_softmax(torch.randn_like(logp[:, 1]), -1)
    assert kl(logp[:, 1], other).item() > 0
    assert cosine_per_block(out.hidden_states, 1, 3).shape == (1, model.config.num_hidden_layers)


@pytest.mark.study
def test_the_ripple_starts_at_the_silenced_block(scale_run, record):
    """Nothing flows backwards: blocks before L are unchanged exactly, block L and later move."""
    ripple = scale_run.ripple[RIPPLE_KIND]              # [n_layers, n_blocks, n_prompts]
    n = ripple.shape[0]
    mean = ripple.mean(-1)
    pvals = torch.ones(n, n, dtype=torch.float64)
    for L in range(n):
        for M in range(L, n):
            pvals[L, M] = one_sample_t(ripple[L, M].double().numpy())[1]
    holm = torch.as_tensor(adjust(pvals[torch.triu(torch.ones(n, n, dtype=torch.bool))].numpy(), "holm"))
    p_holm = torch.ones(n, n, dtype=torch.float64)
    p_holm[torch.triu(torch.ones(n, n, dtype=torch.bool))] = holm
    for L in range(n):
        for M in range(n):
            record("ripple", {"intervention": RIPPLE_KIND, "layer": L, "read_at": M, "mean_delta": mean[L, M].item(),
                              "p": pvals[L, M].item(), "p_holm": p_holm[L, M].item(),
                              "significant_holm": bool(p_holm[L, M] < 0.05)})
    for L in range(n):
        assert torch.all(ripple[L, :L] == 0), f"silencing block {L} changed an earlier block"
    assert (mean.diagonal() != 0).all()


@pytest.mark.study
def test_an_early_block_ripples_to_the_last_block_further_than_a_late_one_moves_itself(scale_run, setup):
    """The ripple observation: silencing all heads of block 1 at the token still moves the
    LAST block's cosine by more than the SESOI on average (the change is carried, not washed
    out), while in most middle blocks the same intervention stays within the SESOI."""
    mean = scale_run.ripple[RIPPLE_KIND].mean(-1)
    early = mean[:3, -1].abs().max().item()
    assert early > setup.sesoi, f"early blocks' ripple at the last block is only {early:.4f}"


@pytest.mark.study
def test_output_level_readouts_see_a_skipped_block(scale_run, record):
    """The x0 control moves the next-token distribution at the last position (KL > 0 at every
    block but the last, where it is exactly 0: after the last block nothing can carry a change
    at the pineapple token to a later position) and lowers log p(" pizza") on average."""
    per_block = scale_run.kl["update x0 @ token"].mean(-1)
    assert (per_block[:-1] > 0).all() and per_block[-1] == 0
    assert scale_run.logprob["update x0 @ token"].mean().item() < 0
