"""Power and false-positive rates of the suite's tests, measured on the run's own noise.

A failed test is only evidence of "no effect" if the test could have seen one. Both
functions here plant effects of known size into a null built from the data and count how
often the suite's tests find them:

- the NULL keeps the run's real noise: each unit's differences minus their own mean
  (residuals), each value with a random sign (symmetric about 0, the real magnitudes);
- a PLANTED effect adds k x SESOI to a unit's null values.

`unit_power`      per unit: the chance its test (at the family's corrected threshold) detects
                  a planted effect; this gates "equivalent" (metrics.statistics.category).
`family_rates`    per family: plant into ONE randomly drawn unit per draw, run the whole
                  family's test with its correction, and count detections of the planted
                  unit, and false positives among the others (the false-positive rate under
                  the data's null: k = 0 plants nothing).

Sign patterns are enumerated exactly when 2**n <= draws (9 heads: 512), otherwise drawn
with a fixed seed; every figure is reproducible bit for bit.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from metrics.statistics import METHODS, as_samples, sign_patterns, t_isf, t_tests

CHUNK = 256        # draws simulated at once: [CHUNK, units, n] float64 stays small


def seed_for(seed: int, label: str) -> int:
    """A stream per (plan seed, family label): families do not share random numbers."""
    return (int(seed) * 1_000_003 + zlib.crc32(label.encode())) % 2**32


def residuals(samples) -> np.ndarray:
    """[units, n]: each unit's values minus its own mean (its noise, without its effect)."""
    x = as_samples(samples)
    return x - x.mean(1, keepdims=True)


def flagged(x: np.ndarray, alpha: float, correction: str, sesoi: float | None = None) -> np.ndarray:
    """[..., units] bool: which units of each family (the last-but-one axis of x [..., units,
    n]) a test flags: significant (two-sided t-test against 0; sesoi None) or declared
    equivalent within +-sesoi (TOST), with `correction` over the units.

    The same decisions as metrics.statistics.reject(t_tests(x) or tost_p(x), ...), taken
    by comparing each statistic with the critical value of its rank instead of computing
    p-values: the simulations' hot loop (tests/test_power.py proves both routes agree).
    """
    mean = x.mean(-1)
    se = np.sqrt(((x - mean[..., None]) ** 2).sum(-1) / (x.shape[-1] - 1) / x.shape[-1])
    return flagged_from(mean, se, x.shape[-1], alpha, correction, sesoi)


def flagged_from(mean: np.ndarray, se: np.ndarray, n: int, alpha: float, correction: str,
                 sesoi: float | None = None) -> np.ndarray:
    """`flagged` from each unit's sample mean and standard error (n values per unit)."""
    if correction not in METHODS:
        raise ValueError(f"correction must be one of {METHODS}, got {correction!r}")
    m = mean.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        if sesoi is None:                       # two-sided: p = 2 sf(|t|)
            stat = np.where(se > 0, np.abs(mean) / se, np.where(mean == 0, 0.0, np.inf))
            tail = alpha / 2
        else:                                   # TOST: p = sf(min(t_lower, t_upper))
            lower = np.where(se > 0, (mean + sesoi) / se, np.where(mean > -sesoi, np.inf, -np.inf))
            upper = np.where(se > 0, (sesoi - mean) / se, np.where(mean < sesoi, np.inf, -np.inf))
            stat = np.minimum(lower, upper)
            tail = alpha
    ranks = np.arange(m)
    if correction == "bonferroni":
        return stat > t_isf(tail / m, n - 1)
    order = np.argsort(-stat, axis=-1, kind="stable")          # most extreme first
    ranked = np.take_along_axis(stat, order, -1)
    if correction == "holm":                    # step down: stop at the first rank that fails
        passes = ranked > t_isf(tail / (m - ranks), n - 1)
        stop = np.where(passes.all(-1), m, np.argmin(passes, -1))
    else:                                       # BH, step up: the last rank that passes
        passes = ranked > t_isf(tail * (ranks + 1) / m, n - 1)
        stop = np.where(passes.any(-1), m - np.argmax(passes[..., ::-1], -1), 0)
    out = np.empty_like(passes)
    np.put_along_axis(out, order, ranks < stop[..., None], -1)
    return out


