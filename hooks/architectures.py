"""Where each model family keeps its attention heads: data, not code branches.

Every supported family stores, per block, an attention output projection whose INPUT is
the concatenation of the per-head outputs, shape [batch, seq, n_heads * head_dim]. Head h
is the column slice h*head_dim:(h+1)*head_dim of that input. Silencing a head means
zeroing that slice before the projection mixes the heads together (after the projection
there is no such thing as "a head" any more).

Adding a family is adding a row to ARCHITECTURES, keyed by `config.model_type`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch


class UnsupportedArchitecture(ValueError):
    """The model's family has no row in ARCHITECTURES."""


# How a family decides which kind of attention each layer runs (the kinds are transformers'
# own names, the keys of its config.layer_types):
#   "full"            every layer: full causal attention
#   "layer_types"     layer k: config.layer_types[k] (Gemma-2/3, Qwen2/3: sliding and full layers mixed)
#   "sliding_window"  every layer "sliding_attention" when config.sliding_window is set,
#                     else "full_attention" (Mistral, Phi-3, Qwen3-MoE, Starcoder2)
ATTENTION_KINDS = ("full", "layer_types", "sliding_window")


@dataclass(frozen=True)
class Architecture:
    """Attribute paths (dotted, relative to the *ForCausalLM model) of one family."""

    blocks: str            # the ModuleList of transformer blocks
    out_proj: str          # inside a block: the attention output projection
    n_heads_attr: str      # config attribute holding the number of query heads
    final_norm: str        # the norm applied after the last block
    # What the fast sweep (hooks/blocks.py) needs to re-run the part of a block that
    # follows the output projection, at one position ("" = no such norm in this family):
    #   mid = x + attn_out_norm(out_proj(z))
    #   out = mid + mlp_out_norm(mlp(mlp_norm(mid)))      sequential (GPT-2, Llama, ...)
    #   out = mid + mlp_out_norm(mlp(mlp_norm(x)))        parallel: the MLP reads the block
    #                                                     input x (GPT-NeoX/Pythia, Phi)
    mlp_norm: str = ""     # inside a block: the norm in front of the MLP ("" = none: OLMo-2)
    mlp: str = "mlp"       # inside a block: the MLP (or mixture of experts)
    attn_out_norm: str = ""  # inside a block: a norm on the attention output before the residual add
    mlp_out_norm: str = ""   # inside a block: a norm on the MLP output before the residual add
    parallel_residual: bool | str = False   # True, or the boolean config attribute that says so
    # What it needs to re-enter a block mid-sequence (readout="final", hooks/blocks.Resumer):
    rotary: str = ""       # rotary embedding module whose (cos, sin) every block call takes
    rotary_per_kind: bool = False   # the rotary module also takes the layer's attention kind
    #                                 (Gemma-3: local and global layers rotate differently)
    attention_kinds: str = "full"   # one of ATTENTION_KINDS
    cache_kwarg: str = "cache"      # the keyword by which a block takes its key/value cache

    def __post_init__(self):
        if self.attention_kinds not in ATTENTION_KINDS:
            raise ValueError(f"attention_kinds={self.attention_kinds!r}: use one of {ATTENTION_KINDS}")


_LLAMA_LIKE = Architecture(
    blocks="model.layers",
    out_proj="self_attn.o_proj",
    n_heads_attr="num_attention_heads",
    final_norm="model.norm",
    mlp_norm="post_attention_layernorm",
    rotary="model.rotary_emb",
)
# Mistral-style: one window (or none) for every layer.
_WINDOWED = replace(_LLAMA_LIKE, attention_kinds="sliding_window")
# Qwen2/3-style: config.layer_types says which layers slide.
_LAYER_TYPED = replace(_LLAMA_LIKE, attention_kinds="layer_types")
# Gemma-2 normalises the attention and MLP outputs too, and mixes sliding-window layers into
# full-attention ones; Gemma-3 also gives each kind its own rotary embedding.
_GEMMA2 = replace(_LAYER_TYPED, mlp_norm="pre_feedforward_layernorm", attn_out_norm="post_attention_layernorm",
                  mlp_out_norm="post_feedforward_layernorm")

