"""The IOI head-patching method (experiments/ioi.py, experiments/ioi_templates.py).

Only the method is asserted, never what a model finds:
- every generated pair has recipient and donor of equal token length that differ exactly
  at the two names, and every name is one token (real GPT-2 and SmolLM2 tokenizers,
  Hypothesis over seeds); the generator is deterministic per seed;
- on tiny random GPT-2 and Llama models: patching nothing reproduces the recipient's logit
  difference (the model's own logits), patching every head of every block at the final
  position reproduces the donor's final state and logit difference, a single-head patch
  equals the hand-written forward pass of tests/helpers/reference.py with the donor's head output
  written in, and engine="fast" (hooks.sweep) equals engine="naive";
- bad input (a multi-token name, a pair of unequal length, an unknown template field, ...)
  raises one clear ValueError.
Bound: 1e-5 * max(1, max|reference|), the sweep's.
"""
from __future__ import annotations

import importlib
import re
import warnings

import pytest
import torch

from hooks.precision import bound
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.ioi import (clean_logit_differences, donor_head_values, logit_difference, patch_final_states,
                             per_head_final_states, run_ioi)
from experiments.ioi_templates import (NAMES, OBJECTS, PLACES, TEMPLATES, IOIPair, generate_pairs, make_pair,
                                       single_token_names)
from tests.helpers.hypothesis_profiles import examples
from tests.helpers.reference import gpt2_hidden_states, head_outputs, llama_hidden_states
from tests.helpers.tiny_models import VOCAB, gpt2_tokenizer, tiny

RTOL = bound(torch.float32)          # the engine's bound for float32 (hooks/precision.py)
FAMILIES = ("gpt2", "llama")
REFERENCE = {"gpt2": gpt2_hidden_states, "llama": llama_hidden_states}


def assert_within_bound(got: torch.Tensor, want: torch.Tensor) -> None:
    scale = max(1.0, want.abs().max().item())
    err = (got.float() - want.float()).abs().max().item()
    assert err <= RTOL * scale, f"differs by {err:.3g} > {RTOL} * {scale:.3g}"


# ---------------------------------------------------------------------------------------
# A word-level tokenizer for the tiny random models (which have no tokenizer, VOCAB ids)
# ---------------------------------------------------------------------------------------

class WordTokenizer:
    """Stand-in for a Hugging Face tokenizer: one id per known word (with its leading space,
    as in GPT-2's BPE); an unknown word is split into pieces of two letters, as BPE splits a
    rare name. Ids stay below the tiny models' VOCAB."""

    PIECE = re.compile(r" ?[A-Za-z]+|[^\sA-Za-z]")

    def __init__(self, texts):
        words = sorted({p for text in texts for p in self.PIECE.findall(text)})
        self.vocab = {w: i + 1 for i, w in enumerate(words)}          # 0 is left free, like a BOS
        self.unknown_base = len(self.vocab) + 1
        assert self.unknown_base + 10 <= VOCAB, f"{len(self.vocab)} words do not fit the tiny vocab"
        self.text_of = {i: w for w, i in self.vocab.items()}

    def encode(self, text, add_special_tokens=True):
        ids = []
        for piece in self.PIECE.findall(text):
            if piece in self.vocab:
                ids.append(self.vocab[piece])
                continue
            for k in range(0, len(piece), 2):
                chunk = piece[k:k + 2]
                i = self.unknown_base + sum(map(ord, chunk)) % 10
                self.text_of[i] = chunk
                ids.append(i)
        return ids

    def decode(self, ids):
        return "".join(self.text_of[i] for i in ids)


TINY_NAMES = ("Mary", "John", "Anna", "Tom", "Kate", "Paul", "Lucy", "Sam")
TINY_PLACES = PLACES[:4]
TINY_OBJECTS = OBJECTS[:4]


