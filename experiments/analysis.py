"""The analysis plan applied to measurements: the tables the claims judge and the report prints.

    rows = unit_table(samples, keys, plan)                      # UnitStats per unit (power included)
    verdict = within_verdict(rows, plan, bound=plan.sesoi)      # a universal claim: three outcomes
    rates = power_rows(samples, "blocks", plan)                 # power.csv rows
    control = planted_control(samples, rows, plan, family=...)  # PlantedControl: predicted vs realized

Every threshold comes from the plan (experiments/plan.py); every statistic from metrics/.
Every decision is Bonferroni over the units of a family (level = alpha / m).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from metrics.power import (FamilyRate, difference_power, family_rates, planted_detections, sd_upper, seed_for,
                           tost_power)
from metrics.statistics import UnitStats, analyse, as_samples


def per_unit_threshold(plan, correction: str, units: int) -> float:
    """The level one unit's test must reach: alpha / m (Bonferroni, the only correction the plan allows)."""
    if correction != "bonferroni":
        raise ValueError(f"correction {correction!r}: the plan's decisions are Bonferroni")
    return plan.alpha / units


def power_text(p: float) -> str:
    """A power with two decimals, rounded DOWN: 0.996 prints as 0.99, only a certainty as 1.00."""
    return "nan" if math.isnan(p) else f"{math.floor(p * 100) / 100:.2f}"


def unit_table(samples, keys, plan, *, sesoi: float | None = None, label: str = "units") -> list[UnitStats]:
    """Describe, test and categorise every unit, with its predicted power (metrics/power.py):
    the difference test's to find SESOI (observed SD), TOST's to show 0 within SESOI (the SD
    at its plan.sd_upper_confidence upper bound). `label` names the family (for messages)."""
    x = as_samples(samples)
    sesoi = plan.sesoi if sesoi is None else sesoi
    units, n = x.shape
    level = per_unit_threshold(plan, plan.head_correction, units)
    sd = x.std(1, ddof=1)
    return analyse(x, keys, alpha=plan.alpha, correction=plan.head_correction,
                   equivalence_correction=plan.equivalence_correction, sesoi=sesoi,
                   power=difference_power(n, sd, sesoi, level),
                   tost_power=tost_power(n, sd_upper(sd, n, plan.sd_upper_confidence), sesoi, level),
                   power_target=plan.power_target, seed=plan.simulation_seed)


@dataclass(frozen=True)
class Verdict:
    """The outcome of a universal claim "every unit lies within +-bound" (held / refuted /
    not established), the units that decide it, and the words the report prints."""

    outcome: str
    detail: str
    beyond: tuple          # labels of units shown beyond the bound
    not_shown: tuple       # labels of units neither shown within nor beyond


def _listed(rows, limit: int = 12) -> str:
    text = ", ".join(f"{r.label} {r.mean:+.4f} {r.interval()}" for r in rows[:limit])
    return text + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def within_verdict(rows: list[UnitStats], plan, *, bound: float, what: str = "units") -> Verdict:
    """Every unit within +-bound (rows computed by unit_table with sesoi=bound):

    held             every unit shown within (TOST, powered)
    refuted          some unit shown beyond (minimum-effect test), named with its interval
    not established  otherwise: the units not shown within are named, those whose estimate
                     lies outside +-bound first
    Intervals are printed at the level their decision used (1 - alpha/m, or 1 - 2 alpha/m).
    """
    level = rows[0].level if rows else plan.alpha
    beyond = sorted((r for r in rows if r.category == "beyond SESOI"), key=lambda r: -abs(r.mean))
    within = [r for r in rows if r.category == "within SESOI"]
    rest = sorted((r for r in rows if r.category not in ("beyond SESOI", "within SESOI")),
                  key=lambda r: (abs(r.mean) <= bound, -abs(r.mean)))
    shown = f"{len(within)} of {len(rows)} {what} shown within ±{bound:g}"
    if beyond:
        outcome = "refuted"
        detail = (f"{len(beyond)} of {len(rows)} {what} shown beyond ±{bound:g} ({1 - level:.4g} intervals): "
                  f"{_listed(beyond)}; {shown}")
    elif not rest:
        outcome = "held"
        detail = (f"all {len(rows)} {what} shown within ±{bound:g} (TOST, {1 - 2 * level:.4g} intervals; TOST power "
                  f">= {plan.power_target} with the SD at its {plan.sd_upper_confidence:.0%} upper bound)")
    else:
        outcome = "not established"
        outside = [r for r in rest if abs(r.mean) > bound]
        detail = (f"{shown}; not shown: {len(rest)}"
                  + (f", of which {len(outside)} with an estimate outside ±{bound:g}" if outside else "")
                  + f": {_listed(rest)}")
    return Verdict(outcome, detail, tuple(r.label for r in beyond), tuple(r.label for r in rest))


