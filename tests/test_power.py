"""Power (metrics/power.py: normal theory, and simulations on the run's own noise) and the
planted-effect control (experiments/analysis.py), on synthetic data with known answers (no
model needed)."""
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.analysis import planted_control, power_text, unit_table
from experiments.plan import load_plan
from metrics.power import difference_power, family_rates, flagged, sd_upper, tost_power
from metrics.statistics import reject, t_isf, t_tests, tost_p

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


@pytest.mark.parametrize("n, shift, level", [(9, 0.01, 0.05 / 30), (24, 0.01, 0.05 / 270), (120, 0.004, 0.05 / 270),
                                            (5, 0.02, 0.05)])
def test_difference_power_is_the_noncentral_t(n, shift, level):
    from scipy import stats
    sd = np.array([0.002, 0.005, 0.01, 0.03])
    nc = shift * np.sqrt(n) / sd
    c = stats.t.isf(level / 2, n - 1)
    want = stats.nct.sf(c, n - 1, nc) + stats.nct.cdf(-c, n - 1, nc)
    want = np.where(np.isnan(want) & (nc > 5), 1.0, want)       # scipy gives nan in the far tail, where power is ~1
    np.testing.assert_allclose(difference_power(n, sd, shift, level), want, atol=2e-4)


@pytest.mark.parametrize("n, level", [(9, 0.05 / 30), (24, 0.05 / 270), (120, 0.05 / 270)])
def test_tost_power_matches_a_simulation_of_normal_samples(n, level):
    rng = np.random.default_rng(n)
    for sd, shift in [(0.004, 0.0), (0.01, 0.0), (0.004, 0.005), (0.02, 0.0)]:
        x = rng.normal(shift, sd, (20000, n))
        simulated = np.mean(tost_p(x, 0.01) < level)
        predicted = tost_power(n, [sd], 0.01, level, shift)[0]
        assert abs(predicted - simulated) < 4 * np.sqrt(max(simulated * (1 - simulated), 1e-4) / 20000) + 2e-3, (
            sd, shift, predicted, simulated)


def test_power_grows_with_the_effect_and_falls_with_the_noise():
    small, large = (difference_power(24, [0.002, 0.02], e, 0.05 / 270) for e in (0.002, 0.02))
    assert small[0] < large[0] and small[1] < large[1]
    assert large[0] > 0.99 and small[1] < 0.05
    assert tost_power(24, [0.002], 0.01, 0.05)[0] > tost_power(24, [0.02], 0.01, 0.05)[0]


def test_the_sd_upper_bound_is_the_chi_square_one():
    from scipy import stats
    assert sd_upper(1.0, 9, 0.8) == pytest.approx(np.sqrt(8 / stats.chi2.ppf(0.2, 8)))
    assert sd_upper(1.0, 9, 0.8) > sd_upper(1.0, 120, 0.8) > 1.0


def test_a_power_below_one_never_prints_as_one():
    assert power_text(0.996) == "0.99" and power_text(1.0) == "1.00" and power_text(0.7349) == "0.73"


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


def test_the_control_realizes_the_predicted_power_on_normal_noise():
    """Normal noise: the analysis's normal-theory power is right, so the realized rate of a
    SESOI shift planted into uniformly drawn units matches it within simulation error."""
    x = np.random.default_rng(5).normal(0.0, 1.0, (40, 30)) * np.linspace(0.004, 0.03, 40)[:, None]
    rows = unit_table(x, [(i, None) for i in range(40)], PLAN, label="q")
    control = planted_control(x, rows, PLAN, family="q")
    assert control.draws == PLAN.control_draws and control.units == 40
    assert 0.2 < control.predicted < 0.95                    # a mixture of weak and strong units
    assert abs(control.realized - control.predicted) <= control.tolerance and control.calibrated


def test_the_control_fails_when_the_analysis_overstates_its_power():
    """The control can fail: rows whose predicted power is overstated (1.0 where the test
    sees a SESOI shift about half the time) are caught."""
    x = np.random.default_rng(6).normal(0.0, 0.02, (40, 30))
    rows = unit_table(x, [(i, None) for i in range(40)], PLAN, label="o")
    honest = planted_control(x, rows, PLAN, family="o")
    assert honest.calibrated and honest.predicted < 0.9
    inflated = [dataclasses.replace(r, power=1.0) for r in rows]
    overstated = planted_control(x, inflated, PLAN, family="o")
    assert overstated.realized == honest.realized and overstated.predicted == 1.0
    assert not overstated.calibrated


def test_the_control_draws_among_all_units_not_only_those_called_within():
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 0.002, (30, 24))
    x[:10] = rng.normal(0.0, 0.05, (10, 24))                  # ten units too noisy to be called within
    rows = unit_table(x, [(i, None) for i in range(30)], PLAN, label="m")
    control = planted_control(x, rows, PLAN, family="m")
    assert sum(r.category == "within SESOI" for r in rows) == 20
    assert control.within_draws < control.draws and control.within_realized > control.realized
