"""The study on one sentence: clean cosines per block, and their change under every
single-head silencing at the silenced token, read at the silenced block's output.

    m = measure_study(model, prompt)        # one clean pass + one sweep (hooks.sweep)
    m.clean_cosine["pineapple-pizza"]       # [n_blocks], the last after the final norm
    m.deltas("pineapple-pizza")             # [n_layers, n_heads]: silenced - clean at block L
    m.token_change                          # [n_layers, n_heads]: how far the token moved (relative)

This is the "study" shard of a run (experiments/shards.py): computed once per run,
whatever the number of pytest workers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from experiments.question import Prompt
from hooks import layout_of, sweep
from metrics.similarity import block_outputs, cosine, relative_change


@dataclass(frozen=True)
class StudyMeasurement:
    """What the study measures on one sentence (cosines, floats; numpy arrays)."""

    prompt: Prompt
    engine: str
    clean_cosine: dict            # pair label -> [n_blocks]; block L's output, the last after the final norm
    last_block_before_norm: dict  # pair label -> cosine at the last block's output BEFORE the final norm
    silenced_cosine: dict         # pair label -> [n_layers, n_heads]
    token_change: np.ndarray      # [n_layers, n_heads]: how far the silenced token's vector moved at block L,
                                  # relative (metrics.similarity.relative_change); the manipulation check

    @property
    def n_layers(self) -> int:
        return self.token_change.shape[0]

    @property
    def n_heads(self) -> int:
        return self.token_change.shape[1]

    def deltas(self, label: str) -> np.ndarray:
        """[n_layers, n_heads]: cosine with head h of block L silenced, minus clean, at block L."""
        return self.silenced_cosine[label] - self.clean_cosine[label][:, None]


@torch.no_grad()
def clean_pass(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(block outputs [n_blocks, seq, d] as hidden_states gives them, the last block's
    output before the final norm [seq, d]) of one clean forward pass, float32."""
    layout = layout_of(model)
    seen = {}
    handle = layout.blocks(model)[-1].register_forward_hook(
        lambda module, args, out: seen.setdefault("last", out[0] if isinstance(out, tuple) else out))
    try:
        states = model(ids, output_hidden_states=True).hidden_states
    finally:
        handle.remove()
    return block_outputs(states), seen["last"][0].float()


@torch.no_grad()
def measure_study(model, prompt: Prompt, engine: str = "fast") -> StudyMeasurement:
    """One clean pass and the sweep of every single-head silencing (block readout)."""
    device = next(model.parameters()).device
    ids = torch.tensor([prompt.tokens.ids], device=device)
    clean, before_norm = clean_pass(model, ids)
    silenced = sweep(model, ids, prompt.token, "block", engine=engine)      # [nL, nH, seq, d]
    t = prompt.token
    change = relative_change(silenced[:, :, t], clean[:, None, t])
    return StudyMeasurement(
        prompt=prompt, engine=engine,
        clean_cosine={p.label: cosine(clean, p.i, p.j).cpu().double().numpy() for p in prompt.pairs},
        last_block_before_norm={p.label: float(cosine(before_norm, p.i, p.j)) for p in prompt.pairs},
        silenced_cosine={p.label: cosine(silenced, p.i, p.j).cpu().double().numpy() for p in prompt.pairs},
        token_change=change.cpu().double().numpy(),
    )
