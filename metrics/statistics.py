"""Statistics of silencing effects: one row per unit (a block, or a head), tests across units.

A *unit* is what a claim is about; its *sample* is the set of differences (silenced - clean)
that measure it:
- a head across the sentences of the population ([n_sentences]; paired, each sentence its
  own clean control): the unit where heads act, the primary one;
- a block on the study sentence: its heads' differences ([n_heads]; the seed's t-test,
  kept as its replication; the heads of a block are not samples of one quantity).

`analyse(samples, keys, ...)` describes every unit (mean, sd, Cohen's d, one-sample t-test,
sign-flip permutation test), and takes three decisions, each at one level for every unit
(Bonferroni over the units: level = alpha / m), each read off an interval it prints:

    significant    the (1 - level) interval excludes 0             (two-sided t-test)
    beyond SESOI   the (1 - level) interval lies entirely outside +-SESOI (minimum-effect test)
    within SESOI   the (1 - 2 level) interval lies inside +-SESOI   (TOST)

and puts the unit in ONE category (the suite's only taxonomy, named by what was shown):

    beyond SESOI          shown to move by more than SESOI (the minimum-effect test rejects)
    within SESOI          shown to move by less than SESOI (TOST rejects: once it has, its error
                          rate is controlled at the level; TOST's power is shown beside it,
                          never used to overrule it)
    not shown negligible  significant, but neither beyond nor within
    undecided             anything else: the data allow both a change of SESOI and none

A unit both significant and within SESOI is "within SESOI" (the report says "significant,
within SESOI": the seed's test sees it, the size is negligible). `categorize` takes the same
decisions for many samples at once (the planted-effect controls re-run it on planted data).
A quantity without sampling error (a block's mean over its heads on one sentence, from a
deterministic forward pass) is compared with the bound directly: `bound_category`.
Everything is vectorized over units (numpy + scipy.special's t distribution), so the power
simulations in metrics/power.py can run the same tests thousands of times.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special

METHODS = ("bonferroni", "holm", "bh")
BEYOND, NOT_NEGLIGIBLE, WITHIN, UNDECIDED = "beyond SESOI", "not shown negligible", "within SESOI", "undecided"
CATEGORIES = (BEYOND, NOT_NEGLIGIBLE, WITHIN, UNDECIDED)


# Student's t distribution through the scipy.special functions that scipy's t distribution
# object itself calls (bitwise the same numbers, tests/verdicts/test_statistics.py): importing
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


def _against_band(x, sesoi: float):
    """What a test of each row's mean against [-sesoi, +sesoi] needs: the rows as float64, n,
    the means, the standard errors (1 for a constant row, which is decided with certainty) and
    which rows are constant."""
    if not sesoi > 0:
        raise ValueError(f"sesoi must be > 0, got {sesoi}")
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    constant = np.ptp(x, axis=-1) == 0
    se = np.where(constant, 1.0, x.std(-1, ddof=1) / np.sqrt(n))
    return x, n, x.mean(-1), se, constant


def tost_p(x: np.ndarray, sesoi: float) -> np.ndarray:
    """Equivalence test (two one-sided t-tests) of each row's mean against (-sesoi, +sesoi): [units].

    p = max(p_lower, p_upper); p_lower tests H0 mean <= -sesoi, p_upper H0 mean >= +sesoi.
    Equivalence at level alpha <=> the (1 - 2 alpha) CI lies inside the band. A constant row
    lies inside the band or not, with certainty (p 0 or 1; on the bound is not inside).
    """
    x, n, mean, se, constant = _against_band(x, sesoi)
    p_lower = t_sf((mean + sesoi) / se, n - 1)
    p_upper = t_cdf((mean - sesoi) / se, n - 1)
    first = x[..., 0]
    p_lower = np.where(constant, np.where(first > -sesoi, 0.0, 1.0), p_lower)
    p_upper = np.where(constant, np.where(first < sesoi, 0.0, 1.0), p_upper)
    return np.maximum(p_lower, p_upper)


def beyond_p(x: np.ndarray, sesoi: float) -> np.ndarray:
    """Minimum-effect test of each row's mean against the band [-sesoi, +sesoi]: [units].

    H0: |mean| <= sesoi. p = 2 min(p_above, p_below), p_above testing mean > +sesoi and
    p_below mean < -sesoi, so that p < level exactly when the two-sided (1 - level) interval
    lies entirely outside the band. A constant row lies outside the band or not, with
    certainty (p 0 or 1; on the bound is not outside).
    """
    x, n, mean, se, constant = _against_band(x, sesoi)
    p = np.minimum(1.0, 2 * np.minimum(t_sf((mean - sesoi) / se, n - 1), t_cdf((mean + sesoi) / se, n - 1)))
    return np.where(constant, np.where(np.abs(x[..., 0]) > sesoi, 0.0, 1.0), p)


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

    Every decision is taken at `level` = alpha / m (Bonferroni over the m units of the
    family) and is read off an interval printed beside it: [ci_low, ci_high] at 1 - level
    (significant: excludes 0; beyond: entirely outside +-SESOI), [eq_low, eq_high] at
    1 - 2 level (within: inside +-SESOI). `power` is the difference test's chance to find a
    true shift of SESOI (normal theory, the observed SD); `tost_power` TOST's chance to show
    a true shift of 0 within +-SESOI, with the SD at its upper confidence bound
    (metrics/power.py), shown beside the category and never deciding it. Both nan where not
    computed.
    """

    layer: int
    head: int | None            # None for a block
    n: int
    mean: float
    sd: float                   # ddof=1
    se: float
    level: float                # the per-unit level of every decision (alpha / m)
    ci_low: float               # (1 - level) interval of the mean (t distribution)
    ci_high: float
    eq_low: float               # (1 - 2 level) interval: TOST's
    eq_high: float
    cohen_d: float              # mean / sd; +-inf for a constant non-zero sample
    t: float
    p: float
    p_permutation: float        # sign-flip test against 0 (exact when 2**n <= 9999)
    p_adjusted: float           # p x m, capped at 1 (the Bonferroni-adjusted p that decides)
    significant: bool
    sesoi: float
    p_tost: float
    p_tost_adjusted: float
    equivalent: bool            # TOST rejects: the (1 - 2 level) interval lies inside +-SESOI
    p_beyond: float
    p_beyond_adjusted: float
    beyond: bool                # the minimum-effect test rejects: the (1 - level) interval lies outside
    power: float
    tost_power: float
    category: str

    @property
    def label(self) -> str:
        return f"L{self.layer:02d}" if self.head is None else f"L{self.layer:02d}-H{self.head:02d}"

    @property
    def verdict(self) -> str:
        """The category in words, with significance where it adds to it ("significant, within SESOI")."""
        return f"significant, {self.category}" if self.significant and self.category == "within SESOI" else self.category

    def interval(self) -> str:
        """"[low, high]" at the level the decision used (the TOST one for a unit within SESOI)."""
        low, high = (self.eq_low, self.eq_high) if self.category == "within SESOI" else (self.ci_low, self.ci_high)
        return f"[{low:+.4f}, {high:+.4f}]"

    def as_row(self) -> dict:
        """Flat dict for a CSV row (no `head` column for a block)."""
        row = asdict(self)
        if self.head is None:
            row.pop("head")
        return row


