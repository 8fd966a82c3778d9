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
    cache: object        # the clean pass's keys/values of every layer and position (a DynamicCache), or None


def full_cache():
    """An empty DynamicCache whose layers keep every position (no sliding-window trimming)."""
    from transformers import DynamicCache

    return DynamicCache()


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
        # A DynamicCache built without the config keeps every position of every layer: the
        # one the model would build drops all but the last window of a sliding layer's
        # keys, and the Resumer needs those of positions < token.
        kv = full_cache() if cache else None
        out = base(input_ids, output_hidden_states=True, use_cache=cache, cache=kv)
    finally:
        for handle in handles:
            handle.remove()
    return CleanRun(token, tuple(out.hidden_states), block_in, block_out, heads_in, kv)


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
    plus the re-run of out_proj -> (norm) -> residual -> MLP on the edited head vector
    (a parallel block's MLP reads the unchanged block input: its output is the clean one).
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
    x = run.block_in[layer][0, run.token]
    attn = _maybe(block, arch.attn_out_norm)(layout.out_proj(model, layer)(z[:, None, :]))
    mid = x + attn
    # Parallel blocks feed the MLP the block input, the same for every row.
    mlp = _as_tensor(_get(block, arch.mlp)(_maybe(block, arch.mlp_norm)(x[None, None] if layout.parallel else mid)))
    return (mid + _maybe(block, arch.mlp_out_norm)(mlp))[:, 0]


def mask_builders() -> dict:
    """transformers' own mask function for each attention kind a layer can have."""
    from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask

    return {"full_attention": create_causal_mask, "sliding_attention": create_sliding_window_causal_mask}


def why_not_resumable(model, layout: Layout) -> str:
    """'' when Resumer can re-enter every block of `model` mid-sequence, else the reason."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "an encoder-decoder model cannot be resumed block by block"
    if getattr(config, "use_bidirectional_attention", False) or not getattr(config, "is_causal", True):
        return ("this model's attention is bidirectional, so positions before the silenced token "
                "change too and cannot be reused")
    known = mask_builders()
    for k, kind in enumerate(layout.kinds):
        if kind not in known:
            return f"layer {k} has attention kind {kind!r}, which the resumer cannot re-enter (it knows {sorted(known)})"
    return ""


class Resumer:
    """Run the model's own blocks on positions token..seq-1 only, for a batch of rows.

    Positions < token are identical in the clean and in every silenced pass (nothing
    flows backwards), so their keys/values from the clean pass's cache serve every row:
    each block call gets a fresh cache whose layer k holds the clean keys/values of
    positions < token (broadcast over the rows; ALL of them, also in a sliding-window
    layer: the mask, not the cache, limits what a query sees), the mask transformers builds
    for that layer's attention kind (full or sliding window, in the format the model's
    attention implementation wants) and, for rotary families, the model's rotary
    embedding at positions token.. (Gemma-3: the one for that layer's kind).
    Check first with why_not_resumable.
    """

    def __init__(self, model, layout: Layout, run: CleanRun):
        self.model, self.layout, self.run = model, layout, run
        self.blocks = layout.blocks(model)
        x = run.hidden[0][:, run.token:]
        self.positions = torch.arange(run.token, run.hidden[0].shape[1], device=x.device)[None]
        builders = mask_builders()
        self.masks = [builders[kind] for kind in layout.kinds]
        self.rotary = {}                   # attention kind -> (cos, sin) at positions token..
        if layout.arch.rotary:
            rotary = _get(model, layout.arch.rotary)
            for kind in set(layout.kinds):
                self.rotary[kind] = rotary(x, self.positions, *([kind] if layout.arch.rotary_per_kind else []))

    @torch.no_grad()
    def block(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """x: [rows, seq - token, d], the input of block k at positions token.. -> its output."""
        rows, t = x.shape[0], self.run.token
        cache = full_cache()
        if t > 0:
            clean = self.run.cache.layers[k]
            keys, values = clean.keys[:, :, :t], clean.values[:, :, :t]
            cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), k)
        mask = self.masks[k](config=self.model.config, inputs_embeds=x, attention_mask=None,
                             cache=cache, position_ids=self.positions, layer_idx=k)
        kwargs = {"attention_mask": mask, self.layout.arch.cache_kwarg: cache, "position_ids": self.positions}
        if self.rotary:
            kwargs["position_embeddings"] = self.rotary[self.layout.kinds[k]]
        return _as_tensor(self.blocks[k](x, **kwargs))
