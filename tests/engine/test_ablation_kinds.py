"""Ablation kinds -- zero, mean, resample -- and the values they put in a head's place
(hooks/values.py), all through the same engine on a padded batch of prompts.

- head_values == the concatenated head outputs of the hand-written reference forward pass
  of each prompt alone (tests/helpers/reference.py); NaN in padding.
- mean_values averages over every real position of every prompt (token=None) or over each
  prompt's token only; resample_values takes each prompt's values from another prompt
  (sources, default a seeded derangement) at that prompt's token.
- sweep(values=...) for each kind: fast == naive for every entry, and an entry == the
  reference forward pass of the prompt alone with the head replaced by hand.
"""
from __future__ import annotations

import pytest
import torch

from hooks import derangement, head_values, layout_of, mean_values, resample_values, sweep
from tests.helpers.reference import gpt2_hidden_states, head_outputs, llama_hidden_states
from tests.helpers.sweep_cases import assert_entry, assert_exact_with_padding, fast_path_only, padded
from tests.engine.test_sweep_exact import tiny_model

REFERENCE = {"gpt2": gpt2_hidden_states, "llama": llama_hidden_states}
LENGTHS, STARTS = [7, 4, 6, 2, 5], [0, 3, 1, 5, 2]          # contiguous runs anywhere in 7 columns
TOKENS = [5, 4, 3, 6, 2]                                    # one real column per prompt


def _set(family):
    model = tiny_model(family)
    raw = torch.randint(1, 100, (len(LENGTHS), 7), generator=torch.Generator().manual_seed(7))
    ids, mask = padded(raw, LENGTHS, STARTS)
    return model, ids, mask


def _alone(ids, b):
    return ids[b:b + 1, STARTS[b]:STARTS[b] + LENGTHS[b]]


def _reference_heads(model, ids, b):
    """[n_layers, own seq, n_heads, head_dim] of prompt b alone, by the hand-written reference."""
    layout = layout_of(model)
    concat = head_outputs(model, _alone(ids, b))[:, 0]
    return concat.view(layout.n_layers, -1, layout.n_heads, layout.head_dim)


@pytest.mark.parametrize("family", sorted(REFERENCE))
def test_head_values_are_the_reference_head_outputs_of_each_prompt_alone(family):
    model, ids, mask = _set(family)
    values = head_values(model, ids, mask)
    assert values.shape == (5, 7, 3, 4, 8)
    for b in range(len(LENGTHS)):
        real = slice(STARTS[b], STARTS[b] + LENGTHS[b])
        want = _reference_heads(model, ids, b).transpose(0, 1)
        torch.testing.assert_close(values[b, real], want, rtol=1e-5, atol=1e-6)
        assert values[b, ~mask[b].bool()].isnan().all()


@pytest.mark.parametrize("family", sorted(REFERENCE))
def test_mean_values_average_real_positions_or_each_prompts_token(family):
    model, ids, mask = _set(family)
    every = torch.cat([_reference_heads(model, ids, b) for b in range(len(LENGTHS))], dim=1)   # [L, all real, H, hd]
    torch.testing.assert_close(mean_values(model, ids, mask), every.mean(1), rtol=1e-5, atol=1e-6)
    at_tokens = torch.stack([_reference_heads(model, ids, b)[:, TOKENS[b] - STARTS[b]] for b in range(len(LENGTHS))])
    torch.testing.assert_close(mean_values(model, ids, mask, token=TOKENS), at_tokens.mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", sorted(REFERENCE))
def test_resample_values_come_from_the_source_prompts_token(family):
    model, ids, mask = _set(family)
    sources = [3, 0, 4, 1, 2]
    got = resample_values(model, ids, TOKENS, mask, sources=sources)
    for b, s in enumerate(sources):
        torch.testing.assert_close(got[b], _reference_heads(model, ids, s)[:, TOKENS[s] - STARTS[s]],
                                   rtol=1e-5, atol=1e-6)


def test_derangement_moves_everyone_and_is_seeded():
    for n in range(2, 30):
        order = derangement(n, seed=n)
        assert sorted(order) == list(range(n)) and all(i != j for i, j in enumerate(order))
        assert derangement(n, seed=n) == order
    assert len({tuple(derangement(10, seed=s)) for s in range(5)}) > 1


@pytest.mark.parametrize("family", sorted(REFERENCE))
@pytest.mark.parametrize("kind", ["zero", "mean", "resample"])
@pytest.mark.parametrize("readout", ["block", "final"])
def test_every_ablation_kind_is_exact_through_the_engine(family, kind, readout):
    model, ids, mask = _set(family)
    token = torch.tensor(TOKENS)
    values = {"zero": None, "mean": mean_values(model, ids, mask),
              "resample": resample_values(model, ids, token, mask, seed=1)}[kind]
    naive = sweep(model, ids, token, readout, attention_mask=mask, values=values, engine="naive")
    with fast_path_only():
        fast = sweep(model, ids, token, readout, attention_mask=mask, values=values)
    assert_exact_with_padding(fast, naive)
    # One entry per prompt against the reference forward pass of that prompt alone.
    for b, (L, h) in enumerate([(0, 0), (1, 3), (2, 1), (2, 2), (0, 3)]):
        t = TOKENS[b] - STARTS[b]
        value = None if values is None else (values[L, h] if values.ndim == 3 else values[b, L, h])
        want = REFERENCE[family](model, _alone(ids, b), replace=[(L, h, t, value, None)])
        want = (want[L + 1] if readout == "block" else want[-1])[0]
        real = slice(STARTS[b], STARTS[b] + LENGTHS[b])
        assert_entry(fast[b, L, h, real], want)


@pytest.mark.parametrize("call, message", [
    (lambda m, ids, mask: resample_values(m, ids[:1], [5], mask[:1]), "needs at least 2 prompts"),
    (lambda m, ids, mask: resample_values(m, ids, TOKENS, mask, sources=[0, 2, 3, 4, 1]),
     r"sources\[0\] = 0: a prompt cannot take its values from itself"),
    (lambda m, ids, mask: resample_values(m, ids, TOKENS, mask, sources=[1, 0]), r"sources=\[1, 0\]: pass one"),
    (lambda m, ids, mask: resample_values(m, ids, TOKENS[:4], mask), r"token has shape \[4\]"),
    (lambda m, ids, mask: resample_values(m, ids, [5, 0, 3, 6, 2], mask),
     "token position 0 of prompt 1 is in its padding"),
    (lambda m, ids, mask: mean_values(m, ids, mask, token=[5, 4, 3, 6, 0]),
     "token position 0 of prompt 4 is in its padding"),
    (lambda m, ids, mask: mean_values(m, ids, mask[:, :6]), r"attention_mask has shape \[5, 6\]"),
    (lambda m, ids, mask: head_values(m, ids[0]), r"input_ids must be a LongTensor of shape \[batch, seq\]"),
])
def test_bad_arguments_of_the_value_builders_are_named(call, message):
    model, ids, mask = _set("gpt2")
    with pytest.raises(ValueError, match=message):
        call(model, ids, mask)
