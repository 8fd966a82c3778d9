"""Per-block statistics of silencing effects (scipy, not hand-rolled).

The study's test: for each block, the n_heads differences (silenced - clean) of the
readout are one sample; a one-sample t-test against 0 (n_heads - 1 degrees of freedom),
with a Bonferroni threshold of alpha / n_blocks over blocks (`block_tests`).

Beyond it (to support "no effect" claims, see METHOD.md "Known weaknesses"):
- `adjust` / `reject`: Bonferroni, Holm and Benjamini-Hochberg over a vector of p-values;
- `describe`: mean, sd, se, confidence interval, Cohen's d, t-test, sign-flip permutation
  test and an equivalence test (`tost`) against a smallest effect size of interest;
- `block_stats` ([n_blocks, n_heads]) and `head_stats` ([n_layers, n_heads, n_prompts]):
  `describe` per row, corrections across rows, and a verdict per row.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

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


# ---------------------------------------------------------------------------------------
# Beyond the study's t-test: statistics that can also support "no effect" claims.
#
# A t-test that fails to reject says only "not detected" (absence of evidence). To claim
# "no effect worth caring about" we need (a) confidence intervals and effect sizes, so the
# reader sees how large an effect the data still allow, and (b) an equivalence test
# (TOST) against a smallest effect size of interest (SESOI) fixed in advance.
# ---------------------------------------------------------------------------------------

METHODS = ("bonferroni", "holm", "bh")

# Suggested SESOI for the pineapple-pizza cosine difference (silenced - clean), in cosine
# units. The cosines themselves are ~0.4-0.9, silencing a whole block moves them by up to
# 0.23, single heads by at most 0.041 and typically < 0.005. A mean shift of 0.01 is
# ~1-2.5% of the cosine and ~4% of a whole-block silencing: anything smaller we would not
# call a change in the representation. It is a judgement, set before looking at the
# results; report it with every equivalence claim.
DEFAULT_SESOI = 0.01


def adjust(pvalues, method: str = "holm") -> np.ndarray:
    """Multiple-comparison adjusted p-values, same shape as `pvalues`.

    method: "bonferroni" (m * p), "holm" (step-down Bonferroni; same family-wise error
    control under any dependence, never less powerful) or "bh" (Benjamini-Hochberg, controls
    the false discovery rate instead; scipy.stats.false_discovery_control).
    The family is all entries of `pvalues` (m = pvalues.size). Adjusted values are capped at 1.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if p.size == 0:
        return p.copy()
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1] (no nan)")
    flat = p.ravel()
    m = flat.size
    if method == "bonferroni":
        out = np.minimum(flat * m, 1.0)
    elif method == "holm":
        # Sort ascending; the i-th smallest (0-based) is multiplied by (m - i). The running
        # maximum keeps the adjusted values in the same order as the raw ones (step-down:
        # a hypothesis can only be rejected if all smaller p-values were rejected).
        order = np.argsort(flat, kind="stable")
        stepped = np.maximum.accumulate((m - np.arange(m)) * flat[order])
        out = np.empty(m)
        out[order] = np.minimum(stepped, 1.0)
    else:
        out = stats.false_discovery_control(flat, method="bh")
    return out.reshape(p.shape)


