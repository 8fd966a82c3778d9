"""sweep on a padded batch: input_ids [B, S], attention_mask [B, S], token [B] (one column per
prompt). Row b equals sweeping prompt b ALONE (its real tokens cut out of the batch),
whatever the padding: left, right, or both around it.

Columns are columns of input_ids: `token`, `positions` and the result's position axis
index the padded batch; result columns in a prompt's padding are NaN.

Checked on tiny random GPT-2 and Llama (Hypothesis, batches of 1-4 prompts, zeros,
complement, per-prompt values and donors): fast == naive (which sweeps each prompt alone)
for every entry, NaN exactly at padding, a sampled entry == the plain hooked forward pass
of that prompt alone and == the hand-written reference forward (tests/helpers/reference.py); the fast path is taken; and the engine's check catches a padded
pass whose position ids are wrong. Left and right padding with a middle token silenced in
every prompt on the families where position matters more: sliding windows, partial rotary,
parallel residual.
"""
from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hooks import head_values, layout_of, sweep
from tests.helpers.hypothesis_profiles import examples
from tests.helpers.reference import head_outputs, hidden_states
from tests.helpers.sweep_cases import (assert_entry, assert_exact_with_padding, fast_path_only, hooked_entry, padded,
                               subsets, tiny_shapes)
from tests.engine.test_sweep_exact import tiny_model
from tests.helpers.tiny_models import tiny

blocks_module = importlib.import_module("hooks.blocks")


@st.composite
def batches(draw):
    """A padded batch: each prompt a contiguous run of columns anywhere in [0, S)."""
    batch, seq = draw(st.integers(1, 4)), draw(st.integers(1, 8))
    side = draw(st.sampled_from(["left", "right", "anywhere"]))
    lengths = [draw(st.integers(1, seq)) for _ in range(batch)]
    if side == "left":
        starts = [seq - n for n in lengths]
    elif side == "right":
        starts = [0] * batch
    else:
        starts = [draw(st.integers(0, seq - n)) for n in lengths]
    tokens = [s + draw(st.integers(0, n - 1)) for s, n in zip(starts, lengths)]
    return dict(batch=batch, seq=seq, lengths=lengths, starts=starts, tokens=tokens)


@st.composite
def cases(draw):
    family, shape = draw(tiny_shapes())
    heads = shape["heads"]
    b = draw(batches())
    edits = ["zero", "values", "donor"] + (["complement"] if heads > 1 else [])
    return dict(family=family, shape=shape, **b, edit=draw(st.sampled_from(edits)),
                readout=draw(st.sampled_from(["block", "final"])), layers=draw(subsets(shape["layers"])),
                heads=draw(subsets(heads)), positions=draw(subsets(b["seq"])), seed=draw(st.integers(0, 2**16)),
                pick=draw(st.integers(0, 2**16)))


def _batch(case):
    raw = torch.randint(1, 100, (case["batch"], case["seq"]), generator=torch.Generator().manual_seed(case["seed"]))
    return padded(raw, case["lengths"], case["starts"])


# Once caught only by chance: a donor on a LEFT-padded batch (its clean pass must use the
# batch's mask and per-prompt positions; right padding would hide a mask-less donor pass),
# and per-prompt values with a strict subset of heads out of order.
@example(case=dict(family="llama", shape=dict(layers=2, heads=2, head_dim=4, kv_heads=1, seed=2), batch=3, seq=7,
                   lengths=[7, 4, 2], starts=[0, 3, 5], tokens=[6, 5, 6], edit="donor", readout="final",
                   layers=None, heads=None, positions=None, seed=5, pick=1))
@example(case=dict(family="gpt2", shape=dict(layers=2, heads=4, head_dim=4, kv_heads=4, seed=3), batch=2, seq=6,
                   lengths=[6, 3], starts=[0, 3], tokens=[4, 4], edit="values", readout="block",
                   layers=None, heads=[3, 0], positions=None, seed=6, pick=0))
