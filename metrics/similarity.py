"""Cosine similarity between two token positions, per block."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def block_outputs(hidden_states) -> torch.Tensor:
    """hidden_states (tuple of n_blocks+1 tensors [1, seq, d]) -> [n_blocks, seq, d].

    Entry 0 of hidden_states is the embeddings; block L's output is entry L + 1 (the last
    one already has the final norm applied, as transformers returns it).
    """
    return torch.stack([h[0] for h in hidden_states[1:]]).float()


def cosine(states: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """states [..., seq, d] -> cosine between positions i and j, shape [...]."""
    return F.cosine_similarity(states[..., i, :], states[..., j, :], dim=-1)
