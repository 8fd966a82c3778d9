"""Power of the suite's tests: predicted by normal theory, realized on the run's own noise.

A failed test is only evidence of "no effect" if the test could have seen one. Two routes:

PREDICTED (normal theory, per unit, exact up to the chi-square grid below):
`difference_power`  the chance the two-sided t-test at the unit's level finds a true shift
                    (the `power` column: a shift of SESOI, the unit's observed SD)
`tost_power`        the chance TOST at the unit's level shows a true shift within +-SESOI
                    (the `tost_power` column: a shift of 0, the SD at its upper confidence
                    bound, `sd_upper`; shown beside "within SESOI", never deciding it)
`beyond_power`      the chance the minimum-effect test at the unit's level shows a true
                    shift beyond +-SESOI: the power of the test that refutes a "no unit
                    beyond SESOI" claim
`detectable_shift`  the smallest true shift the minimum-effect test finds with a given power

REALIZED (simulation on the run's own noise: each unit's differences minus their own mean,
each value with a random sign, plus a planted shift):
`family_rates`      per family: plant into ONE randomly drawn unit per draw, run the whole
                    family's test with its correction, and count detections of the planted
                    unit, and false positives among the others (k = 0 plants nothing)
`sign_flipped`      a unit's residuals with random signs plus a planted shift: the samples
                    the planted-effect controls (experiments/analysis.planted_control) re-run
                    the whole decision on; `flip_rate` what each test must find on them,
                    in closed form

Sign patterns are drawn with a fixed seed; every figure is reproducible bit for bit.
"""
from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import special

from metrics.statistics import METHODS, as_samples, t_isf

CHUNK = 256        # draws simulated at once: [CHUNK, units, n] float64 stays small


def seed_for(seed: int, label: str) -> int:
    """A stream per (plan seed, family label): families do not share random numbers."""
    return (int(seed) * 1_000_003 + zlib.crc32(label.encode())) % 2**32


def residuals(samples) -> np.ndarray:
    """[units, n]: each unit's values minus its own mean (its noise, without its effect)."""
    x = as_samples(samples)
    return x - x.mean(1, keepdims=True)


TESTS = ("difference", "equivalence", "beyond")


def flagged(x: np.ndarray, alpha: float, correction: str, test: str = "difference",
            sesoi: float | None = None) -> np.ndarray:
    """[..., units] bool: which units of each family (the last-but-one axis of x [..., units,
    n]) a test flags, with `correction` over the units: "difference" significant (two-sided
    t-test against 0), "equivalence" shown within +-sesoi (TOST), "beyond" shown outside
    +-sesoi (minimum-effect test).

    The same decisions as metrics.statistics.reject(t_tests(x), tost_p(x) or beyond_p(x),
    ...), taken by comparing each statistic with the critical value of its rank instead of
    computing p-values: the simulations' hot loop (tests/verdicts/test_power.py proves both routes agree).
    """
    mean = x.mean(-1)
    se = np.sqrt(((x - mean[..., None]) ** 2).sum(-1) / (x.shape[-1] - 1) / x.shape[-1])
    return flagged_from(mean, se, x.shape[-1], alpha, correction, test, sesoi)


def flagged_from(mean: np.ndarray, se: np.ndarray, n: int, alpha: float, correction: str, test: str = "difference",
                 sesoi: float | None = None) -> np.ndarray:
    """`flagged` from each unit's sample mean and standard error (n values per unit)."""
    if correction not in METHODS:
        raise ValueError(f"correction must be one of {METHODS}, got {correction!r}")
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    if test != "difference" and not (sesoi and sesoi > 0):
        raise ValueError(f"the {test} test needs sesoi > 0, got {sesoi}")
    m = mean.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        if test == "difference":                # two-sided: p = 2 sf(|t|)
            stat = np.where(se > 0, np.abs(mean) / se, np.where(mean == 0, 0.0, np.inf))
            tail = alpha / 2
        elif test == "equivalence":             # TOST: p = sf(min(t_lower, t_upper))
            lower = np.where(se > 0, (mean + sesoi) / se, np.where(mean > -sesoi, np.inf, -np.inf))
            upper = np.where(se > 0, (sesoi - mean) / se, np.where(mean < sesoi, np.inf, -np.inf))
            stat = np.minimum(lower, upper)
            tail = alpha
        else:                                   # minimum effect: p = 2 sf((|mean| - sesoi) / se)
            stat = np.where(se > 0, (np.abs(mean) - sesoi) / se, np.where(np.abs(mean) > sesoi, np.inf, -np.inf))
            tail = alpha / 2
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


# Normal-theory power integrates over the sample variance: with V ~ chi-square(n - 1), the
# standard error is sd/sqrt(n) * sqrt(V / (n - 1)) and the mean is independent of it, so a
# test's power is an average over V of normal probabilities. GRID equally likely quantiles
# of V make that average exact to about 1e-4 (tests/verdicts/test_power.py compares with scipy's
# noncentral t), and stay finite where scipy's nctdtr returns nan.
GRID = 2000


