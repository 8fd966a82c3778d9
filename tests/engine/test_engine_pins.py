"""Fixed, seconds-long cases that pin what the engine's property tests only find by chance,
each named after the bug it catches (tests/mutants.toml lists the bugs; `./run mutants` checks
that every one of them fails a test). On tiny random models, against the naive engine and the
hand-written reference (tests/helpers/reference.py).
"""
from __future__ import annotations

import pytest
import torch

from hooks import ablate, head_values, layout_of, scale_block, silence, sweep
from tests.helpers.reference import head_outputs, hidden_states
from tests.helpers.sweep_cases import assert_exact_with_padding, fast_path_only, padded
from tests.engine.test_families import assert_exact, ids_of
from tests.helpers.tiny_models import WINDOW, WINDOWED, tiny, without_window


@pytest.mark.parametrize("case", ["llama", "gpt_neox"])
def test_every_tensor_the_engine_makes_lives_on_the_inputs_device(case):
    """With the default device set to `meta`, a tensor made without device= lands on meta and
    the next operation that mixes it with the CPU model fails (no GPU needed to catch a lost
    .to(device)); every result must come back on the input's device, equal to the CPU run's."""
    model = tiny(case)
    raw = torch.randint(1, 100, (2, 7), generator=torch.Generator().manual_seed(0))
    ids, mask = padded(raw, [7, 4], [0, 3])
    tokens, donor = torch.tensor([4, 5]), ids.flip(0) * mask
    want = {r: sweep(model, ids, tokens, r, attention_mask=mask, donor_ids=donor) for r in ("block", "final")}
    one = ids[:1]
    want_one = sweep(model, one, [2, 5], "final", heads=[1])
    with scale_block(model, 1, 0.5, 2, rows=[1]), torch.no_grad():
        scaled_want = model(ids, output_hidden_states=True).hidden_states
    with torch.device("meta"), fast_path_only():
        for readout in ("block", "final"):
            got = sweep(model, ids, tokens, readout, attention_mask=mask, donor_ids=donor)
            assert got.device == ids.device
            assert_exact_with_padding(got, want[readout])
        # a mask given as a list becomes a tensor on the input's device
        from_list = sweep(model, ids, tokens, "block", attention_mask=mask.tolist(), donor_ids=donor)
        assert_exact_with_padding(from_list, want["block"])
        got_one = sweep(model, one, [2, 5], "final", heads=[1])
        assert got_one.device == ids.device and torch.equal(got_one, want_one)
        with scale_block(model, 1, 0.5, 2, rows=[1]), torch.no_grad():
            scaled = model(ids, output_hidden_states=True).hidden_states
    assert all(torch.equal(a, b) for a, b in zip(scaled, scaled_want))


LEFT_PADDED = ([7, 4, 2], [0, 3, 5])        # prompt lengths and start columns in 7 columns


def _left_padded_batch(seed=0):
    raw = torch.randint(1, 100, (3, 7), generator=torch.Generator().manual_seed(seed))
    return padded(raw, *LEFT_PADDED)


@pytest.mark.parametrize("case", ["gpt2", "llama"])
@pytest.mark.parametrize("readout", ["block", "final"])
def test_a_donor_on_a_left_padded_batch_with_a_reordered_head_subset(case, readout):
    """The donor's clean pass must use the batch's mask and positions (right padding would hide
    it), its head h must go into head h (not the j-th of heads=[3, 1]), at the patched column."""
    model = tiny(case)
    ids, mask = _left_padded_batch()
    donor = ids.roll(1, dims=1) * mask
    tokens = torch.tensor([5, 5, 6])
    kw = dict(attention_mask=mask, donor_ids=donor, heads=[3, 1])
    naive = sweep(model, ids, tokens, readout, engine="naive", **kw)
    with fast_path_only():
        fast = sweep(model, ids, tokens, readout, **kw)
    assert_exact_with_padding(fast, naive)
    # Prompt 1 (columns 3..6), head 3 of block 1, against the hand-written forward of the prompt
    # alone with the donor's head output -- from the reference's own donor pass -- at column 5.
    hd = layout_of(model).head_dim
    alone, donor_alone = ids[1:2, 3:], donor[1:2, 3:]
    value = head_outputs(model, donor_alone)[1, 0, 2, 3 * hd:4 * hd]
    want = hidden_states(model, alone, replace=[(1, 3, 2, value, None)])
    assert_exact(fast[1, 1, 0, 3:][None, None], (want[2] if readout == "block" else want[-1])[0][None, None],
                 "donor entry vs reference")


