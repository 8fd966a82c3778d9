"""Hand-written forward passes of tiny models of every supported family, with head silencing
done by hand: the ground truth the hooks and the fast sweep are checked against (the pyvene
pattern).

They reuse the models' weights and small leaf modules (norms, MLPs, rotary tables,
embeddings) but write attention, its masks (causal, sliding window), soft-capping, rotary
rotation, the head split and the zeroing out explicitly, so a hook or engine bug cannot hide
in both places. None of this reads hooks/architectures.py: each family's block is written
out from transformers' modeling code.

Every function: (model, ids [batch, seq], sites, replace, scale) -> hidden states (the
embeddings, each block's output, the last one after the final norm), as the model's own
`output_hidden_states` lists them.
"""
from __future__ import annotations

import torch


def _attend(q, k, v, *, scale: float, window: int | None = None, softcap: float | None = None):
    """Causal attention. q [batch, heads, seq, hd], k/v [batch, kv_heads, seq, hd] (grouped:
    query head h reads key/value head h // (heads // kv_heads)) -> [batch, seq, heads * hd].
    window: query i sees keys i - window < j <= i only. softcap: scores -> c * tanh(scores / c)."""
    B, H, T, _ = q.shape
    k, v = (z.repeat_interleave(H // z.shape[1], dim=1) for z in (k, v))
    scores = q @ k.transpose(-1, -2) * scale
    if softcap is not None:
        scores = softcap * torch.tanh(scores / softcap)
    i = torch.arange(T)
    allowed = i[None, :] <= i[:, None]                      # [query, key]
    if window is not None:
        allowed &= i[None, :] > i[:, None] - window
    out = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v
    return out.transpose(1, 2).reshape(B, T, -1)


def _rope(x, cos, sin):
    """Rotate the first cos.shape[-1] features of x [batch, heads, seq, hd] (the rest pass
    unchanged: partial rotary), pairing feature i with i + r/2 (GPT-NeoX / Llama convention).
    cos, sin: [1, seq, r]."""
    r = cos.shape[-1]
    rot, rest = x[..., :r], x[..., r:]
    turned = torch.cat([-rot[..., r // 2:], rot[..., :r // 2]], dim=-1)
    return torch.cat([rot * cos[:, None] + turned * sin[:, None], rest], dim=-1)


def _heads(z, head_dim):
    """[batch, seq, n * head_dim] -> [batch, n, seq, head_dim]."""
    B, T, _ = z.shape
    return z.view(B, T, -1, head_dim).transpose(1, 2)


def _window(cfg, layer: int):
    """The sliding window of `layer`, as the family's modeling code reads its config."""
    types = getattr(cfg, "layer_types", None)
    if types:
        return cfg.sliding_window if types[layer] == "sliding_attention" else None
    return getattr(cfg, "sliding_window", None)


def _out(y):
    return y[0] if isinstance(y, tuple) else y


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
def _stack(x, layers, block, final_norm, head_dim, sites, replace, scale):
    """Run `block(L, layer, x, edit)` over the layers; `edit(concat)` silences/replaces heads
    of the concatenated head outputs before the block's output projection."""
    states = [x]
    for L, layer in enumerate(layers):
        edit = lambda concat, L=L: _zero(concat, sites, L, head_dim, replace)  # noqa: E731
        x_in = x
        x = _scale(x_in, block(L, layer, x, edit), L, scale)
        states.append(x)
    states[-1] = final_norm(x)
    return states


def gpt2_hidden_states(model, ids, sites=(), replace=(), scale=()):
    tr, cfg = model.transformer, model.config
    hd = cfg.n_embd // cfg.n_head
    x = tr.wte(ids) + tr.wpe(torch.arange(ids.shape[1]))[None]

    def block(L, b, x, edit):
        q, k, v = (_heads(z, hd) for z in b.attn.c_attn(b.ln_1(x)).split(cfg.n_embd, dim=2))
        x = x + b.attn.c_proj(edit(_attend(q, k, v, scale=hd ** -0.5)))
        return x + b.mlp(b.ln_2(x))

    return _stack(x, tr.h, block, tr.ln_f, hd, sites, replace, scale)


def llama_hidden_states(model, ids, sites=(), replace=(), scale=()):
    """Llama and the families with its block: x + o_proj(attn(input_layernorm(x))), then
    + mlp(post_attention_layernorm(.)). Written out where they differ: Mistral / Qwen2 /
    Qwen3 / Phi-3 / Starcoder2 sliding windows, Qwen3's per-head q/k norms, Phi-3's fused
    qkv_proj, OLMo's q/k/v clipping. (Gemma-1's scaled embedding and 1 + w norms, Phi-3's
    fused MLP and Qwen3-MoE's experts are in the modules reused.)"""
    m, cfg = model.model, model.config
    nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // nh
    x = m.embed_tokens(ids)
    cos, sin = m.rotary_emb(x, torch.arange(ids.shape[1])[None])
    clip = getattr(cfg, "clip_qkv", None)

    def block(L, layer, x, edit):
        a = layer.self_attn
        h = layer.input_layernorm(x)
        if hasattr(a, "qkv_proj"):                        # Phi-3: one fused projection
            q, k, v = a.qkv_proj(h).split([nh * hd, nkv * hd, nkv * hd], dim=-1)
        else:
            q, k, v = a.q_proj(h), a.k_proj(h), a.v_proj(h)
        if clip is not None:                              # OLMo
            q, k, v = (z.clamp(-clip, clip) for z in (q, k, v))
        q, k, v = _heads(q, hd), _heads(k, hd), _heads(v, hd)
        if hasattr(a, "q_norm"):                          # Qwen3: RMSNorm of each head's q and k
            q, k = a.q_norm(q), a.k_norm(k)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        x = x + a.o_proj(edit(_attend(q, k, v, scale=hd ** -0.5, window=_window(cfg, L))))
        return x + _out(layer.mlp(layer.post_attention_layernorm(x)))

    return _stack(x, m.layers, block, m.norm, hd, sites, replace, scale)


def gemma2_hidden_states(model, ids, sites=(), replace=(), scale=()):
    """Gemma-2 and Gemma-3: norms before AND after attention and MLP, query scale
    query_pre_attn_scalar**-0.5, sliding and full layers (config.layer_types). Gemma-2
    soft-caps attention scores; Gemma-3 instead normalises each head's q and k and gives
    sliding and full layers their own rotary tables."""
    m, cfg = model.model, model.config
    nh, hd = cfg.num_attention_heads, cfg.head_dim
    gemma3 = cfg.model_type == "gemma3_text"
    softcap = None if gemma3 else cfg.attn_logit_softcapping
    x = m.embed_tokens(ids)                               # the module scales by sqrt(hidden_size)
    pos = torch.arange(ids.shape[1])[None]
    rotary = {kind: m.rotary_emb(x, pos, *([kind] if gemma3 else [])) for kind in set(cfg.layer_types)}

    def block(L, layer, x, edit):
        a = layer.self_attn
        h = layer.input_layernorm(x)
        q, k, v = _heads(a.q_proj(h), hd), _heads(a.k_proj(h), hd), _heads(a.v_proj(h), hd)
        if gemma3:
            q, k = a.q_norm(q), a.k_norm(k)
        cos, sin = rotary[cfg.layer_types[L]]
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        concat = _attend(q, k, v, scale=cfg.query_pre_attn_scalar ** -0.5, window=_window(cfg, L), softcap=softcap)
        x = x + layer.post_attention_layernorm(a.o_proj(edit(concat)))
        return x + layer.post_feedforward_layernorm(layer.mlp(layer.pre_feedforward_layernorm(x)))

    return _stack(x, m.layers, block, m.norm, hd, sites, replace, scale)


def olmo2_hidden_states(model, ids, sites=(), replace=(), scale=()):
    """OLMo-2: no norm in front of attention or MLP; RMSNorms of the whole query and key
    projections, and of the attention and MLP outputs before each residual add."""
    m, cfg = model.model, model.config
    hd = cfg.hidden_size // cfg.num_attention_heads
    x = m.embed_tokens(ids)
    cos, sin = m.rotary_emb(x, torch.arange(ids.shape[1])[None])

    def block(L, layer, x, edit):
        a = layer.self_attn
        q, k, v = _heads(a.q_norm(a.q_proj(x)), hd), _heads(a.k_norm(a.k_proj(x)), hd), _heads(a.v_proj(x), hd)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        x = x + layer.post_attention_layernorm(a.o_proj(edit(_attend(q, k, v, scale=hd ** -0.5))))
        return x + layer.post_feedforward_layernorm(layer.mlp(x))

    return _stack(x, m.layers, block, m.norm, hd, sites, replace, scale)


def gpt_neox_hidden_states(model, ids, sites=(), replace=(), scale=()):
    """GPT-NeoX (Pythia): one fused query_key_value projection laid out per head as
    [q | k | v], rotary on the first partial_rotary_factor of each head, and (with
    use_parallel_residual) x + attn(ln1(x)) + mlp(ln2(x)) instead of the sequential block."""
    m, cfg = model.gpt_neox, model.config
    hd = cfg.hidden_size // cfg.num_attention_heads
    x = m.embed_in(ids)
    cos, sin = m.rotary_emb(x, torch.arange(ids.shape[1])[None])

    def block(L, layer, x, edit):
        a = layer.attention
        q, k, v = _heads(a.query_key_value(layer.input_layernorm(x)), 3 * hd).chunk(3, dim=-1)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        attn = a.dense(edit(_attend(q, k, v, scale=hd ** -0.5)))
        if cfg.use_parallel_residual:
            return x + attn + layer.mlp(layer.post_attention_layernorm(x))
        x = x + attn
        return x + layer.mlp(layer.post_attention_layernorm(x))

    return _stack(x, m.layers, block, m.final_layer_norm, hd, sites, replace, scale)


def phi_hidden_states(model, ids, sites=(), replace=(), scale=()):
    """Phi-1/2: x + dense(attn(ln(x))) + mlp(ln(x)) with ONE layer norm shared by both;
    optional per-head layer norms of q and k; partial rotary."""
    m, cfg = model.model, model.config
    hd = cfg.hidden_size // cfg.num_attention_heads
    x = m.embed_tokens(ids)
    cos, sin = m.rotary_emb(x, torch.arange(ids.shape[1])[None])

    def block(L, layer, x, edit):
        a = layer.self_attn
        h = layer.input_layernorm(x)
        q, k, v = _heads(a.q_proj(h), hd), _heads(a.k_proj(h), hd), _heads(a.v_proj(h), hd)
        if cfg.qk_layernorm:
            q, k = a.q_layernorm(q), a.k_layernorm(k)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        return x + a.dense(edit(_attend(q, k, v, scale=hd ** -0.5))) + layer.mlp(h)

    return _stack(x, m.layers, block, m.final_layernorm, hd, sites, replace, scale)


# model_type -> reference forward
REFERENCES = {
    "gpt2": gpt2_hidden_states,
    "llama": llama_hidden_states,
    "mistral": llama_hidden_states,
    "qwen2": llama_hidden_states,
    "qwen3": llama_hidden_states,
    "qwen3_moe": llama_hidden_states,
    "phi3": llama_hidden_states,
    "gemma": llama_hidden_states,
    "olmo": llama_hidden_states,
    "starcoder2": llama_hidden_states,
    "gemma2": gemma2_hidden_states,
    "gemma3_text": gemma2_hidden_states,
    "olmo2": olmo2_hidden_states,
    "gpt_neox": gpt_neox_hidden_states,
    "phi": phi_hidden_states,
}


def hidden_states(model, ids, sites=(), replace=(), scale=()):
    """The reference forward of `model`'s family (see REFERENCES)."""
    return REFERENCES[model.config.model_type](model, ids, sites, replace, scale)


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
        hidden_states(model, ids)
    finally:
        _zero = original
    return torch.stack(seen)
