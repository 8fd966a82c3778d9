"""The analysis plan (analysis_plan.toml at the repository root): every number a claim uses.

    plan = load_plan()                      # checked: every entry has a value, a reason, a history
    plan.sesoi, plan.alpha, plan.power_target, ...
    plan.digest                             # sha256 of the file, the decision code (RULES) and any override
    plan.frozen                             # the file is the frozen plan (FROZEN_SHA256), no override
    plan.with_overrides(sesoi=0.02)         # exploration: another plan, with its own digest

The claims in tests/ read their thresholds from here and nowhere else; summary.json and
the run's header carry the digest, so a reader can tell which plan judged a result.
`run_kind` says whether a run is exploratory or confirmatory under this plan.
"""
from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAN_FILE = ROOT / "analysis_plan.toml"
# The code that turns measurements into outcomes: the tests, the categories, the power and the
# controls, and the outcome rules. The plan's hash covers it, so a rule changed after the data
# is a changed plan, as a changed number is.
RULES = ("metrics/statistics.py", "metrics/power.py", "metrics/outcomes.py", "experiments/analysis.py",
         "experiments/judgments.py")
# The frozen plan: confirmatory runs are judged by exactly this file (README, "The analysis
# plan"). Changing the plan means changing this line in the same reviewed commit.
FROZEN_SHA256 = "69ceae203ee903b90fc9aabc78ad830b2c9c1a91fc0187eeab54e9880ac7aae5"
# Every decision is one interval at one level (alpha / m), which the report prints: a
# single-step correction. (metrics.statistics.adjust still offers Holm and BH for reading.)
CORRECTIONS = ("bonferroni",)
OUTCOMES = ("held", "refuted", "not established")     # what a claim's data can show (error is the tool's)


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
    "sd_upper_confidence": (float, lambda v: 0.5 <= v < 1, "a confidence level in [0.5, 1)"),
    "planted_effects": (list, lambda v: v and all(isinstance(k, (int, float)) and k > 0 for k in v),
                        "a non-empty list of positive multiples of SESOI"),
    "simulation_draws": (int, lambda v: v >= 100, "an integer >= 100"),
    "simulation_seed": (int, lambda v: v >= 0, "an integer >= 0"),
    "control_draws": (int, lambda v: v >= 100, "an integer >= 100"),
    "control_z": (float, lambda v: 0 < v <= 10, "a number of standard errors in (0, 10]"),
    "control_effect": (float, lambda v: 1 < v <= 10, "a multiple of SESOI in (1, 10]"),
    "beyond_effects": (list, lambda v: v and all(isinstance(k, (int, float)) and k >= 1 for k in v),
                       "a non-empty list of multiples of SESOI, each >= 1"),
    "replication_unit": (str, lambda v: v in ("template", "sentence"), "'template' or 'sentence'"),
    "sentence_share": (float, lambda v: 0 < v < 1, "a share in (0, 1)"),
    "manipulation_factor": (float, lambda v: v >= 1 and math.isfinite(v), "a finite multiple >= 1 of the engine's bound"),
    "skip_block_control": (float, lambda v: 0 < v <= 1, "a fraction of blocks in (0, 1]"),
    "scale_test_prompts": (int, lambda v: v >= 3, "an integer >= 3"),
    "top_k": (list, lambda v: v and all(isinstance(k, int) and k > 0 for k in v), "a list of positive integers"),
    "population_size": (int, lambda v: v >= 200 and v % 2 == 0, "an even integer >= 200"),
    "population_seed": (int, lambda v: v >= 0, "an integer >= 0"),
    "held_out_templates": (int, lambda v: v >= 10, "an integer >= 10"),
    "held_out_per_template": (int, lambda v: v >= 1, "an integer >= 1"),
    "held_out_seed": (int, lambda v: v >= 0, "an integer >= 0"),
    "exploratory_models": (list, lambda v: all(isinstance(m, str) and m for m in v), "a list of model names"),
    "fail_on": (list, lambda v: "refuted" in v and set(v) <= set(OUTCOMES),
                f"a list of outcomes among {OUTCOMES} that holds 'refuted'"),
    "governing_claim": (str, lambda v: v in ("sesoi", "significance"), "'sesoi' or 'significance'"),
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
    sd_upper_confidence: float
    planted_effects: tuple
    simulation_draws: int
    simulation_seed: int
    control_draws: int
    control_z: float
    control_effect: float
    beyond_effects: tuple
    replication_unit: str
    sentence_share: float
    manipulation_factor: float
    skip_block_control: float
    scale_test_prompts: int
    top_k: tuple
    population_size: int
    population_seed: int
    held_out_templates: int
    held_out_per_template: int
    held_out_seed: int
    exploratory_models: tuple
    fail_on: tuple
    governing_claim: str
    ioi_pairs: int
    ioi_sesoi: float
    ioi_seed: int
    reasons: dict = field(compare=False)       # entry -> its reason, as written in the file
    histories: dict = field(compare=False)     # entry -> [{date, value, replaced?, why}], oldest first
    source: str = field(compare=False)         # the file's text
    rules: tuple = field(default=(), compare=False)   # ((path, sha256 of its bytes), ...) of RULES
    overrides: tuple = ()                      # ((entry, value), ...) applied on top of the file

    @property
    def digest(self) -> str:
        """sha256 of the file's bytes, of the decision code's (RULES) and of the overrides when
        there are any (hex, 64)."""
        h = hashlib.sha256(self.source.encode())
        for path, code in self.rules:
            h.update(f"\0{path}\0{code}".encode())
        if self.overrides:
            h.update(json.dumps(dict(self.overrides), sort_keys=True).encode())
        return h.hexdigest()

    @property
    def short_digest(self) -> str:
        return self.digest[:12]

    @property
    def frozen(self) -> bool:
        """Is this the frozen plan, with no override?"""
        return not self.overrides and self.digest == FROZEN_SHA256

    def fails_run(self, outcome: str) -> bool:
        """Does a claim with this outcome fail the run (fail_on)?"""
        return outcome in self.fail_on

    def values(self) -> dict:
        """{entry: value} of the effective plan (JSON-ready; tuples as lists)."""
        return {name: list(v) if isinstance(v, tuple) else v
                for name in _ENTRIES for v in [getattr(self, name)]}

    def as_record(self) -> dict:
        """What summary.json stores: digest, overrides, and every entry with its reason."""
        return {"file": PLAN_FILE.name, "sha256": self.digest, "frozen": self.frozen,
                "rules": {path: code for path, code in self.rules},
                "frozen_sha256": FROZEN_SHA256, "overrides": dict(self.overrides),
                "entries": {k: {"value": v, "reason": self.reasons[k], "history": self.histories[k]}
                            for k, v in self.values().items()}}

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


