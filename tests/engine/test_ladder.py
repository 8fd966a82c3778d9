"""The scale ladder resumed (experiments/scales.py through hooks.resumed_pass): engine="fast"
gives the numbers of engine="naive" (the plain batched pass the ladder always ran) and of the
hand-written reference forward pass (tests/helpers/reference.py), and gets there on its fast path.

- Every kind of the ladder on tiny random models of every family (GPT-2, Llama, sliding
  windows, Gemma-2/3's per-kind rotary tables, parallel GPT-NeoX / Phi, OLMo-2's post-norms,
  mixture-of-experts), with the token in the middle, at the start and after the pair's
  second word: every readout fast == naive == reference.
- hooks.resumed_pass alone, on rows that start anywhere and edit any later position:
  hidden states fast == naive == reference.
- The invariant "an intervention confined to block L changes nothing before block L", where
  it can fail: every row of the plain pass, and the fast ladder's witness row (a leak planted
  there is seen).
- The fast path is taken; where it cannot be exact it warns, says why and gives the plain pass.
- SmolLM2-135M-Instruct: the positive control's kind on two test sentences, fast == naive.

Bound (hooks/precision.py): hidden states to 1e-5 * max(1, max|plain|) per block. Readouts,
to the same bound of the numbers they are read from: Δcos and ripple relative to max(1,
max|plain|) (cosines: 1); Δlogprob and KL relative to max(1, max|logit|) as well, since a
log-prob is a logit minus a log-sum-exp of logits (SmolLM2's logits reach ~23, and its plain
pass moves a log-prob by 2e-5 nats between two batch shapes).
"""
from __future__ import annotations

import importlib
import warnings
from contextlib import contextmanager

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments import scales
from experiments.question import synthetic_prompt
from hooks import ablate, layout_of, resumed_pass, scale_block
from hooks.precision import bound
from tests.helpers.hypothesis_profiles import examples
from tests.helpers.reference import hidden_states
from tests.helpers.tiny_models import VOCAB, tiny

resume_module = importlib.import_module("hooks.resume")

BOUND = bound(torch.float32)
READOUTS = ("ripple", "logprob", "kl")        # cos is ripple's diagonal
FACTORS = {"update x1.5 @ token": 1.5, "update x0.5 @ token": 0.5, "update x0 @ token": 0.0}
# One case of every family (windowed where the family slides).
CASES = ["gpt2", "llama", "mistral-window", "qwen2-window", "qwen3_moe-window", "gemma2", "gemma3_text", "gpt_neox",
         "phi", "phi3-window", "olmo", "olmo2", "starcoder2"]
# (token, tested pair): in the middle with the pair's second word after it, later than that
# word (it reads clean columns), and at the first position (nothing to skip).
LAYOUTS = [(4, (4, 7)), (6, (6, 2)), (0, (0, 5))]


@contextmanager
def fast_path_only():
    """Inside: resumed_pass(engine="fast") must take its fast path (no warning, no plain pass)."""
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        patch.setattr(resume_module, "_naive", lambda *a, **k: pytest.fail("the fast ladder ran the plain pass"))
        warnings.simplefilter("error", RuntimeWarning)
        yield


def readouts(m: scales.ScaleMeasurement) -> dict:
    return {name: getattr(m, name) for name in READOUTS}


@torch.no_grad()
def logit_scale(model, prompts) -> float:
    """max(1, max|logit|) of each prompt's clean pass where the ladder reads log-probs
    (positions j - 1 and the last): the scale of what Δlogprob and KL are computed from."""
    worst = 1.0
    for p in prompts:
        final = model.base_model(torch.tensor([p.tokens.ids])).last_hidden_state
        logits = model.get_output_embeddings()(final[:, [p.tested.j - 1, len(p.tokens.ids) - 1]])
        worst = max(worst, logits.abs().max().item())
    return worst


def ladder_errors(got: dict, want: dict, logits: float, own: dict | None = None) -> dict:
    """Per readout: (max|got - want|, its tolerance). Tolerance: BOUND x max(1, max|want|),
    for the log-prob readouts x max(1, max|want|, logits), plus own[name] where given (the
    plain pass's own round-off between two batch shapes, measured by the caller)."""
    out = {}
    for name in READOUTS:
        scale = max(1.0, want[name].abs().max().item(), logits if name != "ripple" else 1.0)
        out[name] = ((got[name] - want[name]).abs().max().item(), BOUND * scale + (own or {}).get(name, 0.0))
    return out


