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


def relative_change(after: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """[..., d] x [..., d] -> [...]: max|after - before| / max(1, max|before|) over the last
    axis, the scale of the engine's exactness bound (hooks/precision.py). A manipulation
    check compares it with a multiple of that bound (experiments/manipulation.py)."""
    scale = before.float().abs().amax(-1).clamp(min=1.0)
    return (after.float() - before.float()).abs().amax(-1) / scale
