"""Benchmarks of the hooked forward pass on the default model (`pytest --benchmark-only`).

clean: no hook; inactive: an identity pre-hook on every block's output projection (the
cost of being hooked at all, as in the original notebook's always-installed hooks);
active: `silence(model, L, h, token)` on the middle block. The ratios to the clean pass
are printed and stored in the benchmark's extra_info.
"""
import pytest
import torch

from hooks import layout_of, silence
from hooks.silence import pre_hooks

ROUNDS = 20


@pytest.fixture(scope="module")
def forward(study_model, setup):
    model, _ = study_model
    ids = torch.tensor([setup.prompt.tokens.ids], device=next(model.parameters()).device)

    @torch.no_grad()
    def run():
        return model(ids, output_hidden_states=True).hidden_states
    return model, run


TIMES = {}


def _bench(benchmark, name, fn):
    benchmark.group = "one forward pass of the study sentence"    # one table: clean and hooked side by side
    benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    TIMES[name] = benchmark.stats.stats.median
    if "clean" in TIMES and name != "clean":
        ratio = TIMES[name] / TIMES["clean"]
        benchmark.extra_info["ratio_to_clean"] = ratio
        print(f"\n{name}: median {TIMES[name] * 1e3:.1f} ms = {ratio:.3f} x clean ({TIMES['clean'] * 1e3:.1f} ms)")


def test_clean_forward(benchmark, forward):
    _, run = forward
    _bench(benchmark, "clean", run)


def test_forward_with_inactive_hooks_on_every_block(benchmark, forward):
    model, run = forward
    layout = layout_of(model)
    with pre_hooks(model, layout, {L: (lambda x: x) for L in range(layout.n_layers)}):
        _bench(benchmark, "inactive hooks", run)


def test_forward_with_one_head_silenced(benchmark, forward, setup):
    model, run = forward
    with silence(model, layout_of(model).n_layers // 2, 0, setup.prompt.token):
        _bench(benchmark, "one head silenced", run)
