"""Shared pieces of the tests of sweep's jobs: several tokens, donors, padded batches, values.

The ground truth for one entry is the plain hooked forward pass of the prompt ALONE
(`hooked_entry`), or the hand-written reference of tests/helpers/reference.py.
"""
from __future__ import annotations

import importlib
import warnings
from contextlib import contextmanager

import pytest
import torch
from hypothesis import strategies as st

from hooks import ablate, silence
from tests.engine.test_sweep_exact import assert_exact


@contextmanager
def fast_path_only():
    """Inside: the fast engine must take its fast path. A fallback warning, or any route to
    the naive engine or to sweeping prompts one by one, fails the test (else a test of the
    fast engine could pass by running the naive one)."""
    sweep_module = importlib.import_module("hooks.sweep")   # `hooks.sweep` the name is the function
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        patch.setattr(sweep_module, "_naive", lambda *a, **k: pytest.fail("fast path fell back to naive"))
        patch.setattr(sweep_module, "_each_prompt_alone",
                      lambda *a, **k: pytest.fail("fast path swept the prompts one by one"))
        warnings.simplefilter("error", RuntimeWarning)
        yield


def assert_exact_with_padding(fast: torch.Tensor, naive: torch.Tensor) -> None:
    """assert_exact where both are numbers; NaN (padding columns) in exactly the same places."""
    assert torch.equal(fast.isnan(), naive.isnan()), "NaN (padding) columns differ"
    assert_exact(fast.nan_to_num(), naive.nan_to_num())


def subsets(n: int):
    """None (all) or a list of indices in 0..n-1 (repeats allowed, any order)."""
    return st.none() | st.lists(st.integers(0, n - 1), min_size=1, max_size=n + 1)


@st.composite
def tiny_shapes(draw):
    """A tiny GPT-2 or Llama (grouped-query included): (family, tiny_model's shape keywords)."""
    family = draw(st.sampled_from(["gpt2", "llama"]))
    heads = draw(st.sampled_from([1, 2, 4]))
    return family, dict(layers=draw(st.integers(1, 3)), heads=heads, head_dim=draw(st.sampled_from([4, 8])),
                        kv_heads=draw(st.sampled_from([k for k in (1, 2, heads) if heads % k == 0])),
                        seed=draw(st.integers(0, 2**16)))


@torch.no_grad()
def hooked_entry(model, ids, L, h, t, readout, value=None, complement=False):
    """One entry of a sweep the plain way: hidden_states[L+1] ("block") or [-1] ("final"),
    [seq, d], of one forward pass of `ids` [1, seq] with head h of block L edited at t."""
    if value is not None:
        edit = ablate(model, L, h, t, value=value)
    elif complement:
        edit = silence(model, sites=[(L, g, t) for g in range(model.config.num_attention_heads) if g != h])
    else:
        edit = silence(model, L, h, t)
    with edit:
        states = model(ids, output_hidden_states=True).hidden_states
    return (states[L + 1] if readout == "block" else states[-1])[0].float()


def assert_entry(got: torch.Tensor, want: torch.Tensor) -> None:
    """got, want [positions, d]: the sweep's bound for one entry."""
    assert got.shape == want.shape
    if not want.numel():
        return                          # every requested column is padding in this prompt
    err = (got - want).abs().max().item()
    assert err <= 1e-5 * max(1.0, want.abs().max().item()), f"entry differs by {err:.3g}"


def padded(ids: torch.Tensor, lengths: list[int], starts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of `ids` [B, S] with prompt b in columns starts[b]..starts[b]+lengths[b]-1 and the
    rest padding (token 0, mask 0): (input_ids [B, S], attention_mask [B, S])."""
    mask = torch.zeros(ids.shape, dtype=torch.long)
    for b, (n, s) in enumerate(zip(lengths, starts)):
        mask[b, s:s + n] = 1
    return ids * mask, mask
