"""Per-block statistics of silencing effects (scipy, not hand-rolled).

The study's test: for each block, the n_heads differences (silenced - clean) of the
readout are one sample; a one-sample t-test against 0 (n_heads - 1 degrees of freedom),
with a Bonferroni threshold of alpha / n_blocks over blocks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class BlockTest:
    """The one-sample t-test of one block's per-head differences."""

    layer: int
    n: int                 # number of heads (sample size)
    mean_delta: float
    t: float
    p: float
    threshold: float       # Bonferroni: alpha / number of blocks tested
    significant: bool

    def as_row(self) -> dict:
        return {"layer": self.layer, "n": self.n, "mean_delta": self.mean_delta, "t": self.t,
                "p": self.p, "threshold": self.threshold, "significant": self.significant}


def bonferroni(alpha: float, n_tests: int) -> float:
    return alpha / n_tests


def one_sample_t(sample) -> tuple[float, float]:
    """(t, p) of a two-sided one-sample t-test against 0.

    scipy returns nan when the sample has no spread; decide those cases explicitly: all
    zeros is no effect at all (p = 1), a constant non-zero shift is as consistent as an
    effect can be (p = 0).
    """
    x = np.asarray(sample, dtype=np.float64)
    if np.ptp(x) == 0:
        return (0.0, 1.0) if x[0] == 0 else (float(np.sign(x[0]) * np.inf), 0.0)
    result = stats.ttest_1samp(x, 0.0)
    return float(result.statistic), float(result.pvalue)


def block_tests(deltas, layers=None, alpha: float = 0.05) -> list[BlockTest]:
    """deltas: [n_blocks, n_heads] (silenced - clean) -> one BlockTest per block.

    `layers` names the rows (default 0..n_blocks-1); Bonferroni divides alpha by the
    number of rows.
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    layers = list(range(deltas.shape[0])) if layers is None else list(layers)
    threshold = bonferroni(alpha, deltas.shape[0])
    out = []
    for layer, row in zip(layers, deltas):
        t, p = one_sample_t(row)
        out.append(BlockTest(layer, row.size, float(row.mean()), t, p, threshold, p < threshold))
    return out
