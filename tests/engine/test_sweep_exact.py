"""sweep(engine="fast") gives the numbers of engine="naive" (one silenced forward pass per
(layer, head)), to float32 rounding, for every supported family and both readouts.

Exactness bound, per (layer, head): max|fast - naive| <= 1e-5 * max(1, max|naive|);
cosines between positions computed from either agree to 1e-6.
Tiny random models are built here (no downloads); the real-model test uses SmolLM2-135M-Instruct
from the local cache and is skipped where it is not available.
"""
from __future__ import annotations

import importlib
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks import UnsupportedArchitecture, silence, sweep
from hooks.precision import bound
from tests.helpers.hypothesis_profiles import examples
from tests.helpers.reference import hidden_states
from tests.helpers.tiny_models import without_window

sweep_module = importlib.import_module("hooks.sweep")   # `hooks.sweep` the name is the function

RTOL = bound(torch.float32)          # the engine's bound for float32 (hooks/precision.py)
COS_TOL = 1e-6
WINDOW = 4               # the windowed families' sliding window (tiny_model): shorter than the inputs


def assert_exact(fast: torch.Tensor, naive: torch.Tensor) -> None:
    """The sweep's contract, checked per (layer, head) entry."""
    assert fast.dtype == torch.float32 and fast.shape == naive.shape
    err = (fast - naive).abs().amax(dim=(-2, -1))
    scale = naive.abs().amax(dim=(-2, -1)).clamp(min=1.0)
    worst = (err / scale).max().item()
    assert worst <= RTOL, f"fast differs from naive by {worst:.3g} (relative) > {RTOL}"


def cosines(states: torch.Tensor, i: int, j: int) -> torch.Tensor:
    return F.cosine_similarity(states[:, :, i], states[:, :, j], dim=-1)


def assert_cosines(fast: torch.Tensor, naive: torch.Tensor, pairs) -> None:
    for i, j in pairs:
        diff = (cosines(fast, i, j) - cosines(naive, i, j)).abs().max().item()
        assert diff <= COS_TOL, f"cosine({i}, {j}) differs by {diff:.3g} > {COS_TOL}"


# ---------------------------------------------------------------------------------------
# Tiny random models of every family
# ---------------------------------------------------------------------------------------

def tiny_model(family: str, *, layers=3, heads=4, head_dim=8, kv_heads=2, seed=0, attn="sdpa"):
    import transformers as tf

    torch.manual_seed(seed)
    width = heads * head_dim
    common = dict(vocab_size=100, attn_implementation=attn)
    if family == "gpt2":
        config = tf.GPT2Config(n_embd=width, n_layer=layers, n_head=heads, n_positions=64,
                               bos_token_id=0, eos_token_id=0, **common)
        model = tf.GPT2LMHeadModel(config)
    else:
        llama_like = dict(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                          num_key_value_heads=kv_heads, intermediate_size=2 * width,
                          max_position_embeddings=64, bos_token_id=0, eos_token_id=0, pad_token_id=0, **common)
        cls = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
               "mistral": (tf.MistralConfig, tf.MistralForCausalLM),
               "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
               "gemma3_text": (tf.Gemma3TextConfig, tf.Gemma3ForCausalLM)}[family]
        # Windows of WINDOW tokens, shorter than the 8-9 token inputs of the tests below;
        # Qwen2 and Gemma-3 alternate sliding and full layers (both kinds in any 2+ layers).
        alternating = ["full_attention" if i % 2 else "sliding_attention" for i in range(layers)]
        if family == "mistral":
            llama_like.update(sliding_window=WINDOW)
        if family == "qwen2":
            llama_like.update(use_sliding_window=True, sliding_window=WINDOW, layer_types=alternating)
        if family == "gemma3_text":
            llama_like.update(head_dim=head_dim, sliding_window=WINDOW, query_pre_attn_scalar=head_dim,
                              layer_types=alternating)
        config = cls[0](**llama_like)
        model = cls[1](config)
    return model.eval().float()