def assert_ladder_exact(got: dict, want: dict, logits: float, what: str, own: dict | None = None) -> None:
    errors = ladder_errors(got, want, logits, own)
    beyond = {k: f"{err:.3g} > {tol:.3g}" for k, (err, tol) in errors.items() if err > tol}
    assert not beyond, f"{what}: {beyond}"


def assert_states_exact(got, want, what: str) -> None:
    """The engine's bound per hidden-states tensor (each block's output, all rows)."""
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what}: hidden_states[{k}] shape {list(g.shape)} != {list(w.shape)}"
        err = (g - w).abs().max().item()
        assert err <= BOUND * max(1.0, w.abs().max().item()), f"{what}: hidden_states[{k}] differs by {err:.3g}"


def ids_of(seq: int, seed: int) -> list[int]:
    return torch.randint(0, VOCAB, (seq,), generator=torch.Generator().manual_seed(seed)).tolist()


def selection_of(model) -> scales.Selection:
    layout = layout_of(model)
    return scales.Selection([(3 * L + 1) % layout.n_heads for L in range(layout.n_layers)], [])


def reference_ladder(model, prompt, kind: str, top_heads: list[int]):
    """The ladder's batched pass written out by hand: row L edited at block L, the last row
    clean, through the hand-written forward pass (tests/helpers/reference.py)."""
    layout = layout_of(model)
    n, t = layout.n_layers, prompt.token
    ids = torch.tensor([prompt.tokens.ids]).expand(n + 1, -1)
    if kind in FACTORS:
        return hidden_states(model, ids, scale=[(L, t, FACTORS[kind], [L]) for L in range(n)])
    if kind == "all heads @ token":
        edits = [(L, h, t, None, [L]) for L in range(n) for h in range(layout.n_heads)]
    else:
        at = None if kind == "top head @ every token" else t
        edits = [(L, top_heads[L], at, None, [L]) for L in range(n)]
    return hidden_states(model, ids, replace=edits)


@pytest.mark.parametrize("case", CASES)
def test_fast_ladder_equals_the_plain_pass_and_the_reference(case):
    """Every kind, three token layouts: each readout of the fast ladder equals the plain pass's
    and the hand-written reference's, to the bound; the witness row stays exactly clean."""
    model = tiny(case)
    selection = selection_of(model)
    prompts = [synthetic_prompt(ids_of(9, 7), t, [pair]) for t, pair in LAYOUTS]
    logits = logit_scale(model, prompts)
    for kind in scales.KINDS:
        with fast_path_only():
            fast = scales.measure_kind(model, prompts, kind, selection)
        naive = scales.measure_kind(model, prompts, kind, selection, engine="naive")
        assert_ladder_exact(readouts(fast), readouts(naive), logits, f"{case}, {kind}: fast vs naive")
        for i, p in enumerate(prompts):
            cos, lp, kl = scales.deltas(model, p, reference_ladder(model, p, kind, selection.top_heads))
            want = {"ripple": cos, "logprob": lp, "kl": kl}
            got = {name: value[..., i] for name, value in readouts(fast).items()}
            assert_ladder_exact(got, want, logits, f"{case}, {kind}, token {p.token}: fast vs reference")
        n = fast.ripple.shape[0]
        assert torch.all(fast.ripple[scales.WITNESS % n, :n - 1] == 0), f"{case}, {kind}: the witness row moved early"


@pytest.mark.parametrize("kind", [scales.KINDS[0], scales.EVERY_TOKEN])
def test_the_fast_ladder_runs_each_row_from_its_block_and_the_token(kind, monkeypatch):
    """The work the fast path saves is really skipped: block k runs on the probe, the witness and
    rows 0..k only, and (but for the every-token kind) on columns token.. only."""
    from hooks.blocks import Resumer

    model = tiny("llama", n_layer=4)
    prompt = synthetic_prompt(ids_of(9, 2), 6, [(6, 2)])
    calls, block = [], Resumer.block
    monkeypatch.setattr(Resumer, "block", lambda self, k, x: calls.append((k, *x.shape[:2])) or block(self, k, x))
    with fast_path_only():
        scales.measure_kind(model, [prompt], kind, selection_of(model))
    width = 9 if kind == scales.EVERY_TOKEN else 9 - 6
    assert calls == [(k, k + 3 if k < 3 else 5, width) for k in range(4)]