@pytest.mark.parametrize("readout", ["block", "final"])
def test_complement_keeps_exactly_the_one_head(readout):
    model = tiny("llama")
    ids = ids_of(8, 1)
    naive = sweep(model, ids, 3, readout, heads=[2, 0], complement=True, engine="naive")
    with fast_path_only():
        fast = sweep(model, ids, 3, readout, heads=[2, 0], complement=True)
    assert_exact(fast, naive, f"complement {readout}")
    want = hidden_states(model, ids, sites=[(1, g, 3) for g in (0, 1, 3)])
    assert_exact(fast[1, 0][None, None], (want[2] if readout == "block" else want[-1])[0][None, None],
                 "complement vs reference")


def test_ablate_edits_only_the_rows_it_is_given_each_head_with_its_own_value():
    model = tiny("gpt2")
    ids = ids_of(6, 2, batch=3)
    value = torch.arange(16.0).view(2, 8) / 8 - 1           # a different vector for each head
    with torch.no_grad():
        clean = model(ids, output_hidden_states=True).hidden_states
        with ablate(model, 1, [0, 2], 3, value=value, rows=[1]):
            edited = model(ids, output_hidden_states=True).hidden_states
    want = hidden_states(model, ids, replace=[(1, h, 3, value[i], [1]) for i, h in enumerate((0, 2))])
    assert torch.equal(edited[-1][[0, 2]], clean[-1][[0, 2]]), "a row that was not given changed"
    assert_exact(edited[-1][1][None, None], want[-1][1][None, None], "the given row")


def test_sites_at_different_tokens_are_silenced_each_at_its_own_token():
    model = tiny("llama")
    ids = ids_of(7, 3)
    sites = [(0, 1, 2), (0, 3, 5), (2, 0, 1)]
    with silence(model, sites=sites), torch.no_grad():
        hooked = model(ids, output_hidden_states=True).hidden_states
    for got, want in zip(hooked, hidden_states(model, ids, sites=sites)):
        assert_exact(got[None], want[None], "several sites")


# Every windowed family, its window (tests/tiny_models.WINDOW = 3) shorter than the input; the
# token early, so the resumed positions reach beyond the window; Qwen2/3 and Gemma-2/3 with
# both layer kinds.
@pytest.mark.parametrize("case", WINDOWED)
def test_windows_shorter_than_the_sequence_on_the_fast_path(case):
    model = tiny(case)
    kinds = set(layout_of(model).kinds)
    assert "sliding_attention" in kinds
    assert case.startswith(("mistral", "qwen3_moe", "phi3", "starcoder2")) or "full_attention" in kinds
    ids = ids_of(9, 4)
    fast = {}
    for readout in ("block", "final"):
        naive = sweep(model, ids, [1, 4], readout, engine="naive")
        with fast_path_only():
            fast[readout] = sweep(model, ids, [1, 4], readout)
        assert_exact(fast[readout], naive, f"{case} {readout}")
    # Entries [token, layer, head] against the hand-written forward, which writes the window out
    # by hand: token 1, a sliding layer (0) and a full one where there is one (1), both readouts.
    for L in (0, 1):
        ref = hidden_states(model, ids, sites=[(L, 2, 1)])
        assert_exact(fast["block"][0, L, 2][None, None], ref[L + 1][0][None, None], f"{case} block L{L} vs reference")
        assert_exact(fast["final"][0, L, 2][None, None], ref[-1][0][None, None], f"{case} final L{L} vs reference")
    # The window matters: without it the clean pass differs from position WINDOW on (before it,
    # only by rounding: another mask path), and so does the final readout of silencing token 1
    # at the positions beyond its window.
    twin = without_window(model)
    with torch.no_grad():
        clean = model(ids, output_hidden_states=True).hidden_states[-1]
        unwindowed = twin(ids, output_hidden_states=True).hidden_states[-1]
    assert torch.allclose(clean[:, :WINDOW], unwindowed[:, :WINDOW], rtol=1e-5, atol=1e-5)
    assert (clean[:, WINDOW:] - unwindowed[:, WINDOW:]).abs().max() > 1e-3, f"{case}: the window changes nothing"
    far = sweep(twin, ids, 1, "final", layers=[0])[:, :, 1 + WINDOW:]
    assert (fast["final"][0, :1, :, 1 + WINDOW:] - far).abs().max() > 1e-3


