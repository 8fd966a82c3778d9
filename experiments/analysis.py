"""The analysis plan applied to measurements: the tables the claims judge and the report prints.

    means, names = cluster_means(values, clusters)               # sentences -> template means
    rows = unit_table(means, keys, plan)                          # UnitStats per unit (power included)
    verdict = within_verdict(rows, plan, bound=plan.sesoi)        # "every unit within": outcome, units named
    verdict = bound_verdict(values, labels, bound=plan.sesoi)     # the same for numbers without sampling error
    verdict = share_verdict(rows, plan, share=0.5)                # "beyond at more than a share of the units"
    rates = power_rows(means, "heads", plan)                      # power.csv rows
    control = planted_control(means, rows, plan, family="heads")  # the decision re-run on planted data

Every threshold comes from the plan (experiments/plan.py); every statistic from metrics/;
every outcome from metrics/outcomes.py. Every decision is Bonferroni over the units of a
family (level = alpha / m).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from metrics import outcomes
from metrics.power import (FamilyRate, detectable_shift, difference_power, family_rates, flip_rate, residuals,
                           seed_for, sd_upper, sign_flipped, tost_power)
from metrics.statistics import BEYOND, CATEGORIES, WITHIN, UnitStats, analyse, as_samples, bound_category, decide


def per_unit_threshold(plan, correction: str, units: int) -> float:
    """The level one unit's test must reach: alpha / m (Bonferroni, the only correction the plan allows)."""
    if correction != "bonferroni":
        raise ValueError(f"correction {correction!r}: the plan's decisions are Bonferroni")
    return plan.alpha / units


def power_text(p: float) -> str:
    """A power with two decimals, rounded DOWN: 0.996 prints as 0.99, only a certainty as 1.00."""
    return "nan" if math.isnan(p) else f"{math.floor(p * 100) / 100:.2f}"


def cluster_means(values, clusters) -> tuple[np.ndarray, list]:
    """values [units, n_sentences] and each sentence's cluster (its template) -> ([units,
    n_clusters] the mean over each cluster's sentences, the clusters in order of first
    appearance). Sentences of one template share its structure, so they are not independent
    samples: the template is the unit of replication (analysis plan: replication_unit)."""
    x = np.asarray(values, dtype=np.float64)
    clusters = list(clusters)
    if x.shape[-1] != len(clusters):
        raise ValueError(f"{len(clusters)} cluster labels for {x.shape[-1]} sentences: give one label per sentence")
    names = list(dict.fromkeys(clusters))
    index = np.array([names.index(c) for c in clusters])
    return np.stack([x[..., index == k].mean(-1) for k in range(len(names))], -1), names


def unit_table(samples, keys, plan, *, sesoi: float | None = None, label: str = "units") -> list[UnitStats]:
    """Describe, test and categorise every unit, with its predicted power (metrics/power.py):
    the difference test's to find SESOI (observed SD), TOST's to show 0 within SESOI (the SD
    at its plan.sd_upper_confidence upper bound), both shown beside the category. `label`
    names the family (for messages)."""
    x = as_samples(samples)
    sesoi = plan.sesoi if sesoi is None else sesoi
    units, n = x.shape
    level = per_unit_threshold(plan, plan.head_correction, units)
    sd = x.std(1, ddof=1)
    return analyse(x, keys, alpha=plan.alpha, correction=plan.head_correction,
                   equivalence_correction=plan.equivalence_correction, sesoi=sesoi,
                   power=difference_power(n, sd, sesoi, level),
                   tost_power=tost_power(n, sd_upper(sd, n, plan.sd_upper_confidence), sesoi, level),
                   seed=plan.simulation_seed)


@dataclass(frozen=True)
class Verdict:
    """A claim's outcome (metrics/outcomes.py), the units that decide it, and the words the
    report prints."""

    outcome: str
    detail: str
    beyond: tuple          # labels of units shown beyond the bound
    not_shown: tuple       # labels of units neither shown within nor beyond

    def named(self) -> dict:
        """The units the detail names, by role (pinned by the golden verdicts)."""
        return {"beyond": list(self.beyond), "not shown": list(self.not_shown)}


def _listed(rows, limit: int = 12) -> str:
    text = ", ".join(f"{r.label} {r.mean:+.4f} {r.interval()}" for r in rows[:limit])
    return text + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _by_size(rows, bound: float) -> list:
    """Units largest first; among those not shown either way, estimates outside the bound first."""
    return sorted(rows, key=lambda r: (abs(r.mean) <= bound, -abs(r.mean), r.label))


