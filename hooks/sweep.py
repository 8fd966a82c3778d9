"""`sweep`: every single-head silencing of a model at one token, as one tensor.

    states = sweep(model, input_ids, token=4)          # [n_layers, n_heads, seq, d_model]
    states[L, h]  ==  hidden_states[L + 1] of a forward pass inside silence(model, L, h, 4)

engine="naive" is the reference: one plain silenced forward pass per (layer, head).
engine="fast" gives the same numbers (to float32 rounding) from far less work, because
silencing head h of block L at token t changes nothing before block L's output
projection, and nothing at positions < t anywhere:

- readout="block": one clean forward pass, then per block L only the part of block L
  after its output projection, at position t, for all heads at once (hooks/blocks.tail).
  Every other position of hidden_states[L+1] is the clean one.
- readout="final": the block-L rows of "block" are block L's output at positions t..
  (t silenced, the rest clean); they then run through blocks L+1.. at positions t.. only,
  reusing the clean keys/values of positions < t (hooks/blocks.Resumer). Rows of all
  requested layers travel together ("wavefront"): block k runs once on the rows of every
  layer < k, so each block's weights are used in one large batch, not one per (L, h).
  Sliding-window layers resume too: the mask of each layer's kind limits what a query sees.

Each fast computation carries one clean row beside the silenced ones; if that row does
not reproduce the clean pass (a family whose block the Architecture row describes
wrongly), the fast engine warns and falls back to the naive one.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import torch

from hooks.architectures import _get, layout_of
from hooks.blocks import Resumer, clean_run, tail, why_not_resumable
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
    for name, chosen in (("layers", layers), ("heads", heads), ("positions", positions)):
        if not chosen:
            raise ValueError(f"{name}=[] selects nothing: pass None (all) or at least one index")
    for L in layers:
        layout.check(L, 0)
    for h in heads:
        layout.check(0, h)
    for p in positions:
        if not 0 <= p < seq:
            raise ValueError(f"position {p} is out of range for an input of {seq} tokens")
    return layers, heads, positions


def _naive_values(model, input_ids, token, readout, layers, heads, positions, values):
    """The reference for `values`: one plain forward pass per (layer, head) inside `ablate`."""
    from hooks.ablate import ablate

    rows = []
    for L in layers:
        for h in heads:
            with ablate(model, L, h, token, value=values[L, h]):
                states = model(input_ids, output_hidden_states=True).hidden_states
            picked = states[L + 1] if readout == "block" else states[-1]
            rows.append(picked[0, positions])
    return torch.stack(rows).float().view(len(layers), len(heads), len(positions), -1)


def _sites(layout, L, h, token, complement):
    """The sites of entry [L, h]: head h alone, or every head of block L but h."""
    if complement:
        return [(L, g, token) for g in range(layout.n_heads) if g != h]
    return [(L, h, token)]


@torch.no_grad()
def _naive(model, input_ids, token, readout, layers, heads, positions, complement=False, values=None):
    if values is not None:
        return _naive_values(model, input_ids, token, readout, layers, heads, positions, values)
    layout = layout_of(model)
    rows = []
    for L in layers:
        for h in heads:
            sites = _sites(layout, L, h, token, complement)
            with silence(model, sites=sites):
                states = model(input_ids, output_hidden_states=True).hidden_states
            picked = states[L + 1] if readout == "block" else states[-1]
            rows.append(picked[0, positions])
    out = torch.stack(rows).float()
    return out.view(len(layers), len(heads), len(positions), -1)


# Rows x positions that the "final" wavefront pushes through a block at once; more rows
# than this are split into groups of layers (each group re-reads the later blocks'
# weights once). 4096 keeps the largest intermediate (GPT-2 Large's MLP, 4 x 1280 wide)
# near 100 MB.
MAX_TOKENS = 4096


def _close(fast: torch.Tensor, clean: torch.Tensor) -> bool:
    """The sweep's exactness bound: max|a - b| <= 1e-5 * max(1, max|b|)."""
    scale = max(1.0, clean.abs().max().item())
    return (fast.float() - clean.float()).abs().max().item() <= 1e-5 * scale


def _fallback(why: str) -> None:
    warnings.warn(f"sweep(engine='fast'): {why}; using the naive engine for it", RuntimeWarning, stacklevel=3)