@pytest.mark.parametrize("case", ["gpt2", "llama", "mistral-window", "gemma3_text", "gpt_neox"])
def test_kinds_measured_together_equal_each_kind_alone(case, monkeypatch):
    """measure_kinds runs every kind at the token in ONE resumed pass per prompt (one clean
    pass, each block once on all their rows) and the every-token kind in one more: each
    kind's readouts equal measure_kind of that kind alone, fast and naive, to the bound."""
    import hooks.resume as resume

    model = tiny(case, n_layer=3)
    selection = selection_of(model)
    prompts = [synthetic_prompt(ids_of(9, 11), t, [pair]) for t, pair in LAYOUTS]
    logits = logit_scale(model, prompts)
    runs, clean_run = [], resume.clean_run
    monkeypatch.setattr(resume, "clean_run", lambda *a, **k: runs.append(1) or clean_run(*a, **k))
    with fast_path_only():
        together = scales.measure_kinds(model, prompts, scales.KINDS, selection)
    assert len(runs) == 2 * len(prompts), "one clean pass per prompt for the kinds at the token, one for every-token"
    naive = scales.measure_kinds(model, prompts, scales.KINDS, selection, engine="naive")
    for kind in scales.KINDS:
        alone = scales.measure_kind(model, prompts, kind, selection, engine="naive")
        assert together[kind].kind == kind and together[kind].top_heads == alone.top_heads
        assert_ladder_exact(readouts(together[kind]), readouts(alone), logits, f"{case}, {kind}: together vs alone")
        assert_ladder_exact(readouts(naive[kind]), readouts(alone), logits, f"{case}, {kind}: naive together")
        assert torch.equal(together[kind].cos, torch.stack([together[kind].ripple[L, L] for L in range(3)]))
        n = together[kind].ripple.shape[0]
        assert torch.all(together[kind].ripple[n - 1, :n - 1] == 0), f"{kind}: its witness row moved early"


def test_kinds_measured_together_share_each_blocks_call(monkeypatch):
    """Block k runs once per prompt for all the kinds at the token: on the probe and, per kind,
    its witness and rows 0..k, at columns token.. only."""
    from hooks.blocks import Resumer

    model = tiny("llama", n_layer=4)
    prompt = synthetic_prompt(ids_of(9, 2), 6, [(6, 2)])
    at_token = [k for k in scales.KINDS if k != scales.EVERY_TOKEN]
    calls, block = [], Resumer.block
    monkeypatch.setattr(Resumer, "block", lambda self, k, x: calls.append((k, *x.shape[:2])) or block(self, k, x))
    with fast_path_only():
        scales.measure_kinds(model, [prompt], at_token, selection_of(model))
    kinds = len(at_token)
    assert calls == [(k, 1 + kinds * (k + 2 if k < 3 else 4), 9 - 6) for k in range(4)]


@pytest.mark.parametrize("kinds, message", [
    (["top head @ token", "top head @ token"], "at most once"),
    (["the whole model"], "at most once"),
])
def test_bad_kinds_are_named(kinds, message):
    model = tiny("gpt2")
    with pytest.raises(ValueError, match=message):
        scales.measure_kinds(model, [synthetic_prompt(ids_of(6, 0), 2, [(2, 4)])], kinds, selection_of(model))