def _variance_ratio(n: int) -> np.ndarray:
    """[GRID] quantiles of V / (n - 1), V ~ chi-square(n - 1), at the midpoints of GRID equal bins."""
    return special.chdtri(n - 1, 1 - (np.arange(GRID) + 0.5) / GRID) / (n - 1)


def difference_power(n: int, sd, shift: float, level: float) -> np.ndarray:
    """[units]: P(two-sided one-sample t-test at `level` rejects | true mean `shift`, normal
    noise of SD `sd` [units], n values). sd 0: certain (1) unless shift is 0 (level)."""
    sd = np.atleast_1d(np.asarray(sd, dtype=np.float64))
    c = t_isf(level / 2, n - 1) * np.sqrt(_variance_ratio(n))                  # [GRID]
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.abs(shift) * np.sqrt(n) / sd                                    # [units]
    out = (special.ndtr(d[:, None] - c) + special.ndtr(-d[:, None] - c)).mean(1)
    return np.where(sd > 0, out, 1.0 if shift else level)


def tost_power(n: int, sd, sesoi: float, level: float, shift: float = 0.0) -> np.ndarray:
    """[units]: P(TOST at `level`, both one-sided tests at `level`, shows the mean within
    +-sesoi | true mean `shift`, normal noise of SD `sd` [units], n values).

    TOST rejects when -sesoi + c se < mean < sesoi - c se (c the one-sided critical value):
    given the SE, a normal probability of the mean, averaged over the SE's distribution.
    sd 0: certain (1) when |shift| < sesoi, else 0.
    """
    sd = np.atleast_1d(np.asarray(sd, dtype=np.float64))
    c = t_isf(level, n - 1) * np.sqrt(_variance_ratio(n))                      # [GRID], in SE units
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (sesoi * np.sqrt(n) / sd)[:, None]                                 # the band, in sd/sqrt(n) units
        s = (shift * np.sqrt(n) / sd)[:, None]
    inside = special.ndtr(a - c - s) - special.ndtr(-a + c - s)
    out = np.maximum(inside, 0.0).mean(1)
    return np.where(sd > 0, out, float(abs(shift) < sesoi))


def beyond_power(n: int, sd, sesoi: float, level: float, shift: float) -> np.ndarray:
    """[units]: P(the minimum-effect test at `level` shows the mean outside +-sesoi | true mean
    `shift`, normal noise of SD `sd` [units], n values).

    It rejects when the two-sided (1 - level) interval lies entirely outside the band:
    mean - c se > sesoi or mean + c se < -sesoi (c the two-sided critical value); given the
    SE, two normal tails of the mean, averaged over the SE's distribution. sd 0: certain (1)
    when |shift| > sesoi, else 0.
    """
    sd = np.atleast_1d(np.asarray(sd, dtype=np.float64))
    c = t_isf(level / 2, n - 1) * np.sqrt(_variance_ratio(n))                  # [GRID], in SE units
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (sesoi * np.sqrt(n) / sd)[:, None]
        s = (shift * np.sqrt(n) / sd)[:, None]
    out = (special.ndtr(s - a - c) + special.ndtr(-s - a - c)).mean(1)
    return np.where(sd > 0, out, float(abs(shift) > sesoi))


def detectable_shift(n: int, sd: float, sesoi: float, level: float, power: float) -> float:
    """The smallest true shift (> sesoi) that the minimum-effect test at `level` finds with
    probability `power`, for noise of SD `sd` and n values (bisection on `beyond_power`)."""
    if not sd > 0:
        return float(sesoi)
    low, high = float(sesoi), float(sesoi)
    while beyond_power(n, sd, sesoi, level, high)[0] < power:
        low, high = high, 2 * high
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if beyond_power(n, sd, sesoi, level, middle)[0] < power else (low, middle)
    return high


def sign_flipped(residuals: np.ndarray, shift, rng: np.random.Generator) -> np.ndarray:
    """[draws, n]: each row a unit's residuals [draws, n] with independent random signs, plus
    that row's planted `shift` (a number, or one per row): the samples the planted-effect
    controls re-run the decision on (`flip_rate` predicts what it must find)."""
    signs = rng.integers(0, 2, size=residuals.shape, dtype=np.int8) * 2 - 1
    return signs * residuals + np.asarray(shift, dtype=np.float64).reshape(-1, 1)


EXACT_FLIPS = 2 ** 12      # up to this many sign patterns, flip_rate enumerates them all


