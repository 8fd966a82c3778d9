"""Benchmarks of sweep's jobs: every position at once, and a padded batch of prompts, each
side by side with the plain way in one run.

Run with:  python -m pytest tests/benchmarks/test_patching_benchmarks.py --benchmark-only -s -p no:randomly
(without --benchmark-only every test here is skipped before any model is built.)

(a) GPT-2 Large shape, random weights (36 x 20 heads, width 1280), 9 tokens: all 6,480
    (position, layer, head) zero ablations, readout "final", in a FRESH subprocess that
    builds the model, warms both sides up, then per position t: the fast sweep of all 720
    (layer, head) at t (timed), then 4 passes of the steady plain loop -- one hooked forward
    pass per (position, layer, head) -- at t (each timed; layers 0, 17, 35 and heads 0, 19 in
    turn), each checked against the fast result. The plain side is the median pass x 6,480
    (every plain pass costs the same: one forward pass of the 9 tokens). The 9 fast calls do
    the work of the one call sweep(model, ids, range(9), "final") plus 8 extra clean passes:
    an upper bound on it. Beside the ratio: its FLOP ceiling, and the machine's ceiling (the
    least FLOPs any exact engine must spend, at the best float32 matrix-multiply rate
    measured in the same process). Peak resident memory is read with all 6,480 results held.
    Targets: >= 15x, peak resident memory < 8 GB.
(b) 24 prompts of different lengths (6-14 tokens, random ids, right padding) as ONE padded
    batch against 24 separate sweeps of the prompts alone, readout "block" (the across-
    prompt study's readout), every (layer, head), token in the middle of each prompt:
    GPT-2 Large shape (2 rounds), and SmolLM2-135M-Instruct on the study's 24 prompt
    variants (3 rounds); the two sides alternate and the fastest round of each counts.
    Beside the ratio, the machine's ceiling: both sides must spend the same least FLOPs
    (tests/helpers/baselines.padded_block_least_flops), so the FLOP ceiling is 1x and the gain
    is how much closer to the machine's best matrix-multiply rate (measured in the same
    process) one batch runs than 24 small sweeps; the padded batch's own rate is shown too.
    Target: >= 3x.
"""
from __future__ import annotations

import textwrap
import time
from pathlib import Path

import torch

from hooks import sweep
from tests.helpers.baselines import (gemm_rate, machine_figures, padded_block_least_flops, plain_and_least_flops,
                                     record_ratio)
from tests.benchmarks.test_sweep_benchmarks import gpt2_large_shape, in_fresh_process

ROOT = Path(__file__).resolve().parents[2]
EVERY_POSITION_TARGET = 15.0
MAX_PEAK_GB = 8.0
PADDED_TARGET = 3.0

EVERY_POSITION_SCRIPT = textwrap.dedent("""
    import json, resource, statistics, sys, time
    import torch
    sys.path.insert(0, {root!r})
    from tests.benchmarks.test_sweep_benchmarks import gpt2_large_shape
    from tests.helpers.baselines import PlainLoop, gemm_rate
    from hooks import sweep
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB -> GiB
    model = gpt2_large_shape()
    ids = torch.randint(0, 50257, (1, 9), generator=torch.Generator().manual_seed(0))
    report = {{"after_build_gib": rss(), "gemm_flop_per_s": gemm_rate(1280)}}
    layers, heads = [0, 17, 35], [0, 19]
    plain = lambda L, h, t: PlainLoop(model, ids, [(L, h, t)]).next()[-1][0]  # one hooked pass, final normed
    plain(0, 0, 0), plain(17, 19, 4)                                          # warm-up: the steady loop
    sweep(model, ids, [8], "final")
    fast, fast_s, plain_s, worst = [], [], [], 0.0
    for t in range(9):                    # each position: the fast sweep, then 4 plain passes, alternating
        start = time.perf_counter()
        fast.append(sweep(model, ids, [t], "final")[0])                      # [36, 20, 9, 1280]
        fast_s.append(time.perf_counter() - start)
        for k in range(4):
            L, h = layers[(t + k) % 3], heads[k % 2]
            start = time.perf_counter()
            out = plain(L, h, t)
            plain_s.append(time.perf_counter() - start)
            err = (fast[-1][L, h] - out).abs().max().item() / max(1.0, out.abs().max().item())
            worst = max(worst, err)
    report.update(after_fast_gib=rss(), max_relative_error=worst, fast_s=sum(fast_s), fast_per_position_s=fast_s,
                  plain_pass_s=statistics.median(plain_s), plain_passes=len(plain_s),
                  entries=sum(f.shape[0] * f.shape[1] for f in fast))
    print(json.dumps(report))
""")