def within_verdict(rows: list[UnitStats], plan, *, bound: float, what: str = "units", note: str = "") -> Verdict:
    """"Every unit lies within +-bound" (rows computed by unit_table with sesoi=bound), decided by
    metrics.outcomes.every_unit_within: held when every unit is shown within (TOST), refuted
    when some unit is shown beyond (minimum-effect test, named with its interval), otherwise
    not established, naming the units not shown either way (estimates outside the bound first).
    Intervals are printed at the level their decision used (1 - alpha/m, or 1 - 2 alpha/m);
    `note` (e.g. what the refuting test could see) ends the detail."""
    outcome = outcomes.every_unit_within([r.category for r in rows])
    level = rows[0].level if rows else plan.alpha
    beyond = _by_size([r for r in rows if r.category == BEYOND], bound)
    within = [r for r in rows if r.category == WITHIN]
    rest = _by_size([r for r in rows if r.category not in (BEYOND, WITHIN)], bound)
    shown = f"{len(within)} of {len(rows)} {what} shown within ±{bound:g}"
    weak = sum(r.tost_power < plan.power_target for r in within)
    powered = (f"; TOST power below {plan.power_target} (SD at its {plan.sd_upper_confidence:.0%} upper bound) "
               f"for {weak} of them" if weak else "")
    if not rows:
        detail = f"no {what} to judge"
    elif outcome == outcomes.REFUTED:
        detail = (f"{len(beyond)} of {len(rows)} {what} shown beyond ±{bound:g} ({1 - level:.4g} intervals): "
                  f"{_listed(beyond)}; {shown}")
    elif outcome == outcomes.HELD:
        detail = f"all {len(rows)} {what} shown within ±{bound:g} (TOST, {1 - 2 * level:.4g} intervals){powered}"
    else:
        outside = [r for r in rest if abs(r.mean) > bound]
        detail = (f"{shown}{powered}; not shown: {len(rest)}"
                  + (f", of which {len(outside)} with an estimate outside ±{bound:g}" if outside else "")
                  + f": {_listed(rest)}")
    detail += f"; {note}" if note and rows else ""
    return Verdict(outcome, detail, tuple(r.label for r in beyond), tuple(r.label for r in rest))


def bound_verdict(values, labels, *, bound: float, what: str = "units") -> Verdict:
    """"Every value lies within +-bound" for numbers without sampling error (each the result of
    a deterministic forward pass): compared with the bound directly (metrics.statistics.
    bound_category), decided by the same rule. No test, so no interval and no power."""
    values = [float(v) for v in values]
    cats = [bound_category(v, bound) for v in values]
    outcome = outcomes.every_unit_within(cats)
    beyond = sorted(((lab, v) for lab, v, c in zip(labels, values, cats) if c == BEYOND), key=lambda x: -abs(x[1]))
    on = [(lab, v) for lab, v, c in zip(labels, values, cats) if c not in (BEYOND, WITHIN)]
    within = sum(c == WITHIN for c in cats)
    words = ", ".join(f"{lab} {v:+.4f}" for lab, v in beyond[:12])
    if not values:
        detail = f"no {what} to judge"
    elif beyond:
        detail = (f"{len(beyond)} of {len(values)} {what} beyond ±{bound:g} (a number without sampling error, "
                  f"compared directly): {words}; {within} within")
    else:
        detail = (f"{within} of {len(values)} {what} within ±{bound:g} (compared directly: no sampling error)"
                  + (f"; exactly on the bound: {', '.join(lab for lab, _ in on)}" if on else ""))
    return Verdict(outcome, detail, tuple(lab for lab, _ in beyond), tuple(lab for lab, _ in on))


def share_verdict(rows: list[UnitStats], plan, *, share: float, bound: float, what: str = "units") -> Verdict:
    """"Beyond +-bound at more than `share` of the units", decided by metrics.outcomes.share_beyond:
    held with enough units shown beyond, refuted only when enough are shown within that the
    share is impossible, otherwise not established."""
    cats = [r.category for r in rows]
    outcome = outcomes.share_beyond(cats, share)
    n = len(rows)
    beyond, within = cats.count(BEYOND), cats.count(WITHIN)
    need = outcomes.needed_beyond(share, n)
    rest = _by_size([r for r in rows if r.category not in (BEYOND, WITHIN)], bound)
    detail = (f"beyond ±{bound:g} at {beyond} of {n} {what} (needed: more than {share:.0%}, {need}); shown within at "
              f"{within}; neither at {n - beyond - within}"
              + (f" (so at most {n - within} could be beyond)" if outcome == outcomes.REFUTED else "")
              + (f": {_listed(rest, 6)}" if rest and outcome == outcomes.NOT_ESTABLISHED else ""))
    return Verdict(outcome, detail, tuple(r.label for r in rows if r.category == BEYOND), tuple(r.label for r in rest))


