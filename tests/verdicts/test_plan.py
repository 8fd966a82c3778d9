"""The analysis plan (analysis_plan.toml, experiments/plan.py): complete, reasoned, with its
history, frozen, and the kind of each run it judges."""
import hashlib
import re
from pathlib import Path

import pytest

from experiments.plan import FROZEN_SHA256, PLAN_FILE, ROOT, RULES, PlanError, load_plan, run_kind

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_number_of_the_plan_has_a_reason_and_a_history():
    plan = load_plan()
    assert set(plan.reasons) == set(plan.values()) == set(plan.histories)
    assert all(len(reason) > 30 for reason in plan.reasons.values())
    whole = hashlib.sha256(PLAN_FILE.read_bytes())
    for path in RULES:
        whole.update(f"\0{path}\0{hashlib.sha256((ROOT / path).read_bytes()).hexdigest()}".encode())
    assert plan.digest == whole.hexdigest()
    for name, history in plan.histories.items():
        assert history[0]["date"] >= "2026-11-27" and all(line["why"] for line in history), name
    changed = plan.histories["equivalence_correction"]
    assert [line["value"] for line in changed] == ["holm", "bonferroni"] and changed[1]["replaced"] == "holm"


def test_the_plan_is_the_frozen_one_and_the_readme_says_which():
    """Confirmatory runs are judged by the frozen plan: the file on main is that plan, and the
    README names its sha256. Changing the plan means changing both in one reviewed commit."""
    plan = load_plan()
    assert plan.digest == FROZEN_SHA256, (f"analysis_plan.toml (sha256 {plan.digest}) is not the frozen plan "
                                          f"{FROZEN_SHA256}: update experiments/plan.py and the README together")
    assert plan.frozen and not plan.with_overrides(sesoi=0.02).frozen
    assert FROZEN_SHA256 in re.sub(r"\s+", " ", README.read_text())


def test_the_plans_hash_covers_the_decision_code(tmp_path):
    """A rule changed after the data is a changed plan: the digest moves with any byte of the
    decision code (the files of RULES), as with any byte of the plan file."""
    import shutil

    for path in ("analysis_plan.toml", *RULES):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    from experiments import plan as module
    same = module.load_plan(tmp_path / "analysis_plan.toml")
    assert dataclasses_replace_rules(same, tmp_path).digest == load_plan().digest
    (tmp_path / "metrics/outcomes.py").write_text((ROOT / "metrics/outcomes.py").read_text() + "\n# edited\n")
    assert dataclasses_replace_rules(same, tmp_path).digest != load_plan().digest
    assert set(RULES) >= {"metrics/outcomes.py", "metrics/statistics.py", "experiments/analysis.py"}


def dataclasses_replace_rules(plan, root):
    import dataclasses

    from experiments.plan import rule_hashes
    return dataclasses.replace(plan, rules=rule_hashes(root))


def test_each_run_says_whether_it_is_exploratory_or_confirmatory():
    plan = load_plan()
    frozen = plan if plan.frozen else None
    assert run_kind(plan.with_overrides(sesoi=0.02), "gemma3-270m", "confirmation").kind == "exploratory"
    assert run_kind(plan, "x", None, known_answer=True).kind == "known-answer"
    if frozen is not None:
        for model in ("smollm2-135m-instruct", "gemma3-270m"):          # results seen before the plan
            assert run_kind(frozen, model, "exploration").kind == "exploratory"
            assert run_kind(frozen, model, "same-templates").kind == "exploratory"
            assert run_kind(frozen, model, "confirmation").kind == "confirmatory"
            assert run_kind(frozen, model, "confirmation", data="sentence").kind == "exploratory"
        assert run_kind(frozen, "gpt2-large", None).kind == "confirmatory"
        assert run_kind(frozen, "gpt2-large", "exploration", data="sentence").kind == "confirmatory"


def test_an_override_is_another_plan_with_its_own_digest():
    plan = load_plan()
    other = plan.with_overrides(sesoi=0.02)
    assert other.sesoi == 0.02 and other.overrides == (("sesoi", 0.02),) and other.digest != plan.digest
    assert plan.with_overrides(sesoi=None) is plan
    assert other.as_record()["overrides"] == {"sesoi": 0.02}


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("[alpha]\nvalue = 0.05", "[alpha]\nvalue = 1.5"), "alpha = 1.5 must be a probability"),
    (lambda t: t.replace("[sesoi]\nvalue = 0.01", "[sesoi]\nvalue = inf"), "sesoi = inf must be"),
    (lambda t: t + '\n[typo]\nvalue = 1\nreason = "x"\n', "unknown entries ['typo']"),
    (lambda t: t.replace("[ioi_seed]", "[ioi_seed_]"), "missing entries ['ioi_seed']"),
    (lambda t: t.replace('reason = "Conventional target power', 'reason = ""\nwhy = "Conventional target power'),
     "[power_target] must hold exactly `value`, `reason` and `history`"),
    (lambda t: t.replace('[equivalence_correction]\nvalue = "bonferroni"', '[equivalence_correction]\nvalue = "holm"'),
     "equivalence_correction = 'holm' must be one of"),
    (lambda t: t.replace("[sesoi]\nvalue = 0.01", "[sesoi]\nvalue = 0.02"),
     "[sesoi] value 0.02 is not the last value of its history"),
    (lambda t: t.replace('value = "bonferroni", replaced = "holm"', 'value = "bonferroni"'),
     "must say what it replaced"),
    (lambda t: t.replace('history = [{ date = "2026-11-27", value = 0.05, why = "first plan" }]', ""),
     "[alpha] must hold exactly"),
    (lambda t: t.replace('[fail_on]\nvalue = ["refuted"]', '[fail_on]\nvalue = ["not established"]'),
     "fail_on"),
    (lambda t: "not = toml = at all", "cannot read the analysis plan"),
])
def test_a_broken_plan_is_refused_naming_the_entry(tmp_path, edit, message):
    path = tmp_path / "plan.toml"
    path.write_text(edit(PLAN_FILE.read_text()))
    with pytest.raises(PlanError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_plan(path)


@pytest.mark.parametrize("values, message", [
    (dict(sesoi=float("inf")), "--sesoi: sesoi = inf"),
    (dict(sesoi=0.0), "--sesoi: sesoi = 0.0"),
    (dict(max_delta=-1.0), "--max-delta: max_abs_delta_per_head = -1.0"),
])
def test_a_bad_override_is_refused(values, message):
    with pytest.raises(PlanError, match=message):
        load_plan().with_overrides(**values)
