"""Power and false-positive simulations (metrics/power.py) and the planted-effect control
(experiments/analysis.py), on synthetic data with known answers (no model needed)."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.analysis import planted_control, unit_table
from experiments.plan import load_plan
from metrics.power import family_rates, flagged, residuals, unit_power
from metrics.statistics import reject, t_tests, tost_p

PLAN = load_plan()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), units=st.integers(2, 40), n=st.integers(2, 25),
       correction=st.sampled_from(["bonferroni", "holm", "bh"]), tost=st.booleans())
def test_the_fast_decisions_equal_the_p_value_route(seed, units, n, correction, tost):
    """The simulations' hot loop compares statistics with critical values; it must flag exactly
    what reject() flags from p-values, for both tests and every correction."""
    rng = np.random.default_rng(seed)
    x = rng.normal(rng.uniform(-0.01, 0.01, (7, units, 1)), 0.005, (7, units, n))
    x[:, 0] = 0.003                        # a constant unit in every family
    if tost:
        want = reject(tost_p(x, 0.01), 0.05, correction, axis=1)
        got = flagged(x, 0.05, correction, sesoi=0.01)
    else:
        want = reject(t_tests(x)[1], 0.05, correction, axis=1)
        got = flagged(x, 0.05, correction)
    assert np.array_equal(got, want)


def test_unit_power_is_exact_over_sign_patterns_when_they_are_few():
    x = np.random.default_rng(1).normal(0.0, 0.004, (3, 6))
    got = unit_power(x, 0.01, 0.05 / 3, draws=2000, seed=0)            # 2**6 = 64 <= 2000: exact
    r = residuals(x)
    flips = np.array(list(itertools.product((-1.0, 1.0), repeat=6)))
    want = [np.mean(t_tests(flips * r[u] + 0.01)[1] < 0.05 / 3) for u in range(3)]
    np.testing.assert_allclose(got, want)


def test_unit_power_grows_with_the_effect_and_falls_with_the_noise():
    rng = np.random.default_rng(2)
    quiet, loud = rng.normal(0, 0.002, 24), rng.normal(0, 0.02, 24)
    small, large = (unit_power(np.stack([quiet, loud]), e, 0.05 / 270, 2000, 0) for e in (0.002, 0.02))
    assert small[0] < large[0] and small[1] < large[1]
    assert large[0] > 0.99 and small[1] < 0.05


def test_family_rates_on_a_normal_null_hold_alpha_and_find_large_effects():
    x = np.random.default_rng(3).normal(0.0, 0.003, (100, 24))
    rows = family_rates(x, label="t", ks=(0.5, 1.0, 2.0), sesoi=0.01, alpha=0.05, correction="bonferroni",
                        draws=2000, seed=0)
    null = rows[0]
    assert null.k == 0 and np.isnan(null.planted_flagged)
    assert null.any_null_flagged < 0.05 + 3 * np.sqrt(0.05 * 0.95 / 2000)    # family-wise error at most alpha
    found = [r.planted_flagged for r in rows[1:]]
    assert found == sorted(found) and found[-1] == 1.0
    again = family_rates(x, label="t", ks=(0.5, 1.0, 2.0), sesoi=0.01, alpha=0.05, correction="bonferroni",
                         draws=2000, seed=0)
    assert [repr(r) for r in again] == [repr(r) for r in rows]         # reproducible bit for bit (nan too)


def test_tost_rates_declare_small_effects_equivalent_and_sesoi_effects_rarely():
    x = np.random.default_rng(4).normal(0.0, 0.002, (50, 24))
    rows = family_rates(x, label="e", ks=(0.5, 1.0, 2.0), sesoi=0.01, alpha=0.05, correction="holm",
                        draws=2000, seed=0, equivalence=True)
    by_k = {r.k: r for r in rows}
    assert by_k[0.5].planted_flagged > 0.9               # half a SESOI: inside the band
    assert by_k[1.0].planted_flagged <= 0.05 + 0.02      # on the bound: a false equivalence at most alpha
    assert by_k[2.0].planted_flagged == 0.0


def test_the_planted_control_finds_sesoi_where_power_is_high_and_not_where_it_is_low():
    rng = np.random.default_rng(5)
    quiet = rng.normal(0.0, 0.001, (40, 24))
    rows = unit_table(quiet, [(i, None) for i in range(40)], PLAN, correction="bonferroni", label="q")
    control = planted_control(quiet, rows, PLAN, family="q", correction="bonferroni")
    assert control.candidates == 40 and control.draws == PLAN.control_draws and control.passed
    loud = rng.normal(0.0, 0.03, (40, 24))
    rows = unit_table(loud, [(i, None) for i in range(40)], PLAN, correction="bonferroni", label="l")
    assert all(r.category == "undecided" for r in rows)       # too noisy to claim "no effect" anywhere
    assert planted_control(loud, rows, PLAN, family="l", correction="bonferroni").draws == 0