def random_ids(seq: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 100, (1, seq), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def _fast_path_must_not_fall_back():
    # A fallback to the naive engine would make these tests pass trivially: make it fail.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


# ---------------------------------------------------------------------------------------
# Property: fast == naive over random sizes, inputs, sites and subsets
# ---------------------------------------------------------------------------------------

@st.composite
def cases(draw):
    family = draw(st.sampled_from(["gpt2", "llama"]))
    heads = draw(st.sampled_from([1, 2, 3, 4, 6]))
    kv_heads = draw(st.sampled_from([k for k in (1, 2, 3, heads) if heads % k == 0]))
    shape = dict(layers=draw(st.integers(1, 4)), heads=heads, head_dim=draw(st.sampled_from([4, 8, 16])),
                 kv_heads=kv_heads, seed=draw(st.integers(0, 2**16)))
    seq = draw(st.integers(1, 12))
    token = draw(st.integers(0, seq - 1))
    sub = lambda n: st.none() | st.lists(st.integers(0, n - 1), min_size=1, max_size=n + 1)  # noqa: E731
    return dict(family=family, shape=shape, seq=seq, token=token,
                readout=draw(st.sampled_from(["block", "final"])),
                layers=draw(sub(shape["layers"])), heads=draw(sub(heads)), positions=draw(sub(seq)),
                ids_seed=draw(st.integers(0, 2**16)),
                # complement: every head of the block but one silenced (the study's control)
                complement=heads > 1 and draw(st.booleans()))


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_fast_equals_naive(case):
    model = tiny_model(case["family"], **case["shape"])
    ids = random_ids(case["seq"], case["ids_seed"])
    kw = dict(layers=case["layers"], heads=case["heads"], positions=case["positions"],
              complement=case["complement"])
    fast = sweep(model, ids, case["token"], case["readout"], **kw)
    naive = sweep(model, ids, case["token"], case["readout"], engine="naive", **kw)
    assert_exact(fast, naive)
    n_pos = fast.shape[2]
    assert_cosines(fast, naive, [(i, j) for i in range(n_pos) for j in range(i + 1, n_pos)])


@pytest.mark.parametrize("family", ["gpt2", "llama", "mistral", "qwen2", "gemma3_text"])
@pytest.mark.parametrize("readout", ["block", "final"])
def test_every_family(family, readout):
    """Mistral, Qwen2 and Gemma-3 with a window of 4: position 8 does not see token 4 in a
    sliding layer; Qwen2 and Gemma-3 run sliding (0, 2) and full (1) layers."""
    model = tiny_model(family, layers=3, heads=4, head_dim=8, kv_heads=2)
    ids = random_ids(9)
    fast = sweep(model, ids, 4, readout)
    naive = sweep(model, ids, 4, readout, engine="naive")
    assert_exact(fast, naive)
    assert_cosines(fast, naive, [(4, 8), (2, 8)])
    for L, h in [(0, 1), (1, 3)]:          # a sliding and a full layer of the windowed families
        ref = hidden_states(model, ids, sites=[(L, h, 4)])
        assert_exact(fast[L, h][None, None], (ref[L + 1] if readout == "block" else ref[-1])[0][None, None])


@pytest.mark.parametrize("family", ["mistral", "qwen2", "gemma3_text"])
def test_the_windows_of_test_every_family_matter(family):
    """Without its window (the same weights, the window longer than the input) each windowed
    model's clean pass differs from position WINDOW on, so test_every_family tests windows."""
    model = tiny_model(family, layers=3, heads=4, head_dim=8, kv_heads=2)
    kinds = set(getattr(model.config, "layer_types", None) or ["sliding_attention"])
    assert "sliding_attention" in kinds and (family == "mistral" or "full_attention" in kinds)
    ids = random_ids(9)
    with torch.no_grad():
        clean = model(ids, output_hidden_states=True).hidden_states[-1]
        unwindowed = without_window(model)(ids, output_hidden_states=True).hidden_states[-1]
    assert torch.allclose(clean[:, :WINDOW], unwindowed[:, :WINDOW], rtol=1e-5, atol=1e-5)
    assert (clean[:, WINDOW:] - unwindowed[:, WINDOW:]).abs().max() > 1e-3


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("readout", ["block", "final"])
def test_fast_path_is_really_taken(family, readout, monkeypatch):
    """For these families neither readout may quietly fall back to the naive engine."""
    model = tiny_model(family)
    ids = random_ids(9)
    naive = sweep(model, ids, 4, readout, engine="naive")
    monkeypatch.setattr(sweep_module, "_naive", lambda *a, **k: pytest.fail("fast path fell back to naive"))
    assert_exact(sweep(model, ids, 4, readout), naive)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_eager_attention(family):
    model = tiny_model(family, attn="eager")
    ids = random_ids(9)
    for readout in ("block", "final"):
        assert_exact(sweep(model, ids, 4, readout), sweep(model, ids, 4, readout, engine="naive"))


def test_groups_bound_memory(monkeypatch):
    """With a tiny row budget the "final" wavefront splits into many groups: same numbers."""
    model = tiny_model("llama", layers=4)
    ids = random_ids(9)
    naive = sweep(model, ids, 3, "final", engine="naive")
    monkeypatch.setattr(sweep_module, "MAX_TOKENS", 13)    # 2 rows of 6 positions per group
    assert_exact(sweep(model, ids, 3, "final"), naive)


@pytest.mark.parametrize("readout", ["block", "final"])
def test_wrong_architecture_row_falls_back_to_naive(readout, monkeypatch):
    """A row that describes the block tail wrongly is caught by the clean check row."""
    import dataclasses

    from hooks.architectures import ARCHITECTURES

    model = tiny_model("llama")
    ids = random_ids(9)
    naive = sweep(model, ids, 4, readout, engine="naive")
    wrong = dataclasses.replace(ARCHITECTURES["llama"], mlp_norm="self_attn.o_proj")   # shape fits, sense does not
    monkeypatch.setitem(ARCHITECTURES, "llama", wrong)
    with pytest.warns(RuntimeWarning, match="using the naive engine"):
        fast = sweep(model, ids, 4, readout)
    assert_exact(fast, naive)


def test_silenced_head_changes_only_what_it_can():
    model = tiny_model("gpt2")
    ids = random_ids(9)
    clean = model(ids, output_hidden_states=True).hidden_states
    block = sweep(model, ids, 4, "block")
    final = sweep(model, ids, 4, "final")
    for L in range(3):
        other = [p for p in range(9) if p != 4]
        assert torch.equal(block[L][:, other], clean[L + 1][0, other].expand(4, -1, -1))
        assert torch.equal(final[L][:, :4], clean[-1][0, :4].expand(4, -1, -1))
        assert (block[L][:, 4] - clean[L + 1][0, 4]).abs().amax(dim=-1).min() > 0


# ---------------------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpt2_tiny():
    return tiny_model("gpt2")


@pytest.mark.parametrize("kwargs, match", [
    (dict(readout="middle"), "readout='middle'"),
    (dict(engine="turbo"), "engine='turbo'"),
    (dict(token=9), "token position 9 is out of range"),
    (dict(token=-1), "token position -1 is out of range"),
    (dict(layers=[3]), "layer 3 is out of range"),
    (dict(layers=[-1]), "layer -1 is out of range"),
    (dict(heads=[4]), "head 4 is out of range"),
    (dict(positions=[9]), "position 9 is out of range"),
    (dict(layers=[]), r"layers=\[\] selects nothing"),
    (dict(heads=[]), r"heads=\[\] selects nothing"),
    (dict(positions=[]), r"positions=\[\] selects nothing"),
    (dict(input_ids=torch.zeros(2, 9, dtype=torch.long)), r"input_ids must have shape \[1, seq\]"),
    (dict(input_ids=torch.zeros(9, dtype=torch.long)), r"input_ids must have shape \[1, seq\]"),
])
def test_bad_arguments(gpt2_tiny, kwargs, match):
    args = dict(input_ids=random_ids(9), token=4, readout="block")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sweep(gpt2_tiny, **args)


def test_unsupported_architecture():
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                 intermediate_size=64, vocab_size=100))
    with pytest.raises(UnsupportedArchitecture, match="unsupported architecture 'bert'"):
        sweep(model, random_ids(5), 2)


