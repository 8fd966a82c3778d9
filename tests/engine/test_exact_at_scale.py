"""CI twins of the benchmarks' exactness checks (pyproject's addopts skip every benchmark, so
what tests/benchmarks/test_sweep_benchmarks.py and tests/benchmarks/test_patching_benchmarks.py assert about
exactness would otherwise never run in CI): the same comparisons on shapes that take seconds.

- GPT-2 Large's block shape (20 heads x 64, width 1280; random weights), 2 blocks instead of
  36: every (layer, head), both readouts, fast == naive; every position, readout "final";
  a right-padded batch of prompts of 6-14 tokens == each prompt swept alone.
- SmolLM2-135M-Instruct (real weights, bundled) on a left- and a right-padded batch of the
  study's prompt variants, a middle token silenced in each, == each prompt swept alone.

Bound (README): per (layer, head) entry, max|fast - other| <= 1e-5 * max(1, max|other|).
"""
from __future__ import annotations

import pytest
import torch

from hooks import sweep
from tests.helpers.sweep_cases import assert_exact_with_padding, fast_path_only
from tests.engine.test_sweep_exact import assert_exact


@pytest.fixture(scope="module")
def gpt2_large_blocks():
    """GPT-2 Large's block (width 1280, 20 heads of 64), two of them, random weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=1280, n_layer=2, n_head=20, vocab_size=1000, n_positions=64,
                        bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 1000, (1, 9), generator=torch.Generator().manual_seed(0))
    return model, ids


@pytest.mark.parametrize("readout", ["block", "final"])
def test_gpt2_large_block_shape_every_head_is_exact(gpt2_large_blocks, readout):
    model, ids = gpt2_large_blocks
    naive = sweep(model, ids, 4, readout, engine="naive")
    with fast_path_only():
        fast = sweep(model, ids, 4, readout)
    assert fast.shape == (2, 20, 9, 1280)
    assert_exact(fast, naive)


def test_gpt2_large_block_shape_every_position_is_exact(gpt2_large_blocks):
    """The every-position benchmark's check: sweep at all 9 tokens at once == the naive engine
    at each (here on two heads per layer, the benchmark's sampling)."""
    model, ids = gpt2_large_blocks
    with fast_path_only():
        fast = sweep(model, ids, range(9), "final")
    for t in range(9):
        naive = sweep(model, ids, t, "final", heads=[0, 19], engine="naive")
        assert_exact(fast[t][:, [0, 19]], naive)


def _padded_rows(rows: list[list[int]], side: str) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(ids, mask, start column of each prompt) of `rows` padded on `side` with token 0."""
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    starts = [0 if side == "right" else width - len(r) for r in rows]
    for b, (r, s) in enumerate(zip(rows, starts)):
        ids[b, s:s + len(r)] = torch.tensor(r)
        mask[b, s:s + len(r)] = 1
    return ids, mask, starts


def _assert_batch_equals_each_prompt_alone(model, rows, side, readout="block"):
    ids, mask, starts = _padded_rows(rows, side)
    tokens = [s + len(r) // 2 for r, s in zip(rows, starts)]
    with fast_path_only():
        batched = sweep(model, ids, torch.tensor(tokens), readout, attention_mask=mask)
    for b, (r, s) in enumerate(zip(rows, starts)):
        alone = sweep(model, ids[b:b + 1, s:s + len(r)], len(r) // 2, readout)
        assert batched[b, :, :, :s].isnan().all() and batched[b, :, :, s + len(r):].isnan().all()
        assert_exact_with_padding(batched[b, :, :, s:s + len(r)], alone)


def test_gpt2_large_block_shape_padded_batch_equals_each_prompt_alone(gpt2_large_blocks):
    model, _ = gpt2_large_blocks
    g = torch.Generator().manual_seed(1)
    lengths = [6 + (5 * b) % 9 for b in range(6)]                      # 6..14 tokens, the benchmark's
    rows = [torch.randint(0, 1000, (n,), generator=g).tolist() for n in lengths]
    _assert_batch_equals_each_prompt_alone(model, rows, "right")


@pytest.fixture(scope="module")
def smollm2_study_prompts(smollm2_study_input):
    """(SmolLM2-135M-Instruct, the token ids of the first 4 exploration prompts: 9-14 tokens)."""
    from transformers import AutoTokenizer

    from experiments.population import HALVES
    from experiments.prompt_set import read_prompts
    from models.loading import SMOLLM2, resolve

    model, _ = smollm2_study_input               # loads (and unpacks) the bundled model once
    choice = resolve(SMOLLM2)
    tokenizer = AutoTokenizer.from_pretrained(choice.source, local_files_only=choice.local_only)
    rows = [tokenizer(s).input_ids for s in read_prompts(HALVES["exploration"])[:4]]
    assert len({len(r) for r in rows}) > 1, "the prompts need different lengths to be padded"
    return model, rows


@pytest.mark.parametrize("side", ["left", "right"])
def test_smollm2_padded_batch_of_study_prompts_equals_each_prompt_alone(smollm2_study_prompts, side):
    model, rows = smollm2_study_prompts
    _assert_batch_equals_each_prompt_alone(model, rows, side)