@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_padded_batch_equals_each_prompt_alone(case):
    model = tiny_model(case["family"], **case["shape"])
    layout = layout_of(model)
    ids, mask = _batch(case)
    # With one prompt, token [1] would be read as a sequence of positions: same numbers.
    token = torch.tensor(case["tokens"])
    values = donor = None
    if case["edit"] == "values":      # one set per prompt, as resample ablation passes them
        values = torch.randn(case["batch"], layout.n_layers, layout.n_heads, layout.head_dim,
                             generator=torch.Generator().manual_seed(case["seed"]))
    if case["edit"] == "donor":
        donor = ids.roll(1, dims=1) * mask
    kw = dict(layers=case["layers"], heads=case["heads"], positions=case["positions"], attention_mask=mask,
              complement=case["edit"] == "complement", values=values, donor_ids=donor)
    naive = sweep(model, ids, token, case["readout"], engine="naive", **kw)
    with fast_path_only():
        fast = sweep(model, ids, token, case["readout"], **kw)
    assert_exact_with_padding(fast, naive)

    positions = torch.tensor(case["positions"] or list(range(case["seq"])))
    for b, (start, n) in enumerate(zip(case["starts"], case["lengths"])):
        in_padding = (positions < start) | (positions >= start + n)
        assert fast[b][:, :, in_padding].isnan().all() and not fast[b][:, :, ~in_padding].isnan().any()
    # One entry, picked at random, against the plain hooked forward pass of its prompt alone.
    layers = case["layers"] or list(range(layout.n_layers))
    heads = case["heads"] or list(range(layout.n_heads))
    b, i, j = case["pick"] % case["batch"], case["pick"] % len(layers), case["pick"] % len(heads)
    start, n = case["starts"][b], case["lengths"][b]
    alone = ids[b:b + 1, start:start + n]
    L, h, t = layers[i], heads[j], case["tokens"][b] - start
    value = None
    if values is not None:
        value = values[b, L, h]
    if donor is not None:
        value = head_values(model, donor[b:b + 1, start:start + n])[0, t, L, h]
    want = hooked_entry(model, alone, L, h, t, case["readout"], value=value, complement=kw["complement"])
    valid = [k for k, p in enumerate(positions.tolist()) if start <= p < start + n]
    assert_entry(fast[b, i, j][valid], want[positions[valid] - start])
    # And against the hand-written forward of the prompt alone (tests/helpers/reference.py, independent
    # of hooks/), a donor's value taken from the reference's own clean pass of the donor alone.
    if donor is not None:
        hd = layout.head_dim
        value = head_outputs(model, donor[b:b + 1, start:start + n])[L, 0, t, h * hd:(h + 1) * hd]
    others = [g for g in range(layout.n_heads) if g != h] if kw["complement"] else [h]
    ref = hidden_states(model, alone, sites=[(L, g, t) for g in others] if value is None else [],
                        replace=[] if value is None else [(L, h, t, value, None)])
    ref = (ref[L + 1] if case["readout"] == "block" else ref[-1])[0].float()
    assert_entry(fast[b, i, j][valid], ref[positions[valid] - start])