# ---------------------------------------------------------------------------------------
# The real model: SmolLM2-135M-Instruct, the study sentence, all 270 (layer, head)
# ---------------------------------------------------------------------------------------

SENTENCE = "Peanut butter and pineapple taste great on pizza"


@pytest.fixture(scope="module")
def smollm2(smollm2_study_input):
    model, ids = smollm2_study_input
    assert ids.shape == (1, 9)
    # The reference, computed once for both readouts: one silenced forward pass per head.
    block, final = [], []
    with torch.no_grad():
        for L in range(30):
            for h in range(9):
                with silence(model, L, h, 4):
                    states = model(ids, output_hidden_states=True).hidden_states
                block.append(states[L + 1][0])
                final.append(states[-1][0])
    ref = {"block": torch.stack(block).view(30, 9, 9, -1), "final": torch.stack(final).view(30, 9, 9, -1)}
    return model, ids, ref


# ~30 s on 2 cores (the reference's 270 forward passes, shared by both readouts): not "slow".
@pytest.mark.parametrize("readout", ["block", "final"])
def test_smollm2_all_heads(smollm2, readout):
    model, ids, ref = smollm2
    fast = sweep(model, ids, 4, readout)
    assert fast.shape == (30, 9, 9, 576)
    assert_exact(fast, ref[readout])
    assert_cosines(fast, ref[readout], [(4, 8), (2, 8)])
    # The reference above is the naive engine's definition; spot-check the engine itself.
    some = sweep(model, ids, 4, readout, layers=[0, 29], heads=[0, 8], engine="naive")
    assert_exact(fast[[0, 29]][:, [0, 8]], some)