def flip_rate(test: str, residuals, sesoi: float, level: float, shift: float) -> np.ndarray:
    """[units]: the chance that `test` at `level` flags a unit whose sample is its residuals
    [units, n] with random signs plus `shift` (`sign_flipped`), computed without simulation.

    With R = sum(r**2) and m = mean(s * r) the flipped mean, the sample's mean is m + shift and
    its variance (R - n m**2) / (n - 1), whatever the shift; each decision is a comparison of
    the two (the tests of metrics.statistics, restated here): two-sided t-test |mean| > c se,
    minimum-effect test |mean| - c se > sesoi, TOST |mean| + c1 se < sesoi. For n values with
    2**n <= EXACT_FLIPS, m takes each of its 2**n values with equal chance: enumerated, exact.
    Beyond, m is a sum of n independent terms of variance r_i**2 / n**2, normal by the central
    limit theorem: the rate is averaged over GRID normal quantiles of m n / sqrt(R), within the
    bound |m| <= sqrt(R / n) that no sign pattern exceeds.
    """
    r = np.asarray(residuals, dtype=np.float64)
    n = r.shape[-1]
    total = (r ** 2).sum(-1)[:, None]                                          # [units, 1]
    if 2 ** n <= EXACT_FLIPS:
        signs = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))      # [2**n, n]
        m = r @ signs.T / n                                                    # [units, 2**n]
    else:
        z = special.ndtri((np.arange(GRID) + 0.5) / GRID)[None]               # [1, GRID]
        m = np.clip(z * np.sqrt(total) / n, -np.sqrt(total / n), np.sqrt(total / n))
    se = np.sqrt(np.maximum(total - n * m ** 2, 0.0) / (n - 1) / n)
    mean = np.abs(m + shift)
    with np.errstate(invalid="ignore"):
        if test == "difference":
            hit = mean > t_isf(level / 2, n - 1) * se
        elif test == "beyond":
            hit = mean - t_isf(level / 2, n - 1) * se > sesoi
        elif test == "equivalence":
            hit = mean + t_isf(level, n - 1) * se < sesoi
        else:
            raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    return hit.mean(-1)


def sd_upper(sd, n: int, confidence: float) -> np.ndarray:
    """One-sided `confidence` upper bound of the SD from n values (chi-square):
    sd * sqrt((n - 1) / q), q the (1 - confidence) quantile of chi-square(n - 1)."""
    return np.asarray(sd, dtype=np.float64) * np.sqrt((n - 1) / special.chdtri(n - 1, confidence))


@dataclass(frozen=True)
class FamilyRate:
    """One row of power.csv: a test family at one planted effect size.

    "Flagged" means significant for the difference test, shown within +-SESOI for the
    equivalence test (TOST), shown beyond +-SESOI for the minimum-effect test ("beyond").
    """

    family: str                   # e.g. "blocks"
    test: str                     # "difference" (t-test), "equivalence" (TOST) or "beyond" (minimum effect)
    correction: str               # over the units of the family
    units: int
    k: float                      # planted effect in units of SESOI (0: nothing planted, the null)
    effect: float                 # the same in the data's units
    draws: int
    planted_flagged: float        # share of draws whose planted unit was flagged (nan at k = 0)
    predicted: float              # the same in closed form (mean over the units of `flip_rate`; Bonferroni
                                  # only, else nan)
    any_null_flagged: float       # share of draws with at least one null unit flagged (family-wise)
    null_flagged_per_unit: float  # share of null units flagged, over all draws

    def as_row(self) -> dict:
        return dict(self.__dict__)


def family_rates(samples, *, label: str, ks, sesoi: float, alpha: float, correction: str,
                 draws: int, seed: int, test: str = "difference") -> list[FamilyRate]:
    """Simulate a whole family of unit tests `draws` times per k in `ks` (plus k = 0).

    test "difference": the t-test (`correction` over the units): "flagged" means significant;
    at k = 0, any_null_flagged is the family-wise false-positive rate.
    test "equivalence": TOST against +-sesoi: "flagged" means shown within, so planted_flagged
    at k >= 1 is a FALSE equivalence rate (at most the level at k = 1) and
    null_flagged_per_unit at k = 0 the chance to call a null unit within.
    test "beyond": the minimum-effect test: "flagged" means shown beyond, so planted_flagged at
    k > 1 is the power of the test that refutes "no unit beyond SESOI", and any flag at k <= 1
    a false "beyond".
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    r = residuals(samples)
    units, n = r.shape
    square_sum = (r ** 2).sum(1)
    rng = np.random.default_rng(seed_for(seed, f"{label} {test}" if test == "beyond" else label))
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
            hits = flagged_from(mean, se, n, alpha, correction, test, sesoi)
            hit = hits[np.arange(d), planted]
            others = hits.copy()
            if k:
                others[np.arange(d), planted] = False
            found += hit.sum()
            any_flagged += others.any(1).sum()
            null_flagged += others.sum()
        null_units = draws * (units - (1 if k else 0))
        predicted = float("nan")
        if k and correction == "bonferroni":
            predicted = float(flip_rate(test, r, sesoi, alpha / units, k * sesoi).mean())
        rows.append(FamilyRate(label, test, correction, units, float(k), float(k * sesoi), draws,
                               float(found / draws) if k else float("nan"), predicted,
                               float(any_flagged / draws), float(null_flagged / max(null_units, 1))))
    return rows