def unit_power(samples, effect: float, threshold: float, draws: int, seed: int) -> np.ndarray:
    """[units]: P(two-sided one-sample t-test p < threshold) when the unit's true mean is
    `effect` and its noise is its own sign-flipped residuals (exact over all 2**n patterns
    when 2**n <= draws). `threshold` is the per-unit level after the family's correction
    (alpha / m for Bonferroni; a conservative stand-in for Holm)."""
    r = residuals(samples)
    flips, _ = sign_patterns(r.shape[1], draws, seed)
    out = np.empty(r.shape[0])
    for u in range(r.shape[0]):
        _, p = t_tests(flips * r[u] + effect)
        out[u] = np.mean(p < threshold)
    return out


@dataclass(frozen=True)
class FamilyRate:
    """One row of power.csv: a test family at one planted effect size.

    "Flagged" means significant for a difference test, declared equivalent for an
    equivalence test (test = "equivalence").
    """

    family: str                   # e.g. "blocks"
    test: str                     # "difference" (t-test) or "equivalence" (TOST)
    correction: str               # over the units of the family
    units: int
    k: float                      # planted effect in units of SESOI (0: nothing planted, the null)
    effect: float                 # the same in the data's units
    draws: int
    planted_flagged: float        # share of draws whose planted unit was flagged (nan at k = 0)
    any_null_flagged: float       # share of draws with at least one null unit flagged (family-wise)
    null_flagged_per_unit: float  # share of null units flagged, over all draws

    def as_row(self) -> dict:
        return dict(self.__dict__)


def family_rates(samples, *, label: str, ks, sesoi: float, alpha: float, correction: str,
                 draws: int, seed: int, equivalence: bool = False) -> list[FamilyRate]:
    """Simulate a whole family of unit tests `draws` times per k in `ks` (plus k = 0).

    equivalence=False: the difference test (t-test, `correction` over the units): "flagged"
    means significant; at k = 0, any_null_flagged is the family-wise false-positive rate.
    equivalence=True: TOST against +-sesoi (`correction` over the units): "flagged" means
    declared equivalent, so planted_flagged at k >= 1 is a FALSE equivalence rate (should be
    <= alpha) and null_flagged_per_unit at k = 0 the chance to call a null unit equivalent.
    """
    r = residuals(samples)
    units, n = r.shape
    square_sum = (r ** 2).sum(1)
    rng = np.random.default_rng(seed_for(seed, label))
    rows = []
    for k in (0.0, *ks):
        found = any_flagged = null_flagged = 0
        for start in range(0, draws, CHUNK):
            d = min(CHUNK, draws - start)
            signs = rng.integers(0, 2, size=(d, units, n), dtype=np.int8) * 2 - 1
            # Sign flips keep each value's square, so only the mean needs the signs:
            # x = s * r + delta has sum(x**2) = sum(r**2) + 2 delta n mean(s*r) + n delta**2.
            flip_mean = np.einsum("dun,un->du", signs, r, dtype=np.float64) / n
            planted = rng.integers(0, units, size=d)
            delta = np.zeros((d, units))
            if k:
                delta[np.arange(d), planted] = k * sesoi
            mean = flip_mean + delta
            squares = square_sum[None] + 2 * delta * n * flip_mean + n * delta ** 2
            se = np.sqrt(np.maximum(squares - n * mean ** 2, 0.0) / (n - 1) / n)
            hits = flagged_from(mean, se, n, alpha, correction, sesoi if equivalence else None)
            hit = hits[np.arange(d), planted]
            others = hits.copy()
            if k:
                others[np.arange(d), planted] = False
            found += hit.sum()
            any_flagged += others.any(1).sum()
            null_flagged += others.sum()
        null_units = draws * (units - (1 if k else 0))
        rows.append(FamilyRate(label, "equivalence" if equivalence else "difference", correction, units,
                               float(k), float(k * sesoi), draws,
                               float(found / draws) if k else float("nan"),
                               float(any_flagged / draws), float(null_flagged / max(null_units, 1))))
    return rows
