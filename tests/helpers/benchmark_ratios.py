"""--benchmark-only's table of ratios, printed after pytest-benchmark's own tables.

pytest-benchmark prints times only; every benchmark here that compares a fast side with a
plain side records both, and the ratio, with tests/baselines.record_ratio. This plugin sets
them side by side, one line per comparison, with the FLOP-count ceiling where there is one:

    benchmark ratios (both sides measured in this run, on this machine)
    group                                   fast        plain      ratio   FLOP ceiling  plain side
    GPT-2 Large shape, 720 heads, block    2.01 s     223.0 s      111x          ...     ...
"""
from __future__ import annotations

import pytest


def ratio_rows(benchmarks) -> list[dict]:
    """One row per benchmark that recorded a ratio, in group order."""
    rows = [{"group": b.group or b.name, **b.extra_info} for b in benchmarks if "speedup" in b.extra_info]
    return sorted(rows, key=lambda r: r["group"])


def format_rows(rows: list[dict]) -> list[str]:
    width = max([len("group")] + [len(r["group"]) for r in rows])
    lines = [f"{'group':<{width}}  {'fast':>10}  {'plain':>10}  {'ratio':>8}  {'FLOP ceiling':>12}  plain side"]
    for r in rows:
        ceiling = f"{r['flop_ceiling']:.1f}x" if r.get("flop_ceiling") is not None else "-"
        lines.append(f"{r['group']:<{width}}  {r['fast_s']:>8.2f} s  {r['plain_s']:>8.1f} s  {r['speedup']:>7.1f}x  "
                     f"{ceiling:>12}  {r.get('plain_side', '')}")
    return lines


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    rows = ratio_rows(session.benchmarks) if session is not None else []
    if rows:
        terminalreporter.section("benchmark ratios (both sides measured in this run, on this machine)")
        for line in format_rows(rows):
            terminalreporter.write_line(line)