def power_rows(samples, family: str, plan, *, sesoi: float | None = None) -> list[FamilyRate]:
    """Detection and false-positive rates of a family's difference test and TOST, for effects
    of k x SESOI planted into randomly drawn units (plan: planted_effects), and of the
    minimum-effect test, the one that refutes "no unit beyond SESOI" (plan: beyond_effects)."""
    sesoi = plan.sesoi if sesoi is None else sesoi
    common = dict(sesoi=sesoi, alpha=plan.alpha, draws=plan.simulation_draws, seed=plan.simulation_seed)
    return (family_rates(samples, label=family, ks=plan.planted_effects, correction=plan.head_correction, **common)
            + family_rates(samples, label=family, ks=plan.planted_effects, correction=plan.equivalence_correction,
                           test="equivalence", **common)
            + family_rates(samples, label=family, ks=plan.beyond_effects, correction=plan.equivalence_correction,
                           test="beyond", **common))


def detectable_note(rows: list[UnitStats], plan, what: str = "unit") -> str:
    """The refuting test's reach in words, for a claim's detail."""
    found = detectable(rows, plan)
    return (f"the minimum-effect test finds a shift of ±{found['shift']:.4f} with power {found['power']:g} for the "
            f"median {what} (SD {found['median_sd']:.4f}, n {found['n']})") if found else ""


def detectable(rows: list[UnitStats], plan, power: float | None = None) -> dict:
    """The shift the minimum-effect test finds with the plan's target power for the family's
    median unit (its SD, n and level): what a "no unit beyond SESOI" claim could have seen."""
    power = plan.power_target if power is None else power
    if not rows:
        return {}
    sd = float(np.median([r.sd for r in rows]))
    return {"median_sd": sd, "n": rows[0].n, "level": rows[0].level, "power": power,
            "shift": detectable_shift(rows[0].n, sd, rows[0].sesoi, rows[0].level, power)}


# --- planted-effect controls: the decision re-run on planted data --------------------------------

@dataclass(frozen=True)
class ControlArm:
    """One arm of a planted-effect control: units drawn from one category (`stratum`), a shift
    planted into each draw's sign-flipped residuals, the unit's decision re-run at the
    family's level; how often it came out as `decision`, and how often the analysis predicted."""

    family: str
    stratum: str            # the category of the units drawn from (so low-power units are tested too)
    arm: str                # "effect" (a shift planted) or "null" (no shift)
    effect: float           # planted shift, data units (random sign)
    decision: str           # what the draw's unit must come out as: "beyond SESOI", "within SESOI" or "significant"
    units: int              # units in the stratum
    draws: int
    hits: int               # draws whose planted unit came out as `decision`
    predicted: float        # mean over the draws of the closed-form chance (metrics.power.flip_rate)
    tolerance: float        # control_z simulation SEs of realized - predicted (plus one draw)
    violations: int         # draws on which the claim's outcome did not follow the planted unit's category

    @property
    def realized(self) -> float:
        return self.hits / self.draws if self.draws else float("nan")

    @property
    def calibrated(self) -> bool:
        return self.draws > 0 and outcomes.within_tolerance(self.realized, self.predicted, self.tolerance)

    def as_row(self) -> dict:
        return {**self.__dict__, "realized": self.realized, "calibrated": self.calibrated}


@dataclass(frozen=True)
class PlantedControl:
    family: str
    arms: tuple
    outcome: str
    detail: str


# A control checks the claim's rule against its definition, restated here from the outcomes'
# meaning (metrics/outcomes.py's docstring), not from its code: given the planted unit's new
# category and what the other units showed, the one outcome the rule may give.
def _expected_every_unit(planted: str, others: list) -> str:
    if planted == BEYOND or BEYOND in others:
        return outcomes.REFUTED
    if planted == WITHIN and all(c == WITHIN for c in others):
        return outcomes.HELD
    return outcomes.NOT_ESTABLISHED


def _expected_none_flagged(planted: bool, others: list) -> str:
    return outcomes.REFUTED if planted or any(others) else outcomes.HELD