def category(*, significant: bool, equivalent: bool, beyond: bool) -> str:
    """The one category of a unit (see the module docstring)."""
    if beyond:
        return BEYOND
    if equivalent:
        return WITHIN
    if significant:
        return NOT_NEGLIGIBLE
    return UNDECIDED


def decide(x, level: float, sesoi: float) -> dict:
    """The three decisions for samples x [units, n] at the per-unit `level` (each p < level),
    with their p-values: {"p", "p_tost", "p_beyond", "significant", "equivalent", "beyond",
    "category"}, each [units]. The one route `analyse` and the planted-effect controls take."""
    x = as_samples(x)
    p, p_tost, p_beyond = t_tests(x)[1], tost_p(x, sesoi), beyond_p(x, sesoi)
    significant, equivalent, beyond = p < level, p_tost < level, p_beyond < level
    cats = np.array([category(significant=bool(s), equivalent=bool(e), beyond=bool(b))
                     for s, e, b in zip(significant, equivalent, beyond)], dtype=object)
    return {"p": p, "p_tost": p_tost, "p_beyond": p_beyond, "significant": significant, "equivalent": equivalent,
            "beyond": beyond, "category": cats}


def categorize(x, level: float, sesoi: float) -> np.ndarray:
    """[units] categories of samples x [units, n], every decision at the per-unit `level`."""
    return decide(x, level, sesoi)["category"]


