"""Hand-written forward passes of tiny GPT-2 and Llama models, with head silencing done by
hand: the ground truth the hooks are checked against (the pyvene pattern).

They reuse the models' weights and small leaf modules (layer norms, MLPs, rotary tables)
but write attention, the head split and the zeroing out explicitly, so a hook bug cannot
hide in both places.
"""
from __future__ import annotations

import math

import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb


def _causal_attention(q, k, v):
    """q, k, v: [batch, heads, seq, head_dim] -> [batch, seq, heads * head_dim]."""
    T = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    out = scores.softmax(-1) @ v
    return out.transpose(1, 2).reshape(q.shape[0], T, -1)


def _zero(concat, sites, layer, head_dim, replace=()):
    """Zero each site's head slice; then apply `replace` entries (L, h, t, value, rows):
    head h's slice at position t (None: every position) of batch rows `rows` (None: all)
    becomes `value` ([head_dim]; None: zeros)."""
    concat = concat.clone()
    for L, h, t in sites:
        if L == layer:
            concat[:, t, h * head_dim:(h + 1) * head_dim] = 0
    for L, h, t, value, rows in replace:
        if L != layer:
            continue
        for b in range(concat.shape[0]) if rows is None else rows:
            for p in range(concat.shape[1]) if t is None else [t]:
                concat[b, p, h * head_dim:(h + 1) * head_dim] = 0 if value is None else value
    return concat


def _scale(x_in, x_out, layer, scale):
    """Apply `scale` entries (L, t, factor, rows): at position t (None: every position) of
    batch rows `rows` (None: all), block L's output becomes x_in + factor * (x_out - x_in)."""
    x_out = x_out.clone()
    for L, t, factor, rows in scale:
        if L != layer:
            continue
        for b in range(x_out.shape[0]) if rows is None else rows:
            for p in range(x_out.shape[1]) if t is None else [t]:
                x_out[b, p] = x_in[b, p] + factor * (x_out[b, p] - x_in[b, p])
    return x_out


@torch.no_grad()
def gpt2_hidden_states(model, ids, sites=(), replace=(), scale=()):
    """All hidden states (embeddings, each block, last one after ln_f), sites silenced,
    heads replaced and block updates scaled as `_zero` and `_scale` describe."""
    tr = model.transformer
    nh = model.config.n_head
    B, T = ids.shape
    x = tr.wte(ids) + tr.wpe(torch.arange(T))[None]
    states = [x]
    for L, block in enumerate(tr.h):
        q, k, v = block.attn.c_attn(block.ln_1(x)).split(model.config.n_embd, dim=2)
        q, k, v = (z.view(B, T, nh, -1).transpose(1, 2) for z in (q, k, v))
        concat = _zero(_causal_attention(q, k, v), sites, L, q.shape[-1], replace)
        x_in = x
        x = x + block.attn.c_proj(concat)
        x = x + block.mlp(block.ln_2(x))
        x = _scale(x_in, x, L, scale)
        states.append(x)
    states[-1] = tr.ln_f(x)
    return states


@torch.no_grad()
def llama_hidden_states(model, ids, sites=(), replace=(), scale=()):
    m = model.model
    cfg = model.config
    nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    B, T = ids.shape
    x = m.embed_tokens(ids)
    cos, sin = m.rotary_emb(x, torch.arange(T)[None])
    states = [x]
    for L, layer in enumerate(m.layers):
        a = layer.self_attn
        h = layer.input_layernorm(x)
        q = a.q_proj(h).view(B, T, nh, -1).transpose(1, 2)
        k = a.k_proj(h).view(B, T, nkv, -1).transpose(1, 2)
        v = a.v_proj(h).view(B, T, nkv, -1).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        k, v = (z.repeat_interleave(nh // nkv, dim=1) for z in (k, v))
        concat = _zero(_causal_attention(q, k, v), sites, L, q.shape[-1], replace)
        x_in = x
        x = x + a.o_proj(concat)
        x = x + layer.mlp(layer.post_attention_layernorm(x))
        x = _scale(x_in, x, L, scale)
        states.append(x)
    states[-1] = m.norm(x)
    return states


@torch.no_grad()
def head_outputs(model, ids):
    """The concatenated head outputs of every block in the clean hand-written forward pass:
    [n_layers, batch, seq, n_heads * head_dim] (what a donor contributes in activation
    patching). Read off what `_zero` receives, so the forward passes above stay as they are."""
    global _zero
    seen, original = [], _zero

    def recording(concat, *args, **kwargs):
        seen.append(concat)
        return original(concat, *args, **kwargs)

    _zero = recording
    try:
        (gpt2_hidden_states if model.config.model_type == "gpt2" else llama_hidden_states)(model, ids)
    finally:
        _zero = original
    return torch.stack(seen)
