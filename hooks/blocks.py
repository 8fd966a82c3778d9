"""Private helpers of the fast sweep: run PARTS of a model's own blocks.

Nothing here re-implements attention, a norm or an MLP: every computation calls the
model's own submodules, found by the names in the family's `Architecture` row.

    clean_run(model, layout, input_ids, token)      one clean forward, plus what the sweep reuses
    tail(model, layout, run, layer, heads)          block `layer`'s output at `token`, per silenced head
    Resumer(model, layout, run).block(k, x)         block k on positions token.. of many rows at once
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from hooks.architectures import Layout, _get


@dataclass
class CleanRun:
    """What one clean forward pass leaves behind for the sweep to reuse."""

    token: int
    hidden: tuple        # hidden_states of the clean pass, each [1, seq, d]
    block_in: list       # block L's input, [1, seq, d] (hidden[L] for every L)
    block_out: list      # block L's output before any final norm, [1, seq, d]
    heads_in: list       # input of block L's output projection at `token`, [width]
    cache: object        # the clean pass's DynamicCache (keys/values of every position)


def _first_tensor(args, kwargs, name="hidden_states"):
    return args[0] if args else kwargs[name]


def _as_tensor(out):
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def clean_run(model, layout: Layout, input_ids: torch.Tensor, token: int, cache: bool) -> CleanRun:
    """One clean forward pass with hooks that record block inputs/outputs and heads at `token`."""
    blocks = layout.blocks(model)
    n = layout.n_layers
    block_in, block_out, heads_in = [None] * n, [None] * n, [None] * n
    handles = []
    try:
        for L in range(n):
            def pre(module, args, kwargs, L=L):
                block_in[L] = _first_tensor(args, kwargs).detach()

            def post(module, args, kwargs, out, L=L):
                block_out[L] = _as_tensor(out).detach()

            def proj_pre(module, args, L=L):
                heads_in[L] = args[0][0, token].detach().clone()

            handles.append(blocks[L].register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(blocks[L].register_forward_hook(post, with_kwargs=True))
            handles.append(layout.out_proj(model, L).register_forward_pre_hook(proj_pre))
        base = _get(model, layout.arch.blocks.rsplit(".", 1)[0])   # the model without its LM head
        out = base(input_ids, output_hidden_states=True, use_cache=cache)
    finally:
        for handle in handles:
            handle.remove()
    return CleanRun(token, tuple(out.hidden_states), block_in, block_out, heads_in,
                    getattr(out, "cache", None) if cache else None)


def _maybe(block, name):
    return _get(block, name) if name else (lambda x: x)


@torch.no_grad()
def tail(model, layout: Layout, run: CleanRun, layer: int, heads: list[int],
         complement: bool = False, values: torch.Tensor | None = None) -> torch.Tensor:
    """Block `layer`'s output at position `token`, with each of `heads` silenced there
    (complement=True: every head of the block BUT that one silenced; values [n_heads,
    head_dim]: head h replaced by values[h] instead of zeros -- mean ablation).

    Returns [len(heads) + 1, d]: one row per head, then a CLEAN row (nothing zeroed) that
    the caller compares with the clean pass to check that this family's row in
    ARCHITECTURES describes its block correctly.

    Why this is exact: silencing head h of block L at token t changes nothing before the
    output projection of block L, and after it only position t (the rest of the block is
    position-wise). So block L's silenced output at t is the clean residual input at t
    plus the re-run of out_proj -> (norm) -> residual -> MLP on the edited head vector.
    """
    arch, hd = layout.arch, layout.head_dim
    block = layout.blocks(model)[layer]
    z = run.heads_in[layer].expand(len(heads) + 1, -1).clone()
    for i, h in enumerate(heads):
        if complement:
            kept = z[i, h * hd:(h + 1) * hd].clone()
            z[i] = 0
            z[i, h * hd:(h + 1) * hd] = kept
        else:
            z[i, h * hd:(h + 1) * hd] = 0 if values is None else values[h].to(z.dtype)
    attn = _maybe(block, arch.attn_out_norm)(layout.out_proj(model, layer)(z[:, None, :]))
    mid = run.block_in[layer][0, run.token] + attn
    mlp = _get(block, arch.mlp)(_get(block, arch.mlp_norm)(mid))
    return (mid + _maybe(block, arch.mlp_out_norm)(mlp))[:, 0]


class Resumer:
    """Run the model's own blocks on positions token..seq-1 only, for a batch of rows.

    Positions < token are identical in the clean and in every silenced pass (nothing
    flows backwards), so their keys/values from the clean pass's cache serve every row:
    each block call gets a fresh DynamicCache whose layer k holds the clean keys/values
    of positions < token (broadcast over the rows), a mask from transformers'
    create_causal_mask (so it has the format the model's attention implementation wants)
    and, for rotary families, the model's rotary embedding at positions token.. .
    """

    def __init__(self, model, layout: Layout, run: CleanRun):
        from transformers import DynamicCache
        from transformers.masking_utils import create_causal_mask

        self.model, self.layout, self.run = model, layout, run
        self._cache_cls, self._mask = DynamicCache, create_causal_mask
        self.blocks = layout.blocks(model)
        seq = run.hidden[0].shape[1]
        device = run.hidden[0].device
        self.positions = torch.arange(run.token, seq, device=device)[None]
        self.rotary = _get(model, layout.arch.rotary) if layout.arch.rotary else None

    @torch.no_grad()
    def block(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """x: [rows, seq - token, d], the input of block k at positions token.. -> its output."""
        rows, t = x.shape[0], self.run.token
        cache = self._cache_cls(config=self.model.config)
        if t > 0:
            clean = self.run.cache.layers[k]
            keys, values = clean.keys[:, :, :t], clean.values[:, :, :t]
            cache.layers[k].update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1))
        mask = self._mask(config=self.model.config, inputs_embeds=x, attention_mask=None,
                          cache=cache, position_ids=self.positions, layer_idx=k)
        kwargs = dict(attention_mask=mask, cache=cache, use_cache=True, position_ids=self.positions)
        if self.rotary is not None:
            kwargs["position_embeddings"] = self.rotary(x, self.positions)
        return _as_tensor(self.blocks[k](x, **kwargs))