@pytest.mark.parametrize("case", ["mistral-window", "gemma3_text"])
def test_a_left_padded_batch_silencing_a_middle_token_with_windows(case):
    model = tiny(case)
    ids, mask = _left_padded_batch(1)
    tokens = torch.tensor([3, 4, 5])                   # a middle token of each prompt (prompt 3 has 2)
    naive = sweep(model, ids, tokens, "final", attention_mask=mask, engine="naive")
    with fast_path_only():
        fast = sweep(model, ids, tokens, "final", attention_mask=mask)
    assert_exact_with_padding(fast, naive)


def test_head_values_of_a_left_padded_batch_are_each_prompt_alone():
    model = tiny("llama")
    ids, mask = _left_padded_batch(2)
    values = head_values(model, ids, mask)
    for b, (n, s) in enumerate(zip(*LEFT_PADDED)):
        alone = head_values(model, ids[b:b + 1, s:s + n])[0]
        assert values[b, :s].isnan().all()
        assert_exact(values[b, s:s + n][None, None], alone[None, None], f"prompt {b}")


def test_a_row_wrong_only_after_the_block_is_caught_by_the_final_probe(monkeypatch):
    """A row whose block tail is right but whose re-entry is wrong (Mistral's window declared
    absent): the block readout stays exact, and the final readout's clean probe row must notice,
    warn and fall back, so the numbers stay exact."""
    import dataclasses

    from hooks.architectures import ARCHITECTURES

    model = tiny("mistral-window")
    ids = ids_of(9, 5)
    naive = sweep(model, ids, 1, "final", engine="naive")
    monkeypatch.setitem(ARCHITECTURES, "mistral", dataclasses.replace(ARCHITECTURES["mistral"], attention_kinds="full"))
    naive_block = sweep(model, ids, 1, "block", engine="naive")
    with fast_path_only():
        assert_exact(sweep(model, ids, 1, "block"), naive_block, "block")
    with pytest.warns(RuntimeWarning, match="re-run blocks do not reproduce the clean pass"):
        fast = sweep(model, ids, 1, "final")
    assert_exact(fast, naive, "final after the fallback")


@pytest.mark.parametrize("case", ["gpt2", "gpt_neox"])
def test_the_tail_runs_one_clean_probe_row_per_block_not_one_per_site(case):
    """Every site's clean row would check the same computation, so block L's MLP sees, after
    the clean pass, each site's edited rows and ONE clean row (site 0's): 3 prompts x 4 heads
    + 1 rows, not 3 x 5. A parallel block (GPT-NeoX) runs its MLP once per site instead, on
    the block input that every edited copy shares. The numbers stay exact on the fast path."""
    model = tiny(case)
    layout = layout_of(model)
    raw = torch.randint(1, 100, (3, 7), generator=torch.Generator().manual_seed(2))
    ids, mask = padded(raw, [7, 4, 5], [0, 3, 0])
    tokens = torch.tensor([2, 5, 4])
    naive = sweep(model, ids, tokens, "block", attention_mask=mask, engine="naive", layers=[1])
    mlp = getattr(layout.blocks(model)[1], "mlp")
    rows_through = []
    handle = mlp.register_forward_pre_hook(lambda module, args: rows_through.append(args[0].shape[:-1].numel()))
    try:
        with fast_path_only():
            fast = sweep(model, ids, tokens, "block", attention_mask=mask, layers=[1])
    finally:
        handle.remove()
    assert_exact_with_padding(fast, naive)
    assert len(rows_through) == 2, rows_through                 # the clean pass, then the tail
    assert rows_through[1] == (3 if layout.parallel else 3 * layout.n_heads + 1), rows_through
