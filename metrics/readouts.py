"""Readouts of a (batched) forward pass beyond the cosine at one block.

    cosine_per_block(hidden_states, i, j)      -> [batch, n_blocks]   the ripple's raw material
    next_token_log_probs(model, final, pos)    -> [batch, len(pos), vocab]  log-softmax, nats
    log_prob_of(logp, ids, j)                  -> [batch]   log p(token j | tokens < j), nats
    kl(clean_logp, logp)                       -> [batch]   KL(clean || ablated), nats

The LM head is the model's own (`get_output_embeddings()`), applied to the final hidden
state (already after the final norm) at the few positions read, not to the whole sequence.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_per_block(hidden_states, i: int, j: int) -> torch.Tensor:
    """hidden_states (n_blocks + 1 tensors [batch, seq, d]) -> [batch, n_blocks]: cosine of
    positions i and j at every block's output (entry L = block L; the last is after the
    final norm, as transformers returns it). Only the two positions are gathered: stacking every
    position of every block copied the whole pass (a ladder row set's 86 MB on SmolLM2) to read two."""
    pair = torch.stack([h[:, [i, j]] for h in hidden_states[1:]], 1).float()     # [batch, n_blocks, 2, d]
    return F.cosine_similarity(pair[:, :, 0], pair[:, :, 1], dim=-1)


def next_token_log_probs(model, final: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """final: [batch, seq, d] (last hidden state) -> [batch, len(positions), vocab] log-probs
    of the token that follows each position."""
    head = model.get_output_embeddings()
    return torch.log_softmax(head(final[:, positions]).float(), dim=-1)


def log_prob_of(logp: torch.Tensor, token_id: int) -> torch.Tensor:
    """logp: [batch, vocab] (the distribution at position j - 1) -> [batch] log p(token_id), nats."""
    return logp[:, token_id]


def kl(clean_logp: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """KL(clean || other) in nats, over the last axis: [..., vocab] x [..., vocab] -> [...]."""
    return (clean_logp.exp() * (clean_logp - logp)).sum(-1).clamp(min=0.0)
