"""`sweep`: every single-head silencing of a model at one token, as one tensor.

    states = sweep(model, input_ids, token=4)          # [n_layers, n_heads, seq, d_model]
    states[L, h]  ==  hidden_states[L + 1] of a forward pass inside silence(model, L, h, 4)

engine="naive" is the reference: one plain silenced forward pass per (layer, head).
"""
from __future__ import annotations

from typing import Sequence

import torch

from hooks.architectures import layout_of
from hooks.silence import silence

READOUTS = ("block", "final")
ENGINES = ("fast", "naive")


def _check_args(layout, input_ids, token, readout, engine, layers, heads, positions):
    if readout not in READOUTS:
        raise ValueError(f"readout={readout!r}: use one of {READOUTS}")
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: use one of {ENGINES}")
    if input_ids.ndim != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"input_ids must have shape [1, seq]; got {list(input_ids.shape)}")
    seq = input_ids.shape[1]
    if not 0 <= token < seq:
        raise ValueError(f"token position {token} is out of range for an input of {seq} tokens: "
                         f"pass a position in 0..{seq - 1}")
    layers = list(range(layout.n_layers)) if layers is None else [int(v) for v in layers]
    heads = list(range(layout.n_heads)) if heads is None else [int(v) for v in heads]
    positions = list(range(seq)) if positions is None else [int(v) for v in positions]
    for L in layers:
        layout.check(L, 0)
    for h in heads:
        layout.check(0, h)
    for p in positions:
        if not 0 <= p < seq:
            raise ValueError(f"position {p} is out of range for an input of {seq} tokens")
    return layers, heads, positions


@torch.no_grad()
def _naive(model, input_ids, token, readout, layers, heads, positions):
    rows = []
    for L in layers:
        for h in heads:
            with silence(model, L, h, token):
                states = model(input_ids, output_hidden_states=True).hidden_states
            picked = states[L + 1] if readout == "block" else states[-1]
            rows.append(picked[0, positions])
    out = torch.stack(rows).float()
    return out.view(len(layers), len(heads), len(positions), -1)


def sweep(model: torch.nn.Module, input_ids: torch.Tensor, token: int, readout: str = "block", *,
          layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
          positions: Sequence[int] | None = None, engine: str = "fast") -> torch.Tensor:
    """All single-head silencings at `token`: float32 [len(layers), len(heads), len(positions), d_model].

    readout="block": entry [i, j] is block layers[i]'s output (hidden_states[L+1]) when head
    heads[j] of that block is silenced at `token`; readout="final": the last entry of
    hidden_states (after the final norm) of that same silenced forward pass.
    """
    layout = layout_of(model)
    layers, heads, positions = _check_args(layout, input_ids, token, readout, engine, layers, heads, positions)
    return _naive(model, input_ids, token, readout, layers, heads, positions)
