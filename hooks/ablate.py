"""`ablate`: replace attention heads' outputs by a given vector (zeros by default), at one
token or at every token, in all or some batch rows.

    with ablate(model, layer=5, heads=3, token=4):                  # = silence(model, 5, 3, 4)
    with ablate(model, layer=5, heads=3):                           # head 3 silenced at EVERY token
    with ablate(model, layer=5, heads=range(9), token=4):           # all heads of block 5 at token 4
    with ablate(model, layer=5, heads=3, token=4, value=mean_53):   # mean ablation ([head_dim])
    with ablate(model, layer=5, heads=3, token=4, rows=[0]):        # only batch row 0

Like `silence`, it edits the INPUT of block `layer`'s attention output projection (the
concatenated head outputs, [batch, seq, n_heads * head_dim]) through `pre_hooks` below -- the
one place where this project attaches hooks to the heads; hooks/silence.py builds on it --
so the hooks are removed when the `with` exits, however it exits. `rows` lets one batched
forward pass carry several different interventions (one per row), which is how
experiments/scales.py runs every block's intervention of one prompt at once.

`capture_heads` records the same projection input, unchanged, for mean ablation.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch

from hooks.architectures import Layout, layout_of


def check_position(token: int, seq_len: int) -> None:
    if not 0 <= token < seq_len:
        raise ValueError(
            f"token position {token} is out of range for an input of {seq_len} tokens: "
            f"pass a position in 0..{seq_len - 1}"
        )


@contextmanager
def pre_hooks(model: torch.nn.Module, layout: Layout, edits: dict) -> Iterator[None]:
    """Install `edits[layer](x) -> x` as forward pre-hooks on the output projections.

    The one place where this project attaches hooks to a model: every hook it installs
    is removed when the block exits, however it exits.
    """
    handles = []
    try:
        for layer, edit in edits.items():
            def hook(module, args, kwargs, edit=edit):
                return (edit(args[0]), *args[1:]), kwargs
            proj = layout.out_proj(model, layer)
            handles.append(proj.register_forward_pre_hook(hook, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _as_heads(heads) -> list[int]:
    return [int(heads)] if isinstance(heads, int) else [int(h) for h in heads]


def check_rows(rows, batch: int) -> list[int] | slice:
    if rows is None:
        return slice(None)
    bad = [r for r in rows if not 0 <= r < batch]
    if bad:
        raise ValueError(f"rows {bad} are out of range for a batch of {batch}: pass rows in 0..{batch - 1}")
    return list(rows)


@contextmanager
def ablate(model: torch.nn.Module, layer: int, heads: int | Sequence[int], token: int | None = None,
           value: torch.Tensor | None = None, rows: Sequence[int] | None = None) -> Iterator[None]:
    """Replace head(s) `heads` of block `layer` by `value` at position `token` (None: every position).

    value: None (zeros: silencing), [head_dim] (the same vector for every head) or
    [len(heads), head_dim]; in the units of the head outputs. rows: batch rows to edit
    (None: all). Raises a ValueError naming the bad value for a layer, head, token, row
    or value shape that does not fit the model or its input.
    """
    layout = layout_of(model)
    heads = _as_heads(heads)
    if not heads:
        raise ValueError("heads=[] ablates nothing: pass at least one head index")
    for h in heads:
        layout.check(layer, h)
    if token is not None and (not isinstance(token, int) or token < 0):
        raise ValueError(f"token position {token!r} must be an int >= 0, or None for every position")
    hd = layout.head_dim
    if value is not None:
        value = torch.as_tensor(value)
        if value.shape == (hd,):
            value = value.expand(len(heads), hd)
        if value.shape != (len(heads), hd):
            raise ValueError(f"value has shape {list(value.shape)}; pass [{hd}] or [{len(heads)}, {hd}] "
                             f"(one head_dim vector per head)")

    def edit(x: torch.Tensor) -> torch.Tensor:
        """x: [batch, seq, n_heads*head_dim] -> a copy with the heads replaced."""
        if token is not None:
            check_position(token, x.shape[1])
        picked = check_rows(rows, x.shape[0])
        pos = slice(None) if token is None else token
        x = x.clone()
        for i, h in enumerate(heads):
            new = 0 if value is None else value[i].to(x.dtype).to(x.device)
            if isinstance(picked, slice):
                x[:, pos, h * hd:(h + 1) * hd] = new
            else:
                for r in picked:
                    x[r, pos, h * hd:(h + 1) * hd] = new
        return x

    with pre_hooks(model, layout, {layer: edit}):
        yield


@contextmanager
def capture_heads(model: torch.nn.Module) -> Iterator[list]:
    """Record every block's head outputs during the forward passes inside the `with`.

    Yields a list; each forward pass appends one entry per block, in block order:
    (layer, tensor [batch, seq, n_heads, head_dim]) detached, in float32. Nothing is changed.
    """
    layout = layout_of(model)
    seen: list = []

    def recorder(L):
        def edit(x):
            seen.append((L, x.detach().float().reshape(*x.shape[:2], layout.n_heads, layout.head_dim)))
            return x
        return edit

    with pre_hooks(model, layout, {L: recorder(L) for L in range(layout.n_layers)}):
        yield seen
