"""sweep_and_clean: a sweep and the clean pass it is measured against, from ONE clean pass.

- its sweep is sweep(...)'s, bit for bit;
- its clean pass (hidden_states and every head's output) equals each prompt's own plain
  forward pass alone and the hand-written reference (tests/helpers/reference.py) to the
  sweep's bound, with NaN exactly in the padding, on every family, for left, right and no
  padding and both readouts;
- the fast engine hands over its own clean pass: `from_sweep`, and no forward pass more than
  sweep() runs (the fast path is taken, not a second pass);
- engine="naive", and a fast sweep that had to sweep each prompt alone, compute it with one
  plain pass of the batch (from_sweep False): the same numbers.
"""
from __future__ import annotations

import pytest
import torch

from hooks import head_values, layout_of, sweep, sweep_and_clean
from tests.engine.test_sweep_exact import tiny_model
from tests.helpers.reference import head_outputs, hidden_states
from tests.helpers.sweep_cases import assert_entry, fast_path_only, padded

LENGTHS = (8, 5, 2, 6)


def _batch(side: str, seq: int = 8):
    raw = torch.randint(1, 100, (len(LENGTHS), seq), generator=torch.Generator().manual_seed(3))
    if side == "none":
        return raw[:1], None, torch.tensor([4]), [(0, seq)]
    starts = [0] * len(LENGTHS) if side == "right" else [seq - n for n in LENGTHS]
    ids, mask = padded(raw, list(LENGTHS), starts)
    tokens = torch.tensor([s + n - 1 for s, n in zip(starts, LENGTHS)])
    return ids, mask, tokens, [(s, s + n) for s, n in zip(starts, LENGTHS)]


def _assert_clean_is_each_prompt_alone(model, ids, spans, clean) -> None:
    layout = layout_of(model)
    assert len(clean.hidden) == layout.n_layers + 1
    assert clean.heads.shape == (*ids.shape, layout.n_layers, layout.n_heads, layout.head_dim)
    for b, (start, end) in enumerate(spans):
        alone = ids[b:b + 1, start:end]
        with torch.no_grad():
            plain = model(alone, output_hidden_states=True).hidden_states
        reference = hidden_states(model, alone)
        for k, (got, own, ref) in enumerate(zip(clean.hidden, plain, reference)):
            assert_entry(got[b, start:end], own[0].float())
            assert_entry(got[b, start:end], ref[0].float())
            assert got[b, :start].isnan().all() and got[b, end:].isnan().all(), f"hidden_states[{k}] padding"
        heads = clean.heads[b, start:end]
        assert_entry(heads.flatten(1), head_values(model, alone)[0].flatten(1))
        ref_heads = head_outputs(model, alone)[:, 0].permute(1, 0, 2)          # [seq, L, width]
        assert_entry(heads.flatten(1), ref_heads.flatten(1).float())
        assert clean.heads[b, :start].isnan().all() and clean.heads[b, end:].isnan().all()


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma3_text"])
@pytest.mark.parametrize("readout", ["block", "final"])
@pytest.mark.parametrize("side", ["none", "left", "right"])
def test_the_fast_clean_pass_is_each_prompt_alone_and_the_sweep_unchanged(family, readout, side):
    model = tiny_model(family)
    ids, mask, tokens, spans = _batch(side)
    token = int(tokens[0]) if mask is None else tokens
    with fast_path_only():
        swept, clean = sweep_and_clean(model, ids, token, readout, attention_mask=mask)
        alone = sweep(model, ids, token, readout, attention_mask=mask)
    assert clean.from_sweep
    assert torch.equal(swept.nan_to_num(), alone.nan_to_num()) and torch.equal(swept.isnan(), alone.isnan())
    _assert_clean_is_each_prompt_alone(model, ids, spans, clean)


def _passes(model, run) -> int:
    """How many times `run()` runs the model's first block."""
    calls = []
    handle = layout_of(model).blocks(model)[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        run()
    finally:
        handle.remove()
    return len(calls)


@pytest.mark.parametrize("readout", ["block", "final"])
def test_the_fast_engine_hands_over_its_own_clean_pass_without_another(readout):
    """sweep_and_clean runs the first block exactly as often as sweep alone: the clean pass it
    returns is the engine's (else a caller's second pass would be hidden inside it)."""
    model = tiny_model("llama")
    ids, mask, tokens, _ = _batch("left")
    with fast_path_only():
        alone = _passes(model, lambda: sweep(model, ids, tokens, readout, attention_mask=mask))
        both = _passes(model, lambda: sweep_and_clean(model, ids, tokens, readout, attention_mask=mask))
    assert both == alone


@pytest.mark.parametrize("side", ["none", "left"])
def test_the_naive_engine_computes_the_same_clean_pass_with_one_plain_pass(side):
    model = tiny_model("gpt2")
    ids, mask, tokens, spans = _batch(side)
    token = int(tokens[0]) if mask is None else tokens
    swept, clean = sweep_and_clean(model, ids, token, "block", attention_mask=mask, engine="naive")
    assert not clean.from_sweep
    assert torch.equal(swept.isnan(), sweep(model, ids, token, "block", attention_mask=mask, engine="naive").isnan())
    _assert_clean_is_each_prompt_alone(model, ids, spans, clean)
    plain = _passes(model, lambda: sweep_and_clean(model, ids, token, "block", attention_mask=mask, engine="naive"))
    assert plain == _passes(model, lambda: sweep(model, ids, token, "block", attention_mask=mask,
                                                 engine="naive")) + 1


def test_a_fast_sweep_that_falls_back_still_returns_each_prompts_clean_pass(monkeypatch):
    """Where the padded pass is wrong (positions by column) the engine sweeps each prompt
    alone; the clean pass it returns is then a plain one of the batch, still each prompt's own."""
    import importlib

    blocks_module = importlib.import_module("hooks.blocks")
    model = tiny_model("gpt2")
    ids, mask, tokens, spans = _batch("left")
    monkeypatch.setattr(blocks_module, "position_ids", lambda m: torch.arange(m.shape[1]).expand(m.shape))
    with pytest.warns(RuntimeWarning, match="does not reproduce its most padded prompt"):
        _, clean = sweep_and_clean(model, ids, tokens, "block", attention_mask=mask)
    assert not clean.from_sweep
    _assert_clean_is_each_prompt_alone(model, ids, spans, clean)


def test_bad_arguments_get_the_sweeps_errors():
    model = tiny_model("gpt2")
    ids, mask, tokens, _ = _batch("left")
    with pytest.raises(ValueError, match="readout="):
        sweep_and_clean(model, ids, tokens, "everywhere", attention_mask=mask)
    with pytest.raises(ValueError, match="one position per prompt"):
        sweep_and_clean(model, ids, tokens[:2], "block", attention_mask=mask)
