"""--benchmark-only's ratio table (tests/helpers/benchmark_ratios.py) and the figures it shows
(tests/baselines.record_ratio): one line per comparison, both sides, the ratio, the ceiling."""
from types import SimpleNamespace

import pytest

from tests.helpers.baselines import (ceiling, machine_figures, padded_block_least_flops, plain_and_least_flops,
                                     record_ratio)
from tests.helpers.benchmark_ratios import format_rows, ratio_rows


def _benchmark(group, **extra):
    return SimpleNamespace(group=group, name=f"test_{group}", extra_info=dict(extra))


def test_record_ratio_stores_both_sides_and_the_ratio():
    bench = _benchmark("g")
    assert record_ratio(bench, fast_s=2.0, plain_s=30.0, plain_side="median pass x 720", flop_ceiling=4.04) == 15.0
    assert bench.extra_info == {"fast_s": 2.0, "plain_s": 30.0, "speedup": 15.0, "plain_side": "median pass x 720",
                                "flop_ceiling": 4.04}


def test_the_table_lists_only_comparisons_in_group_order():
    rows = ratio_rows([_benchmark("b", fast_s=1.0, plain_s=10.0, speedup=10.0, plain_side="x"),
                       _benchmark("hooks", ratio_to_clean=1.002),
                       _benchmark("a", fast_s=2.0, plain_s=3.0, speedup=1.5, flop_ceiling=4.0, plain_side="y")])
    assert [r["group"] for r in rows] == ["a", "b"]
    lines = format_rows(rows)
    assert lines[0].split()[:4] == ["group", "fast", "plain", "ratio"]
    assert lines[1].split() == ["a", "2.00", "s", "3.0", "s", "1.5x", "4.0x", "-", "-", "y"]
    assert lines[2].split() == ["b", "1.00", "s", "10.0", "s", "10.0x", "-", "-", "-", "x"]


def test_the_table_shows_the_machine_ceiling_and_the_fast_sides_rate():
    bench = _benchmark("padded")
    machine = machine_figures(fast_s=12.0, plain_s=30.0, least_flops=0.8e12, gemm_flop_per_s=160e9)
    assert machine == {"machine_ceiling": 6.0, "shortest_exact_s": 5.0, "gemm_gflop_per_s": 160.0,
                       "least_tflop": 0.8, "achieved_gflop_per_s": 66.7}
    record_ratio(bench, fast_s=12.0, plain_s=30.0, plain_side="24 sweeps", **machine)
    header, line = format_rows(ratio_rows([bench]))
    assert "machine ceiling" in header
    assert line.split() == ["padded", "12.00", "s", "30.0", "s", "2.5x", "-", "6.0x", "67/160", "24", "sweeps"]


def test_the_flop_ceiling_of_the_every_position_sweep():
    """GPT-2 Large shape, 9 tokens, every position, readout final: the plain loop does ~4x the
    least FLOPs an exact engine must spend (the README's FLOP argument)."""
    import torch

    from tests.benchmarks.test_sweep_benchmarks import gpt2_large_shape

    with torch.device("meta"):
        model = gpt2_large_shape()
    plain, least = plain_and_least_flops(model, [9], [(9, t) for t in range(9)], "final")
    assert plain / least == pytest.approx(ceiling(model, [9], [(9, t) for t in range(9)], "final"))
    assert 3.9 < plain / least < 4.2


def test_the_least_flops_of_a_padded_block_sweep():
    """GPT-2 Large shape, the benchmark's 24 prompts: one clean pass of the real tokens, plus per
    prompt and block 20 silenced rows of the MLP (8 d^2 weights) and one head's slice of the
    output projection (d^2 / 20); padding and the probe row are no part of it."""
    import torch

    from tests.benchmarks.test_sweep_benchmarks import gpt2_large_shape

    with torch.device("meta"):
        model = gpt2_large_shape()
    lengths = [6 + (5 * b) % 9 for b in range(24)]
    d = 1280
    by_hand = 2 * (sum(lengths) * 36 * 12 * d * d + 24 * 36 * 20 * (8 * d * d + d * d / 20))
    assert padded_block_least_flops(model, lengths) == pytest.approx(by_hand, rel=1e-3)   # biases: not counted
    assert padded_block_least_flops(model, [14] * 24) > padded_block_least_flops(model, lengths)
