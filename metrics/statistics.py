"""Statistics of silencing effects: one row per unit (a block, or a head), tests across units.

A *unit* is what a claim is about; its *sample* is the set of differences (silenced - clean)
that measure it:
- a block on the study sentence: its heads' differences ([n_heads]; the seed's t-test);
- a head across the prompt set: its per-prompt differences ([n_prompts]; paired, each prompt
  its own clean control).

`analyse(samples, keys, ...)` describes every unit (mean, sd, CI, Cohen's d, one-sample
t-test, sign-flip permutation test, TOST against +-SESOI), corrects the p-values across the
units, and puts each unit in ONE category (the suite's only verdict taxonomy):

    effect             significant (family correction) and not shown to lie within +-SESOI
    negligible effect  significant, yet shown to lie within +-SESOI (consistent but tiny)
    equivalent         not significant, shown within +-SESOI, AND the test had the power to
                       see a SESOI effect (power >= the plan's target)
    undecided          anything else: the data still allow a change of SESOI or more, or the
                       test could not have seen one (absence of evidence, with its power)

Everything is vectorized over units (numpy + scipy.special's t distribution), so the power
simulations in metrics/power.py can run the same tests thousands of times.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special

METHODS = ("bonferroni", "holm", "bh")
CATEGORIES = ("effect", "negligible effect", "equivalent", "undecided")


# Student's t distribution through the scipy.special functions that scipy's t distribution
# object itself calls (bitwise the same numbers, tests/test_statistics.py): importing
# scipy.stats costs every pytest process about 1.5 s, importing scipy.special a third of that.
def t_sf(t, df):
    """P(T > t) for Student's t with `df` degrees of freedom."""
    return special.stdtr(df, -np.asarray(t, dtype=np.float64))


def t_cdf(t, df):
    """P(T <= t)."""
    return special.stdtr(df, np.asarray(t, dtype=np.float64))


def t_ppf(q, df):
    """The q quantile."""
    return special.stdtrit(df, np.asarray(q, dtype=np.float64))


def t_isf(q, df):
    """The value exceeded with probability q (precise for small q)."""
    return -special.stdtrit(df, np.asarray(q, dtype=np.float64))


