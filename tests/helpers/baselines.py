"""Honest baselines for the sweep benchmarks: the steady plain loop, and a FLOP-count ceiling.

    plain = PlainLoop(model, ids, scenarios, readout)     # one hooked forward pass per scenario
    benchmark.pedantic(plain.next, rounds=R, warmup_rounds=2)   # median seconds of ONE scenario
    ceiling(model, [seq], [(seq, token)], readout)        # most a fast engine could gain, in FLOPs

The plain side is what a researcher writes without this tool: for each (layer, head), one
forward pass with the head silenced (hooks.silence), warmed up, the model already loaded.
Its rounds cycle through the sampled scenarios (every one costs one forward pass of the
same tokens) and alternate with the fast side's calls (pytest-benchmark's untimed `setup`),
so both see the same machine load; the ratio is medians: plain per scenario x scenarios /
fast.
"""
from __future__ import annotations

import itertools
import statistics
import time

import torch

from hooks import layout_of, silence


def synchronize(model) -> None:
    """Wait for the GPU (timings of CUDA work are meaningless without it); nothing on the CPU."""
    if next(model.parameters()).is_cuda:
        torch.cuda.synchronize()


class PlainLoop:
    """One hooked forward pass per call, cycling through `scenarios` [(layer, head, token)]."""

    def __init__(self, model, ids, scenarios, attention_mask=None):
        self.model, self.ids, self.mask = model, ids, attention_mask
        self.cycle = itertools.cycle(scenarios)

    @torch.no_grad()
    def next(self):
        L, h, t = next(self.cycle)
        with silence(self.model, L, h, t):
            out = self.model(self.ids, attention_mask=self.mask, output_hidden_states=True).hidden_states
        synchronize(self.model)
        return out


class Alternating:
    """Times `fast` once before each plain round (pytest-benchmark's untimed setup): the
    fast side's median over the same stretch of machine time as the plain rounds."""

    def __init__(self, model, fast):
        self.model, self.fast, self.seconds = model, fast, []

    def __call__(self):
        start = time.perf_counter()
        self.fast()
        synchronize(self.model)
        self.seconds.append(time.perf_counter() - start)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def flops_per_token(model) -> tuple[float, float]:
    """(one block, the LM head): 2 x the weights of their matrices, FLOPs per token.
    Attention scores (4 x seq x d per token) and norms are left out: < 1% at a few tokens."""
    block = layout_of(model).blocks(model)[0]
    per_block = 2.0 * sum(p.numel() for p in block.parameters() if p.ndim == 2)
    head = 2.0 * model.get_output_embeddings().weight.numel()
    return per_block, head


def plain_and_least_flops(model, prompt_lengths, jobs, readout: str) -> tuple[float, float]:
    """(the plain loop's FLOPs, the least FLOPs any exact engine must spend) for a sweep of
    every (layer, head) over `jobs` [(seq, token)] of prompts of `prompt_lengths` tokens.

    Plain: one whole forward pass (blocks and LM head) per (job, layer, head). The least:
    one clean pass of the blocks per prompt; for readout "final" also, per (job, layer L,
    head), positions token..seq-1 through blocks L+1.. (the edit reaches them and nothing else).
    """
    n, heads = layout_of(model).n_layers, layout_of(model).n_heads
    block, head = flops_per_token(model)
    plain = sum(n * heads * seq * (n * block + head) for seq, _ in jobs)
    least = sum(seq * n * block for seq in prompt_lengths)
    if readout == "final":
        least += sum(heads * (seq - t) * (n - L - 1) * block for seq, t in jobs for L in range(n))
    return plain, least


def ceiling(model, prompt_lengths, jobs, readout: str) -> float:
    """The largest speedup a fast engine could have over the plain loop, in FLOPs
    (plain_and_least_flops: plain / least).

    It bounds the wall-time ratio only where both sides are compute-bound. The plain loop's
    passes of a few tokens are bound by reading the weights (each pass reads all of them for
    9 tokens), the fast engine's batched rows are not: measured ratios on a CPU can exceed
    it (GPT-2 Large shape, 9 tokens, readout "final": ceiling 4.0x). `gemm_rate` gives the
    ceiling that does hold on a given machine: least FLOPs at its best matrix-multiply rate.
    """
    plain, least = plain_and_least_flops(model, prompt_lengths, jobs, readout)
    return plain / least


@torch.no_grad()
def gemm_rate(width: int, rows: int = 4096, repeats: int = 5, dtype=torch.float32) -> float:
    """This machine's float32 matrix-multiply rate in FLOP/s, on the shape of a block's
    largest product ([rows, width] @ [width, 4 width], as the fast engine's batched rows
    meet the MLP), best of `repeats` after a warm-up: no exact engine can spend its least
    FLOPs faster than this."""
    a = torch.randn(rows, width, dtype=dtype)
    b = torch.randn(width, 4 * width, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * rows * width * 4 * width / best


def record_ratio(benchmark, *, fast_s: float, plain_s: float, plain_side: str, flop_ceiling: float | None = None,
                 **extra) -> float:
    """Put a measured ratio where --benchmark-only's ratio table (tests/helpers/benchmark_ratios.py)
    finds it: the benchmark's extra_info, under the same keys for every benchmark."""
    ratio = plain_s / fast_s
    benchmark.extra_info.update(fast_s=round(fast_s, 3), plain_s=round(plain_s, 2), speedup=round(ratio, 2),
                                plain_side=plain_side, **extra)
    if flop_ceiling is not None:
        benchmark.extra_info["flop_ceiling"] = round(flop_ceiling, 2)
    return ratio