ARCHITECTURES: dict[str, Architecture] = {
    "gpt2": Architecture(
        blocks="transformer.h",
        out_proj="attn.c_proj",
        n_heads_attr="n_head",
        final_norm="transformer.ln_f",
        mlp_norm="ln_2",
    ),
    # GPT-NeoX (Pythia): fused query_key_value, partial rotary, and (Pythia's setting)
    # attention and MLP in parallel on the block input.
    "gpt_neox": Architecture(
        blocks="gpt_neox.layers",
        out_proj="attention.dense",
        n_heads_attr="num_attention_heads",
        final_norm="gpt_neox.final_layer_norm",
        mlp_norm="post_attention_layernorm",
        parallel_residual="use_parallel_residual",
        rotary="gpt_neox.rotary_emb",
        cache_kwarg="layer_past",
    ),
    "llama": _LLAMA_LIKE,      # SmolLM2
    "gemma": _LLAMA_LIKE,      # Gemma-1: (1 + w) norms and a scaled embedding, Llama's block
    "olmo": _LLAMA_LIKE,       # weightless layer norms, optional q/k/v clipping (inside attention)
    "qwen3": _LAYER_TYPED,     # q/k norms (inside attention)
    "qwen2": _LAYER_TYPED,
    "mistral": _WINDOWED,
    "phi3": _WINDOWED,         # fused qkv_proj and gate_up_proj (inside attention / MLP)
    "qwen3_moe": _WINDOWED,    # the MLP is a mixture of experts, still position-wise
    "starcoder2": _WINDOWED,
    # OLMo-2: no norm in front of attention or MLP; norms on their outputs instead.
    "olmo2": replace(_LLAMA_LIKE, mlp_norm="", attn_out_norm="post_attention_layernorm",
                     mlp_out_norm="post_feedforward_layernorm"),
    # Phi-1/2: attention and MLP in parallel on the same normed input; partial rotary.
    "phi": replace(_LLAMA_LIKE, out_proj="self_attn.dense", final_norm="model.final_layernorm",
                   mlp_norm="input_layernorm", parallel_residual=True),
    "gemma2": _GEMMA2,         # + attention logit soft-capping (inside attention)
    "gemma3_text": replace(_GEMMA2, rotary_per_kind=True),   # + q/k norms (inside attention)
}


def get_attribute(obj, dotted: str):
    for name in dotted.split("."):
        obj = getattr(obj, name)
    return obj


@dataclass(frozen=True)
class Layout:
    """The head layout of one loaded model."""

    family: str
    n_layers: int
    n_heads: int
    head_dim: int
    arch: Architecture
    parallel: bool = False      # the block's MLP reads the block input (see Architecture)
    kinds: tuple[str, ...] = ()  # attention kind of each layer: "full_attention", "sliding_attention", ...

    def blocks(self, model: torch.nn.Module) -> torch.nn.ModuleList:
        return get_attribute(model, self.arch.blocks)

    def out_proj(self, model: torch.nn.Module, layer: int) -> torch.nn.Module:
        return get_attribute(self.blocks(model)[layer], self.arch.out_proj)

    def check(self, layer: int, head: int) -> None:
        """Raise a clear ValueError when (layer, head) does not exist in this model."""
        if not isinstance(layer, int) or not 0 <= layer < self.n_layers:
            raise ValueError(
                f"layer {layer!r} is out of range: this {self.family} model has layers "
                f"0..{self.n_layers - 1}; pass a layer in that range"
            )
        if not isinstance(head, int) or not 0 <= head < self.n_heads:
            raise ValueError(
                f"head {head!r} is out of range: this {self.family} model has heads "
                f"0..{self.n_heads - 1} per layer; pass a head in that range"
            )


def layout_of(model: torch.nn.Module) -> Layout:
    """Look the model's family up in ARCHITECTURES and read its head layout."""
    config = getattr(model, "config", None)
    family = getattr(config, "model_type", None)
    if family not in ARCHITECTURES:
        raise UnsupportedArchitecture(
            f"unsupported architecture {family!r}: supported families are "
            f"{', '.join(sorted(ARCHITECTURES))}; add a row to hooks/architectures.py "
            "for a new one"
        )
    arch = ARCHITECTURES[family]
    n_heads = int(getattr(config, arch.n_heads_attr))
    blocks = get_attribute(model, arch.blocks)
    proj = get_attribute(blocks[0], arch.out_proj)
    # nn.Linear stores [out, in]; GPT-2's Conv1D stores [in, out].
    in_width = proj.in_features if hasattr(proj, "in_features") else proj.weight.shape[0]
    if in_width % n_heads:
        raise UnsupportedArchitecture(
            f"{family}: output projection input width {in_width} is not a multiple of "
            f"{n_heads} heads; this layout cannot be split into heads"
        )
    parallel = arch.parallel_residual
    if isinstance(parallel, str):
        parallel = getattr(config, parallel)
    return Layout(family, len(blocks), n_heads, in_width // n_heads, arch, bool(parallel),
                  attention_kinds(config, arch, len(blocks)))


def attention_kinds(config, arch: Architecture, n_layers: int) -> tuple[str, ...]:
    """The attention kind of each layer, read from the config as the family's row says."""
    if arch.attention_kinds == "layer_types":
        return tuple(config.layer_types[:n_layers])
    if arch.attention_kinds == "sliding_window" and getattr(config, "sliding_window", None) is not None:
        return ("sliding_attention",) * n_layers
    return ("full_attention",) * n_layers