def as_samples(samples) -> np.ndarray:
    """[units, n] float64 of finite values, n >= 2 (a t-test needs n - 1 >= 1 df)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"samples must be [units, n] with n >= 2 values per unit, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must contain only finite values")
    return x


def t_tests(x: np.ndarray, null: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided one-sample t-tests of each row's mean against `null`: (t, p), each [units].

    A row with no spread has no t distribution (scipy gives nan); decide it explicitly: a
    row equal to the null is no effect at all (t 0, p 1), any other constant is as
    consistent as an effect can be (t +-inf, p 0).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    mean = x.mean(-1)
    constant = np.ptp(x, axis=-1) == 0
    se = np.where(constant, 1.0, x.std(-1, ddof=1) / np.sqrt(n))
    t = (mean - null) / se
    p = 2 * t_sf(np.abs(t), n - 1)
    first = x[..., 0]
    t = np.where(constant, np.where(first == null, 0.0, np.where(first > null, np.inf, -np.inf)), t)
    p = np.where(constant, np.where(first == null, 1.0, 0.0), p)
    return t, p


def one_sample_t(sample) -> tuple[float, float]:
    """(t, p) of one sample [n] against 0 (see `t_tests`)."""
    t, p = t_tests(as_samples(sample))
    return float(t[0]), float(p[0])


def tost_p(x: np.ndarray, sesoi: float) -> np.ndarray:
    """Equivalence test (two one-sided t-tests) of each row's mean against (-sesoi, +sesoi): [units].

    p = max(p_lower, p_upper); p_lower tests H0 mean <= -sesoi, p_upper H0 mean >= +sesoi.
    Equivalence at level alpha <=> the (1 - 2 alpha) CI lies inside the band. A constant row
    lies inside the band or not, with certainty (p 0 or 1; on the bound is not inside).
    """
    if not sesoi > 0:
        raise ValueError(f"sesoi must be > 0, got {sesoi}")
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    mean = x.mean(-1)
    constant = np.ptp(x, axis=-1) == 0
    se = np.where(constant, 1.0, x.std(-1, ddof=1) / np.sqrt(n))
    p_lower = t_sf((mean + sesoi) / se, n - 1)
    p_upper = t_cdf((mean - sesoi) / se, n - 1)
    first = x[..., 0]
    p_lower = np.where(constant, np.where(first > -sesoi, 0.0, 1.0), p_lower)
    p_upper = np.where(constant, np.where(first < sesoi, 0.0, 1.0), p_upper)
    return np.maximum(p_lower, p_upper)


def tost(sample, sesoi: float) -> float:
    """p of the TOST of one sample [n] (see `tost_p`)."""
    return float(tost_p(as_samples(sample), sesoi)[0])


def sign_patterns(n: int, max_patterns: int, seed: int) -> tuple[np.ndarray, bool]:
    """([patterns, n] of +-1, exact): every one of the 2**n sign patterns when there are at
    most `max_patterns` (exact tests), else `max_patterns` patterns drawn with `seed`."""
    if 2 ** n <= max_patterns:
        return np.array(list(itertools.product((-1.0, 1.0), repeat=n))), True
    rng = np.random.default_rng(seed)
    return rng.choice((-1.0, 1.0), size=(int(max_patterns), n)), False


def sign_flip_p(samples, n_resamples: int = 9999, seed: int = 0) -> np.ndarray:
    """Two-sided sign-flip permutation test of each row's mean against 0: [units].

    Null: each value's sign is equally likely + or - (a distribution symmetric about 0).
    With 2**n <= n_resamples every pattern is enumerated (exact: p = 2 min(P(null >= obs),
    P(null <= obs))); otherwise n_resamples shared random patterns (seeded, deterministic)
    and the usual +1 correction. An exact test has a floor: p >= 2 / 2**n (2/512 for 9
    heads), so it can never pass a threshold below that; the t-test is the study's test,
    this is its assumption-light check.
    """
    x = as_samples(samples)
    n = x.shape[1]
    flips, exact = sign_patterns(n, n_resamples, seed)
    null = flips @ x.T / n                                   # [patterns, units]
    obs = x.mean(1)
    tol = 1e-9 * np.abs(x).max(1)                            # float noise, far below any real gap
    greater = (null >= obs - tol).sum(0)
    less = (null <= obs + tol).sum(0)
    if exact:
        p = 2 * np.minimum(greater, less) / flips.shape[0]
    else:
        p = 2 * (np.minimum(greater, less) + 1) / (flips.shape[0] + 1)
    return np.minimum(p, 1.0)


def adjust(pvalues, method: str = "holm", axis: int | None = None) -> np.ndarray:
    """Multiple-comparison adjusted p-values, same shape as `pvalues`, capped at 1.

    method: "bonferroni" (m * p), "holm" (step-down Bonferroni: same family-wise control under
    any dependence, never less powerful) or "bh" (Benjamini-Hochberg: false discovery rate).
    The family is every entry (axis=None) or each slice along `axis` (the simulations adjust
    thousands of families at once).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if p.size == 0:
        return p.copy()
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1] (no nan)")
    if axis is None:
        return adjust(p.reshape(1, -1), method, axis=1).reshape(p.shape)
    q = np.moveaxis(p, axis, -1)
    m = q.shape[-1]
    if method == "bonferroni":
        out = np.minimum(q * m, 1.0)
    else:
        order = np.argsort(q, axis=-1, kind="stable")
        ranked = np.take_along_axis(q, order, -1)
        if method == "holm":
            # i-th smallest (0-based) times (m - i); the running maximum keeps the order
            # (a hypothesis is rejected only if every smaller p was).
            stepped = np.maximum.accumulate((m - np.arange(m)) * ranked, axis=-1)
        else:
            # m * p_(i) / i, then the running minimum from the largest p down.
            scaled = ranked * m / np.arange(1, m + 1)
            stepped = np.minimum.accumulate(scaled[..., ::-1], axis=-1)[..., ::-1]
        out = np.empty_like(q)
        np.put_along_axis(out, order, np.minimum(stepped, 1.0), -1)
    return np.moveaxis(out, -1, axis)