def _checked_history(name: str, history, value, where: str) -> list:
    """[{date, value, replaced?, why}], oldest first, ending with the current value."""
    if not isinstance(history, list) or not history:
        raise PlanError(f"{where}: [{name}] has no history; add history = [{{ date = ..., value = ..., why = ... }}]")
    dates = []
    for line in history:
        if not isinstance(line, dict) or not {"date", "value", "why"} <= set(line) or set(line) - {
                "date", "value", "why", "replaced"}:
            raise PlanError(f"{where}: [{name}] history lines hold date, value, why (and replaced for a change)")
        if not isinstance(line["why"], str) or not line["why"].strip():
            raise PlanError(f"{where}: [{name}] a history line has no `why`")
        dates.append(str(line["date"]))
    if dates != sorted(dates):
        raise PlanError(f"{where}: [{name}] history is not in date order: {dates}")
    last = history[-1]["value"]
    if (tuple(last) if isinstance(last, list) else last) != value:
        raise PlanError(f"{where}: [{name}] value {value!r} is not the last value of its history ({last!r}); "
                        "add a history line for the change")
    for before, after in zip(history, history[1:]):
        if after.get("replaced") != before["value"]:
            raise PlanError(f"{where}: [{name}] the change of {after['date']} must say what it replaced "
                            f"(replaced = {before['value']!r})")
    return [{k: (str(v) if k == "date" else v) for k, v in line.items()} for line in history]


def load_plan(path: Path = PLAN_FILE) -> AnalysisPlan:
    """Read and check the plan: every known entry present, with a value of the right kind,
    a non-empty reason and a history that ends with the value; no unknown entries (a typo
    would otherwise be silently ignored)."""
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
    values, reasons, histories = {}, {}, {}
    for name in _ENTRIES:
        entry = data[name]
        if not isinstance(entry, dict) or set(entry) != {"value", "reason", "history"}:
            raise PlanError(f"{path}: [{name}] must hold exactly `value`, `reason` and `history`")
        if not isinstance(entry["reason"], str) or not entry["reason"].strip():
            raise PlanError(f"{path}: [{name}] has no reason; every number of the plan needs one")
        values[name] = _checked(name, entry["value"], str(path))
        reasons[name] = entry["reason"].strip()
        histories[name] = _checked_history(name, entry["history"], values[name], str(path))
    return AnalysisPlan(**values, reasons=reasons, histories=histories, source=text, rules=rule_hashes())