def planted_control(samples, rows: list[UnitStats], plan, *, family: str, test: str = "sesoi",
                    sesoi: float | None = None) -> PlantedControl:
    """Plant effects into drawn units' real (sign-flipped) residuals, re-run the unit's decision
    at the family's level and the claim's rule with that unit's new category, and compare.

    Units are drawn uniformly within each category present (so units of low power are tested,
    not drowned by units certain either way), plan.control_draws per (category, arm):
      test "sesoi" (claim: every unit within ±SESOI): the effect arm plants ±control_effect x
        SESOI and counts "beyond SESOI" against the minimum-effect test's power; the null arm
        plants nothing and counts "within SESOI" against TOST's power.
      test "significance" (claim: no unit significant, the seed's): the effect arm plants
        ±SESOI and counts "significant" against the t-test's power; the null arm plants nothing.
    Predictions are closed forms of each test on each unit's sign-flipped residuals
    (metrics.power.flip_rate: the decision rule restated, the flipped mean normal), computed
    apart from the simulated decisions, which the code under control takes. The outcome (metrics.outcomes.control): held when every
    arm realizes its prediction within tolerance and the claim's outcome followed every planted
    category; refuted otherwise; not established without units to draw.
    """
    x = as_samples(samples)
    sesoi = plan.sesoi if sesoi is None else sesoi
    units, n = x.shape
    if len(rows) != units:
        raise ValueError(f"{len(rows)} rows for {units} units")
    if not units:
        return PlantedControl(family, (), outcomes.control([], 0), _control_detail(family, [], ""))
    level = per_unit_threshold(plan, plan.head_correction, units)
    r = residuals(x)
    cats = [row.category for row in rows]
    effect = plan.control_effect * sesoi if test == "sesoi" else sesoi
    if test == "sesoi":
        arms = (("effect", effect, BEYOND, flip_rate("beyond", r, sesoi, level, effect)),
                ("null", 0.0, WITHIN, flip_rate("equivalence", r, sesoi, level, 0.0)))
    elif test == "significance":
        arms = (("effect", effect, "significant", flip_rate("difference", r, sesoi, level, effect)),
                ("null", 0.0, "significant", flip_rate("difference", r, sesoi, level, 0.0)))
    else:
        raise ValueError(f"test {test!r}: use 'sesoi' or 'significance'")
    flags = [row.significant for row in rows]
    out = []
    for stratum in (c for c in CATEGORIES if c in cats):
        members = np.array([u for u, c in enumerate(cats) if c == stratum])
        for arm, effect, decision, power in arms:
            rng = np.random.default_rng(seed_for(plan.simulation_seed, f"control {family} {stratum} {arm}"))
            draws = plan.control_draws
            unit = members[rng.integers(0, len(members), size=draws)]
            shift = effect * rng.choice((-1.0, 1.0), size=draws)
            found = decide(sign_flipped(r[unit], shift, rng), level, sesoi)
            got = found["significant"] if decision == "significant" else found["category"] == decision
            predicted_each = power[unit]
            tolerance = plan.control_z * math.sqrt(float(np.mean(predicted_each * (1 - predicted_each))) / draws) \
                + 1 / draws
            violations = _violations(unit, found, cats, flags, test)
            out.append(ControlArm(family, stratum, arm, float(effect), decision, len(members), draws,
                                  int(np.sum(got)), float(predicted_each.mean()), tolerance, violations))
    result = outcomes.control([(a.draws, a.realized, a.predicted, a.tolerance) for a in out],
                              sum(a.violations for a in out))
    return PlantedControl(family, tuple(out), result, _control_detail(family, out, result))


def _violations(unit, found, cats, flags, test: str) -> int:
    """Draws on which the claim's rule, re-run with the planted unit's new category (or flag),
    gave an outcome its definition forbids. Each distinct (unit, category) is judged once."""
    judged: dict = {}
    bad = 0
    for u, category, flag in zip(unit.tolist(), found["category"], found["significant"].tolist()):
        key = (u, category, flag)
        if key not in judged:
            if test == "sesoi":
                changed = cats[:u] + [category] + cats[u + 1:]
                judged[key] = outcomes.every_unit_within(changed) != _expected_every_unit(category, cats[:u] + cats[u + 1:])
            else:
                changed = flags[:u] + [flag] + flags[u + 1:]
                judged[key] = outcomes.none_flagged(changed) != _expected_none_flagged(flag, flags[:u] + flags[u + 1:])
        bad += judged[key]
    return bad


def _control_detail(family: str, arms: list, outcome: str) -> str:
    if not arms:
        return f"no {family} to draw from: nothing could be planted"
    parts = [f"{a.arm} ({a.decision}, {a.stratum}, {a.units} units): {a.realized:.3f} vs {a.predicted:.3f} "
             f"±{a.tolerance:.3f}" + ("" if a.calibrated else " MISSED") for a in arms]
    effect = next((a.effect for a in arms if a.arm == "effect"), 0.0)
    wrong = sum(a.violations for a in arms)
    return (f"±{effect:g} planted into {family} drawn by category, {arms[0].draws} draws an arm, the decision re-run; "
            "realized vs predicted: " + "; ".join(parts)
            + (f"; the claim's outcome broke its rule on {wrong} draws" if wrong else
               "; the claim's outcome followed every planted category"))
