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
from hooks.architectures import get_attribute


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


def padded_block_least_flops(model, prompt_lengths) -> float:
    """The least FLOPs any exact engine must spend on a `block` sweep of every (layer, head),
    one token per prompt, of prompts of `prompt_lengths` real tokens (a padded batch, or the
    same prompts swept one by one: the least is the same, padding is not part of it).

    Derivation. Entry [L, h] of prompt b is hidden_states[L+1] of b's forward pass with head
    h of block L silenced at b's token t. Every position but t of it, and every position of
    every block's clean output, is the clean pass: so one clean pass of each prompt's REAL
    tokens through every block, sum(lengths) x n_layers x (one block per token). At t,
    block L's output is
        x_t + a'  +  mlp(norm(x_t + a')),    a' = out_proj(z with head h zeroed)
    where x_t and z are the clean block input and head outputs at t. out_proj is linear, so
    a' = a - W_h z_h: the clean projection minus the head's own slice of the matrix
    (head_dim x d, 1/n_heads of the projection's FLOPs). The MLP is not linear: it must run
    again on every silenced row. So per prompt and block, n_heads rows of (the MLP + one
    head's slice of the output projection). Left out, as no exact engine needs them: the
    clean probe row the fast engine re-runs beside the silenced ones (a self-check: 1 row in
    n_heads + 1), and the norms and attention scores (flops_per_token: < 1% here). The LM
    head is not part of a `block` readout.
    """
    layout = layout_of(model)
    n, heads = layout.n_layers, layout.n_heads
    block, _ = flops_per_token(model)
    matrices = lambda module: 2.0 * sum(p.numel() for p in module.parameters() if p.ndim == 2)
    first = layout.blocks(model)[0]
    mlp = matrices(get_attribute(first, layout.arch.mlp))
    head_slice = matrices(layout.out_proj(model, 0)) / heads
    clean = sum(prompt_lengths) * n * block
    silenced_rows = len(prompt_lengths) * n * heads * (mlp + head_slice)
    return clean + silenced_rows


def machine_figures(*, fast_s: float, plain_s: float, least_flops: float, gemm_flop_per_s: float) -> dict:
    """The machine's ceiling beside a measured ratio: `least_flops` (what any exact engine must
    spend) at this machine's best matrix-multiply rate (gemm_rate, measured in the same
    process) takes shortest_exact_s, so no exact engine beats the plain side's plain_s by more
    than machine_ceiling here; achieved_gflop_per_s is the fast side's useful work per second
    (least_flops / fast_s), to set beside gemm_gflop_per_s. Keys as record_ratio stores them."""
    shortest = least_flops / gemm_flop_per_s
    return dict(machine_ceiling=round(plain_s / shortest, 1), shortest_exact_s=round(shortest, 2),
                gemm_gflop_per_s=round(gemm_flop_per_s / 1e9, 1), least_tflop=round(least_flops / 1e12, 3),
                achieved_gflop_per_s=round(least_flops / fast_s / 1e9, 1))


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
