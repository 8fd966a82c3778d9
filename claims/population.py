"""Across the sentence population (--prompts): every single-head ablation on every sentence,
one item per sentence, computed a chunk of sentences at a time (a shard,
experiments/prompt_chunks.py); each item ships its sentence's differences to the controller, where
the PRIMARY claims are judged, once every sentence's item ran (plugin/reduce.py): each head
across the population, on template means (the template is the unit of replication: plan
replication_unit; heads_by_template.csv shows each template's mean), Bonferroni over all
heads. "No single head moves the association" beyond ±SESOI (measurable), beyond the per-head
bound (macroscopic), and on more than a share of the sentences (per sentence, not only on
average); and the control that re-runs their decision on planted data. Judgments:
experiments/judgments.py; the tables they compute are the very objects heads.csv,
sentence_shares.csv, power.csv and controls.csv print."""
import numpy as np
import pytest

from experiments import judgments
from experiments.analysis import detectable, power_rows
from metrics.statistics import counts
from plugin.protocol import CONTROL, EVERY_UNIT_WITHIN, ITEMS_COMBINED, claim, decide

REPORT_ORDER = 30        # where the report lists this file's claims (plugin/protocol.py)


@claim(unit="sentence (every head's ablation)", rule=ITEMS_COMBINED, plan=("manipulation_factor",))
def test_every_single_head_ablation_moves_its_token_on_every_prompt(shards, prompt_index, study_setup, record,
                                                                   conclude):
    """Manipulation check across the sentence population: ablating any head at the token moves
    that token's vector beyond round-off (plan: manipulation_factor), on every sentence
    (wherever the ablation gives the head another value, beyond round-off too)."""
    c = shards.prompt_chunk_of(prompt_index)
    k = c.indices.index(prompt_index)
    record("prompt", {"index": prompt_index, "clean": c.clean[:, k].tolist(), "deltas": c.deltas[:, :, k].tolist(),
                      "replaced": int(judgments.moved(c.value_change[:, :, k], study_setup.plan).sum())})
    decide(conclude, judgments.manipulation_on_prompt(c, prompt_index, study_setup.plan), study_setup.plan.fail_on)


@pytest.mark.xdist_group("late")          # reads two shards: scheduled after both were computed
@claim(unit="the study sentence, two routes", rule=ITEMS_COMBINED)
def test_the_study_sentence_measured_as_a_prompt_equals_the_study(shards, study_setup, conclude):
    """Two shards, one number: where a prompt of the set is the study sentence, its single-head
    differences (swept in a padded batch) equal the study's (swept alone) to 1e-6, the
    engine's bound for cosines."""
    s = study_setup
    same = [i for i, p in enumerate(s.prompts) if p.tokens.ids == s.prompt.tokens.ids]
    if not same or s.options.ablation != "zero":
        pytest.skip("the study sentence is not in the prompt set (or the ablation is not zero)")
    verdict = judgments.two_shards_agree(shards.prompt_deltas(same[:1])[:, :, 0], shards.study().deltas(s.prompt.tested.label))
    decide(conclude, verdict, s.plan.fail_on)


# The primary claims read the rows of the per-sentence items above.
ACROSS = dict(reads="prompt", after=test_every_single_head_ablation_moves_its_token_on_every_prompt)


def prompt_deltas(run) -> np.ndarray:
    """[n_layers, n_heads, n_prompts]: every single-head ablation on every prompt of the set."""
    n = len(run.study_setup.prompts)
    found = run.measured("prompt", key=lambda r: r["index"], value=lambda r: r["deltas"], expected=set(range(n)),
                         what="prompts of the set")
    return np.stack([np.asarray(found[i]) for i in range(n)], -1)


def head_samples(run) -> tuple[np.ndarray, list]:
    """([n_layers * n_heads, n_templates] every head's mean difference per template, the templates)."""
    return judgments.head_samples(prompt_deltas(run), run.study_setup.templates)


def keys(run) -> list:
    return judgments.head_keys(run.study_setup.n_layers, run.study_setup.n_heads)


def heads(run):
    """The per-head table across templates at ±SESOI (with power), handed to the report with each
    template's mean (heads.csv, heads_by_template.csv, power.csv)."""
    if "heads" not in run.kept:
        s = run.study_setup
        samples, templates = head_samples(run)
        rows = judgments.head_rows(samples, keys(run), s.plan)
        run.hand_to_report("heads", rows)
        run.hand_to_report("heads by template", (keys(run), templates, samples))
        run.add_to_report("power", power_rows(samples, "heads", s.plan))
        run.hand_to_report("observations", {**run.kept.get("observations", {}), "heads across templates": {
            "beyond SESOI": [r.label for r in rows if r.category == "beyond SESOI"], **counts(rows),
            "templates": len(templates), "detectable at the power target": detectable(rows, s.plan)}})
    return run.kept["heads"]


@claim(unit="head, across templates", rule=EVERY_UNIT_WITHIN,
       plan=("sesoi", "alpha", "head_correction", "replication_unit"), **ACROSS)
def test_no_single_head_moves_the_association_beyond_sesoi_across_sentences(run):
    """Primary: across the sentence population, every head's mean change of the association lies
    within ±SESOI (template means; TOST, Bonferroni over heads; refuted by a head shown beyond)."""
    decide(run, judgments.primary(heads(run), run.study_setup.plan), run.study_setup.plan.fail_on)


@claim(unit="head, across templates", rule=EVERY_UNIT_WITHIN,
       plan=("max_abs_delta_per_head", "alpha", "head_correction", "replication_unit"), **ACROSS)
def test_no_single_head_moves_the_association_macroscopically_across_prompts(run):
    """Primary, macroscopic: across the sentence population, every head's mean change lies
    within the plan's per-head bound (template means; TOST at ±max_abs_delta_per_head, Bonferroni)."""
    decide(run, judgments.macroscopic(head_samples(run)[0], keys(run), run.study_setup.plan),
           run.study_setup.plan.fail_on)


@claim(unit="head, across templates", rule=EVERY_UNIT_WITHIN,
       plan=("sentence_share", "sesoi", "alpha", "replication_unit"), **ACROSS)
def test_no_single_head_moves_the_association_beyond_sesoi_on_many_sentences(run):
    """Primary, per sentence: no head moves the association beyond ±SESOI on more than the plan's
    share of sentences (each template's share of its sentences, tested across templates: TOST
    at ±sentence_share, Bonferroni over heads)."""
    s = run.study_setup
    rows = judgments.sentence_shares(prompt_deltas(run), s.templates, keys(run), s.plan)
    run.hand_to_report("sentence shares", rows)
    decide(run, judgments.sentence_share(rows, s.plan), s.plan.fail_on)


@claim(unit="head, across templates", rule=CONTROL,
       plan=("control_effect", "control_draws", "control_z", "simulation_seed"), **ACROSS)
def test_control_the_head_test_sees_what_the_analysis_predicts(run):
    """Control of the primary unit: effects planted into heads drawn by category, on their real
    sign-flipped noise across templates, are shown beyond (and nulls within) SESOI as often as
    the deciding tests' power predicts, and the primary claim's outcome follows every planted head."""
    control = judgments.control(head_samples(run)[0], heads(run), run.study_setup.plan, "heads")
    run.add_to_report("controls", list(control.arms))
    decide(run, judgments.as_verdict(control), run.study_setup.plan.fail_on)
