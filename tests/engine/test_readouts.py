"""Readouts beyond the cosine at one block (metrics/readouts.py): the cosine at every block,
log-prob of a token, KL of the next-token distribution; checked on a tiny model against the
model's own logits. (What they show on the real model is reported by claims/scales.py.)
"""
import math

import pytest
import torch

from metrics.readouts import cosine_per_block, kl, log_prob_of, next_token_log_probs
from tests.helpers.tiny_models import tiny


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


def test_the_cosine_per_block_is_each_blocks_own_cosine():
    """Entry [b, L]: the cosine of positions i and j in batch row b of hidden_states[L + 1],
    computed block by block as one would by hand; the same bits."""
    model = tiny("gpt2")
    ids = torch.tensor([[5, 7, 9, 11, 13, 2], [3, 1, 4, 1, 5, 9]])
    with torch.no_grad():
        states = model(ids, output_hidden_states=True).hidden_states
    for i, j in ((1, 3), (4, 0), (5, 5)):
        by_hand = torch.stack([torch.nn.functional.cosine_similarity(h[:, i], h[:, j], dim=-1) for h in states[1:]], 1)
        assert torch.equal(cosine_per_block(states, i, j), by_hand)


def test_kl_is_clean_against_other_in_that_order():
    """KL(p || q) with p the clean distribution, by hand: p = (0.9, 0.1), q = (0.5, 0.5) gives
    0.9 ln(0.9/0.5) + 0.1 ln(0.1/0.5) = 0.368064 nats; the other way round it is 0.510826."""
    p, q = torch.tensor([[0.9, 0.1]]).log(), torch.tensor([[0.5, 0.5]]).log()
    assert kl(p, q).item() == pytest.approx(0.9 * math.log(1.8) + 0.1 * math.log(0.2), abs=1e-6)
    assert kl(p, q).item() == pytest.approx(0.368064, abs=1e-6)
    assert kl(q, p).item() == pytest.approx(0.510826, abs=1e-6)
    # Batched over leading axes, one value per distribution.
    both = kl(torch.stack([p, q]), torch.stack([q, p]))
    assert both.shape == (2, 1) and both[0, 0].item() == pytest.approx(0.368064, abs=1e-6)