@pytest.mark.parametrize("case", ["gpt2", "llama", "mistral-window", "gemma3_text", "gpt_neox"])
def test_fast_top_k_equals_the_plain_pass_and_the_reference(case, monkeypatch):
    """The top-k heads silenced together, each row resumed from the first block it silences and
    the token: fast == naive == the hand-written reference (every head of the row zeroed at the
    token, the last row clean), and the fast rows really start there."""
    from hooks.blocks import Resumer

    model = tiny(case, n_layer=3)
    layout = layout_of(model)
    ranked = [(2, 1), (1, 0), (2, 3), (0, 2), (1, 3)]            # a later block first: row starts differ
    selection = scales.Selection([0] * layout.n_layers, ranked)
    prompts = [synthetic_prompt(ids_of(9, 5), t, [pair]) for t, pair in LAYOUTS]
    ks = (1, 2, 4, 5)
    calls, block = [], Resumer.block
    monkeypatch.setattr(Resumer, "block", lambda self, k, x: calls.append((k, *x.shape[:2])) or block(self, k, x))
    with fast_path_only():
        fast = scales.measure_top_k(model, prompts, ks, selection)
    naive = scales.measure_top_k(model, prompts, ks, selection, engine="naive")
    logits = logit_scale(model, prompts)
    get = lambda m: {"ripple": m.cos, "logprob": m.logprob, "kl": m.kl}          # noqa: E731
    assert_ladder_exact(get(fast), get(naive), logits, f"{case}: top-k fast vs naive")
    for i, p in enumerate(prompts):
        ids = torch.tensor([p.tokens.ids]).expand(len(ks) + 1, -1)
        edits = [(L, h, p.token, None, [r]) for r, k in enumerate(ks) for L, h in ranked[:k]]
        cos, lp, kl = scales.deltas(model, p, hidden_states(model, ids, replace=edits))
        want = {"ripple": cos[:, -1], "logprob": lp, "kl": kl}
        assert_ladder_exact({name: v[..., i] for name, v in get(fast).items()}, want, logits,
                            f"{case}, token {p.token}: top-k fast vs reference")
    # Per prompt: block k runs on the probe and the rows whose first silenced block is <= k (the
    # rows of k = 1, 2, 4, 5 heads first silence blocks 2, 1, 0, 0), at columns token.. only.
    starts = [2, 1, 0, 0]
    want_calls = [(k, 1 + sum(s <= k for s in starts), 9 - t) for t, _ in LAYOUTS for k in range(min(starts), 3)]
    assert calls == want_calls


@pytest.mark.parametrize("case", ["gpt2", "llama", "gemma3_text"])
def test_top_k_rows_in_the_kinds_pass_equal_top_k_alone(case, monkeypatch):
    """A run measures top-k in the ladder's pass of the kinds at the token (measure_kinds with
    ks, the rows after the kinds'): the numbers of top-k's own pass, fast and naive, the kinds'
    numbers unchanged, and on the fast path each block runs once per prompt for all of them."""
    from hooks.blocks import Resumer

    model = tiny(case, n_layer=3)
    layout = layout_of(model)
    ranked = [(2, 1), (1, 0), (2, 3), (0, 2), (1, 3)]
    selection = scales.Selection([(L + 1) % layout.n_heads for L in range(layout.n_layers)], ranked)
    prompts = [synthetic_prompt(ids_of(9, 5), t, [pair]) for t, pair in LAYOUTS]
    ks = (1, 2, 4, 5, 99)                                          # 99: more heads than ranked, left out
    kinds = [k for k in scales.KINDS if k not in (scales.SKIP_BLOCK, scales.EVERY_TOKEN)]
    logits = logit_scale(model, prompts)
    top = lambda m: {"ripple": m.cos, "logprob": m.logprob, "kl": m.kl}          # noqa: E731
    calls, block = [], Resumer.block
    monkeypatch.setattr(Resumer, "block", lambda self, k, x: calls.append(k) or block(self, k, x))
    for engine in ("fast", "naive"):
        calls.clear()
        together = scales.measure_kinds(model, prompts, kinds, selection, engine, ks)
        if engine == "fast":
            assert calls == list(range(layout.n_layers)) * len(prompts), "a second pass for the top-k rows"
        alone = scales.measure_top_k(model, prompts, ks, selection, engine)
        got = together[scales.TOP_K]
        assert (got.ks, got.sites, alone.ks) == ((1, 2, 4, 5), ranked, (1, 2, 4, 5))
        assert_ladder_exact(top(got), top(alone), logits, f"{case} {engine}: top-k with the kinds vs alone")
        without = scales.measure_kinds(model, prompts, kinds, selection, engine)
        for kind in kinds:
            assert_ladder_exact(readouts(together[kind]), readouts(without[kind]), logits,
                                f"{case} {engine}: {kind} with top-k vs without")
    every = scales.measure_kinds(model, prompts, [scales.EVERY_TOKEN], selection, "fast", ks)
    assert_ladder_exact(top(every[scales.TOP_K]), top(alone), logits, f"{case}: top-k beside the every-token kind")
    none = scales.measure_kinds(model, prompts, kinds, selection, "fast", (99,))[scales.TOP_K]
    assert none.ks == () and none.cos.shape == (0, len(prompts)) and scales.TOP_K not in without


