"""Every single-head ablation measured on prompts of the set (experiments/prompt_set.py),
paired: each prompt is its own clean control. A chunk of prompts is a shard of a run, swept
as one padded batch (hooks.sweep with attention_mask: each prompt exactly as if alone).

    chunk = measure_chunk(model, prompts, [0, 1, 2, 3], "zero")       # PromptChunk
    chunk.deltas                                                      # [n_layers, n_heads, 4]

Ablations (what replaces head h of block L at the silenced token):
    zero      zeros (the seed's silencing)
    mean      the head's output averaged over EVERY position of EVERY prompt of the set
    resample  the head's output at the silenced token of the NEXT prompt of the set (where
              both prompts have the same words up to the token, that is the head's own value:
              nothing changes, and the manipulation check leaves that pair out)
              (prompt p takes it from prompt p + 1, the last from the first)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from experiments.prompt_set import ABLATIONS
from experiments.question import Prompt
from hooks import sweep_and_clean
from hooks.values import head_values, mean_values
from metrics.similarity import cosine, relative_change

@dataclass(frozen=True)
class PromptChunk:
    """Every single-head ablation on some prompts of the set (tested pair, block readout).

    clean:   [n_layers, len(indices)]            clean cosine at block L's output
    deltas:  [n_layers, n_heads, len(indices)]   ablated - clean, head h of block L at the token
    token_change: [n_layers, n_heads, len(indices)]: how far the token's vector moved at
        block L (relative, metrics.similarity.relative_change; the manipulation check)
    value_change: [n_layers, n_heads, len(indices)]: how far the ablation's value lies from
        the head's clean value (relative; resampling from a prompt with the same words up to
        the token replaces it by itself: a causal model gives both the same value there)
    """

    indices: tuple
    ablation: str
    clean: np.ndarray
    deltas: np.ndarray
    token_change: np.ndarray
    value_change: np.ndarray


def padded(prompts: list[Prompt], device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids [B, S], attention_mask [B, S], silenced token [B]) of prompts, right-padded:
    columns are each prompt's own positions, so its words' indices hold as they are."""
    width = max(len(p.tokens.ids) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long, device=device)
    mask = torch.zeros(len(prompts), width, dtype=torch.long, device=device)
    for b, p in enumerate(prompts):
        ids[b, :len(p.tokens.ids)] = torch.tensor(p.tokens.ids)
        mask[b, :len(p.tokens.ids)] = 1
    return ids, mask, torch.tensor([p.token for p in prompts], device=device)


@torch.no_grad()
def head_means(model, prompts: list[Prompt]) -> torch.Tensor:
    """[n_layers, n_heads, head_dim]: each head's output averaged over every position of
    every prompt (what mean ablation puts in its place; units of the head outputs)."""
    ids, mask, _ = padded(prompts, next(model.parameters()).device)
    return mean_values(model, ids, mask).cpu()


def donor_of(index: int, n_prompts: int) -> int:
    """The prompt whose heads replace prompt `index`'s under resample ablation."""
    return (index + 1) % n_prompts


@torch.no_grad()
def measure_chunk(model, prompts: list[Prompt], indices, ablation: str = "zero", engine: str = "fast",
                  means: torch.Tensor | None = None) -> PromptChunk:
    """Every single-head ablation on the chunk's prompts, as ONE padded batch through the
    engine (block readout), read against the engine's own clean pass of the batch. `means`
    [n_layers, n_heads, head_dim] is required for mean ablation."""
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation={ablation!r}: use one of {ABLATIONS}")
    if ablation == "mean" and means is None:
        raise ValueError("mean ablation needs the set's head means (experiments.prompt_chunks.head_means)")
    device = next(model.parameters()).device
    chosen = [prompts[i] for i in indices]
    ids, mask, token = padded(chosen, device)
    values = None
    if ablation == "mean":
        values = means.to(device)
    elif ablation == "resample":
        donors = [prompts[donor_of(i, len(prompts))] for i in indices]
        d_ids, d_mask, d_token = padded(donors, device)
        values = head_values(model, d_ids, d_mask)[torch.arange(len(donors)), d_token]   # [B, L, H, hd]
    # One pass: the sweep's own clean pass is what every silencing is read against (hooks.sweep_and_clean).
    swept, clean_pass = sweep_and_clean(model, ids, token, "block", attention_mask=mask, values=values,
                                        engine=engine)                                   # [B, L, H, S, d]
    own = clean_pass.heads[torch.arange(len(chosen)), token]                              # [B, L, H, hd]
    replaced = torch.zeros_like(own) if values is None else values.expand_as(own)
    value_change = relative_change(replaced, own).permute(1, 2, 0).cpu().double().numpy()   # [L, H, B]
    states = torch.stack(clean_pass.hidden[1:], 1)                                        # [B, L, S, d]
    clean, deltas, changed = [], [], []
    for b, p in enumerate(chosen):
        pair, t = p.tested, p.token
        c = cosine(states[b], pair.i, pair.j).cpu().double()                  # [n_layers]
        s = cosine(swept[b], pair.i, pair.j).cpu().double()                   # [n_layers, n_heads]
        clean.append(c.numpy())
        deltas.append((s - c[:, None]).numpy())
        changed.append(relative_change(swept[b][:, :, t], states[b][:, None, t]).cpu().double().numpy())
    return PromptChunk(tuple(indices), ablation, np.stack(clean, -1), np.stack(deltas, -1), np.stack(changed, -1),
                       value_change)