def reject(pvalues, alpha: float = 0.05, method: str = "holm") -> np.ndarray:
    """Boolean array (shape of `pvalues`): which null hypotheses are rejected at level alpha.

    Strict `<`, like the study's `p < alpha / m`.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if method == "bonferroni":
        # Compare as p < alpha / m, exactly like `block_tests`, so both always agree
        # (m * p < alpha can differ from it in the last floating-point bit).
        adjust(p, method)  # validates
        return p < bonferroni(alpha, max(p.size, 1))
    return adjust(p, method) < alpha


def sign_flip_p(sample, n_resamples: float = 9999, seed: int = 0) -> float:
    """Two-sided p of a sign-flip permutation test of the mean against 0.

    Null hypothesis: the distribution of the sample is symmetric about 0, so every value's
    sign is equally likely + or -. scipy's `permutation_test` with ONE sample and
    permutation_type='samples' flips signs. There are 2**n sign patterns; scipy enumerates
    them all (exact test) when 2**n <= n_resamples, otherwise draws n_resamples at random
    from a generator seeded with `seed` (deterministic). Pass n_resamples=np.inf to force
    the exact test (2**20 flips take several seconds).
    The statistic is the mean; under sign flips sum(x**2) is fixed, so the t statistic is a
    monotone function of the mean and the test is the same as flipping t.
    A Monte Carlo p-value is never below about 1 / (n_resamples + 1): too coarse to survive
    a Bonferroni threshold over hundreds of tests; use it as a check on the t-test.
    """
    x = _as_sample(sample)
    result = stats.permutation_test(
        (x,), _mean_last_axis, permutation_type="samples", vectorized=True,
        n_resamples=n_resamples, alternative="two-sided", rng=np.random.default_rng(seed))
    return float(result.pvalue)


def _mean_last_axis(x, axis=-1):
    return np.mean(x, axis=axis)


def tost(sample, sesoi: float) -> tuple[float, float, float]:
    """Equivalence test (two one-sided t-tests) of the mean against the band (-sesoi, +sesoi).

    sesoi: smallest effect size of interest, > 0, in the units of the data.
    Returns (p_tost, p_lower, p_upper): p_lower tests H0 mean <= -sesoi against mean > -sesoi,
    p_upper tests H0 mean >= +sesoi against mean < +sesoi. Equivalence is claimed when BOTH
    reject, i.e. p_tost = max(p_lower, p_upper) < alpha (same as the 1 - 2*alpha confidence
    interval lying inside the band).
    Zero-variance samples (scipy gives nan): a constant c lies inside the band or not, with
    certainty: p = 0 if |c| < sesoi, else 1 (all zeros is always equivalent).
    """
    if not sesoi > 0:
        raise ValueError(f"sesoi must be > 0, got {sesoi}")
    x = _as_sample(sample)
    if np.ptp(x) == 0:
        p_lower = 0.0 if x[0] > -sesoi else 1.0
        p_upper = 0.0 if x[0] < sesoi else 1.0
        return max(p_lower, p_upper), p_lower, p_upper
    p_lower = float(stats.ttest_1samp(x, -sesoi, alternative="greater").pvalue)
    p_upper = float(stats.ttest_1samp(x, sesoi, alternative="less").pvalue)
    return max(p_lower, p_upper), p_lower, p_upper


@dataclass(frozen=True)
class SampleStats:
    """Everything `describe` says about one sample of differences (units of the data)."""

    n: int
    mean: float
    sd: float              # ddof=1
    se: float              # sd / sqrt(n)
    ci_low: float          # confidence interval of the mean (t distribution)
    ci_high: float
    cohen_d: float         # mean / sd (one-sample standardised effect); +-inf if sd == 0
    t: float               # one-sample t against 0 (`one_sample_t`)
    p: float
    p_permutation: float   # sign-flip permutation test against 0
    p_tost: float          # equivalence test against (-sesoi, +sesoi)
    sesoi: float


def describe(sample, sesoi: float = DEFAULT_SESOI, confidence: float = 0.95,
             n_resamples: float = 9999, seed: int = 0) -> SampleStats:
    """Summary and tests of one 1-D sample of differences (e.g. silenced - clean).

    sample: [n] finite values, n >= 2 — the 20 heads of one block, or the per-prompt
    differences of one (layer, head) (a paired design: each prompt is its own control).
    sesoi: equivalence bound for `tost`, in the units of the sample.
    """
    x = _as_sample(sample)
    n = x.size
    mean = float(x.mean())
    # Test "no spread" on the values themselves (as `one_sample_t` does): x.std() of a
    # constant array can come out as 1e-19 from rounding in the mean, not exactly 0.
    constant = np.ptp(x) == 0
    sd = 0.0 if constant else float(x.std(ddof=1))
    se = sd / np.sqrt(n)
    t, p = one_sample_t(x)
    if constant:
        # No spread: the mean is known exactly; the interval collapses to it.
        mean = float(x[0])
        ci_low = ci_high = mean
        cohen_d = 0.0 if mean == 0 else float(np.sign(mean) * np.inf)
    else:
        ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence_level=confidence)
        ci_low, ci_high = float(ci.low), float(ci.high)
        cohen_d = mean / sd
    p_tost, _, _ = tost(x, sesoi)
    return SampleStats(n=n, mean=mean, sd=sd, se=float(se), ci_low=ci_low, ci_high=ci_high,
                       cohen_d=float(cohen_d), t=t, p=p,
                       p_permutation=sign_flip_p(x, n_resamples, seed),
                       p_tost=p_tost, sesoi=float(sesoi))


@dataclass(frozen=True, kw_only=True)
class BlockStats(SampleStats):
    """`describe` of one row (a block, or one head) plus corrections across all rows.

    Corrections are over the rows of one call (blocks for `block_stats`, all
    layer x head pairs for `head_stats`).
    verdict: "significant" (Bonferroni-significant, the study's criterion), else
    "equivalent" (TOST, Holm-adjusted, says |mean| < sesoi), else "undecided" (not
    significant, but the data still allow an effect of sesoi or more: absence of evidence).
    A row can be both significant and equivalent (a consistent but negligible shift);
    its verdict is then "significant" and both flags say so.
    """

    layer: int
    head: int | None           # None for a whole-block row
    p_bonferroni: float        # p adjusted over all rows of the call
    p_holm: float
    p_bh: float
    significant_bonferroni: bool
    significant_holm: bool
    significant_bh: bool
    p_tost_holm: float         # p_tost, Holm-adjusted over all rows
    equivalent: bool           # p_tost_holm < alpha
    verdict: str               # "significant" | "equivalent" | "undecided"

    def as_row(self) -> dict:
        """Flat dict for a CSV row (no `head` column for whole-block rows)."""
        row = {"layer": self.layer}
        if self.head is not None:
            row["head"] = self.head
        row.update({k: v for k, v in asdict(self).items() if k not in ("layer", "head")})
        return row


def block_stats(deltas, layers=None, alpha: float = 0.05, sesoi: float = DEFAULT_SESOI,
                n_resamples: float = 9999, seed: int = 0) -> list[BlockStats]:
    """deltas: [n_blocks, n_heads] (silenced - clean) -> one BlockStats per block.

    Each row (the n_heads differences of one block) is one sample; corrections are over the
    n_blocks rows. `layers` names the rows (default 0..n_blocks-1).
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.ndim != 2:
        raise ValueError(f"deltas must be [n_blocks, n_heads], got shape {deltas.shape}")
    layers = list(range(deltas.shape[0])) if layers is None else list(layers)
    if len(layers) != deltas.shape[0]:
        raise ValueError("one layer name per row of deltas")
    keys = [(int(layer), None) for layer in layers]
    return _rows_with_corrections(keys, list(deltas), alpha, sesoi, n_resamples, seed)


def head_stats(deltas, layers=None, alpha: float = 0.05, sesoi: float = DEFAULT_SESOI,
               n_resamples: float = 9999, seed: int = 0) -> list[BlockStats]:
    """deltas: [n_layers, n_heads, n_prompts] (silenced - clean, paired per prompt).

    Tests each (layer, head) across prompts: the sample is that head's n_prompts
    differences. Corrections are over all n_layers * n_heads tests. Returns rows in order
    layer-major (layer 0 heads 0..n_heads-1, then layer 1, ...), each with `head` set.
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.ndim != 3:
        raise ValueError(
            f"deltas must be [n_layers, n_heads, n_prompts], got shape {deltas.shape}")
    layers = list(range(deltas.shape[0])) if layers is None else list(layers)
    if len(layers) != deltas.shape[0]:
        raise ValueError("one layer name per first-axis entry of deltas")
    keys = [(int(layer), head) for layer in layers for head in range(deltas.shape[1])]
    samples = list(deltas.reshape(-1, deltas.shape[2]))
    return _rows_with_corrections(keys, samples, alpha, sesoi, n_resamples, seed)


def _rows_with_corrections(keys, samples, alpha, sesoi, n_resamples, seed):
    """describe() every sample, then correct p-values across all of them."""
    described = [describe(s, sesoi, n_resamples=n_resamples, seed=seed) for s in samples]
    p = np.array([d.p for d in described])
    p_tost = np.array([d.p_tost for d in described])
    adjusted = {m: adjust(p, m) for m in METHODS}
    significant = {m: reject(p, alpha, m) for m in METHODS}
    # Equivalence claims per row are a family too: Holm keeps the chance of ANY false
    # "equivalent" below alpha under any dependence between rows (as Bonferroni does) and
    # is never less powerful. (Claiming only "ALL rows are equivalent" would need no
    # correction at all, intersection-union principle; per-row claims need it.)
    p_tost_holm = adjust(p_tost, "holm")
    equivalent = p_tost_holm < alpha
    out = []
    for i, ((layer, head), d) in enumerate(zip(keys, described)):
        if significant["bonferroni"][i]:
            verdict = "significant"
        elif equivalent[i]:
            verdict = "equivalent"
        else:
            verdict = "undecided"
        out.append(BlockStats(
            **asdict(d), layer=layer, head=head,
            p_bonferroni=float(adjusted["bonferroni"][i]), p_holm=float(adjusted["holm"][i]),
            p_bh=float(adjusted["bh"][i]),
            significant_bonferroni=bool(significant["bonferroni"][i]),
            significant_holm=bool(significant["holm"][i]),
            significant_bh=bool(significant["bh"][i]),
            p_tost_holm=float(p_tost_holm[i]), equivalent=bool(equivalent[i]),
            verdict=verdict))
    return out


def _as_sample(sample) -> np.ndarray:
    """A 1-D float64 array of >= 2 finite values (a t-test needs n - 1 >= 1 df)."""
    x = np.asarray(sample, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"a sample must be 1-D with at least 2 values, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("a sample must contain only finite values")
    return x


# What a row's tests say together, in words (the report's and the README's categories).
CATEGORIES = ("effect", "negligible effect", "equivalent", "undecided")


def category(row: BlockStats) -> str:
    """"effect": significant (Bonferroni) and NOT shown to lie within ±sesoi;
    "negligible effect": significant, yet equivalent to zero within ±sesoi (a consistent but
    tiny shift); "equivalent": not significant and within ±sesoi; "undecided": neither --
    the data still allow an effect of sesoi or more (underpowered, absence of evidence)."""
    if row.significant_bonferroni:
        return "negligible effect" if row.equivalent else "effect"
    return "equivalent" if row.equivalent else "undecided"
