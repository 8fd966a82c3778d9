"""Claims that need every shard of a run: evaluated once, on the controller (or the only
process of `-n 0`) after every item ran (plugin/reduce.py), each reported as a test of its
own: `tests/across_shards.py::<name>` in the terminal and in --junitxml.

Two units, two kinds of claim:
- PRIMARY, the unit where heads act: each head across the sentence population, on template
  means (the template is the unit of replication: plan replication_unit; heads_by_template.csv
  shows each template's mean), Bonferroni over all heads. "No single head moves the
  association" beyond ±SESOI (measurable), beyond the per-head bound (macroscopic), and on
  more than a share of the sentences (per sentence, not only on average).
- REPLICATION of the seed, on the study sentence: each block, its heads' differences as the
  sample (the seed's t-test, Bonferroni over blocks), and each block's mean compared with
  ±SESOI directly (a number from a deterministic forward pass, not a sample).
Outcomes are decided by metrics/outcomes.py (held, refuted, not established; an exception
other than this file's assertions is an error of the tool); the plan's fail_on says which
fail the run. Each claim is refuted on a model with a planted effect (tests/test_known_answers.py).

Every threshold is the analysis plan's (analysis_plan.toml). The tables these claims compute
(per block, per head, power, controls) are the very objects results/ prints.
"""
import numpy as np

from experiments.analysis import (bound_verdict, cluster_means, detectable, detectable_note, planted_control,
                                  power_rows, unit_table, within_verdict)
from metrics import outcomes
from metrics.statistics import counts
from plugin.reduce import across_shards

# The tests whose items record the rows these claims read.
SCENARIOS = "tests/test_study.py::test_silencing_one_head_moves_its_token_but_not_the_association_macroscopically"
PROMPTS = "tests/test_prompts.py::test_every_single_head_ablation_moves_its_token_on_every_prompt"


def study_deltas(run) -> np.ndarray:
    """[n_layers, n_heads]: the tested pair's change per single-head silencing, every scenario of the run."""
    s = run.setup
    found = run.table("scenario", key=lambda r: (r["layer"], r["head"]), value=lambda r: r["delta"],
                      where=lambda r: r["pair"] == s.prompt.tested.label,
                      expected={(L, h) for L in range(s.n_layers) for h in range(s.n_heads)},
                      what="single-head silencings")
    return np.array([[found[L, h] for h in range(s.n_heads)] for L in range(s.n_layers)])


def prompt_deltas(run) -> np.ndarray:
    """[n_layers, n_heads, n_prompts]: every single-head ablation on every prompt of the set."""
    n = len(run.setup.prompts)
    found = run.table("prompt", key=lambda r: r["index"], value=lambda r: r["deltas"], expected=set(range(n)),
                      what="prompts of the set")
    return np.stack([np.asarray(found[i]) for i in range(n)], -1)


def blocks(run):
    """The per-block table of the study sentence (with power), and its power rows: computed
    once for the claims below and kept for blocks.csv / power.csv."""
    if "blocks" not in run.kept:
        s = run.setup
        deltas = study_deltas(run)
        keys = [(L, None) for L in range(s.n_layers)]
        run.keep("blocks", unit_table(deltas, keys, s.plan, label="blocks"))
        run.extend("power", power_rows(deltas, "blocks", s.plan))
    return run.kept["blocks"]


def heads(run):
    """The per-head table across the population at ±SESOI on template means (with power), kept
    for heads.csv, with each template's mean for heads_by_template.csv."""
    if "heads" not in run.kept:
        s = run.setup
        samples, templates = head_samples(run)
        keys = [(L, h) for L in range(s.n_layers) for h in range(s.n_heads)]
        rows = unit_table(samples, keys, s.plan, label="heads")
        run.keep("heads", rows)
        run.keep("heads by template", (keys, templates, samples))
        run.extend("power", power_rows(samples, "heads", s.plan))
        run.keep("observations", {**run.kept.get("observations", {}), "heads across templates": {
            "beyond SESOI": [r.label for r in rows if r.category == "beyond SESOI"], **counts(rows),
            "templates": len(templates), "detectable at the power target": detectable(rows, s.plan)}})
    return run.kept["heads"]


def head_samples(run) -> tuple[np.ndarray, list]:
    """([n_layers * n_heads, n_templates] every head's mean difference per template, the templates)."""
    s = run.setup
    return cluster_means(prompt_deltas(run).reshape(s.n_layers * s.n_heads, -1), s.templates)


def claim(run, verdict) -> None:
    """Say a claim's outcome and the units it names; fail the run where the plan says so (fail_on)."""
    run.say(verdict.detail, outcome=verdict.outcome, named=verdict.named())
    assert not run.setup.plan.fails_run(verdict.outcome), f"{verdict.outcome}: {verdict.detail}"