def rule_hashes(root: Path = ROOT) -> tuple:
    """((path, sha256 of the file's bytes), ...) of the decision code the plan's hash covers."""
    return tuple((path, hashlib.sha256((root / path).read_bytes()).hexdigest()) for path in RULES)


@dataclass(frozen=True)
class ClaimPlan:
    """A claim file's own plan (README, "Your own claim"): the entries of `<file>.plan.toml`
    next to it, each with a value, a reason and a history, as in analysis_plan.toml, but
    whichever entries the claims need. `plan.effect` or `plan["effect"]` reads one; the
    sha256 covers the file, so the report can say which plan judged a claim, and the study's
    own plan stays untouched."""

    path: Path
    values: dict
    reasons: dict
    histories: dict
    source: str

    def __getitem__(self, name: str):
        if name not in self.values:
            raise KeyError(f"{self.path.name} has no entry [{name}]; add it with a value, a reason and a history")
        return self.values[name]

    def __getattr__(self, name: str):
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"{self.__dict__.get('path', 'the claim plan')} has no entry [{name}]")

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    def fails_run(self, outcome: str) -> bool:
        return outcome in self.values.get("fail_on", ("refuted",))


def load_claim_plan(claim_file) -> ClaimPlan:
    """The plan of a claim file: `<claim file without .py>.plan.toml` beside it, every entry with a
    value, a non-empty reason and a history ending with the value (PlanError naming the entry)."""
    path = Path(claim_file).with_suffix(".plan.toml")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise PlanError(f"{path}: cannot read the claim's plan ({err}); write it beside {Path(claim_file).name}, "
                        "one [entry] with value, reason and history per number the claim uses") from None
    values, reasons, histories = {}, {}, {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or set(entry) != {"value", "reason", "history"}:
            raise PlanError(f"{path}: [{name}] must hold exactly `value`, `reason` and `history`")
        if not isinstance(entry["reason"], str) or not entry["reason"].strip():
            raise PlanError(f"{path}: [{name}] has no reason; every number of the plan needs one")
        value = tuple(entry["value"]) if isinstance(entry["value"], list) else entry["value"]
        values[name], reasons[name] = value, entry["reason"].strip()
        histories[name] = _checked_history(name, entry["history"], value, str(path))
    return ClaimPlan(path, values, reasons, histories, text)


@dataclass(frozen=True)
class RunKind:
    """Exploratory or confirmatory, and why (the report's headline says it)."""

    kind: str        # "exploratory", "confirmatory" or "known-answer"
    why: str


def run_kind(plan: AnalysisPlan, model: str, prompt_set: str | None, known_answer: bool = False,
             data: str = "population") -> RunKind:
    """What kind of run, or of claim, this is under `plan`.

    prompt_set: "exploration" or "same-templates" (the population's two halves, drawn from the
    same templates), "confirmation" (held-out templates, experiments/population.py), another
    name for a user's file, or None. data: what the claim judges, "population" (the sentence
    set) or "sentence" (the study sentence alone). A run on a planted model is a known-answer run.

    Data are confirmatory only where the plan has not seen them: for a model whose results
    were seen before the plan (exploratory_models), only the held-out templates, and never
    the study sentence.
    """
    if known_answer:
        return RunKind("known-answer", "a model with a planted effect of known size (experiments/known_answers.py): "
                                       "a check that the claims can fail, not a result about a model")
    if not plan.frozen:
        why = (f"the plan is overridden ({dict(plan.overrides)})" if plan.overrides
               else f"the plan (sha256 {plan.short_digest}) is not the frozen one ({FROZEN_SHA256[:12]})")
        return RunKind("exploratory", why)
    if model not in plan.exploratory_models:
        return RunKind("confirmatory", f"the frozen plan on {model}, a model the plan has not seen")
    if data == "sentence":
        return RunKind("exploratory", f"the study sentence was seen in {model}'s runs before the plan was written")
    if prompt_set != "confirmation":
        return RunKind("exploratory", f"{model}'s results on these templates were seen before the plan was written; "
                                      "confirmatory runs use the held-out templates (--prompts confirmation)")
    return RunKind("confirmatory", "the frozen plan on held-out templates, which no run had seen when the plan "
                                   f"was frozen (the study sentence's claims stay exploratory for {model})")