def _left_and_right(seq=8, lengths=(8, 5, 2, 6)):
    raw = torch.randint(1, 100, (len(lengths), seq), generator=torch.Generator().manual_seed(0))
    right = padded(raw, list(lengths), [0] * len(lengths))
    left = padded(raw, list(lengths), [seq - n for n in lengths])
    return {"right": (right, [n - 1 for n in lengths]), "left": (left, [seq - 1] * len(lengths))}


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("readout", ["block", "final"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_left_and_right_padding_are_exact_on_the_fast_path(family, readout, side):
    model = tiny_model(family)
    (ids, mask), tokens = _left_and_right()[side]
    naive = sweep(model, ids, torch.tensor(tokens), readout, attention_mask=mask, engine="naive")
    with fast_path_only():
        fast = sweep(model, ids, torch.tensor(tokens), readout, attention_mask=mask)
    assert fast.shape == (4, 3, 4, 8, 32)
    assert_exact_with_padding(fast, naive)


def test_position_ids_are_what_makes_left_padding_exact():
    """The pitfall this guards against: Hugging Face numbers positions by column, so a
    left-padded prompt run with only its attention_mask is a different forward pass for a
    model with absolute position embeddings (GPT-2). (Rotary attention depends only on
    position differences: Llama is blind to the shift, up to rounding.)"""
    model = tiny_model("gpt2")
    (ids, mask), _ = _left_and_right()["left"]
    b, start = 2, 6                                   # prompt 2: 2 real tokens in columns 6, 7
    with torch.no_grad():
        alone = model(ids[b:b + 1, start:], output_hidden_states=True).hidden_states[-1][0]
        by_column = model(ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1][b, start:]
    assert (by_column - alone).abs().max() > 1e-3
    with fast_path_only():
        swept = sweep(model, ids, torch.tensor([7] * 4), "final", attention_mask=mask)
    clean_part = swept[b, 0, 0, start:start + 1]      # column 6 comes before the token: clean
    assert_entry(clean_part, alone[:1])


@pytest.mark.parametrize("readout", ["block", "final"])
def test_wrong_position_ids_are_caught_and_each_prompt_is_swept_alone(readout, monkeypatch):
    """If the padded clean pass is not each prompt's own (here: positions by column, the
    Hugging Face default), the engine warns and sweeps the prompts one by one: still exact."""
    model = tiny_model("gpt2")
    (ids, mask), tokens = _left_and_right()["left"]
    naive = sweep(model, ids, torch.tensor(tokens), readout, attention_mask=mask, engine="naive")
    monkeypatch.setattr(blocks_module, "position_ids", lambda m: torch.arange(m.shape[1]).expand(m.shape))
    with pytest.warns(RuntimeWarning, match="does not reproduce its most padded prompt"):
        fast = sweep(model, ids, torch.tensor(tokens), readout, attention_mask=mask)
    assert_exact_with_padding(fast, naive)


def test_one_prompt_with_a_mask_keeps_the_int_shape():
    model = tiny_model("gpt2")
    (ids, mask), _ = _left_and_right()["left"]
    with fast_path_only():
        one = sweep(model, ids[1:2], 6, "final", attention_mask=mask[1:2])     # columns 3..7 are real
        alone = sweep(model, ids[1:2, 3:], 3, "final")
    assert one.shape == (3, 4, 8, 32) and one[:, :, :3].isnan().all()
    assert_exact_with_padding(one[:, :, 3:], alone)


@pytest.mark.parametrize("readout", ["block", "final"])
def test_a_wrong_architecture_row_is_caught_on_a_padded_batch_with_a_donor(readout, monkeypatch):
    """The clean probe rows ride along on the new paths too: a row that describes the block
    tail wrongly is caught, the engine warns and falls back, and the numbers stay exact."""
    import dataclasses

    from hooks.architectures import ARCHITECTURES

    model = tiny_model("llama")
    (ids, mask), tokens = _left_and_right()["right"]
    kw = dict(attention_mask=mask, donor_ids=ids.flip(0) * mask)
    naive = sweep(model, ids, torch.tensor(tokens), readout, engine="naive", **kw)
    wrong = dataclasses.replace(ARCHITECTURES["llama"], mlp_norm="self_attn.o_proj")   # shape fits, sense does not
    monkeypatch.setitem(ARCHITECTURES, "llama", wrong)
    with pytest.warns(RuntimeWarning, match="using the naive engine"):
        fast = sweep(model, ids, torch.tensor(tokens), readout, **kw)
    assert_exact_with_padding(fast, naive)


@pytest.mark.parametrize("family", ["gpt2", "llama", "mistral", "qwen2", "gemma3_text"])
@pytest.mark.parametrize("readout", ["block", "final"])
def test_every_family_on_a_left_padded_batch(family, readout):
    """Every family takes the fast path, Gemma-3's sliding-window layers (window 4, prompts of
    up to 8 tokens) included: the resumer re-enters them with their own masks."""
    model = tiny_model(family)
    (ids, mask), tokens = _left_and_right()["left"]
    naive = sweep(model, ids, torch.tensor(tokens), readout, attention_mask=mask, engine="naive")
    with fast_path_only():
        fast = sweep(model, ids, torch.tensor(tokens), readout, attention_mask=mask)
    assert_exact_with_padding(fast, naive)


# Where padding meets something else that depends on position: a sliding window (Mistral;
# Qwen2 and Gemma-3 with sliding and full layers), partial rotary (GPT-NeoX rotating half or a
# quarter of each head, Phi half) and a parallel residual (GPT-NeoX, Phi; the sequential
# GPT-NeoX as its control). tests/helpers/tiny_models.py: windows of WINDOW = 3 tokens.
POSITIONAL = ["mistral-window", "qwen2-window", "gemma3_text", "gpt_neox", "gpt_neox-sequential", "phi"]
LENGTHS = (9, 7, 4, 6)                  # in 9 columns; the middle tokens (n - 1) // 2 are 4, 3, 1, 2


@pytest.mark.parametrize("case", POSITIONAL)
@pytest.mark.parametrize("side", ["left", "right"])
def test_a_middle_token_of_every_padded_prompt_is_exact_per_row(case, side):
    """Each prompt silenced at a MIDDLE token (its later tokens, some beyond the window, are
    resumed): fast == naive on the fast path, and every row == the hand-written reference of
    its prompt alone, for both readouts, at a different (layer, head) per row."""
    model = tiny(case)
    seq = max(LENGTHS)
    raw = torch.randint(1, 100, (len(LENGTHS), seq), generator=torch.Generator().manual_seed(7))
    starts = [0] * len(LENGTHS) if side == "right" else [seq - n for n in LENGTHS]
    ids, mask = padded(raw, list(LENGTHS), starts)
    middles = [(n - 1) // 2 for n in LENGTHS]
    tokens = torch.tensor([s + m for s, m in zip(starts, middles)])
    fast = {}
    for readout in ("block", "final"):
        naive = sweep(model, ids, tokens, readout, attention_mask=mask, engine="naive")
        with fast_path_only():
            fast[readout] = sweep(model, ids, tokens, readout, attention_mask=mask)
        assert_exact_with_padding(fast[readout], naive)
    layout = layout_of(model)
    for b, (s, n, m) in enumerate(zip(starts, LENGTHS, middles)):
        L, h = b % layout.n_layers, (b + 1) % layout.n_heads
        ref = hidden_states(model, ids[b:b + 1, s:s + n], sites=[(L, h, m)])
        assert_entry(fast["block"][b, L, h, s:s + n], ref[L + 1][0].float())
        assert_entry(fast["final"][b, L, h, s:s + n], ref[-1][0].float())


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma3_text"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_a_padded_block_sweep_runs_its_clean_pass_packed(family, side, monkeypatch):
    """readout "block" on a padded batch: the clean pass runs the real tokens only, packed into
    one row (no FLOPs on padding), behind a copy of the prompt the padding check compares,
    numbered from 0 as it is alone; that prompt is packed LAST (so prompts that saw each other
    could not pass that check), and no other forward pass runs; exact, on the fast path.
    readout "final" needs each prompt's cache: its clean pass stays padded."""
    sweep_module = importlib.import_module("hooks.sweep")
    model = tiny_model(family)
    (ids, mask), tokens = _left_and_right()[side]
    lengths = mask.sum(1).tolist()
    runs, inputs = [], []
    real_clean_run = sweep_module.clean_run
    monkeypatch.setattr(sweep_module, "clean_run", lambda *a, **k: runs.append(real_clean_run(*a, **k)) or runs[-1])
    handle = model.get_input_embeddings().register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    positions = []
    numbering = model.base_model.register_forward_pre_hook(
        lambda m, args, kwargs: positions.insert(0, kwargs.get("position_ids")), with_kwargs=True)
    try:
        for readout in ("block", "final"):
            naive = sweep(model, ids, torch.tensor(tokens), readout, attention_mask=mask, engine="naive")
            inputs.clear()
            with fast_path_only():
                fast = sweep(model, ids, torch.tensor(tokens), readout, attention_mask=mask)
            assert_exact_with_padding(fast, naive)
            assert runs[-1].packed == (readout == "block")
            if readout == "block":
                assert len(inputs) == 1                   # the clean pass only: the check needs no pass of its own
                packed, n = inputs[0], min(lengths)
                assert packed.shape == (1, sum(lengths) + n)
                shortest = ids[lengths.index(n)][mask[lengths.index(n)].bool()]
                assert torch.equal(packed[0, :n], shortest) and torch.equal(packed[0, -n:], shortest)
                assert runs[-1].reference[0] == lengths.index(n)
                numbered = positions[0]
                assert torch.equal(numbered[0, :n], torch.arange(n)) and torch.equal(numbered[0, -n:], torch.arange(n))
    finally:
        handle.remove()
        numbering.remove()
