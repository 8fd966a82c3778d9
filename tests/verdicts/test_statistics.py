"""Tests of metrics.statistics: known values, scipy agreement, properties (no model needed)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.statistics import (CATEGORIES, adjust, analyse, beyond_p, bound_category, categorize, category,
                                one_sample_t, reject, sign_flip_p, t_cdf, t_isf, t_ppf, t_sf, tost)


def standardized(n: int, mean: float, sd: float, seed: int = 0) -> np.ndarray:
    """A sample with EXACTLY the given mean and sd (ddof=1), so tests do not hinge on luck."""
    z = np.random.default_rng(seed).normal(size=n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


@pytest.mark.parametrize("df", [1, 2, 8, 23, 99])
def test_t_distribution_is_scipy_stats_t_bitwise(df):
    from scipy import stats      # the reference (slow to import: only where used)
    x = np.linspace(-40, 40, 4001)
    q = np.logspace(-12, -0.31, 300)
    assert np.array_equal(t_sf(x, df), stats.t.sf(x, df))
    assert np.array_equal(t_cdf(x, df), stats.t.cdf(x, df))
    assert np.array_equal(t_isf(q, df), stats.t.isf(q, df))
    assert np.array_equal(t_ppf(1 - q, df), stats.t.ppf(1 - q, df))


# --- multiple-comparison corrections -------------------------------------------------

TEXTBOOK_P = [0.01, 0.04, 0.03, 0.005]


def test_holm_textbook_example():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04;
    # running max -> 0.02, 0.03, 0.06, 0.06; back in input order:
    np.testing.assert_allclose(adjust(TEXTBOOK_P, "holm"), [0.03, 0.06, 0.06, 0.02])


def test_bonferroni_and_bh_textbook_example():
    np.testing.assert_allclose(adjust(TEXTBOOK_P, "bonferroni"), [0.04, 0.16, 0.12, 0.02])
    # BH: m * p_(i) / i = 0.02, 0.02, 0.04, 0.04 (already monotone), back in input order:
    np.testing.assert_allclose(adjust(TEXTBOOK_P, "bh"), [0.02, 0.04, 0.04, 0.02])


def test_bh_step_up_example():
    # m = 8: m * p / i = .008 .032 .104 .082 .0672 .08 .0846 .205, then the running
    # minimum from the largest p down.
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205]
    expected = [0.008, 0.032, 0.0672, 0.0672, 0.0672, 0.08, 0.0845714286, 0.205]
    np.testing.assert_allclose(adjust(p, "bh"), expected, rtol=1e-8)
    np.testing.assert_array_equal(reject(p, 0.05, "bh"), [True, True] + [False] * 6)
    # Holm: 8 * 0.001 = 0.008 < 0.05 but 7 * 0.008 = 0.056 > 0.05, so it stops after one.
    np.testing.assert_allclose(adjust(p, "holm")[:2], [0.008, 0.056])
    np.testing.assert_array_equal(reject(p, 0.05, "holm"), [True] + [False] * 7)
    np.testing.assert_array_equal(reject(p, 0.05, "bonferroni"), [True, False] + [False] * 6)


def test_adjust_keeps_shape_and_caps_at_one():
    p = np.array([[0.5, 0.9], [0.01, 1.0]])
    for method in ("bonferroni", "holm", "bh"):
        out = adjust(p, method)
        assert out.shape == p.shape
        assert out.max() <= 1.0


def test_adjust_rejects_bad_input():
    with pytest.raises(ValueError):
        adjust([0.1, 0.2], "sidak")
    with pytest.raises(ValueError):
        adjust([0.1, np.nan], "holm")
    with pytest.raises(ValueError):
        adjust([0.1, 1.5], "holm")


p_vectors = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(p_vectors)
def test_adjusted_p_properties(p):
    p = np.array(p)
    bonf, holm, bh = (adjust(p, m) for m in ("bonferroni", "holm", "bh"))
    for adj in (bonf, holm, bh):
        assert np.all(adj >= p - 1e-12) and np.all(adj <= 1.0)
        # Adjusting never reorders: a smaller raw p never gets a larger adjusted p.
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(adj[order]) >= -1e-12)
    assert np.all(bh <= holm + 1e-12)
    assert np.all(holm <= bonf + 1e-12)
    # Hence the rejections are nested: Bonferroni within Holm within BH. (Compare adjusted
    # values: reject(..., "bonferroni") tests p < alpha / m, which can differ from
    # m * p < alpha in the last bit.)
    rb, rh, rq = (adjust(p, m) < 0.05 for m in ("bonferroni", "holm", "bh"))
    assert np.all(rh[rb]) and np.all(rq[rh])


# --- one sample: t-test, permutation test, TOST ----------------------------------------

def table(samples, keys=None, **kw):
    samples = np.asarray(samples, dtype=float)
    keys = keys or [(i, None) for i in range(samples.shape[0])]
    args = dict(alpha=0.05, correction="bonferroni", equivalence_correction="bonferroni", sesoi=0.01,
                power=np.ones(len(keys)), tost_power=np.ones(len(keys)))
    args.update(kw)
    return analyse(samples, keys, **args)


def test_analyse_matches_scipy():
    from scipy import stats      # the reference (slow to import: only where used)
    x = np.random.default_rng(3).normal(0.2, 1.0, 15)
    d = table([x], sesoi=0.5)[0]
    ref = stats.ttest_1samp(x, 0.0)
    ci = ref.confidence_interval(0.95)
    assert d.n == 15
    assert d.mean == pytest.approx(x.mean())
    assert d.sd == pytest.approx(x.std(ddof=1))
    assert d.se == pytest.approx(stats.sem(x))
    assert d.level == 0.05                            # one unit: alpha itself
    assert (d.ci_low, d.ci_high) == pytest.approx((ci.low, ci.high))
    tost_ci = ref.confidence_interval(0.90)           # TOST at alpha is the (1 - 2 alpha) interval
    assert (d.eq_low, d.eq_high) == pytest.approx((tost_ci.low, tost_ci.high))
    assert d.t == pytest.approx(ref.statistic) and d.p == pytest.approx(ref.pvalue)
    assert d.cohen_d == pytest.approx(x.mean() / x.std(ddof=1))
    lower = stats.ttest_1samp(x, -0.5, alternative="greater").pvalue
    upper = stats.ttest_1samp(x, 0.5, alternative="less").pvalue
    assert d.p_tost == pytest.approx(max(lower, upper))


def test_permutation_exact_for_small_n():
    from scipy import stats      # the reference (slow to import: only where used)
    # All positive: only the all-plus and all-minus sign patterns are as extreme as the
    # observed mean, so the exact two-sided p is 2 / 2**4.
    assert sign_flip_p([1.0, 2.0, 3.0, 4.0])[0] == pytest.approx(2 / 16)
    # Against a brute-force enumeration of all 2**8 sign patterns.
    x = np.random.default_rng(5).normal(0.3, 1.0, 8)
    flips = np.array(list(itertools.product([-1.0, 1.0], repeat=8)))
    null = (flips * x).mean(axis=1)
    obs = x.mean()
    eps = 1e-12
    brute = min(1.0, 2 * min(np.mean(null >= obs - eps), np.mean(null <= obs + eps)))
    assert sign_flip_p(x)[0] == pytest.approx(brute)
    # And against scipy's own exact permutation test.
    ref = stats.permutation_test((x,), np.mean, permutation_type="samples", n_resamples=np.inf)
    assert sign_flip_p(x)[0] == pytest.approx(ref.pvalue)


def test_permutation_is_vectorised_and_deterministic():
    from scipy import stats      # the reference (slow to import: only where used)
    rows = np.random.default_rng(7).normal(0.4, 1.0, (5, 30))    # 2**30 flips: Monte Carlo
    p = sign_flip_p(rows, seed=0)
    assert p.shape == (5,) and np.array_equal(p, sign_flip_p(rows, seed=0))
    for row, p_row in zip(rows, p):
        assert p_row == pytest.approx(sign_flip_p(row, seed=0)[0])
        assert p_row == pytest.approx(stats.ttest_1samp(row, 0.0).pvalue, abs=0.03)


def test_tost_tight_sample_around_zero_is_equivalent():
    x = standardized(20, mean=0.0, sd=0.02)
    assert tost(x, sesoi=0.1) < 1e-6
    assert one_sample_t(x)[1] > 0.5           # and, of course, not significant


def test_tost_sample_around_half_is_not_equivalent():
    assert tost(standardized(20, mean=0.5, sd=0.02), sesoi=0.1) > 0.99


def test_tost_matches_90_percent_interval():
    from scipy import stats      # the reference (slow to import: only where used)
    # TOST at alpha <=> the (1 - 2 alpha) CI lies inside (-sesoi, sesoi).
    rng = np.random.default_rng(11)
    for _ in range(50):
        x = rng.normal(rng.uniform(-0.1, 0.1), rng.uniform(0.01, 0.2), 12)
        ci = stats.ttest_1samp(x, 0.0).confidence_interval(0.90)
        assert (tost(x, 0.1) < 0.05) == (-0.1 < ci.low and ci.high < 0.1)


def test_zero_variance_samples():
    zeros = table([np.zeros(20)])[0]
    assert (zeros.t, zeros.p, zeros.p_tost) == (0.0, 1.0, 0.0)
    assert (zeros.ci_low, zeros.ci_high, zeros.cohen_d, zeros.se) == (0.0, 0.0, 0.0, 0.0)
    assert zeros.p_permutation == 1.0
    small = table([np.full(20, 0.005)])[0]
    assert small.p == 0.0 and small.p_tost == 0.0 and small.cohen_d == np.inf
    assert small.sd == 0.0 and small.ci_low == small.ci_high == 0.005
    big = table([np.full(20, -0.02)])[0]
    assert big.p == 0.0 and big.p_tost == 1.0 and big.cohen_d == -np.inf
    assert tost(np.full(5, -0.02), 0.01) == 1.0
    assert tost(np.full(5, 0.01), 0.01) == 1.0     # on the bound is not inside it


def test_bad_samples_are_refused():
    for bad in ([1.0], [[[1.0, 2.0]]], [1.0, np.nan]):
        with pytest.raises(ValueError):
            one_sample_t(bad)
    with pytest.raises(ValueError):
        tost([1.0, 2.0], sesoi=0.0)
    with pytest.raises(ValueError, match="2 keys for 3 units"):
        table(np.zeros((3, 4)), keys=[(0, None), (1, None)])


# --- the unit table and its one verdict taxonomy ---------------------------------------

def planted_blocks(seed: int = 0) -> np.ndarray:
    """[12, 20]: null blocks (sd 0.003, pineapple-pizza-like) and block 5 shifted by +1."""
    rng = np.random.default_rng(seed)
    deltas = rng.normal(0.0, 0.003, (12, 20))
    deltas[5] = rng.normal(1.0, 0.1, 20)
    return deltas


def test_a_planted_effect_is_beyond_sesoi_and_the_rest_within():
    rows = table(planted_blocks())
    assert [r.layer for r in rows] == list(range(12))
    assert rows[5].category == "beyond SESOI" and rows[5].significant and rows[5].beyond and not rows[5].equivalent
    assert all(r.category == "within SESOI" for i, r in enumerate(rows) if i != 5)


def test_significant_inside_the_band_is_not_beyond_sesoi():
    """Issue 14's L00-H07: an interval inside ±SESOI that excludes 0 is significant and never
    "beyond SESOI"; shown inside, it is "within SESOI" (said "significant, within SESOI")."""
    x = standardized(100, -0.0085, 0.004)
    (row,) = table([x])
    assert row.significant and not row.beyond and row.equivalent
    assert row.category == "within SESOI" and row.verdict == "significant, within SESOI"
    (wide,) = table([standardized(100, -0.0085, 0.02)])          # significant, straddles the bound
    assert wide.significant and not wide.beyond and not wide.equivalent
    assert wide.category == "not shown negligible"


def test_beyond_sesoi_is_the_decision_interval_lying_outside_the_band():
    """Minimum-effect test: p_beyond < level exactly when the (1 - level) interval lies
    entirely outside ±SESOI, for every unit (Hypothesis-free: a grid of means and SDs)."""
    means, sds = np.meshgrid(np.linspace(-0.05, 0.05, 41), [0.001, 0.005, 0.02])
    x = np.stack([standardized(30, m, sd) for m, sd in zip(means.ravel(), sds.ravel())])
    rows = table(x)
    for r in rows:
        outside = r.ci_low > 0.01 or r.ci_high < -0.01
        assert r.beyond == outside, (r.mean, r.sd, r.ci_low, r.ci_high)
        inside = -0.01 < r.eq_low and r.eq_high < 0.01
        assert r.equivalent == inside, (r.mean, r.sd, r.eq_low, r.eq_high)
    assert r.level == pytest.approx(0.05 / len(rows))


def test_the_minimum_effect_test_matches_scipy_one_sided_tests():
    from scipy import stats
    x = np.random.default_rng(4).normal(0.03, 0.02, 25)
    above = stats.ttest_1samp(x, 0.01, alternative="greater").pvalue
    below = stats.ttest_1samp(x, -0.01, alternative="less").pvalue
    assert beyond_p(x[None], 0.01)[0] == pytest.approx(min(1.0, 2 * min(above, below)))
    assert beyond_p(np.full((1, 3), 0.02), 0.01)[0] == 0.0 and beyond_p(np.full((1, 3), 0.01), 0.01)[0] == 1.0


def test_wide_noise_is_undecided():
    deltas = np.stack([standardized(20, 0.0, 1.0, seed=s) for s in range(3)])
    rows = table(deltas, keys=[(10, None), (20, None), (30, None)], sesoi=0.1)
    assert [r.layer for r in rows] == [10, 20, 30]
    assert all(r.category == "undecided" for r in rows)
    assert all(r.p == pytest.approx(1.0) and r.p_tost > 0.3 for r in rows)


def test_tost_decides_within_sesoi_whatever_its_power():
    """Issue 22: once TOST rejects at its level, the unit is shown within SESOI (its error rate is
    controlled); a low TOST power is shown beside, never turns it into "undecided"."""
    deltas = planted_blocks()
    powered = table(deltas)
    weak = table(deltas, tost_power=np.full(12, 0.5))
    assert powered[0].equivalent and weak[0].equivalent
    assert powered[0].category == weak[0].category == "within SESOI"
    assert weak[0].tost_power == 0.5
    assert table(deltas, tost_power=None)[0].category == "within SESOI"


def test_one_taxonomy():
    assert CATEGORIES == ("beyond SESOI", "not shown negligible", "within SESOI", "undecided")
    assert category(significant=True, equivalent=False, beyond=True) == "beyond SESOI"
    assert category(significant=True, equivalent=False, beyond=False) == "not shown negligible"
    assert category(significant=True, equivalent=True, beyond=False) == "within SESOI"
    assert category(significant=False, equivalent=True, beyond=False) == "within SESOI"
    assert category(significant=False, equivalent=False, beyond=False) == "undecided"


def test_categorize_takes_the_decisions_analyse_takes():
    deltas = np.concatenate([planted_blocks(3), np.random.default_rng(5).normal(0.008, 0.01, (20, 20))])
    rows = table(deltas)
    assert list(categorize(deltas, rows[0].level, 0.01)) == [r.category for r in rows]


def test_a_number_without_sampling_error_is_compared_with_the_bound_directly():
    assert bound_category(0.0099, 0.01) == "within SESOI" and bound_category(-0.0125, 0.01) == "beyond SESOI"
    assert bound_category(0.01, 0.01) == bound_category(-0.01, 0.01) == "undecided"
    with pytest.raises(ValueError, match="not finite"):
        bound_category(float("nan"), 0.01)


def test_corrections_are_bonferroni_over_the_units_of_one_call():
    deltas = np.random.default_rng(2).normal(0.001, 0.003, (36, 20))
    rows = table(deltas)
    p = np.array([r.p for r in rows])
    assert [r.significant for r in rows] == list(p < 0.05 / 36)
    np.testing.assert_allclose([r.p_adjusted for r in rows], np.minimum(36 * p, 1.0))
    np.testing.assert_allclose([r.p_tost_adjusted for r in rows], adjust([r.p_tost for r in rows], "bonferroni"))
    assert [r.equivalent for r in rows] == [r.p_tost < 0.05 / 36 for r in rows]
    assert [r.beyond for r in rows] == [r.p_beyond < 0.05 / 36 for r in rows]
    with pytest.raises(ValueError, match="must be 'bonferroni'"):
        table(deltas, correction="holm")


def test_rows_are_deterministic_and_flat():
    a, b = table(planted_blocks(1)), table(planted_blocks(1))
    assert a == b
    row = a[0].as_row()
    assert list(row)[:2] == ["layer", "n"] and "head" not in row
    assert all(isinstance(v, (int, float, bool, str)) for v in row.values())
    heads = table(np.zeros((2, 3)) + np.arange(3), keys=[(7, 0), (7, 1)])
    assert heads[1].as_row()["head"] == 1 and heads[1].label == "L07-H01"
