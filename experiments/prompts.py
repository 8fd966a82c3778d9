"""Every single-head ablation measured on prompts of the set (experiments/prompt_set.py),
paired: each prompt is its own clean control. A chunk of prompts is a shard of a run.

    chunk = measure_chunk(model, prompts, [0, 1, 2, 3], "zero")       # PromptChunk
    chunk.deltas                                                      # [n_layers, n_heads, 4]

Ablations (what replaces head h of block L at the silenced token):
    zero      zeros (the seed's silencing)
    mean      the head's output averaged over EVERY position of EVERY prompt of the set
    resample  the head's output at the silenced token of the NEXT prompt of the set
              (prompt p takes it from prompt p + 1, the last from the first)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from experiments.prompt_set import ABLATIONS
from experiments.question import Prompt
from hooks import capture_heads, layout_of, sweep
from metrics.similarity import block_outputs, cosine

@dataclass(frozen=True)
class PromptChunk:
    """Every single-head ablation on some prompts of the set (tested pair, block readout).

    clean:   [n_layers, len(indices)]            clean cosine at block L's output
    deltas:  [n_layers, n_heads, len(indices)]   ablated - clean, head h of block L at the token
    token_changed: [n_layers, n_heads, len(indices)] bool: the token's vector moved
    """

    indices: tuple
    ablation: str
    clean: np.ndarray
    deltas: np.ndarray
    token_changed: np.ndarray


@torch.no_grad()
def head_means(model, prompts: list[Prompt]) -> torch.Tensor:
    """[n_layers, n_heads, head_dim]: each head's output averaged over every position of
    every prompt (what mean ablation puts in its place; units of the head outputs)."""
    layout = layout_of(model)
    device = next(model.parameters()).device
    total = torch.zeros(layout.n_layers, layout.n_heads, layout.head_dim)
    count = 0
    for p in prompts:
        with capture_heads(model) as seen:
            model(torch.tensor([p.tokens.ids], device=device))
        for L, heads in seen:
            total[L] += heads[0].sum(0).cpu()
        count += len(p.tokens.ids)
    return total / count


@torch.no_grad()
def heads_at_token(model, prompt: Prompt) -> torch.Tensor:
    """[n_layers, n_heads, head_dim]: every head's output at the prompt's silenced token
    (what resample ablation gives to the previous prompt of the set)."""
    device = next(model.parameters()).device
    with capture_heads(model) as seen:
        model(torch.tensor([prompt.tokens.ids], device=device))
    return torch.stack([heads[0, prompt.token].cpu() for _, heads in seen])


def donor_of(index: int, n_prompts: int) -> int:
    """The prompt whose heads replace prompt `index`'s under resample ablation."""
    return (index + 1) % n_prompts


@torch.no_grad()
def measure_chunk(model, prompts: list[Prompt], indices, ablation: str = "zero", engine: str = "fast",
                  means: torch.Tensor | None = None) -> PromptChunk:
    """Per prompt of the chunk: one clean pass and the sweep of every single-head ablation
    (block readout). `means` [n_layers, n_heads, head_dim] is required for mean ablation."""
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation={ablation!r}: use one of {ABLATIONS}")
    if ablation == "mean" and means is None:
        raise ValueError("mean ablation needs the set's head means (experiments.prompts.head_means)")
    device = next(model.parameters()).device
    clean, deltas, changed = [], [], []
    for i in indices:
        p = prompts[i]
        values = {"zero": None, "mean": means,
                  "resample": heads_at_token(model, prompts[donor_of(i, len(prompts))]) if ablation == "resample"
                  else None}[ablation]
        ids = torch.tensor([p.tokens.ids], device=device)
        states = block_outputs(model(ids, output_hidden_states=True).hidden_states)
        pair = p.tested
        c = cosine(states, pair.i, pair.j).cpu().double()
        swept = sweep(model, ids, p.token, "block", engine=engine,
                      values=None if values is None else values.to(device))
        s = cosine(swept, pair.i, pair.j).cpu().double()
        clean.append(c.numpy())
        deltas.append((s - c[:, None]).numpy())
        changed.append((swept[:, :, p.token] != states[:, None, p.token]).any(-1).cpu().numpy())
    return PromptChunk(tuple(indices), ablation, np.stack(clean, -1), np.stack(deltas, -1), np.stack(changed, -1))