def test_gpt2_large_shape_every_position(benchmark):
    """All 6,480 (position, layer, head), readout "final": fast vs the steady plain loop, the
    ceilings (FLOPs; least FLOPs at this machine's measured matrix-multiply rate), peak memory."""
    benchmark.group = "GPT-2 Large shape, every position, readout final"    # before timing: the table reads it then
    report = in_fresh_process(benchmark, EVERY_POSITION_SCRIPT)
    plain_s = report["plain_pass_s"] * report["entries"]
    peak = report["after_fast_gib"]
    with torch.device("meta"):                   # the FLOP count needs shapes only
        model = gpt2_large_shape()
        plain_flops, least_flops = plain_and_least_flops(model, [9], [(9, t) for t in range(9)], "final")
    shortest_s = least_flops / report["gemm_flop_per_s"]
    machine = machine_figures(fast_s=report["fast_s"], plain_s=plain_s, least_flops=least_flops,
                              gemm_flop_per_s=report["gemm_flop_per_s"])
    ratio = record_ratio(benchmark, fast_s=report["fast_s"], plain_s=plain_s, flop_ceiling=plain_flops / least_flops,
                         plain_side=f"median of {report['plain_passes']} hooked passes x {report['entries']}",
                         **machine, peak_rss_gib=round(peak, 2), model_gib=round(report["after_build_gib"], 2),
                         max_relative_error=report["max_relative_error"])
    print(f"\n[GPT-2 Large shape, {report['entries']} (position, layer, head) zero ablations, readout=final, "
          f"fresh process] fast {report['fast_s']:.1f} s; steady plain loop {plain_s:.0f} s (median of "
          f"{report['plain_passes']} hooked passes, {report['plain_pass_s']:.3f} s, x{report['entries']}, alternating "
          f"with the 9 fast calls): speedup {ratio:.1f}x. Ceilings: FLOPs {plain_flops / least_flops:.1f}x; "
          f"the least FLOPs ({least_flops / 1e12:.1f} TFLOP) at this machine's best matrix-multiply rate "
          f"({report['gemm_flop_per_s'] / 1e9:.0f} GFLOP/s) take {shortest_s:.0f} s, so at most "
          f"{plain_s / shortest_s:.1f}x; the fast sweep runs at {least_flops / report['fast_s'] / 1e9:.0f} GFLOP/s "
          f"of useful work. Peak RSS {peak:.2f} GiB (model built: {report['after_build_gib']:.2f} GiB); "
          f"max relative error {report['max_relative_error']:.2g}")
    assert report["max_relative_error"] <= 1e-5
    assert ratio >= EVERY_POSITION_TARGET, f"{ratio:.1f}x is below the {EVERY_POSITION_TARGET:g}x target"
    assert peak * 2**30 < MAX_PEAK_GB * 1e9, f"peak resident memory {peak:.2f} GiB >= {MAX_PEAK_GB:g} GB"


def _right_padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, :len(r)] = torch.tensor(r)
        mask[b, :len(r)] = 1
    return ids, mask


@torch.no_grad()
def padding_round_off(model, ids, mask, rows) -> float:
    """How far the model's own CLEAN pass of the padded batch is from each prompt's clean pass
    alone (relative, as the engine's bound): float32 round-off of a differently shaped batch,
    whatever the engine. SmolLM2, whose activations reach ~100, shows up to 1.7e-5 on the
    exploration sentences; a padded sweep compared with sweeps of prompts alone carries it."""
    base = model.base_model
    batch = base(ids, attention_mask=mask, output_hidden_states=True).hidden_states
    worst = 0.0
    for b, r in enumerate(rows):
        alone = base(ids[b:b + 1, :len(r)], output_hidden_states=True).hidden_states
        for padded, one in zip(batch, alone):
            err = (padded[b, :len(r)] - one[0]).abs().max() / one[0].abs().max().clamp(min=1.0)
            worst = max(worst, err.item())
    return worst


