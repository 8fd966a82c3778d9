"""sweep(token=[t0, t1, ...]): every position of one prompt at once, a leading axis of jobs.

Entry [k, i, j] is the sweep at token[k]: equal, to the sweep's bound (1e-5 * max(1,
max|naive|) per entry), to engine="naive" for every entry, and for a sampled entry to the
plain hooked forward pass (silence / ablate) and to the hand-written reference forward
(tests/helpers/reference.py, independent of hooks/), on tiny random GPT-2 and Llama
(Hypothesis) and on SmolLM2-135M-Instruct for a sample of all 9 x 30 x 9.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hooks import layout_of, sweep
from tests.helpers.hypothesis_profiles import examples
from tests.helpers.reference import hidden_states
from tests.helpers.sweep_cases import assert_entry, fast_path_only, hooked_entry, subsets, tiny_shapes
from tests.engine.test_sweep_exact import assert_exact, random_ids, tiny_model


@st.composite
def cases(draw):
    family, shape = draw(tiny_shapes())
    heads = shape["heads"]
    seq = draw(st.integers(1, 9))
    tokens = draw(st.lists(st.integers(0, seq - 1), min_size=1, max_size=min(seq, 4), unique=True))
    edit = draw(st.sampled_from(["zero", "complement", "values", "values per token"] if heads > 1
                                else ["zero", "values", "values per token"]))
    return dict(family=family, shape=shape, seq=seq, tokens=tokens, edit=edit,
                readout=draw(st.sampled_from(["block", "final"])),
                layers=draw(subsets(shape["layers"])), heads=draw(subsets(heads)), positions=draw(subsets(seq)),
                ids_seed=draw(st.integers(0, 2**16)), pick=draw(st.integers(0, 2**16)))


def _values(model, edit, n_tokens, seed):
    layout = layout_of(model)
    shape = (layout.n_layers, layout.n_heads, layout.head_dim)
    g = torch.Generator().manual_seed(seed)
    if edit == "values":
        return torch.randn(*shape, generator=g)
    if edit == "values per token":
        return torch.randn(n_tokens, *shape, generator=g)
    return None


# Once caught only by chance: a strict subset of heads, not in head order, with values. Entry j
# of heads=[2, 0] is head 2, so reading the values of the j-th head instead of head h's
# (hooks/blocks.tail, values[:, i] for values[:, h]) puts head 0's values into head 2.
@example(case=dict(family="llama", shape=dict(layers=2, heads=4, head_dim=4, kv_heads=2, seed=0), seq=6,
                   tokens=[3, 1], edit="values", readout="final", layers=None, heads=[2, 0], positions=None,
                   ids_seed=0, pick=0))
@settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_every_position_equals_naive_and_the_hooked_forward(case):
    model = tiny_model(case["family"], **case["shape"])
    ids = random_ids(case["seq"], case["ids_seed"])
    values = _values(model, case["edit"], len(case["tokens"]), case["ids_seed"])
    kw = dict(layers=case["layers"], heads=case["heads"], positions=case["positions"],
              complement=case["edit"] == "complement", values=values)
    naive = sweep(model, ids, case["tokens"], case["readout"], engine="naive", **kw)
    with fast_path_only():
        fast = sweep(model, ids, case["tokens"], case["readout"], **kw)
    assert fast.shape[0] == len(case["tokens"])
    assert_exact(fast, naive)
    # One entry, picked at random, against the plain hooked forward pass.
    layout = layout_of(model)
    layers = case["layers"] or list(range(layout.n_layers))
    heads = case["heads"] or list(range(layout.n_heads))
    positions = case["positions"] or list(range(case["seq"]))
    k, i, j = (case["pick"] % len(case["tokens"]), case["pick"] % len(layers), case["pick"] % len(heads))
    L, h, t = layers[i], heads[j], case["tokens"][k]
    value = None if values is None else (values[L, h] if values.ndim == 3 else values[k, L, h])
    want = hooked_entry(model, ids, L, h, t, case["readout"], value=value, complement=kw["complement"])
    assert_entry(fast[k, i, j], want[positions])
    # And against the hand-written forward (tests/helpers/reference.py), which shares no code with the
    # hooks: the head zeroed (or every other head of the block, or replaced) by hand.
    others = [g for g in range(layout.n_heads) if g != h] if kw["complement"] else [h]
    sites = [(L, g, t) for g in others] if value is None else []
    replace = [] if value is None else [(L, h, t, value, None)]
    ref = hidden_states(model, ids, sites=sites, replace=replace)
    assert_entry(fast[k, i, j], (ref[L + 1] if case["readout"] == "block" else ref[-1])[0, positions].float())


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("readout", ["block", "final"])
def test_a_sequence_of_one_token_is_the_int_sweep_with_a_leading_axis(family, readout):
    model = tiny_model(family)
    ids = random_ids(7)
    with fast_path_only():
        single = sweep(model, ids, 3, readout)
        listed = sweep(model, ids, [3], readout)
        several = sweep(model, ids, torch.tensor([6, 3, 0]), readout)
    assert listed.shape == (1, *single.shape)
    assert torch.equal(listed[0], single)
    assert_exact(several[1], single)


# ---------------------------------------------------------------------------------------
# SmolLM2-135M-Instruct, the study sentence: all 9 positions, a sample checked by hand
# ---------------------------------------------------------------------------------------

SAMPLE = [(0, 0, 0), (0, 29, 8), (4, 12, 3), (8, 0, 5), (8, 29, 0), (5, 17, 7)]   # (token, layer, head)


@pytest.mark.parametrize("readout", ["block", "final"])
def test_smollm2_every_position_sample(smollm2_study_input, readout):
    model, ids = smollm2_study_input
    # "final" runs a wavefront per position; four layers (their rows still cross every later
    # block) keep this test in seconds. "block" runs all 270 heads at all 9 positions.
    layers = [0, 12, 17, 29] if readout == "final" else None
    with fast_path_only():
        fast = sweep(model, ids, range(9), readout, layers=layers)
    layers = layers or list(range(30))
    assert fast.shape == (9, len(layers), 9, 9, 576)
    for t, L, h in SAMPLE:
        assert_entry(fast[t, layers.index(L), h], hooked_entry(model, ids, L, h, t, readout))


@pytest.mark.parametrize("readout", ["block", "final"])
def test_a_wrong_architecture_row_is_caught_at_every_position(readout, monkeypatch):
    """The clean probe rows ride along with every token's rows: a row that describes the
    block tail wrongly is caught, the engine warns and falls back, the numbers stay exact."""
    import dataclasses

    from hooks.architectures import ARCHITECTURES

    model = tiny_model("gpt2")
    ids = random_ids(7)
    naive = sweep(model, ids, [6, 0, 3], readout, engine="naive")
    wrong = dataclasses.replace(ARCHITECTURES["gpt2"], mlp_norm="attn.c_proj")   # shape fits, sense does not
    monkeypatch.setitem(ARCHITECTURES, "gpt2", wrong)
    with pytest.warns(RuntimeWarning, match="using the naive engine"):
        fast = sweep(model, ids, [6, 0, 3], readout)
    assert_exact(fast, naive)
