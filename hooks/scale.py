"""`scale_block`: scale what one block writes into the residual stream, at one token.

    with scale_block(model, layer=5, factor=0.0, token=4):    # block 5 skipped at token 4
    with scale_block(model, layer=5, factor=1.5, token=4):    # its update amplified by half

A forward hook on block `layer` (the real Hugging Face module) replaces its output y at
position `token` by  x + factor * (y - x), where x is the block's input there: the block's
update (attention + MLP) is scaled, the residual stream it received is kept. factor 1 is
the clean model, 0 removes the block at that token.

Why the update and not the whole hidden state: cosine similarity is scale-invariant, so
multiplying block L's output vector by 0.5 or 1.5 would leave the cosine at block L's
output exactly unchanged (and zeroing it would make the cosine 0 by definition); scaling the
block's own contribution is the macroscopic analogue of silencing its heads.
The hook is removed when the `with` exits, however it exits.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch

from hooks.ablate import check_position, check_rows
from hooks.architectures import layout_of


@contextmanager
def scale_block(model: torch.nn.Module, layer: int, factor: float, token: int | None = None,
                rows: Sequence[int] | None = None) -> Iterator[None]:
    """Scale block `layer`'s update by `factor` (a float, unitless) at position `token`
    (None: every position), in batch rows `rows` (None: all)."""
    layout = layout_of(model)
    layout.check(layer, 0)
    if token is not None and (not isinstance(token, int) or token < 0):
        raise ValueError(f"token position {token!r} must be an int >= 0, or None for every position")
    factor = float(factor)

    def hook(module, args, kwargs, out):
        x = args[0] if args else kwargs["hidden_states"]
        y = out[0] if isinstance(out, tuple) else out
        if token is not None:
            check_position(token, y.shape[1])
        picked = check_rows(rows, y.shape[0])
        pos = slice(None) if token is None else token
        new = y.clone()
        r = slice(None) if isinstance(picked, slice) else torch.tensor(picked, device=y.device)
        new[r, pos] = x[r, pos] + factor * (y[r, pos] - x[r, pos])
        return (new, *out[1:]) if isinstance(out, tuple) else new

    # prepend: transformers records hidden_states with its own forward hooks on the blocks,
    # installed before ours; ours must run first or hidden_states[layer + 1] would show the
    # unscaled output while later blocks see the scaled one (a test on the reference pins this).
    handle = layout.blocks(model)[layer].register_forward_hook(hook, with_kwargs=True, prepend=True)
    try:
        yield
    finally:
        handle.remove()