def _compare_padded(benchmark, model, rows: list[list[int]], label: str, rounds: int) -> float:
    """Time one padded-batch sweep and 24 separate sweeps, alternating, `rounds` times each;
    the fastest round of each side counts (this machine is shared: a round can be slowed
    several-fold by other processes, the fastest is the closest to the code's own cost)."""
    benchmark.group = f"{label}: one padded batch vs a sweep per prompt"
    ids, mask = _right_padded(rows)
    tokens = [len(r) // 2 for r in rows]
    sweep(model, ids[:1, :len(rows[0])], tokens[0], "block")                   # warm the process
    batched_times, separate_times = [], []

    def batched_round():
        start = time.perf_counter()
        out = sweep(model, ids, torch.tensor(tokens), "block", attention_mask=mask)
        batched_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        alone = [sweep(model, ids[b:b + 1, :len(r)], tokens[b], "block") for b, r in enumerate(rows)]
        separate_times.append(time.perf_counter() - start)
        return out, alone

    batched, alone = benchmark.pedantic(batched_round, rounds=rounds, iterations=1)
    batched_s, separate_s = min(batched_times), min(separate_times)
    worst = 0.0
    for b, one in enumerate(alone):
        err = (batched[b, :, :, :len(rows[b])] - one).abs().amax(dim=(-2, -1))
        worst = max(worst, (err / one.abs().amax(dim=(-2, -1)).clamp(min=1.0)).max().item())
    batching = padding_round_off(model, ids, mask, rows)
    lengths = sorted(len(r) for r in rows)
    # Both sides must spend the same least FLOPs (padding is no part of it): the FLOP ceiling
    # is 1x, and what batching gains is the machine's, so its ceiling is the one to show.
    least = padded_block_least_flops(model, lengths)
    machine = machine_figures(fast_s=batched_s, plain_s=separate_s, least_flops=least,
                              gemm_flop_per_s=gemm_rate(model.config.hidden_size))
    ratio = record_ratio(benchmark, fast_s=batched_s, plain_s=separate_s,
                         plain_side=f"{len(rows)} fast sweeps, one per prompt (fastest of {rounds} rounds)",
                         batched_s=[round(v, 2) for v in batched_times],
                         separate_s=[round(v, 2) for v in separate_times], lengths=lengths, max_relative_error=worst,
                         model_batching_round_off=batching, **machine)
    print(f"\n[{label}, {len(rows)} prompts of {lengths[0]}-{lengths[-1]} tokens, readout=block] one padded "
          f"batch {batched_s:.2f} s, {len(rows)} separate sweeps {separate_s:.2f} s (fastest of {rounds} "
          f"alternating rounds: {', '.join(f'{v:.1f}' for v in batched_times)} s vs "
          f"{', '.join(f'{v:.1f}' for v in separate_times)} s): speedup {ratio:.1f}x. Machine ceiling: the least "
          f"FLOPs ({least / 1e12:.2f} TFLOP) at this machine's best matrix-multiply rate "
          f"({machine['gemm_gflop_per_s']:.0f} GFLOP/s) take {machine['shortest_exact_s']:.2f} s, so at most "
          f"{machine['machine_ceiling']:.1f}x; the padded batch runs at {machine['achieved_gflop_per_s']:.0f} GFLOP/s "
          f"of useful work. Max relative error {worst:.2g} (the model's own padded-vs-alone round-off: {batching:.2g})")
    assert worst <= 1e-5 + batching, f"{worst:.2g} beyond the engine's 1e-5 and the model's own {batching:.2g}"
    return ratio


def test_gpt2_large_shape_padded_batch(benchmark):
    model = gpt2_large_shape()
    g = torch.Generator().manual_seed(1)
    lengths = [6 + (5 * b) % 9 for b in range(24)]                              # 6..14 tokens
    rows = [torch.randint(0, 50257, (n,), generator=g).tolist() for n in lengths]
    ratio = _compare_padded(benchmark, model, rows, "GPT-2 Large shape", rounds=2)
    assert ratio >= PADDED_TARGET, f"{ratio:.1f}x is below the {PADDED_TARGET:g}x target"


def test_smollm2_study_prompts_padded_batch(benchmark):
    from models.loading import SMOLLM2, load, resolve

    model, tokenizer = load(resolve(SMOLLM2))
    # The loader leaves float32 weights memory-mapped from the safetensors file (file-backed
    # pages, which the kernel may drop under memory pressure and re-read mid-run on this
    # shared machine); copy them into the process so that cannot add to either side.
    for parameter in model.parameters():
        parameter.data = parameter.data.clone()
    from experiments.population import HALVES
    from experiments.prompt_set import read_prompts

    sentences = read_prompts(HALVES["exploration"])[:24]
    rows = [tokenizer(s).input_ids for s in sentences]
    ratio = _compare_padded(benchmark, model, rows, "SmolLM2-135M-Instruct, the study's prompt variants", rounds=3)
    assert ratio >= PADDED_TARGET, f"{ratio:.1f}x is below the {PADDED_TARGET:g}x target"