def reject(pvalues, alpha: float, method: str, axis: int | None = None) -> np.ndarray:
    """Which null hypotheses are rejected at level alpha (strict `<`), shape of `pvalues`.

    Bonferroni compares p < alpha / m (the seed's form: m * p < alpha can differ in the last bit).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if method == "bonferroni":
        adjust(p, method, axis)            # validates
        m = p.size if axis is None else p.shape[axis]
        return p < alpha / max(m, 1)
    return adjust(p, method, axis) < alpha


@dataclass(frozen=True)
class UnitStats:
    """Everything the suite says about one unit (a block, or a head); units of the data.

    `significant` and `equivalent` are after the family's corrections (p_adjusted,
    p_tost_adjusted); `power` is the measured chance that this unit's test would detect a
    true effect of SESOI size (metrics/power.py), nan where not measured.
    """

    layer: int
    head: int | None            # None for a block
    n: int
    mean: float
    sd: float                   # ddof=1
    se: float
    ci_low: float               # 95% confidence interval of the mean (t distribution)
    ci_high: float
    cohen_d: float              # mean / sd; +-inf for a constant non-zero sample
    t: float
    p: float
    p_permutation: float        # sign-flip test against 0 (exact when 2**n <= 9999)
    p_holm: float               # p adjusted over the family, for the reader beside the plan's
    p_bh: float
    p_adjusted: float           # p adjusted by the plan's correction (the one that decides)
    significant: bool
    sesoi: float
    p_tost: float
    p_tost_adjusted: float
    equivalent: bool
    power: float
    category: str

    @property
    def label(self) -> str:
        return f"L{self.layer:02d}" if self.head is None else f"L{self.layer:02d}-H{self.head:02d}"

    def as_row(self) -> dict:
        """Flat dict for a CSV row (no `head` column for a block)."""
        row = asdict(self)
        if self.head is None:
            row.pop("head")
        return row


def category(significant: bool, equivalent: bool, power: float, power_target: float) -> str:
    """The one verdict of a unit (see the module docstring)."""
    if significant:
        return "negligible effect" if equivalent else "effect"
    if equivalent and power >= power_target:
        return "equivalent"
    return "undecided"


def analyse(samples, keys, *, alpha: float, correction: str, equivalence_correction: str,
            sesoi: float, power=None, power_target: float = 0.8, n_resamples: int = 9999,
            seed: int = 0) -> list[UnitStats]:
    """samples [units, n] (one row per unit), keys [(layer, head or None)] -> one UnitStats per unit.

    Corrections are over the units of this call; `power` [units] (or None: nan, never
    "equivalent") is the unit's measured power to detect a SESOI effect.
    """
    x = as_samples(samples)
    if len(keys) != x.shape[0]:
        raise ValueError(f"{len(keys)} keys for {x.shape[0]} units: pass one (layer, head) per row")
    n = x.shape[1]
    constant = np.ptp(x, axis=1) == 0
    # A constant row's mean is its value (x.mean() can be off in the last bit).
    mean = np.where(constant, x[:, 0], x.mean(1))
    sd = np.where(constant, 0.0, x.std(1, ddof=1))
    se = sd / np.sqrt(n)
    half = t_ppf(0.975, n - 1) * se
    with np.errstate(divide="ignore", invalid="ignore"):
        cohen_d = np.where(constant, np.where(mean == 0, 0.0, np.sign(mean) * np.inf), mean / sd)
    t, p = t_tests(x)
    p_tost = tost_p(x, sesoi)
    p_perm = sign_flip_p(x, n_resamples, seed)
    p_adj = adjust(p, correction)
    significant = reject(p, alpha, correction)
    p_tost_adj = adjust(p_tost, equivalence_correction)
    equivalent = p_tost_adj < alpha
    power = np.full(x.shape[0], np.nan) if power is None else np.asarray(power, dtype=np.float64)
    p_holm, p_bh = adjust(p, "holm"), adjust(p, "bh")
    out = []
    for i, (layer, head) in enumerate(keys):
        out.append(UnitStats(
            layer=int(layer), head=None if head is None else int(head), n=n, mean=float(mean[i]),
            sd=float(sd[i]), se=float(se[i]), ci_low=float(mean[i] - half[i]), ci_high=float(mean[i] + half[i]),
            cohen_d=float(cohen_d[i]), t=float(t[i]), p=float(p[i]), p_permutation=float(p_perm[i]),
            p_holm=float(p_holm[i]), p_bh=float(p_bh[i]), p_adjusted=float(p_adj[i]),
            significant=bool(significant[i]), sesoi=float(sesoi), p_tost=float(p_tost[i]),
            p_tost_adjusted=float(p_tost_adj[i]), equivalent=bool(equivalent[i]), power=float(power[i]),
            category=category(bool(significant[i]), bool(equivalent[i]), float(power[i]), power_target)))
    return out


def counts(rows: list[UnitStats]) -> dict:
    """{category: number of units} for every category, and n."""
    out = {c: sum(r.category == c for r in rows) for c in CATEGORIES}
    out["n"] = len(rows)
    return out
