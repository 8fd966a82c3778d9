"""The analysis plan (analysis_plan.toml at the repository root): every number a claim uses.

    plan = load_plan()                      # checked: every entry has a value and a reason
    plan.sesoi, plan.alpha, plan.power_target, ...
    plan.digest                             # sha256 of the file (and of any override)
    plan.with_overrides(sesoi=0.02)         # exploration: another plan, with its own digest

The claims in tests/ read their thresholds from here and nowhere else; summary.json and
the run's header carry the digest, so a reader can tell which plan judged a result.
"""
from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

PLAN_FILE = Path(__file__).resolve().parents[1] / "analysis_plan.toml"
CORRECTIONS = ("bonferroni", "holm", "bh")


class PlanError(ValueError):
    """The plan file (or an override) is not a plan this suite can use; says which entry and why."""


# entry name -> (python type of its value, check, what the check means)
_ENTRIES = {
    "alpha": (float, lambda v: 0 < v < 1, "a probability in (0, 1)"),
    "block_correction": (str, lambda v: v in CORRECTIONS, f"one of {CORRECTIONS}"),
    "head_correction": (str, lambda v: v in CORRECTIONS, f"one of {CORRECTIONS}"),
    "equivalence_correction": (str, lambda v: v in CORRECTIONS, f"one of {CORRECTIONS}"),
    "sesoi": (float, lambda v: 0 < v < 2, "a finite cosine difference in (0, 2)"),
    "max_abs_delta_per_head": (float, lambda v: 0 < v < 2, "a finite cosine difference in (0, 2)"),
    "baseline_exempt_blocks": (list, lambda v: set(v) <= {"first", "last"}, 'a list of "first" / "last"'),
    "power_target": (float, lambda v: 0 < v < 1, "a probability in (0, 1)"),
    "planted_effects": (list, lambda v: v and all(isinstance(k, (int, float)) and k > 0 for k in v),
                        "a non-empty list of positive multiples of SESOI"),
    "simulation_draws": (int, lambda v: v >= 100, "an integer >= 100"),
    "simulation_seed": (int, lambda v: v >= 0, "an integer >= 0"),
    "control_draws": (int, lambda v: v >= 10, "an integer >= 10"),
    "skip_block_control": (float, lambda v: 0 < v <= 1, "a fraction of blocks in (0, 1]"),
    "scale_test_prompts": (int, lambda v: v >= 3, "an integer >= 3"),
    "top_k": (list, lambda v: v and all(isinstance(k, int) and k > 0 for k in v), "a list of positive integers"),
    "ioi_pairs": (int, lambda v: v >= 10, "an integer >= 10"),
    "ioi_sesoi": (float, lambda v: v > 0 and math.isfinite(v), "a finite logit difference > 0"),
    "ioi_seed": (int, lambda v: v >= 0, "an integer >= 0"),
}
# Options that may override one entry for exploration (name of the option -> entry).
OVERRIDABLE = {"sesoi": "sesoi", "max_delta": "max_abs_delta_per_head"}


@dataclass(frozen=True)
class AnalysisPlan:
    """The checked plan. Attribute names are the entry names of analysis_plan.toml."""

    alpha: float
    block_correction: str
    head_correction: str
    equivalence_correction: str
    sesoi: float
    max_abs_delta_per_head: float
    baseline_exempt_blocks: tuple
    power_target: float
    planted_effects: tuple
    simulation_draws: int
    simulation_seed: int
    control_draws: int
    skip_block_control: float
    scale_test_prompts: int
    top_k: tuple
    ioi_pairs: int
    ioi_sesoi: float
    ioi_seed: int
    reasons: dict = field(compare=False)       # entry -> its reason, as written in the file
    source: str = field(compare=False)         # the file's text
    overrides: tuple = ()                      # ((entry, value), ...) applied on top of the file

    @property
    def digest(self) -> str:
        """sha256 of the file's bytes, and of the overrides when there are any (hex, 64)."""
        h = hashlib.sha256(self.source.encode())
        if self.overrides:
            h.update(json.dumps(dict(self.overrides), sort_keys=True).encode())
        return h.hexdigest()

    @property
    def short_digest(self) -> str:
        return self.digest[:12]

    def values(self) -> dict:
        """{entry: value} of the effective plan (JSON-ready; tuples as lists)."""
        return {name: list(v) if isinstance(v, tuple) else v
                for name in _ENTRIES for v in [getattr(self, name)]}

    def as_record(self) -> dict:
        """What summary.json stores: digest, overrides, and every entry with its reason."""
        return {"file": PLAN_FILE.name, "sha256": self.digest, "overrides": dict(self.overrides),
                "entries": {k: {"value": v, "reason": self.reasons[k]} for k, v in self.values().items()}}

    def with_overrides(self, **values) -> "AnalysisPlan":
        """Another plan with some entries replaced (by option name: sesoi=, max_delta=)."""
        changes = {}
        for option, value in values.items():
            if value is None:
                continue
            entry = OVERRIDABLE[option]
            changes[entry] = _checked(entry, value, f"--{option.replace('_', '-')}")
        if not changes:
            return self
        merged = dict(self.overrides) | changes
        return replace(self, **changes, overrides=tuple(sorted(merged.items())))


def _checked(name: str, value, where: str):
    kind, ok, meaning = _ENTRIES[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PlanError(f"{where}: {name} = {value!r} must be {meaning}")
    if kind is float and not math.isfinite(value):
        raise PlanError(f"{where}: {name} = {value!r} must be {meaning}")
    if not ok(value):
        raise PlanError(f"{where}: {name} = {value!r} must be {meaning}")
    return tuple(value) if kind is list else value


def load_plan(path: Path = PLAN_FILE) -> AnalysisPlan:
    """Read and check the plan: every known entry present, with a value of the right kind and
    a non-empty reason; no unknown entries (a typo would otherwise be silently ignored)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise PlanError(f"{path}: cannot read the analysis plan ({err}); restore it from git") from None
    unknown = sorted(set(data) - set(_ENTRIES))
    missing = sorted(set(_ENTRIES) - set(data))
    if unknown or missing:
        raise PlanError(f"{path}: unknown entries {unknown}, missing entries {missing}; every entry of "
                        "experiments/plan.py must be there, and nothing else")
    values, reasons = {}, {}
    for name in _ENTRIES:
        entry = data[name]
        if not isinstance(entry, dict) or set(entry) != {"value", "reason"}:
            raise PlanError(f"{path}: [{name}] must hold exactly `value` and `reason`")
        if not isinstance(entry["reason"], str) or not entry["reason"].strip():
            raise PlanError(f"{path}: [{name}] has no reason; every number of the plan needs one")
        values[name] = _checked(name, entry["value"], str(path))
        reasons[name] = entry["reason"].strip()
    return AnalysisPlan(**values, reasons=reasons, source=text)