def power_rows(samples, family: str, plan, *, sesoi: float | None = None) -> list[FamilyRate]:
    """Detection and false-positive rates of a family's difference test and of its TOST,
    for effects of k x SESOI planted into randomly drawn units (plan: planted_effects)."""
    sesoi = plan.sesoi if sesoi is None else sesoi
    common = dict(ks=plan.planted_effects, sesoi=sesoi, alpha=plan.alpha, draws=plan.simulation_draws,
                  seed=plan.simulation_seed)
    return (family_rates(samples, label=family, correction=plan.head_correction, **common)
            + family_rates(samples, label=family, correction=plan.equivalence_correction, equivalence=True,
                           **common))


@dataclass(frozen=True)
class PlantedControl:
    """A shift of SESOI planted into uniformly drawn units: the detection rate the analysis
    predicted for those units, and the rate the same test realized on their real noise; the
    same for the draws that fell on units called "within SESOI" (where a no-effect claim stands)."""

    family: str
    effect: float           # planted shift, data units (= SESOI)
    units: int              # units the draws chose among (every unit of the family)
    draws: int
    detected: int           # draws whose planted unit the family's test flagged as significant
    predicted: float        # mean over the draws of the drawn unit's predicted power
    tolerance: float        # control_z standard errors of realized - predicted (plus one draw)
    within_draws: int       # draws whose unit the analysis called "within SESOI"
    within_detected: int    # ... and were detected: the control where a "no effect" claim stands

    @property
    def realized(self) -> float:
        return self.detected / self.draws if self.draws else float("nan")

    @property
    def within_realized(self) -> float:
        return self.within_detected / self.within_draws if self.within_draws else float("nan")

    @property
    def calibrated(self) -> bool:
        """The analysis did not overstate what the test sees: the realized rate is not below the
        predicted one by more than the tolerance. (Above it is safe: normal theory allows for
        the SD's uncertainty, sign-flipped residuals keep their SD, so on near-normal noise of
        few values the realized rate runs higher.)"""
        return self.draws > 0 and self.realized >= self.predicted - self.tolerance

    def as_row(self) -> dict:
        return {**self.__dict__, "realized": self.realized, "within_realized": self.within_realized,
                "calibrated": self.calibrated}


def planted_control(samples, rows: list[UnitStats], plan, *, family: str,
                    sesoi: float | None = None) -> PlantedControl:
    """Plant a shift of exactly SESOI (random sign) into a uniformly drawn unit of the family,
    on that unit's sign-flipped real residuals, and test it as the family does (its level,
    alpha / m), plan.control_draws times. Compare the detection rate realized on the real
    noise with the one the analysis predicted (each drawn unit's `power`, normal theory):
    an analysis that does not overstate power realizes at least what it predicts, within
    simulation error (`calibrated`). A family with no unit is not calibrated (nothing could
    be shown)."""
    x = as_samples(samples)
    sesoi = plan.sesoi if sesoi is None else sesoi
    level = per_unit_threshold(plan, plan.head_correction, x.shape[0])
    draws = plan.control_draws
    unit, detected = planted_detections(x, sesoi, level, draws, seed_for(plan.simulation_seed, f"control {family}"))
    predicted_each = np.array([rows[u].power for u in unit])
    predicted = float(predicted_each.mean())
    # realized - predicted = mean over draws of (hit - p_unit): its variance is mean(p (1 - p)) / draws
    tolerance = plan.control_z * math.sqrt(float(np.mean(predicted_each * (1 - predicted_each))) / draws) + 1 / draws
    within = np.array([rows[u].category == "within SESOI" for u in unit])
    return PlantedControl(family, sesoi, x.shape[0], draws, int(detected.sum()), predicted, tolerance,
                          int(within.sum()), int((detected & within).sum()))
