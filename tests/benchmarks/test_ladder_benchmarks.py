"""Benchmark of the scale ladder resumed (experiments/scales.py, engine="fast") against the
plain batched pass it replaced (engine="naive"), side by side in one run.

Run with:  python -m pytest tests/benchmarks/test_ladder_benchmarks.py --benchmark-only -s -p no:randomly
(without --benchmark-only it is skipped before any model is loaded.)

SmolLM2-135M-Instruct (real weights, bundled, copied into the process), the ladder's 8 test
sentences (the exploration half's first ones; plan: scale_test_prompts), all 6 kinds, on one
torch thread (the study's --threads default: each shard computes on one). The unit of work is
what one shard of a run computes: on one sentence, the kinds of one group of
experiments/shards.LADDER_SHARDS (the 4 kinds at the token but the positive control's in one
resumed pass, scales.measure_kinds; the positive control's kind; the every-token kind); its
plain side is the plain batched pass of each of those kinds (what the ladder ran before it
was resumed). Each round
times every unit on both sides back to back, each side first in turn, and per unit the
fastest of ROUNDS calls counts (this machine is shared: a call can be slowed several-fold by
other processes; the fastest is the closest to the code's own cost). Each side's time is the
sum over its 24 units. The top heads are a seeded draw: what a kind costs does not depend on
which head it silences.

Exactness in the same run: every readout of the last round, fast against plain, to
tests/engine/test_ladder.py's bound, plus the plain pass's own round-off between two batch shapes
(its rows in two batches of 15, each with its own clean row; measured here): SmolLM2's plain
pass itself moves a cosine of the every-token kind by 2.4e-5 between those shapes (its
activations reach 19,000 where one of the pair's vectors has norm 200). Beside the ratio, its
FLOP ceiling: the plain pass's FLOPs in the blocks over the least a resumed ladder must spend
(per sentence and shard one clean pass, then each kind's row L through blocks L.. at columns
token..; every column for the every-token kind). On a CPU a block call on a few rows costs
about what reading the block's weights costs (SmolLM2: ~2 ms whatever the rows up to ~4 x 12
tokens): measuring 4 kinds at the token together puts 4 times the rows in each call.
"""
from __future__ import annotations

import itertools
import time

import torch

from experiments import scales
from experiments.shards import LADDER_SHARDS
from hooks import ablate, layout_of, resumed_pass, scale_block
from tests.helpers.baselines import flops_per_token, record_ratio
from tests.engine.test_ladder import FACTORS, READOUTS, ladder_errors, logit_scale, smollm2_test_prompts

ROUNDS = 3
TARGET = 1.3
SENTENCES = 8
THREADS = 1            # the study's default (--threads 1): each shard computes on one thread
ENGINES = ("fast", "naive")


def ladder_flops(model, prompts) -> tuple[float, float]:
    """(the plain ladder's FLOPs, the least a resumed one must spend) in the blocks, all kinds."""
    n, block = layout_of(model).n_layers, flops_per_token(model)[0]
    plain = least = 0.0
    for p in prompts:
        seq = len(p.tokens.ids)
        plain += len(scales.KINDS) * (n + 1) * seq * n * block
        for group in LADDER_SHARDS:
            width = seq if scales.EVERY_TOKEN in group else seq - p.token
            least += seq * n * block + len(group) * sum((n - L) * width * block for L in range(n))
    return plain, least


