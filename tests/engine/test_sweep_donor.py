"""sweep(donor_ids=...): activation patching. Head h of block L at token t takes its value
from the donor prompt's clean run at the same position instead of zeros.

Checked three ways on tiny random GPT-2 and Llama (Hypothesis): fast == naive for every
entry; a sampled entry == the hand-written forward pass of tests/helpers/reference.py with the
donor's head output (from the reference's own clean donor pass) written in by hand; and
the method: a donor equal to the prompt changes nothing.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hooks import layout_of, sweep
from tests.helpers.hypothesis_profiles import examples
from tests.helpers.reference import gpt2_hidden_states, head_outputs, llama_hidden_states
from tests.helpers.sweep_cases import assert_entry, fast_path_only, subsets
from tests.engine.test_sweep_exact import assert_exact, random_ids, tiny_model

REFERENCE = {"gpt2": gpt2_hidden_states, "llama": llama_hidden_states}


@st.composite
def cases(draw):
    family = draw(st.sampled_from(sorted(REFERENCE)))
    heads = draw(st.sampled_from([1, 2, 4]))
    shape = dict(layers=draw(st.integers(1, 3)), heads=heads, head_dim=draw(st.sampled_from([4, 8])),
                 kv_heads=draw(st.sampled_from([k for k in (1, 2, heads) if heads % k == 0])),
                 seed=draw(st.integers(0, 2**16)))
    seq = draw(st.integers(1, 9))
    # an int (no leading axis) or a sequence of positions (combinable with a donor)
    token = draw(st.integers(0, seq - 1) | st.lists(st.integers(0, seq - 1), min_size=1, max_size=3, unique=True))
    return dict(family=family, shape=shape, seq=seq, token=token, readout=draw(st.sampled_from(["block", "final"])),
                layers=draw(subsets(shape["layers"])), heads=draw(subsets(heads)), positions=draw(subsets(seq)),
                ids_seed=draw(st.integers(0, 2**16)), pick=draw(st.integers(0, 2**16)))


# Once caught only by chance: a donor with a strict subset of heads out of order (the
# donor's head h must go into head h, not into the j-th head of the subset).
@example(case=dict(family="gpt2", shape=dict(layers=2, heads=4, head_dim=4, kv_heads=4, seed=1), seq=7,
                   token=[5, 2], readout="block", layers=None, heads=[3, 1], positions=None, ids_seed=3, pick=1))
@settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_donor_patching_equals_naive_and_the_hand_written_patch(case):
    model = tiny_model(case["family"], **case["shape"])
    ids = random_ids(case["seq"], case["ids_seed"])
    donor = random_ids(case["seq"], case["ids_seed"] + 1)
    kw = dict(layers=case["layers"], heads=case["heads"], positions=case["positions"], donor_ids=donor)
    naive = sweep(model, ids, case["token"], case["readout"], engine="naive", **kw)
    with fast_path_only():
        fast = sweep(model, ids, case["token"], case["readout"], **kw)
    assert_exact(fast, naive)

    tokens = [case["token"]] if isinstance(case["token"], int) else case["token"]
    if isinstance(case["token"], int):
        fast = fast[None]
    layout = layout_of(model)
    hd = layout.head_dim
    layers = case["layers"] or list(range(layout.n_layers))
    heads = case["heads"] or list(range(layout.n_heads))
    positions = case["positions"] or list(range(case["seq"]))
    k, i, j = (case["pick"] % len(tokens), case["pick"] % len(layers), case["pick"] % len(heads))
    L, h, t = layers[i], heads[j], tokens[k]
    donated = head_outputs(model, donor)[L, 0, t, h * hd:(h + 1) * hd]
    want = REFERENCE[case["family"]](model, ids, replace=[(L, h, t, donated, None)])
    assert_entry(fast[k, i, j], (want[L + 1] if case["readout"] == "block" else want[-1])[0, positions])


@pytest.mark.parametrize("family", sorted(REFERENCE))
@pytest.mark.parametrize("readout", ["block", "final"])
def test_the_prompt_as_its_own_donor_changes_nothing(family, readout):
    model = tiny_model(family)
    ids = random_ids(8, 3)
    with torch.no_grad():
        states = model(ids, output_hidden_states=True).hidden_states
    with fast_path_only():
        patched = sweep(model, ids, [0, 5, 7], readout, donor_ids=ids)
    layout = layout_of(model)
    for L in range(layout.n_layers):
        clean = (states[L + 1] if readout == "block" else states[-1])[0]
        assert_exact(patched[:, L], clean.expand_as(patched[:, L]))


@pytest.mark.parametrize("family", sorted(REFERENCE))
def test_a_donor_moves_only_the_patched_position_and_later(family):
    model = tiny_model(family)
    ids, donor = random_ids(8, 3), random_ids(8, 4)
    with fast_path_only():
        patched = sweep(model, ids, 5, "final", donor_ids=donor)
    clean = model(ids, output_hidden_states=True).hidden_states[-1][0]
    assert torch.equal(patched[:, :, :5], clean[:5].expand_as(patched[:, :, :5]))
    assert (patched[:, :, 5] - clean[5]).abs().amax(dim=-1).min() > 0
