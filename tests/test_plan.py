"""The analysis plan (analysis_plan.toml, experiments/plan.py): complete, reasoned, checked."""
import hashlib

import pytest

from experiments.plan import PLAN_FILE, PlanError, load_plan


def test_every_number_of_the_plan_has_a_reason():
    plan = load_plan()
    assert set(plan.reasons) == set(plan.values())
    assert all(len(reason) > 30 for reason in plan.reasons.values())
    assert plan.digest == hashlib.sha256(PLAN_FILE.read_bytes()).hexdigest()


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
     "[power_target] must hold exactly `value` and `reason`"),
    (lambda t: t.replace('value = "holm"', 'value = "sidak"'), "equivalence_correction = 'sidak'"),
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
