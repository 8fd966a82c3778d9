"""Power (metrics/power.py: normal theory, and simulations on the run's own noise) and the
planted-effect control (experiments/analysis.py), on synthetic data with known answers (no
model needed)."""
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
        got = flagged(x, 0.05, correction, "equivalence", sesoi=0.01)
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
                        draws=2000, seed=0, test="equivalence")
    by_k = {r.k: r for r in rows}
    assert by_k[0.5].planted_flagged > 0.9               # half a SESOI: inside the band
    assert by_k[1.0].planted_flagged <= 0.05 + 0.02      # on the bound: a false equivalence at most alpha
    assert by_k[2.0].planted_flagged == 0.0


def _units(seed: int, sds) -> tuple[np.ndarray, list]:
    """Normal units of 30 samples with the given SDs, centred near 0, and their table."""
    x = np.random.default_rng(seed).normal(0.0, 1.0, (len(sds), 30)) * np.asarray(sds)[:, None]
    return x, unit_table(x, [(i, None) for i in range(len(sds))], PLAN, label="q")


def test_the_control_realizes_the_predicted_rates_on_normal_noise_where_the_tolerance_matters():
    """Normal noise: each arm's realized rate (the decision re-run on planted data) matches the
    closed form's prediction within simulation error, on units whose power lies between 0.5
    and 0.9, where a miscalibrated decision would show."""
    x, rows = _units(5, np.linspace(0.008, 0.016, 40))
    control = planted_control(x, rows, PLAN, family="q")
    assert control.outcome == "held", control.detail
    assert {a.arm for a in control.arms} == {"effect", "null"}
    assert all(a.draws == PLAN.control_draws and a.calibrated and a.violations == 0 for a in control.arms)
    assert any(0.5 < a.predicted < 0.9 for a in control.arms), [a.predicted for a in control.arms]
    assert {a.stratum for a in control.arms} == {r.category for r in rows}        # every category drawn from


def test_the_control_fails_when_the_decision_is_not_the_one_analysed(monkeypatch):
    """A decision taken at another level than the analysis states (here 20 times the family's)
    calls more units beyond and within than the tests allow: the control is refuted."""
    import experiments.analysis as analysis

    x, rows = _units(6, np.linspace(0.004, 0.03, 40))
    real = analysis.decide
    monkeypatch.setattr(analysis, "decide", lambda x, level, sesoi: real(x, 20 * level, sesoi))
    control = planted_control(x, rows, PLAN, family="q")
    assert control.outcome == "refuted" and "MISSED" in control.detail, control.detail


def test_the_control_fails_when_the_claims_rule_ignores_the_planted_unit(monkeypatch):
    import experiments.analysis as analysis

    x, rows = _units(7, np.linspace(0.004, 0.03, 40))
    monkeypatch.setattr(analysis.outcomes, "every_unit_within", lambda categories: "held")
    control = planted_control(x, rows, PLAN, family="q")
    assert control.outcome == "refuted" and sum(a.violations for a in control.arms) > 0
    assert "broke its rule" in control.detail


def test_the_seeds_significance_control_realizes_its_power_and_level():
    x, rows = _units(8, np.linspace(0.004, 0.03, 30))
    control = planted_control(x, rows, PLAN, family="blocks", test="significance")
    assert control.outcome == "held", control.detail
    null = [a for a in control.arms if a.arm == "null"]
    assert null and all(a.predicted < 3 * rows[0].level for a in null)       # a false positive about the level


def test_a_control_without_units_is_not_established():
    x = np.zeros((0, 30))
    control = planted_control(x, [], PLAN, family="none")
    assert control.outcome == "not established" and control.arms == () and "nothing could be planted" in control.detail
