"""The new interventions of hooks/ equal the hand-written reference forward pass
(tests/helpers/reference.py) on tiny random GPT-2 and Llama models, to rtol 1e-5 / atol 1e-6:

- `ablate` at one token or at every token, zeros or a given vector (mean ablation), several
  heads at once, in all or only some batch rows;
- `scale_block`: a block's update scaled by a factor at one token (0 = block skipped there);
- `sweep(values=...)` (fast) equals one `ablate` forward pass per head (naive).
Hooks are gone after the `with`, also after an exception.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hooks import ablate, capture_heads, layout_of, scale_block, sweep
from tests.helpers.hypothesis_profiles import examples
from tests.helpers.reference import gpt2_hidden_states, llama_hidden_states
from tests.helpers.tiny_models import VOCAB, tiny

REFERENCE = {"gpt2": gpt2_hidden_states, "llama": llama_hidden_states}
RTOL, ATOL = 1e-5, 1e-6


@st.composite
def cases(draw):
    family = draw(st.sampled_from(sorted(REFERENCE)))
    n_layer, n_head, head_dim = draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from([4, 8]))
    seq, batch = draw(st.integers(1, 10)), draw(st.integers(1, 3))
    layer = draw(st.integers(0, n_layer - 1))
    heads = draw(st.lists(st.integers(0, n_head - 1), min_size=1, max_size=n_head, unique=True))
    token = draw(st.none() | st.integers(0, seq - 1))
    rows = draw(st.none() | st.lists(st.integers(0, batch - 1), min_size=1, max_size=batch, unique=True))
    return dict(family=family, shape=(n_layer, n_head, head_dim), seq=seq, batch=batch, layer=layer,
                heads=heads, token=token, rows=rows, mean=draw(st.booleans()),
                factor=draw(st.sampled_from([0.0, 0.5, 1.5, -1.0])), seed=draw(st.integers(0, 2**16)))


def _ids(seed, batch, seq):
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


def _states(model, ids):
    with torch.no_grad():
        return model(ids, output_hidden_states=True).hidden_states


def _assert_close(got_states, want_states):
    for i, (got, want) in enumerate(zip(got_states, want_states)):
        torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL, msg=f"hidden_states[{i}] differs")


@settings(max_examples=examples(40), deadline=None)
@given(cases())
def test_ablate_equals_hand_written_reference(case):
    model = tiny(case["family"], *case["shape"])
    ids = _ids(case["seed"], case["batch"], case["seq"])
    hd = case["shape"][2]
    g = torch.Generator().manual_seed(case["seed"])
    value = torch.randn(len(case["heads"]), hd, generator=g) if case["mean"] else None
    with ablate(model, case["layer"], case["heads"], case["token"], value=value, rows=case["rows"]):
        hooked = _states(model, ids)
    replace = [(case["layer"], h, case["token"], None if value is None else value[i], case["rows"])
               for i, h in enumerate(case["heads"])]
    _assert_close(hooked, REFERENCE[case["family"]](model, ids, replace=replace))
    # The hook is gone: the clean model again.
    _assert_close(_states(model, ids), REFERENCE[case["family"]](model, ids))


@settings(max_examples=examples(40), deadline=None)
@given(cases())
def test_scale_block_equals_hand_written_reference(case):
    model = tiny(case["family"], *case["shape"])
    ids = _ids(case["seed"], case["batch"], case["seq"])
    with scale_block(model, case["layer"], case["factor"], case["token"], rows=case["rows"]):
        hooked = _states(model, ids)
    scale = [(case["layer"], case["token"], case["factor"], case["rows"])]
    _assert_close(hooked, REFERENCE[case["family"]](model, ids, scale=scale))
    _assert_close(_states(model, ids), REFERENCE[case["family"]](model, ids))


@pytest.mark.parametrize("family", sorted(REFERENCE))
def test_scale_one_is_the_clean_model_and_zero_skips_the_block(family):
    model = tiny(family)
    ids = _ids(1, 2, 7)
    clean = _states(model, ids)
    with scale_block(model, 1, 1.0, 3):
        _assert_close(_states(model, ids), clean)
    with scale_block(model, 1, 0.0, 3):
        skipped = _states(model, ids)
    torch.testing.assert_close(skipped[2][:, 3], clean[1][:, 3], rtol=RTOL, atol=ATOL)   # = block 1's input
    assert torch.equal(skipped[2][:, :3], clean[2][:, :3])


@pytest.mark.parametrize("family", sorted(REFERENCE))
@pytest.mark.parametrize("readout", ["block", "final"])
def test_sweep_with_values_equals_one_ablate_pass_per_head(family, readout):
    model = tiny(family, n_layer=3, n_head=4, head_dim=8)
    layout = layout_of(model)
    ids = _ids(3, 1, 9)
    values = torch.randn(layout.n_layers, layout.n_heads, layout.head_dim, generator=torch.Generator().manual_seed(0))
    fast = sweep(model, ids, 4, readout, values=values)
    naive = sweep(model, ids, 4, readout, values=values, engine="naive")
    err = (fast - naive).abs().amax().item()
    assert err <= RTOL * max(1.0, naive.abs().max().item()), f"fast differs from naive by {err:.3g}"
    # naive itself is the reference: entry [L, h] = hand-written forward with the head replaced.
    for L, h in [(0, 0), (2, 3)]:
        want = REFERENCE[family](model, ids, replace=[(L, h, 4, values[L, h], None)])
        torch.testing.assert_close(naive[L, h], (want[L + 1] if readout == "block" else want[-1])[0],
                                   rtol=RTOL, atol=ATOL)


def test_capture_heads_records_the_projection_input_unchanged():
    model = tiny("llama")
    ids = _ids(2, 1, 6)
    with capture_heads(model) as seen:
        hooked = _states(model, ids)
    _assert_close(hooked, llama_hidden_states(model, ids))
    layout = layout_of(model)
    assert [L for L, _ in seen] == list(range(layout.n_layers))
    assert seen[0][1].shape == (1, 6, layout.n_heads, layout.head_dim)
    # zeros from ablate == what capture sees after silencing
    with ablate(model, 0, 1, 2), capture_heads(model) as seen2:
        _states(model, ids)
    assert torch.all(seen2[0][1][0, 2, 1] == 0)


@pytest.mark.parametrize("make", [lambda m: ablate(m, 0, 0, 1), lambda m: scale_block(m, 0, 0.5, 1)])
def test_hooks_are_removed_after_an_exception(make):
    model = tiny("gpt2")
    ids = _ids(4, 1, 5)
    clean = _states(model, ids)
    with pytest.raises(RuntimeError):
        with make(model):
            raise RuntimeError("boom")
    _assert_close(_states(model, ids), clean)


@pytest.mark.parametrize("call, message", [
    (lambda m: ablate(m, 7, 0, 1), "layer 7 is out of range"),
    (lambda m: ablate(m, 0, 9, 1), "head 9 is out of range"),
    (lambda m: ablate(m, 0, [], 1), "heads=[] ablates nothing"),
    (lambda m: ablate(m, 0, 0, 1, value=torch.zeros(3)), "value has shape [3]"),
    (lambda m: scale_block(m, 7, 0.5, 1), "layer 7 is out of range"),
])
def test_bad_arguments_are_named(call, message):
    model = tiny("gpt2")
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        with call(model):
            pass


@pytest.mark.parametrize("call, message", [
    (lambda m: ablate(m, 0, 0, 40), "token position 40 is out of range"),
    (lambda m: ablate(m, 0, 0, 1, rows=[5]), "rows [5] are out of range"),
    (lambda m: scale_block(m, 0, 0.5, 40), "token position 40 is out of range"),
])
def test_out_of_range_positions_and_rows_are_named_at_the_forward_pass(call, message):
    model = tiny("gpt2")
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        with call(model):
            _states(model, _ids(0, 1, 5))