def plain_in_two_batches(model, prompt, kind: str, top_heads: list[int]) -> dict:
    """The ladder's readouts from the plain pass with its rows split in two batches (rows 0..14,
    then the rest), each beside its own clean row: the same numbers at another batch shape."""
    n, n_heads = layout_of(model).n_layers, layout_of(model).n_heads
    ids, t = torch.tensor([prompt.tokens.ids]), prompt.token
    parts = []
    for blocks in (range(0, n // 2), range(n // 2, n)):
        def install(stack, r, row, offset, blocks=blocks):
            L = blocks[r]
            if kind in FACTORS:
                stack.enter_context(scale_block(model, L, FACTORS[kind], t, rows=[row]))
            elif kind == "all heads @ token":
                stack.enter_context(ablate(model, L, range(n_heads), t, rows=[row]))
            else:
                stack.enter_context(ablate(model, L, top_heads[L], None if kind == scales.EVERY_TOKEN else t,
                                           rows=[row]))
        states = resumed_pass(model, ids, None, [0] * len(blocks), install, engine="naive")
        parts.append(scales.deltas(model, prompt, states))
    cos, lp, kl = (torch.cat(values) for values in zip(*parts))
    return {"ripple": cos, "logprob": lp, "kl": kl}


def test_smollm2_scale_ladder(benchmark):
    """All 6 kinds x 8 test sentences: the resumed ladder vs the plain batched pass, one run."""
    from models.loading import SMOLLM2, load, resolve

    benchmark.group = f"SmolLM2-135M-Instruct, scale ladder, 6 kinds x {SENTENCES} sentences, {THREADS} thread"
    model, _ = load(resolve(SMOLLM2))
    # Memory-mapped float32 weights may be dropped and re-read mid-run under memory pressure
    # (tests/benchmarks/test_patching_benchmarks.py): copy them into the process.
    for parameter in model.parameters():
        parameter.data = parameter.data.clone()
    prompts = smollm2_test_prompts(model, SENTENCES)
    layout = layout_of(model)
    g = torch.Generator().manual_seed(0)
    selection = scales.Selection(torch.randint(0, layout.n_heads, (layout.n_layers,), generator=g).tolist(), [])
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        for engine in ENGINES:                                                    # warm the process
            scales.measure_kind(model, prompts[:1], scales.KINDS[0], selection, engine=engine)
        groups = list(LADDER_SHARDS)
        best, last, turn = {}, {}, itertools.count()

        def unit(engine, group, p):
            """What one shard computes (fast), or the plain batched pass of each of its kinds."""
            if engine == "fast":
                return scales.measure_kinds(model, [p], group, selection)
            return {kind: scales.measure_kind(model, [p], kind, selection, engine="naive") for kind in group}

        def one_round():
            # Unit by unit (one shard's kinds on one sentence), the two sides back to back, each first in turn.
            for group in groups:
                for i, p in enumerate(prompts):
                    for engine in ENGINES if next(turn) % 2 else ENGINES[::-1]:
                        start = time.perf_counter()
                        out = unit(engine, group, p)
                        took = time.perf_counter() - start
                        best[engine, group, i] = min(best.get((engine, group, i), took), took)
                        for kind in group:
                            last[engine, kind, i] = out[kind]

        benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    finally:
        torch.set_num_threads(threads)
    seconds = {(engine, group): sum(best[engine, group, i] for i in range(len(prompts)))
               for engine in ENGINES for group in groups}
    logits = logit_scale(model, prompts)
    worst, own_worst = {}, {}
    for kind in scales.KINDS:
        fast, naive = ({name: torch.cat([getattr(last[engine, kind, i], name) for i in range(len(prompts))], -1)
                        for name in READOUTS} for engine in ENGINES)
        split = [plain_in_two_batches(model, p, kind, selection.top_heads) for p in prompts]
        own = {name: (torch.stack([s[name] for s in split], -1) - naive[name]).abs().max().item() for name in naive}
        for name, (err, tol) in ladder_errors(fast, naive, logits, own).items():
            worst[kind, name] = (err, tol)
            own_worst[kind, name] = own[name]
    plain_flops, least_flops = ladder_flops(model, prompts)
    fast_s = sum(seconds["fast", group] for group in groups)
    plain_s = sum(seconds["naive", group] for group in groups)
    ratio = record_ratio(
        benchmark, fast_s=fast_s, plain_s=plain_s, flop_ceiling=plain_flops / least_flops,
        plain_side=f"plain batched pass of each kind (engine naive); per shard's unit the fastest of {ROUNDS}, in turns",
        threads=THREADS, per_pass_s={" + ".join(group): [round(seconds["fast", group], 2),
                                                         round(seconds["naive", group], 2)] for group in groups},
        max_error={f"{kind}: {name}": f"{err:.2g} (tolerance {tol:.2g}, own {own_worst[kind, name]:.2g})"
                   for (kind, name), (err, tol) in worst.items()})
    print(f"\n[SmolLM2-135M-Instruct, scale ladder, 6 kinds x {SENTENCES} sentences, {THREADS} torch thread] resumed "
          f"{fast_s:.2f} s, plain {plain_s:.2f} s (per shard's kinds and sentence the fastest of {ROUNDS} calls, "
          f"the sides in turns): speedup {ratio:.2f}x (FLOP ceiling {plain_flops / least_flops:.2f}x); logit scale {logits:.1f}")
    for group in groups:
        print(f"  {' + '.join(group)}: resumed {seconds['fast', group]:6.2f} s  plain {seconds['naive', group]:6.2f} s  "
              f"{seconds['naive', group] / seconds['fast', group]:5.2f}x")
    for kind in scales.KINDS:
        errors = ", ".join(f"{name} {worst[kind, name][0]:.2g} (own {own_worst[kind, name]:.2g})" for name in READOUTS)
        print(f"  {kind:24s} max|fast - plain|: {errors}")
    beyond = {f"{kind}: {name}": f"{err:.3g} > {tol:.3g}" for (kind, name), (err, tol) in worst.items() if err > tol}
    assert not beyond, f"the resumed ladder differs from the plain pass beyond the bound: {beyond}"
    assert ratio >= TARGET, f"{ratio:.2f}x is below the {TARGET:g}x target"
