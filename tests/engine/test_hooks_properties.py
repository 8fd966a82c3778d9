"""Property tests of hooks.silence on tiny random GPT-2 and Llama models (no downloads).

For random model sizes, layer, head, token, sequence length and batch size:
- the silenced forward equals a hand-written forward that zeroes the head's slice;
- every block before the layer, and every position before the token, is bitwise unchanged;
- after the `with` block, outputs are bitwise equal to the clean model's again.
"""
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hooks import UnsupportedArchitecture, layout_of, silence
from hooks.precision import bound
from tests.helpers.hypothesis_profiles import examples
from tests.helpers.reference import gpt2_hidden_states, llama_hidden_states
from tests.helpers.tiny_models import VOCAB, tiny

REFERENCE = {"gpt2": gpt2_hidden_states, "llama": llama_hidden_states}
FAMILIES = sorted(REFERENCE)
RTOL, ATOL = bound(torch.float32), 1e-6         # hooks/precision.py: the engine's bound


@st.composite
def scenarios(draw):
    family = draw(st.sampled_from(FAMILIES))
    n_layer = draw(st.integers(1, 4))
    n_head = draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.sampled_from([4, 8]))
    seq = draw(st.integers(1, 12))
    batch = draw(st.integers(1, 3))
    site = (draw(st.integers(0, n_layer - 1)), draw(st.integers(0, n_head - 1)), draw(st.integers(0, seq - 1)))
    seed = draw(st.integers(0, 2**16))
    return family, (n_layer, n_head, head_dim), seq, batch, site, seed


def _inputs(seed, batch, seq):
    """Token ids, never the tiny Llama's padding id 0: its embedding row is zero, so a one-token
    prompt of it gives a residual stream of zeros that no silencing can move (a draw found it)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (batch, seq), generator=g)


def _states(model, ids):
    with torch.no_grad():
        return model(ids, output_hidden_states=True).hidden_states


@settings(max_examples=examples(60), deadline=None)
@given(scenarios())
def test_silenced_forward_equals_hand_written_reference(case):
    family, shape, seq, batch, site, seed = case
    model = tiny(family, *shape)
    ids = _inputs(seed, batch, seq)
    with silence(model, *site):
        hooked = _states(model, ids)
    expected = REFERENCE[family](model, ids, sites=[site])
    for i, (got, want) in enumerate(zip(hooked, expected)):
        torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL, msg=f"hidden_states[{i}] differs")
    # And the reference itself is not trivially equal to the clean model at the token:
    clean_ref = REFERENCE[family](model, ids)
    L, _, t = site
    assert not torch.equal(expected[L + 1][:, t], clean_ref[L + 1][:, t])


# The last block (L = n_layer - 1, read after the final norm) with positions after the token,
# for both families: the "later positions unchanged" check is never empty there.
@example(("gpt2", (2, 2, 4), 6, 2, (1, 1, 2), 0))
@example(("llama", (3, 4, 8), 7, 1, (2, 3, 0), 1))
@settings(max_examples=examples(60), deadline=None)
@given(scenarios())
def test_silencing_touches_only_the_target_position_and_later_blocks(case):
    family, shape, seq, batch, site, seed = case
    model = tiny(family, *shape)
    L, h, t = site
    ids = _inputs(seed, batch, seq)
    clean = _states(model, ids)
    with silence(model, *site):
        hooked = _states(model, ids)
    for i in range(L + 1):  # embeddings and every block before L
        assert torch.equal(hooked[i], clean[i]), f"hidden_states[{i}] (before block {L}) changed"
    for i in range(L + 1, len(clean)):
        assert torch.equal(hooked[i][:, :t], clean[i][:, :t]), f"a position before {t} changed in hidden_states[{i}]"
    # At block L's own output, only position t moves (and it does move). This holds at the last
    # block too: its entry is after the final norm, which is position-wise.
    assert torch.equal(hooked[L + 1][:, t + 1:], clean[L + 1][:, t + 1:]), f"a position after {t} changed"
    assert not torch.equal(hooked[L + 1][:, t], clean[L + 1][:, t]), "the target position did not change"


@settings(max_examples=examples(30), deadline=None)
@given(scenarios())
def test_outputs_are_clean_again_after_the_context_exits(case):
    family, shape, seq, batch, site, seed = case
    model = tiny(family, *shape)
    ids = _inputs(seed, batch, seq)
    clean = _states(model, ids)
    with silence(model, *site):
        _states(model, ids)
    after = _states(model, ids)
    assert all(torch.equal(a, b) for a, b in zip(after, clean))
    assert not any(layout_of(model).out_proj(model, L)._forward_pre_hooks for L in range(shape[0]))


@settings(max_examples=examples(30), deadline=None)
@given(scenarios(), st.integers(1, 3))
def test_multi_site_silencing_equals_reference(case, n_sites):
    family, shape, seq, batch, _, seed = case
    model = tiny(family, *shape)
    g = torch.Generator().manual_seed(seed)
    sites = [(int(torch.randint(shape[0], (1,), generator=g)), int(torch.randint(shape[1], (1,), generator=g)),
              int(torch.randint(seq, (1,), generator=g))) for _ in range(n_sites)]
    ids = _inputs(seed, batch, seq)
    with silence(model, sites=sites):
        hooked = _states(model, ids)
    expected = REFERENCE[family](model, ids, sites=sites)
    for got, want in zip(hooked, expected):
        torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)


# ---- the hook is removed, and errors are clear ---------------------------------------

def _hook_count(model):
    layout = layout_of(model)
    return sum(len(layout.out_proj(model, L)._forward_pre_hooks) for L in range(layout.n_layers))


@pytest.mark.parametrize("family", FAMILIES)
def test_hooks_are_removed_when_the_forward_pass_raises(family):
    model = tiny(family)
    with pytest.raises(ValueError, match="token position 7 is out of range for an input of 5 tokens"):
        with silence(model, 1, 1, 7):
            _states(model, _inputs(0, 1, 5))
    assert _hook_count(model) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with silence(model, 0, 0, 0):
            raise RuntimeError("boom")
    assert _hook_count(model) == 0


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kwargs, message", [
    (dict(layer=3, head=0, token=0), r"layer 3 is out of range: this \w+ model has layers 0\.\.2"),
    (dict(layer=-1, head=0, token=0), r"layer -1 is out of range"),
    (dict(layer=0, head=4, token=0), r"head 4 is out of range: this \w+ model has heads 0\.\.3"),
    (dict(layer=0, head=0, token=-2), r"token position -2 must be an int >= 0"),
    (dict(sites=[]), r"sites=\[\] silences nothing"),
    (dict(sites=[(0, 1)]), r"must be a \(layer, head, token\) triple"),
])
def test_bad_sites_get_a_clear_error_and_install_nothing(family, kwargs, message):
    model = tiny(family)
    with pytest.raises(ValueError, match=message):
        with silence(model, **kwargs):
            pass
    assert _hook_count(model) == 0


def test_unsupported_architecture_is_named():
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32, vocab_size=50))
    with pytest.raises(UnsupportedArchitecture, match="unsupported architecture 'bert': supported families are"):
        with silence(model, 0, 0, 0):
            pass


def test_silence_builds_on_ablate_and_ablate_does_not_import_silence():
    """One owner of the forward pre-hook (hooks/ablate.pre_hooks); no import cycle between the two."""
    import ast
    from pathlib import Path

    def imported(name):
        tree = ast.parse((Path(__file__).parents[2] / "hooks" / f"{name}.py").read_text())
        return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}

    assert "hooks.silence" not in imported("ablate")
    assert "hooks.ablate" in imported("silence")