def bound_category(value: float, bound: float) -> str:
    """A number without sampling error against +-bound: within (|value| < bound), beyond
    (|value| > bound) or, exactly on the bound, undecided. A non-finite value is refused."""
    if not math.isfinite(value):
        raise ValueError(f"value {value} is not finite: there is nothing to compare with the bound")
    if abs(value) < bound:
        return WITHIN
    if abs(value) > bound:
        return BEYOND
    return UNDECIDED


def analyse(samples, keys, *, alpha: float, correction: str, equivalence_correction: str,
            sesoi: float, power=None, tost_power=None, n_resamples: int = 9999, seed: int = 0) -> list[UnitStats]:
    """samples [units, n] (one row per unit), keys [(layer, head or None)] -> one UnitStats per unit.

    Corrections are over the units of this call, and must be "bonferroni" (every decision one
    interval at one level). `power`, `tost_power` [units] (or None: nan) come from
    metrics/power.py and are reported beside the decisions.
    """
    if correction != "bonferroni" or equivalence_correction != "bonferroni":
        raise ValueError(f"corrections {correction!r} / {equivalence_correction!r}: decisions are intervals at one "
                         "level, so both must be 'bonferroni'")
    x = as_samples(samples)
    if len(keys) != x.shape[0]:
        raise ValueError(f"{len(keys)} keys for {x.shape[0]} units: pass one (layer, head) per row")
    m, n = x.shape
    level = alpha / m
    constant = np.ptp(x, axis=1) == 0
    # A constant row's mean is its value (x.mean() can be off in the last bit).
    mean = np.where(constant, x[:, 0], x.mean(1))
    sd = np.where(constant, 0.0, x.std(1, ddof=1))
    se = sd / np.sqrt(n)
    half, eq_half = t_isf(level / 2, n - 1) * se, t_isf(level, n - 1) * se
    with np.errstate(divide="ignore", invalid="ignore"):
        cohen_d = np.where(constant, np.where(mean == 0, 0.0, np.sign(mean) * np.inf), mean / sd)
    t = t_tests(x)[0]
    found = decide(x, level, sesoi)
    p, p_tost, p_beyond = found["p"], found["p_tost"], found["p_beyond"]
    significant, equivalent, beyond = found["significant"], found["equivalent"], found["beyond"]
    p_perm = sign_flip_p(x, n_resamples, seed)
    p_adj, p_tost_adj, p_beyond_adj = (adjust(q, "bonferroni") for q in (p, p_tost, p_beyond))
    power = np.full(m, np.nan) if power is None else np.asarray(power, dtype=np.float64)
    tost_power = np.full(m, np.nan) if tost_power is None else np.asarray(tost_power, dtype=np.float64)
    out = []
    for i, (layer, head) in enumerate(keys):
        out.append(UnitStats(
            layer=int(layer), head=None if head is None else int(head), n=n, mean=float(mean[i]),
            sd=float(sd[i]), se=float(se[i]), level=float(level), ci_low=float(mean[i] - half[i]),
            ci_high=float(mean[i] + half[i]), eq_low=float(mean[i] - eq_half[i]), eq_high=float(mean[i] + eq_half[i]),
            cohen_d=float(cohen_d[i]), t=float(t[i]), p=float(p[i]), p_permutation=float(p_perm[i]),
            p_adjusted=float(p_adj[i]), significant=bool(significant[i]), sesoi=float(sesoi),
            p_tost=float(p_tost[i]), p_tost_adjusted=float(p_tost_adj[i]), equivalent=bool(equivalent[i]),
            p_beyond=float(p_beyond[i]), p_beyond_adjusted=float(p_beyond_adj[i]), beyond=bool(beyond[i]),
            power=float(power[i]), tost_power=float(tost_power[i]),
            category=str(found["category"][i])))
    return out


def counts(rows: list[UnitStats]) -> dict:
    """{category: number of units} for every category, and n."""
    out = {c: sum(r.category == c for r in rows) for c in CATEGORIES}
    out["n"] = len(rows)
    return out