@pytest.fixture(scope="module")
def word_tokenizer():
    fields = dict(IO="", S="", PLACE="", OBJECT="")
    texts = [t.format(**fields) for t in TEMPLATES]
    texts += [" " + w for w in (*TINY_NAMES, *TINY_PLACES, *TINY_OBJECTS)]
    return WordTokenizer(texts)


def tiny_pairs(tokenizer, n=4, seed=0):
    return generate_pairs(tokenizer, n, seed, names=TINY_NAMES, places=TINY_PLACES, objects=TINY_OBJECTS)


def ids_of(pair, side="recipient"):
    return torch.tensor([getattr(pair, f"{side}_ids")])


# ---------------------------------------------------------------------------------------
# The generator, on real tokenizers
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_gpt2_tokenizer():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from models.loading import ModelNotAvailable, prepare, resolve

    choice = resolve("smollm2-135m-instruct")
    try:
        prepare(choice)
    except ModelNotAvailable as err:
        pytest.skip(f"SmolLM2 is not available here: {err}")
    return AutoTokenizer.from_pretrained(choice.source, local_files_only=True)


def assert_well_formed(tokenizer, pairs):
    for pair in pairs:
        assert len(pair.recipient_ids) == len(pair.donor_ids)
        assert pair.correct_id != pair.other_id
        for name, token in ((pair.io, pair.correct_id), (pair.s, pair.other_id)):
            assert tokenizer.encode(" " + name, add_special_tokens=False) == [token]
        assert list(pair.recipient_ids) == tokenizer.encode(pair.recipient)
        assert list(pair.donor_ids) == tokenizer.encode(pair.donor)
        differs = [i for i, (a, b) in enumerate(zip(pair.recipient_ids, pair.donor_ids)) if a != b]
        assert differs, "the donor must differ from the recipient"
        for i in differs:     # exactly the name slots differ, and there the names are swapped
            assert {pair.recipient_ids[i], pair.donor_ids[i]} == {pair.correct_id, pair.other_id}
        assert pair.recipient.endswith(" to") and pair.donor.endswith(" to")
        assert pair.final == len(pair.recipient_ids) - 1