@torch.no_grad()
def _fast(model, layout, input_ids, token, readout, layers, heads, positions, complement, values=None):
    seq = input_ids.shape[1]
    if readout == "final" and (why := why_not_resumable(model, layout)):
        _fallback(why)
        return _naive(model, input_ids, token, readout, layers, heads, positions, complement, values)
    n = layout.n_layers
    run = clean_run(model, layout, input_ids, token, cache=readout == "final")
    final_norm = _get(model, layout.arch.final_norm)
    device = run.hidden[0].device
    out = torch.empty(len(layers), len(heads), len(positions), run.hidden[0].shape[-1], device=device)
    pos = torch.tensor(positions, device=device)

    tails, wrong = {}, []
    for L in sorted(set(layers)):
        rows = tail(model, layout, run, L, heads, complement, values=None if values is None else values[L])
        if not _close(rows[-1], run.block_out[L][0, token]):
            wrong.append(L)
        tails[L] = rows[:-1]

    if readout == "block":
        for i, L in enumerate(layers):
            if L in wrong:
                _fallback(f"the re-run tail of block {L} does not reproduce the clean pass")
                out[i] = _naive(model, input_ids, token, readout, [L], heads, positions, complement, values)[0]
                continue
            at_t = tails[L] if L + 1 < n else final_norm(tails[L])   # hidden_states[n] is normed
            out[i] = run.hidden[L + 1][0, positions].float()
            out[i][:, pos == token] = at_t.float()[:, None]
        return out

    if wrong:
        _fallback(f"the re-run tail of block(s) {wrong} does not reproduce the clean pass")
        return _naive(model, input_ids, token, readout, layers, heads, positions, complement, values)
    after = pos >= token
    out[:, :, ~after] = run.hidden[-1][0, pos[~after]].float()
    rows_of = {L: [i for i, v in enumerate(layers) if v == L] for L in tails}
    resumer = Resumer(model, layout, run)
    for group in _groups(sorted(tails), len(heads), seq - token):
        final = _wavefront(run, resumer, final_norm, tails, group, n)
        if final is None:
            _fallback("the re-run blocks do not reproduce the clean pass")
            return _naive(model, input_ids, token, readout, layers, heads, positions, complement, values)
        for (L, lo, hi), y in final:
            for i in rows_of[L]:
                out[i, lo:hi][:, after] = y[:, pos[after] - token].float()
    return out


def _groups(layers: list[int], n_heads: int, q: int):
    """Split the (layer, heads lo:hi) rows into groups of at most MAX_TOKENS // q rows."""
    per_group = max(2, MAX_TOKENS // q) - 1        # one row of every group is the clean probe
    group, size = [], 0
    for L in layers:
        for lo in range(0, n_heads, per_group):
            hi = min(n_heads, lo + per_group)
            if size + hi - lo > per_group:
                yield group
                group, size = [], 0
            group.append((L, lo, hi))
            size += hi - lo
    if group:
        yield group


def _wavefront(run, resumer, final_norm, tails, group, n):
    """Run one group's rows from their block to the final norm; None if the probe fails."""
    t = run.token
    first = group[0][0]
    # Row 0 is a clean probe that enters with the group's first rows.
    x = run.block_out[first][:, t:]
    entering = {}
    for L, lo, hi in group:
        entering.setdefault(L, []).append((lo, hi))
    spans = []                                   # ((L, lo, hi), row range in x)
    for k in range(first, n):
        for lo, hi in entering.get(k, ()):
            rows = run.block_out[k][:, t:].expand(hi - lo, -1, -1).clone()
            rows[:, 0] = tails[k][lo:hi]         # block k's output: only position t changed
            spans.append(((k, lo, hi), (x.shape[0], x.shape[0] + hi - lo)))
            x = torch.cat([x, rows])
        if k + 1 < n:
            x = resumer.block(k + 1, x)
    y = final_norm(x)
    if not _close(y[0], run.hidden[-1][0, t:]):
        return None
    return [(key, y[a:b]) for key, (a, b) in spans]


def sweep(model: torch.nn.Module, input_ids: torch.Tensor, token: int, readout: str = "block", *,
          layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
          positions: Sequence[int] | None = None, engine: str = "fast",
          complement: bool = False, values: torch.Tensor | None = None) -> torch.Tensor:
    """All single-head silencings at `token`: float32 [len(layers), len(heads), len(positions), d_model].

    readout="block": entry [i, j] is block layers[i]'s output (hidden_states[L+1]) when head
    heads[j] of that block is silenced at `token`; readout="final": the last entry of
    hidden_states (after the final norm) of that same silenced forward pass.

    engine="fast" (default) and engine="naive" agree to float32 rounding (max|diff| <=
    1e-5 * max(1, max|naive|) per entry [i, j]), for every family in hooks/architectures.py,
    sliding-window layers included. The fast engine uses the naive one, always with a
    RuntimeWarning that says why, where it cannot be exact: readout="final" on a model
    whose blocks cannot be re-entered mid-sequence (bidirectional attention, an attention
    kind other than full or sliding-window), and wherever its clean check row fails to
    reproduce the clean pass.

    complement=True silences every head of the block EXCEPT heads[j] instead (a
    macroscopic intervention the study uses as a positive control).

    values [n_layers, n_heads, head_dim] (float, units of the head outputs): head h of block L
    is REPLACED by values[L, h] at `token` instead of zeroed (mean ablation; see
    hooks.ablate). Not combinable with complement.
    """
    layout = layout_of(model)
    layers, heads, positions = _check_args(layout, input_ids, token, readout, engine, layers, heads, positions)
    if complement and layout.n_heads < 2:
        raise ValueError("complement=True silences all heads but one; this model has 1 head per block")
    if values is not None:
        if complement:
            raise ValueError("values= replaces single heads; it cannot be combined with complement=True")
        want = (layout.n_layers, layout.n_heads, layout.head_dim)
        if tuple(values.shape) != want:
            raise ValueError(f"values has shape {list(values.shape)}; pass {list(want)} "
                             "(one head_dim vector per layer and head)")
        values = values.to(input_ids.device)
    if engine == "naive":
        return _naive(model, input_ids, token, readout, layers, heads, positions, complement, values)
    return _fast(model, layout, input_ids, token, readout, layers, heads, positions, complement, values)
