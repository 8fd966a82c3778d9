"""Benchmarks of the hooked forward pass on the default model (`pytest --benchmark-only`).

clean: no hook; inactive: an identity pre-hook on every block's output projection (the
cost of being hooked at all, as in the original notebook's always-installed hooks);
active: `silence(model, L, h, token)` on the middle block. The ratios to the clean pass
are printed and stored in the benchmark's extra_info. Each benchmark also asserts what it
timed: inactive hooks give the clean hidden states bit for bit; the silenced pass changes the
middle block's output at the token and nothing before the block or the token. (No bound on
the ratios: on this shared machine one run measured the hooked passes faster than the clean one.)
(Their CI twins, which run without --benchmark-only: tests/engine/test_hooks_properties.py.)
"""
import pytest
import torch

from hooks import layout_of, silence
from hooks.ablate import pre_hooks

ROUNDS = 20


@pytest.fixture(scope="module")
def forward(study_model, study_setup):
    model, _ = study_model
    ids = torch.tensor([study_setup.prompt.tokens.ids], device=next(model.parameters()).device)

    @torch.no_grad()
    def run():
        return model(ids, output_hidden_states=True).hidden_states
    return model, run


TIMES = {}


def _bench(benchmark, name, fn):
    """Time fn; return what its last round returned."""
    benchmark.group = "one forward pass of the study sentence"    # one table: clean and hooked side by side
    out = benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    TIMES[name] = benchmark.stats.stats.median
    if "clean" in TIMES and name != "clean":
        ratio = TIMES[name] / TIMES["clean"]
        benchmark.extra_info["ratio_to_clean"] = ratio
        print(f"\n{name}: median {TIMES[name] * 1e3:.1f} ms = {ratio:.3f} x clean ({TIMES['clean'] * 1e3:.1f} ms)")
    return out


CLEAN = {}


def test_clean_forward(benchmark, forward):
    _, run = forward
    CLEAN["states"] = _bench(benchmark, "clean", run)
    assert len(CLEAN["states"]) == layout_of(forward[0]).n_layers + 1


def test_forward_with_inactive_hooks_on_every_block(benchmark, forward):
    model, run = forward
    layout = layout_of(model)
    with pre_hooks(model, layout, {L: (lambda x: x) for L in range(layout.n_layers)}):
        states = _bench(benchmark, "inactive hooks", run)
    clean = CLEAN.get("states") or run()
    assert all(torch.equal(a, b) for a, b in zip(states, clean)), "an identity hook changed the forward pass"


def test_forward_with_one_head_silenced(benchmark, forward, study_setup):
    model, run = forward
    L, t = layout_of(model).n_layers // 2, study_setup.prompt.token
    with silence(model, L, 0, t):
        states = _bench(benchmark, "one head silenced", run)
    clean = CLEAN.get("states") or run()
    assert all(torch.equal(states[i], clean[i]) for i in range(L + 1)), "a block before the silenced one changed"
    assert torch.equal(states[L + 1][:, :t], clean[L + 1][:, :t]), "a position before the token changed"
    assert not torch.equal(states[L + 1][:, t], clean[L + 1][:, t]), "silencing did not change the token"