def judge(run, control) -> None:
    """A planted-effect control: the decision, re-run on planted data, did what the analysis says."""
    run.extend("controls", list(control.arms))
    run.say(control.detail, outcome=control.outcome)
    assert not run.setup.plan.fails_run(control.outcome), f"the decision did not do what the analysis says: " \
                                                          f"{control.detail}"


@across_shards(rows="scenario", measured_by=SCENARIOS, data="study sentence")
def test_zero_blocks_significant_after_bonferroni(run):
    """Replication of the seed's verdict: no block's one-sample t-test of its heads'
    differences on the study sentence survives Bonferroni over blocks."""
    rows = blocks(run)
    significant = [r for r in rows if r.significant]
    words = ", ".join(f"{r.label} {r.mean:+.4f} {r.interval()} ({r.verdict})" for r in significant)
    outcome = outcomes.none_flagged([r.significant for r in rows])
    run.say(f"{len(significant)} of {len(rows)} blocks significant" + (f": {words}" if words else ""),
            outcome=outcome, named={"beyond": [r.label for r in significant]})
    assert not run.setup.plan.fails_run(outcome), f"blocks significant after Bonferroni: {words}"


@across_shards(rows="scenario", measured_by=SCENARIOS, data="study sentence")
def test_every_block_mean_lies_within_sesoi(run):
    """Replication of the seed, with the size that matters: every block's mean head difference on
    the study sentence lies within ±SESOI (a number without sampling error, compared directly)."""
    s = run.setup
    deltas = study_deltas(run)
    claim(run, bound_verdict(deltas.mean(1), [f"L{L:02d}" for L in range(s.n_layers)], bound=s.plan.sesoi,
                             what="blocks"))


@across_shards(rows="scenario", measured_by=SCENARIOS, data="study sentence")
def test_control_the_block_test_sees_a_sesoi_shift_as_predicted(run):
    """Control of the seed's unit: a SESOI shift planted into blocks drawn by category, on their
    real sign-flipped noise, is found by the seed's t-test as often as predicted, and the seed's
    verdict follows."""
    s = run.setup
    judge(run, planted_control(study_deltas(run), blocks(run), s.plan, family="blocks", test="significance"))


@across_shards(rows="prompt", measured_by=PROMPTS)
def test_no_single_head_moves_the_association_beyond_sesoi_across_sentences(run):
    """Primary: across the sentence population, every head's mean change of the association lies
    within ±SESOI (template means; TOST, Bonferroni over heads; refuted by a head shown beyond)."""
    rows = heads(run)
    claim(run, within_verdict(rows, run.setup.plan, bound=run.setup.plan.sesoi, what="heads",
                              note=detectable_note(rows, run.setup.plan, "head")))


@across_shards(rows="prompt", measured_by=PROMPTS)
def test_no_single_head_moves_the_association_macroscopically_across_prompts(run):
    """Primary, macroscopic: across the sentence population, every head's mean change lies
    within the plan's per-head bound (template means; TOST at ±max_abs_delta_per_head, Bonferroni)."""
    s = run.setup
    keys = [(L, h) for L in range(s.n_layers) for h in range(s.n_heads)]
    bound = s.plan.max_abs_delta_per_head
    rows = unit_table(head_samples(run)[0], keys, s.plan, sesoi=bound, label="heads-bound")
    claim(run, within_verdict(rows, s.plan, bound=bound, what="heads"))


@across_shards(rows="prompt", measured_by=PROMPTS)
def test_no_single_head_moves_the_association_beyond_sesoi_on_many_sentences(run):
    """Primary, per sentence: no head moves the association beyond ±SESOI on more than the plan's
    share of sentences (each template's share of its sentences, tested across templates: TOST
    at ±sentence_share, Bonferroni over heads)."""
    s = run.setup
    keys = [(L, h) for L in range(s.n_layers) for h in range(s.n_heads)]
    moved = (np.abs(prompt_deltas(run)) > s.plan.sesoi).reshape(len(keys), -1).astype(np.float64)
    shares, _ = cluster_means(moved, s.templates)
    rows = unit_table(shares, keys, s.plan, sesoi=s.plan.sentence_share, label="heads-share")
    run.keep("sentence shares", rows)
    claim(run, within_verdict(rows, s.plan, bound=s.plan.sentence_share,
                              what=f"heads (share of a template's sentences moved beyond ±{s.plan.sesoi:g})"))


@across_shards(rows="prompt", measured_by=PROMPTS)
def test_control_the_head_test_sees_what_the_analysis_predicts(run):
    """Control of the primary unit: effects planted into heads drawn by category, on their real
    sign-flipped noise across templates, are shown beyond (and nulls within) SESOI as often as
    the deciding tests' power predicts, and the primary claim's outcome follows every planted head."""
    judge(run, planted_control(head_samples(run)[0], heads(run), run.setup.plan, family="heads"))
