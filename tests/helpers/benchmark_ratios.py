"""--benchmark-only's table of ratios, printed after pytest-benchmark's own tables.

pytest-benchmark prints times only; every benchmark here that compares a fast side with a
plain side records both, and the ratio, with tests/baselines.record_ratio. This plugin sets
them side by side, one line per comparison, with the FLOP-count ceiling where there is one,
and the machine's ceiling (least FLOPs at its best matrix-multiply rate, tests/helpers/
baselines.machine_figures) with the fast side's useful GFLOP/s over that best rate:

    benchmark ratios (both sides measured in this run, on this machine)
    group                                 fast       plain     ratio  FLOP ceiling  machine ceiling  GFLOP/s fast/best  plain side
    GPT-2 Large shape, 720 heads, block  2.01 s    223.0 s      111x          ...                -                  -  ...
    ..., padded batch vs a sweep per ...  12.1 s     31.5 s      2.6x             -             5.4x            65/137  ...
"""
from __future__ import annotations

import pytest


def ratio_rows(benchmarks) -> list[dict]:
    """One row per benchmark that recorded a ratio, in group order."""
    rows = [{"group": b.group or b.name, **b.extra_info} for b in benchmarks if "speedup" in b.extra_info]
    return sorted(rows, key=lambda r: r["group"])


def format_rows(rows: list[dict]) -> list[str]:
    width = max([len("group")] + [len(r["group"]) for r in rows])
    lines = [f"{'group':<{width}}  {'fast':>10}  {'plain':>10}  {'ratio':>8}  {'FLOP ceiling':>12}  "
             f"{'machine ceiling':>15}  {'GFLOP/s fast/best':>17}  plain side"]
    for r in rows:
        ceiling, machine, rate = (_or_dash(r.get(key), fmt) for key, fmt in
                                  (("flop_ceiling", "{:.1f}x"), ("machine_ceiling", "{:.1f}x"),
                                   ("achieved_gflop_per_s", "{:.0f}")))
        if rate != "-" and r.get("gemm_gflop_per_s") is not None:
            rate += f"/{r['gemm_gflop_per_s']:.0f}"
        lines.append(f"{r['group']:<{width}}  {r['fast_s']:>8.2f} s  {r['plain_s']:>8.1f} s  {r['speedup']:>7.1f}x  "
                     f"{ceiling:>12}  {machine:>15}  {rate:>17}  {r.get('plain_side', '')}")
    return lines


def _or_dash(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    rows = ratio_rows(session.benchmarks) if session is not None else []
    if rows:
        terminalreporter.section("benchmark ratios (both sides measured in this run, on this machine)")
        for line in format_rows(rows):
            terminalreporter.write_line(line)