@st.composite
def rows_of_edits(draw):
    """A tiny model, a prompt, a first edited position (or None: every position may change),
    and per row: its start block and the edits it makes at or after its start and position."""
    case = draw(st.sampled_from(["gpt2", "llama", "mistral-window", "gpt_neox"]))
    n_layer, seq = draw(st.integers(1, 3)), draw(st.integers(1, 9))
    token = draw(st.none() | st.integers(0, seq - 1))
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, n_layer - 1))
        block = draw(st.integers(start, n_layer - 1))
        at = draw(st.integers(0 if token is None else token, seq - 1))
        how = draw(st.sampled_from(["head at", "head everywhere", "scale at"]) if token is None
                   else st.sampled_from(["head at", "scale at"]))
        rows.append((start, block, at, how, draw(st.integers(0, 3)), draw(st.sampled_from([0.0, 0.5, 1.5]))))
    return case, n_layer, seq, token, rows, draw(st.integers(0, 2**16))


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows_of_edits())
def test_resumed_pass_equals_the_plain_pass_and_the_reference(drawn):
    """Rows that start at any block (several at one, in any order) and edit any position from
    the first edited one on: hidden states fast == plain hooked pass == hand-written reference."""
    case, n_layer, seq, token, rows, seed = drawn
    model = tiny(case, n_layer=n_layer)
    ids = torch.tensor([ids_of(seq, seed)])

    def install(stack, r, row, offset):
        _, block, at, how, head, factor = rows[r]
        if how == "scale at":
            stack.enter_context(scale_block(model, block, factor, at - offset, rows=[row]))
        else:
            stack.enter_context(ablate(model, block, head, None if how == "head everywhere" else at - offset,
                                       rows=[row]))

    starts = [row[0] for row in rows]
    with fast_path_only():
        fast = resumed_pass(model, ids, token, starts, install)
    naive = resumed_pass(model, ids, token, starts, install, engine="naive")
    assert_states_exact(fast, naive, f"{case}: fast vs naive")
    replace = [(b, h, None if how == "head everywhere" else at, None, [r])
               for r, (_, b, at, how, h, _) in enumerate(rows) if how != "scale at"]
    scale = [(b, at, f, [r]) for r, (_, b, at, how, _, f) in enumerate(rows) if how == "scale at"]
    want = hidden_states(model, ids.expand(len(rows) + 1, -1), replace=replace, scale=scale)
    assert_states_exact(fast, want, f"{case}: fast vs reference")


@pytest.mark.parametrize("case", ["gpt2", "llama", "mistral-window", "gpt_neox"])
def test_the_plain_ladder_changes_nothing_before_an_interventions_block(case):
    """The study's invariant where it can fail on every row: in the plain batched pass, each
    kind's row L has exactly the clean row's cosines at every block before L."""
    model = tiny(case, n_layer=4)
    prompts = [synthetic_prompt(ids_of(9, 8), t, [pair]) for t, pair in LAYOUTS]
    for kind in scales.KINDS:
        m = scales.measure_kind(model, prompts, kind, selection_of(model), engine="naive")
        earlier = [L for L in range(m.ripple.shape[0]) if not torch.all(m.ripple[L, :L] == 0)]
        assert not earlier, f"{case}, {kind}: rows {earlier} moved before their block"
        assert all(m.ripple[L, L].abs().max() > 0 for L in range(m.ripple.shape[0])), f"{kind}: a row never moved"


def test_a_leak_before_the_block_shows_on_the_fast_ladders_witness_row(monkeypatch):
    """The witness row runs every block on the fast engine, so the study's invariant test can
    still fail there: plant an edit one block early on it, and its early cosines move."""
    model = tiny("llama", n_layer=4)
    prompts = [synthetic_prompt(ids_of(9, 8), 4, [(4, 7)])]
    n = layout_of(model).n_layers
    enter = scales._enter

    def leaky(stack, model_, kind, L, token, row, top_head, n_heads):
        enter(stack, model_, kind, L, token, row, top_head, n_heads)
        if L == n - 1:
            enter(stack, model_, kind, n - 3, token, row, top_head, n_heads)     # the planted leak

    monkeypatch.setattr(scales, "_enter", leaky)
    for kind in ("top head @ token", "update x0 @ token"):
        with fast_path_only():
            m = scales.measure_kind(model, prompts, kind, selection_of(model))
        assert torch.all(m.ripple[n - 1, :n - 3] == 0) and m.ripple[n - 1, n - 3].abs().max() > 0, kind