def _out_proj_calls(model):
    """Count the calls of every output projection (forward hooks); returns (counts, handles)."""
    from hooks import layout_of

    layout, counts, handles = layout_of(model), [], []
    for L in range(layout.n_layers):
        counts.append(0)

        def hook(module, args, out, L=L):
            counts[L] += 1

        handles.append(layout.out_proj(model, L).register_forward_hook(hook))
    return counts, handles


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_the_tail_projects_only_the_silenced_heads_columns(family):
    """Every head swept in order (the default), on GPT-2's Conv1D and Llama's nn.Linear: tail
    never calls the output projection (hooks/blocks._project takes each head's rows of the
    weight, one pass for all of them); the clean pass calls it once per block. A strict
    subset of heads projects whole (a second call); same numbers. GPT-2 starts its biases at
    zero: they are drawn here, so a projection that dropped its bias would show."""
    from hooks import layout_of
    from tests.helpers.sweep_cases import fast_path_only          # (it imports this module)

    model = tiny_model(family)
    layout = layout_of(model)
    with torch.no_grad():
        for L in range(layout.n_layers):
            if layout.out_proj(model, L).bias is not None:
                layout.out_proj(model, L).bias.normal_(generator=torch.Generator().manual_seed(L))
    ids = random_ids(9)
    naive = sweep(model, ids, 4, "block", engine="naive")
    counts, handles = _out_proj_calls(model)
    try:
        with fast_path_only():
            fast = sweep(model, ids, 4, "block")
        assert counts == [1] * len(counts)
        assert_exact(fast, naive)
        counts[:] = [0] * len(counts)
        with fast_path_only():
            subset = sweep(model, ids, 4, "block", heads=[3, 1])
        assert counts == [2] * len(counts)
        assert_exact(subset, naive[:, [3, 1]])
    finally:
        for handle in handles:
            handle.remove()