@settings(max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_every_gpt2_pair_has_equal_lengths_and_single_token_names(real_gpt2_tokenizer, seed):
    pairs = generate_pairs(real_gpt2_tokenizer, 100, seed)
    assert len(pairs) == 100
    assert len({p.recipient for p in pairs}) == 100, "pairs must be distinct"
    assert_well_formed(real_gpt2_tokenizer, pairs)


@settings(max_examples=examples(5), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_every_smollm2_pair_has_equal_lengths_and_single_token_names(smollm2_tokenizer, seed):
    assert_well_formed(smollm2_tokenizer, generate_pairs(smollm2_tokenizer, 100, seed))


def test_the_generator_is_deterministic_per_seed(real_gpt2_tokenizer):
    a, b = generate_pairs(real_gpt2_tokenizer, 100, 7), generate_pairs(real_gpt2_tokenizer, 100, 7)
    assert a == b
    assert a != generate_pairs(real_gpt2_tokenizer, 100, 8)


def test_every_template_is_used_and_names_vary(real_gpt2_tokenizer):
    pairs = generate_pairs(real_gpt2_tokenizer, 100, 0)
    assert {p.template for p in pairs} == set(TEMPLATES)
    assert len({p.io for p in pairs} | {p.s for p in pairs}) > 20


def test_the_classic_example_is_built_as_described(real_gpt2_tokenizer):
    pair = make_pair(real_gpt2_tokenizer, TEMPLATES[0], "Mary", "John", "store", "drink")
    assert pair.recipient == "When Mary and John went to the store, John gave a drink to"
    assert pair.donor == "When John and Mary went to the store, Mary gave a drink to"
    assert real_gpt2_tokenizer.decode([pair.correct_id]) == " Mary"
    assert real_gpt2_tokenizer.decode([pair.other_id]) == " John"


def test_default_names_are_filtered_to_single_tokens(smollm2_tokenizer):
    """SmolLM2 splits a few default names; the default list drops them, an explicit list must not."""
    kept = single_token_names(smollm2_tokenizer, NAMES, skip_multi_token_names=True)
    dropped = [n for n in NAMES if n not in kept]
    assert dropped, "the test needs a default name that SmolLM2 splits"
    assert 2 <= len(kept) < len(NAMES)
    used = {p.io for p in generate_pairs(smollm2_tokenizer, 100, 0)}
    assert not used & set(dropped)
    with pytest.raises(ValueError, match=re.escape(repr(dropped[0]))):
        generate_pairs(smollm2_tokenizer, 10, 0, names=NAMES)
    assert generate_pairs(smollm2_tokenizer, 10, 0, names=NAMES, skip_multi_token_names=True)


# ---------------------------------------------------------------------------------------
# Bad input: one clear ValueError each
# ---------------------------------------------------------------------------------------

def test_a_multi_token_name_is_named_with_its_pieces_and_the_fix(real_gpt2_tokenizer):
    with pytest.raises(ValueError) as info:
        generate_pairs(real_gpt2_tokenizer, 10, 0, names=["Mary", "Xiomara", "John"])
    message = str(info.value)
    assert "'Xiomara'" in message and "' Xi'" in message and "3 tokens" in message
    assert "pick another name list" in message
    assert generate_pairs(real_gpt2_tokenizer, 10, 0, names=["Mary", "Xiomara", "John"],
                          skip_multi_token_names=True)


def test_a_multi_token_name_raises_in_make_pair_too(word_tokenizer):
    with pytest.raises(ValueError, match="'Bartholomew' is 6 tokens"):
        make_pair(word_tokenizer, TEMPLATES[0], "Mary", "Bartholomew", "store", "drink")


def test_a_pair_of_unequal_length_is_refused():
    with pytest.raises(ValueError, match="has 3 tokens but its donor .* has 4"):
        IOIPair("t", "Mary", "John", "a b c", "a b c d", (1, 2, 3), (1, 2, 3, 4), 2, 3)


def test_a_donor_of_another_length_is_refused_by_the_patching(word_tokenizer):
    model = tiny("gpt2")
    pair = tiny_pairs(word_tokenizer, 1)[0]
    with pytest.raises(ValueError, match="donor must be the same prompt length"):
        per_head_final_states(model, pair.recipient_ids, pair.donor_ids[:-1], pair.final)


@pytest.mark.parametrize("template, match", [
    ("When {IO} and {S} went to the {CITY}, {S} gave a {OBJECT} to", r"unknown field\(s\) \['CITY'\]"),
    ("When {IO} went to the {PLACE}, she gave a {OBJECT} to", r"lacks \{S\}"),
    ("When {IO} and {S} went {", "not a valid format string"),
], ids=["unknown-field", "missing-name", "broken-brace"])
def test_a_bad_template_is_refused(real_gpt2_tokenizer, template, match):
    with pytest.raises(ValueError, match=match):
        generate_pairs(real_gpt2_tokenizer, 5, 0, templates=[template])


def test_a_name_slot_without_a_leading_space_is_refused(real_gpt2_tokenizer):
    """At the start of a sentence " Mary" is not the token: the names would not be swapped tokens."""
    with pytest.raises(ValueError, match="every name slot must follow a space"):
        make_pair(real_gpt2_tokenizer, "{S} and {IO} went out. {S} gave a {OBJECT} to", "Mary", "John")


def test_too_few_names_or_prompts_are_refused(real_gpt2_tokenizer):
    with pytest.raises(ValueError, match="only 1 single-token name"):
        generate_pairs(real_gpt2_tokenizer, 5, 0, names=["Mary"])
    with pytest.raises(ValueError, match="make only 2 distinct prompts"):
        generate_pairs(real_gpt2_tokenizer, 3, 0, templates=TEMPLATES[:1], names=["Mary", "John"],
                       places=["store"], objects=["drink"])


def test_bad_patching_arguments_are_refused(word_tokenizer):
    model = tiny("llama")
    pair = tiny_pairs(word_tokenizer, 1)[0]
    r, d = pair.recipient_ids, pair.donor_ids
    with pytest.raises(ValueError, match="final position 99 is out of range"):
        per_head_final_states(model, r, d, 99)
    with pytest.raises(ValueError, match="layer 7 is out of range"):
        per_head_final_states(model, r, d, pair.final, layers=[7])
    with pytest.raises(ValueError, match="engine='quick'"):
        per_head_final_states(model, r, d, pair.final, engine="quick")
    with pytest.raises(ValueError, match="head 9 is out of range"):
        patch_final_states(model, r, d, pair.final, [[(0, 9)]])
    with pytest.raises(ValueError, match="pairs=\\[\\]"):
        run_ioi(model, [])


def test_a_model_that_caps_its_logits_is_refused(monkeypatch):
    model = tiny("gpt2")
    state = torch.zeros(model.config.n_embd)
    assert logit_difference(model, state, 1, 2) == 0
    monkeypatch.setattr(model.config, "final_logit_softcapping", 30.0, raising=False)
    with pytest.raises(ValueError, match="final_logit_softcapping=30.0"):
        logit_difference(model, state, 1, 2)


# ---------------------------------------------------------------------------------------
# The method, on tiny random models
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_patching_nothing_reproduces_the_recipients_logit_difference(family, word_tokenizer):
    model = tiny(family)
    pairs = tiny_pairs(word_tokenizer, 4)
    clean, _ = clean_logit_differences(model, pairs)
    for k, pair in enumerate(pairs):
        state = patch_final_states(model, pair.recipient_ids, pair.donor_ids, pair.final, [[]])
        own = model(ids_of(pair)).logits[0, -1]
        assert_within_bound(logit_difference(model, state, pair.correct_id, pair.other_id)[0],
                            own[pair.correct_id] - own[pair.other_id])
        assert_within_bound(clean[k], own[pair.correct_id] - own[pair.other_id])


@pytest.mark.parametrize("family", FAMILIES)
def test_patching_every_head_of_every_block_reproduces_the_donor(family, word_tokenizer):
    """At the final position every block's attention output is then the donor's, and the final
    token is the same, so the final position's whole residual stream is the donor's."""
    model = tiny(family)
    pairs = tiny_pairs(word_tokenizer, 4)
    _, donor = clean_logit_differences(model, pairs)
    every = [(L, h) for L in range(model.config.num_hidden_layers) for h in range(model.config.num_attention_heads)]
    for k, pair in enumerate(pairs):
        state = patch_final_states(model, pair.recipient_ids, pair.donor_ids, pair.final, [every])[0]
        donor_state = model.base_model(ids_of(pair, "donor")).last_hidden_state[0, pair.final]
        assert_within_bound(state, donor_state)
        diff = logit_difference(model, state, pair.correct_id, pair.other_id)
        assert_within_bound(diff, donor[k])
        # and it is not the recipient's: the check can fail
        clean_state = model.base_model(ids_of(pair)).last_hidden_state[0, pair.final]
        assert (clean_state - donor_state).abs().max() > 1e-3


@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(family=st.sampled_from(FAMILIES), seed=st.integers(0, 1000), layer=st.integers(0, 2),
       head=st.integers(0, 3))
def test_single_head_patch_equals_the_hand_written_forward(word_tokenizer, family, seed, layer, head):
    model = tiny(family)
    pair = tiny_pairs(word_tokenizer, 1, seed)[0]
    states = per_head_final_states(model, pair.recipient_ids, pair.donor_ids, pair.final, rows_per_pass=5)
    # The donor's head output from the reference's own clean donor pass, not from the tool.
    hd = model.config.hidden_size // model.config.num_attention_heads
    donor_value = head_outputs(model, ids_of(pair, "donor"))[layer, 0, pair.final, head * hd:(head + 1) * hd]
    assert_within_bound(donor_head_values(model, pair.donor_ids, pair.final)[layer, head], donor_value)
    want = REFERENCE[family](model, ids_of(pair), replace=[(layer, head, pair.final, donor_value, None)])
    assert_within_bound(states[layer, head], want[-1][0, pair.final])
    # the patch did something: the reference without it differs
    clean = REFERENCE[family](model, ids_of(pair))[-1][0, pair.final]
    assert not torch.equal(want[-1][0, pair.final], clean)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_donors_head_values_are_its_head_outputs(family, word_tokenizer):
    """Patching the recipient with its OWN head values changes nothing (so the values are read
    at the right place), while the donor's values do change it."""
    model = tiny(family)
    pair = tiny_pairs(word_tokenizer, 1)[0]
    r = pair.recipient_ids
    itself = per_head_final_states(model, r, r, pair.final)
    clean = model.base_model(ids_of(pair)).last_hidden_state[0, pair.final]
    assert_within_bound(itself, clean.expand_as(itself))
    patched = per_head_final_states(model, r, pair.donor_ids, pair.final)
    assert (patched - clean).abs().amax(-1).min() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_rows_per_pass_does_not_change_the_result(family, word_tokenizer):
    model = tiny(family)
    pair = tiny_pairs(word_tokenizer, 1, 3)[0]
    args = (model, pair.recipient_ids, pair.donor_ids, pair.final)
    assert_within_bound(per_head_final_states(*args, rows_per_pass=1), per_head_final_states(*args, rows_per_pass=64))


@pytest.mark.parametrize("family", FAMILIES)
def test_the_fast_engine_equals_the_naive_one_and_is_taken(family, word_tokenizer, monkeypatch):
    model = tiny(family)
    pair = tiny_pairs(word_tokenizer, 1, 5)[0]
    args = (model, pair.recipient_ids, pair.donor_ids, pair.final)
    naive = per_head_final_states(*args, engine="naive")
    sweep_module = importlib.import_module("hooks.sweep")

    def no_fallback(*a, **k):
        raise AssertionError("the fast engine fell back to the naive one")

    monkeypatch.setattr(sweep_module, "_naive", no_fallback)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast = per_head_final_states(*args, engine="fast")
    assert fast.shape == naive.shape
    for L in range(fast.shape[0]):
        for h in range(fast.shape[1]):
            assert_within_bound(fast[L, h], naive[L, h])


@pytest.mark.parametrize("family", FAMILIES)
def test_run_ioi_collects_the_per_head_logit_differences(family, word_tokenizer):
    model = tiny(family)
    pairs = tiny_pairs(word_tokenizer, 3)
    run = run_ioi(model, pairs, layers=[0, 2], heads=[1, 3])
    assert run.patched.shape == (2, 2, 3) and run.clean.shape == run.donor.shape == (3,)
    for k, pair in enumerate(pairs):
        states = per_head_final_states(model, pair.recipient_ids, pair.donor_ids, pair.final)
        want = logit_difference(model, states[[0, 2]][:, [1, 3]], pair.correct_id, pair.other_id)
        assert_within_bound(run.patched[:, :, k], want)
        assert_within_bound(run.change[:, :, k], want - run.clean[k])


def test_logit_difference_takes_one_name_pair_per_row():
    model = tiny("llama")
    torch.manual_seed(0)
    states = torch.randn(3, model.config.hidden_size)
    logits = model.get_output_embeddings()(states)
    correct, other = torch.tensor([5, 6, 7]), torch.tensor([8, 9, 10])
    want = logits[torch.arange(3), correct] - logits[torch.arange(3), other]
    assert_within_bound(logit_difference(model, states, correct, other), want)
    assert_within_bound(logit_difference(model, states[1], 6, 9), want[1])