def test_a_model_that_cannot_be_resumed_gives_the_plain_pass_and_says_why():
    """Bidirectional attention: earlier positions see the edited token, so their clean keys
    cannot be reused; the fast ladder warns with that reason and gives the plain pass's numbers."""
    import transformers as tf

    torch.manual_seed(0)
    config = tf.Gemma3TextConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 head_dim=8, intermediate_size=64, vocab_size=VOCAB, sliding_window=4,
                                 query_pre_attn_scalar=8, use_bidirectional_attention=True)
    model = tf.Gemma3ForCausalLM(config).eval()
    prompts = [synthetic_prompt(ids_of(7, 5), 3, [(3, 5)])]
    naive = scales.measure_kind(model, prompts, scales.KINDS[0], selection_of(model), engine="naive")
    with pytest.warns(RuntimeWarning, match="bidirectional"):
        fast = scales.measure_kind(model, prompts, scales.KINDS[0], selection_of(model))
    assert all(torch.equal(a, b) for a, b in zip(readouts(fast).values(), readouts(naive).values()))


def test_a_probe_row_that_misses_the_clean_pass_gives_the_plain_pass(monkeypatch):
    model = tiny("llama")
    prompts = [synthetic_prompt(ids_of(9, 3), 4, [(4, 7)])]
    naive = scales.measure_kind(model, prompts, scales.SKIP_BLOCK, selection_of(model), engine="naive")
    monkeypatch.setattr(resume_module, "within_bound", lambda *a, **k: False)
    with pytest.warns(RuntimeWarning, match="probe row"):
        fast = scales.measure_kind(model, prompts, scales.SKIP_BLOCK, selection_of(model))
    assert all(torch.equal(a, b) for a, b in zip(readouts(fast).values(), readouts(naive).values()))


@pytest.mark.parametrize("call, message", [
    (lambda m, ids: resumed_pass(m, ids.expand(2, -1), 1, [0], None), "pass ONE prompt"),
    (lambda m, ids: resumed_pass(m, ids, 9, [0], None), "token=9: pass a position in 0..5"),
    (lambda m, ids: resumed_pass(m, ids, 1, [0, 3], None), "not [3]"),
    (lambda m, ids: resumed_pass(m, ids, 1, [0], None, engine="slow"), "engine='slow'"),
])
def test_bad_arguments_are_named(call, message):
    model = tiny("gpt2")
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call(model, torch.tensor([ids_of(6, 0)]))


# ---------------------------------------------------------------------------------------
# The real SmolLM2-135M-Instruct (offline, bundled)
# ---------------------------------------------------------------------------------------

def smollm2_test_prompts(model, count: int):
    """The first `count` test sentences of the ladder (the exploration half's first ones)."""
    from transformers import AutoTokenizer

    from experiments.population import HALVES
    from experiments.prompt_set import locate_prompts, read_prompts
    from experiments.question import Question
    from models.loading import SMOLLM2, resolve

    choice = resolve(SMOLLM2)
    tokenizer = AutoTokenizer.from_pretrained(choice.source, local_files_only=choice.local_only)
    return locate_prompts(tokenizer, read_prompts(HALVES["exploration"])[:count], Question())


def test_smollm2_skip_block_ladder_fast_equals_the_plain_pass(smollm2_study_input):
    """The positive control's kind on the first two test sentences (token before and after
    the pair's second word): every readout fast == plain, and the first one's hidden states."""
    model, _ = smollm2_study_input
    prompts = smollm2_test_prompts(model, 2)
    assert prompts[0].tested.j > prompts[0].token and prompts[1].tested.j < prompts[1].token
    selection = scales.Selection([0] * layout_of(model).n_layers, [])
    with fast_path_only():
        fast = scales.measure_kind(model, prompts, scales.SKIP_BLOCK, selection)
    naive = scales.measure_kind(model, prompts, scales.SKIP_BLOCK, selection, engine="naive")
    assert_ladder_exact(readouts(fast), readouts(naive), logit_scale(model, prompts), "SmolLM2, skip block")
    n = fast.ripple.shape[0]
    assert torch.all(fast.ripple[n - 1, :n - 1] == 0)

    p = prompts[0]
    starts = list(range(n))
    starts[scales.WITNESS] = 0

    def install(stack, L, row, offset):
        stack.enter_context(scale_block(model, L, 0.0, p.token - offset, rows=[row]))

    ids = torch.tensor([p.tokens.ids])
    with fast_path_only():
        states = resumed_pass(model, ids, p.token, starts, install)
    assert_states_exact(states, resumed_pass(model, ids, p.token, starts, install, engine="naive"), "SmolLM2 states")
