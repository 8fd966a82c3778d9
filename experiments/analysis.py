"""The analysis plan applied to measurements: the tables the claims judge and the report prints.

    rows = unit_table(samples, keys, plan, correction=plan.block_correction)   # UnitStats per unit
    rates = power_rows(samples, "blocks", plan, correction=...)              # power.csv rows
    control = planted_control(samples, rows, plan, correction=...)           # PlantedControl

Every threshold comes from the plan (experiments/plan.py); every statistic from metrics/.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrics.power import FamilyRate, family_rates, residuals, seed_for, unit_power
from metrics.statistics import UnitStats, analyse, as_samples, t_tests


def per_unit_threshold(plan, correction: str, units: int) -> float:
    """The level one unit's test must reach: alpha / m for Bonferroni (and, conservatively,
    for Holm and BH, whose first step is the same)."""
    return plan.alpha / units if correction in ("bonferroni", "holm", "bh") else plan.alpha


def unit_table(samples, keys, plan, *, correction: str, sesoi: float | None = None,
               label: str = "units") -> list[UnitStats]:
    """Describe, test and categorise every unit, with its measured power to see SESOI."""
    x = as_samples(samples)
    sesoi = plan.sesoi if sesoi is None else sesoi
    power = unit_power(x, sesoi, per_unit_threshold(plan, correction, x.shape[0]), plan.simulation_draws,
                       seed_for(plan.simulation_seed, label))
    return analyse(x, keys, alpha=plan.alpha, correction=correction,
                   equivalence_correction=plan.equivalence_correction, sesoi=sesoi, power=power,
                   power_target=plan.power_target, seed=plan.simulation_seed)


def power_rows(samples, family: str, plan, *, correction: str, sesoi: float | None = None) -> list[FamilyRate]:
    """Detection and false-positive rates of a family's difference test and of its TOST,
    for effects of k x SESOI planted into randomly drawn units (plan: planted_effects)."""
    sesoi = plan.sesoi if sesoi is None else sesoi
    common = dict(ks=plan.planted_effects, sesoi=sesoi, alpha=plan.alpha, draws=plan.simulation_draws,
                  seed=plan.simulation_seed)
    return (family_rates(samples, label=family, correction=correction, **common)
            + family_rates(samples, label=family, correction=plan.equivalence_correction, equivalence=True,
                           **common))


@dataclass(frozen=True)
class PlantedControl:
    """A planted effect of SESOI size in units the analysis calls equivalent: was it found?"""

    family: str
    effect: float           # planted shift, data units (= SESOI)
    candidates: int         # units the analysis called equivalent (where the claim says: absent)
    draws: int
    detected: int           # draws whose planted unit the same test flagged as significant
    needed: float           # the plan's power target

    @property
    def rate(self) -> float:
        return self.detected / self.draws if self.draws else float("nan")

    @property
    def passed(self) -> bool:
        return self.draws > 0 and self.rate >= self.needed

    def as_row(self) -> dict:
        return {**self.__dict__, "rate": self.rate, "passed": self.passed}


def planted_control(samples, rows: list[UnitStats], plan, *, family: str, correction: str,
                    sesoi: float | None = None) -> PlantedControl:
    """Plant a shift of exactly SESOI (random sign) into a randomly drawn unit that the
    analysis called "equivalent", keeping that unit's REAL residuals (not a noise model),
    and test it as the family does (its correction over all units). Repeated
    plan.control_draws times: the suite must see, at the plan's power target, an effect of
    the size it claims is absent."""
    x = as_samples(samples)
    sesoi = plan.sesoi if sesoi is None else sesoi
    candidates = [i for i, r in enumerate(rows) if r.category == "equivalent"]
    rng = np.random.default_rng(seed_for(plan.simulation_seed, f"control {family}"))
    threshold = per_unit_threshold(plan, correction, x.shape[0])
    detected = 0
    draws = plan.control_draws if candidates else 0
    noise = residuals(x)
    for _ in range(draws):
        unit = candidates[rng.integers(len(candidates))]
        planted = noise[unit] + sesoi * rng.choice((-1.0, 1.0))
        detected += bool(t_tests(planted[None])[1][0] < threshold)
    return PlantedControl(family, sesoi, len(candidates), draws, detected, plan.power_target)
