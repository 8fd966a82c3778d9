"""Where each model family keeps its attention heads: data, not code branches.

Every supported family stores, per block, an attention output projection whose INPUT is
the concatenation of the per-head outputs, shape [batch, seq, n_heads * head_dim]. Head h
is the column slice h*head_dim:(h+1)*head_dim of that input. Silencing a head means
zeroing that slice before the projection mixes the heads together (after the projection
there is no such thing as "a head" any more).

Adding a family is adding a row to ARCHITECTURES, keyed by `config.model_type`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


class UnsupportedArchitecture(ValueError):
    """The model's family has no row in ARCHITECTURES."""


@dataclass(frozen=True)
class Architecture:
    """Attribute paths (dotted, relative to the *ForCausalLM model) of one family."""

    blocks: str            # the ModuleList of transformer blocks
    out_proj: str          # inside a block: the attention output projection
    n_heads_attr: str      # config attribute holding the number of query heads
    embeddings: str        # token embedding module (used to build inputs_embeds)
    final_norm: str        # the norm applied after the last block
    # What the fast sweep (hooks/blocks.py) needs to re-run the part of a block that
    # follows the output projection, at one position:
    #   mid = resid_in + attn_out_norm(out_proj(z));  out = mid + mlp_out_norm(mlp(mlp_norm(mid)))
    # ("" = no such norm in this family).
    mlp_norm: str = ""     # inside a block: the norm in front of the MLP
    mlp: str = "mlp"       # inside a block: the MLP
    attn_out_norm: str = ""  # inside a block: a norm on the attention output before the residual add
    mlp_out_norm: str = ""   # inside a block: a norm on the MLP output before the residual add
    rotary: str = ""       # rotary embedding module whose (cos, sin) every block call takes
    # True when a block can be re-entered mid-sequence: called on positions t.. with the
    # clean keys/values of positions < t in a DynamicCache, a mask from create_causal_mask
    # and (if any) `rotary` at positions t.. -- i.e. every layer is full causal attention
    # with one kind of position embedding. False: readout="final" uses the naive engine.
    resumable: bool = False


_LLAMA_LIKE = Architecture(
    blocks="model.layers",
    out_proj="self_attn.o_proj",
    n_heads_attr="num_attention_heads",
    embeddings="model.embed_tokens",
    final_norm="model.norm",
    mlp_norm="post_attention_layernorm",
    rotary="model.rotary_emb",
    resumable=True,
)

# Gemma-3 normalises the attention and MLP outputs too, and mixes sliding-window layers
# (with their own rotary embedding) into full-attention ones: not resumable.
_GEMMA3 = Architecture(
    blocks="model.layers",
    out_proj="self_attn.o_proj",
    n_heads_attr="num_attention_heads",
    embeddings="model.embed_tokens",
    final_norm="model.norm",
    mlp_norm="pre_feedforward_layernorm",
    attn_out_norm="post_attention_layernorm",
    mlp_out_norm="post_feedforward_layernorm",
)

ARCHITECTURES: dict[str, Architecture] = {
    "gpt2": Architecture(
        blocks="transformer.h",
        out_proj="attn.c_proj",
        n_heads_attr="n_head",
        embeddings="transformer.wte",
        final_norm="transformer.ln_f",
        mlp_norm="ln_2",
        resumable=True,
    ),
    "llama": _LLAMA_LIKE,      # SmolLM2
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "gemma3_text": _GEMMA3,
}


def _get(obj, dotted: str):
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

    def blocks(self, model: torch.nn.Module) -> torch.nn.ModuleList:
        return _get(model, self.arch.blocks)

    def out_proj(self, model: torch.nn.Module, layer: int) -> torch.nn.Module:
        return _get(self.blocks(model)[layer], self.arch.out_proj)

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
    blocks = _get(model, arch.blocks)
    proj = _get(blocks[0], arch.out_proj)
    # nn.Linear stores [out, in]; GPT-2's Conv1D stores [in, out].
    in_width = proj.in_features if hasattr(proj, "in_features") else proj.weight.shape[0]
    if in_width % n_heads:
        raise UnsupportedArchitecture(
            f"{family}: output projection input width {in_width} is not a multiple of "
            f"{n_heads} heads; this layout cannot be split into heads"
        )
    return Layout(family, len(blocks), n_heads, in_width // n_heads, arch)
