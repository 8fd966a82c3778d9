"""Claims that need every shard of a run: evaluated once, on the controller (or the only
process of `-n 0`) after every item ran (plugin/reduce.py), each reported as a test of its
own: `tests/across_shards.py::<name>` in the terminal and in --junitxml.

Two units, two kinds of claim:
- PRIMARY, the unit where heads act: each head across the sentence population (paired, each
  sentence its own control), Bonferroni over all heads. "No single head moves the
  association" beyond ±SESOI (measurable) and beyond the per-head bound (macroscopic).
- REPLICATION of the seed: each block on the study sentence, its heads' differences as the
  sample (the seed's t-test, Bonferroni over blocks), and its SESOI version.
A universal claim has three outcomes (experiments/analysis.within_verdict): held (every unit
shown within), refuted (a unit shown beyond, named), not established (the units not shown
either way, named); the plan's fail_on says which fail the run. Each claim is refuted on a
model with a planted effect (tests/test_known_answers.py).

Every threshold is the analysis plan's (analysis_plan.toml). The tables these claims compute
(per block, per head, power, controls) are the very objects results/ prints.
"""
import numpy as np

from experiments.analysis import planted_control, power_rows, unit_table, within_verdict
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
    """The per-head table across the sentence population at ±SESOI (with power), kept for heads.csv."""
    if "heads" not in run.kept:
        s = run.setup
        samples = head_samples(run)
        keys = [(L, h) for L in range(s.n_layers) for h in range(s.n_heads)]
        run.keep("heads", unit_table(samples, keys, s.plan, label="heads"))
        run.extend("power", power_rows(samples, "heads", s.plan))
        rows = run.kept["heads"]
        run.keep("observations", {**run.kept.get("observations", {}), "heads across sentences": {
            "beyond SESOI": [r.label for r in rows if r.category == "beyond SESOI"], **counts(rows)}})
    return run.kept["heads"]


def head_samples(run) -> np.ndarray:
    """[n_layers * n_heads, n_sentences]: every head's differences across the population."""
    s = run.setup
    return prompt_deltas(run).reshape(s.n_layers * s.n_heads, -1)


def claim(run, verdict) -> None:
    """Say a universal claim's outcome and fail the run where the plan says so (fail_on)."""
    run.say(verdict.detail, outcome=verdict.outcome)
    assert not run.setup.plan.fails_run(verdict.outcome), f"{verdict.outcome}: {verdict.detail}"


def judge(run, control) -> None:
    """A planted-effect control: the analysis did not overstate the power of its test."""
    run.extend("controls", [control])
    detail = (f"a SESOI shift planted into {control.draws} uniformly drawn {control.family}: found in "
              f"{control.realized:.3f}, predicted {control.predicted:.3f} (tolerance {control.tolerance:.3f}); "
              f"among draws on units called within SESOI: {control.within_detected} of {control.within_draws}")
    run.say(detail, outcome="held" if control.calibrated else "refuted")
    assert control.calibrated, f"the analysis overstated its power: {detail}"


@across_shards(rows="scenario", measured_by=SCENARIOS)
def test_zero_blocks_significant_after_bonferroni(run):
    """Replication of the seed's verdict: no block's one-sample t-test of its heads'
    differences on the study sentence survives Bonferroni over blocks."""
    rows = blocks(run)
    significant = [r for r in rows if r.significant]
    words = ", ".join(f"{r.label} {r.mean:+.4f} {r.interval()} ({r.verdict})" for r in significant)
    run.say(f"{len(significant)} of {len(rows)} blocks significant" + (f": {words}" if words else ""),
            outcome="refuted" if significant else "held")
    assert not significant, f"blocks significant after Bonferroni: {words}"


@across_shards(rows="scenario", measured_by=SCENARIOS)
def test_every_block_lies_within_sesoi(run):
    """Replication of the seed, with equivalence: every block's mean head difference on the
    study sentence lies within ±SESOI (TOST, powered; refuted by a block shown beyond)."""
    claim(run, within_verdict(blocks(run), run.setup.plan, bound=run.setup.plan.sesoi, what="blocks"))


@across_shards(rows="scenario", measured_by=SCENARIOS)
def test_control_the_block_test_sees_a_sesoi_shift_as_predicted(run):
    """Control of the seed's unit: a SESOI shift planted into uniformly drawn blocks, on their
    real sign-flipped noise, is found at least as often as the analysis predicted."""
    s = run.setup
    judge(run, planted_control(study_deltas(run), blocks(run), s.plan, family="blocks"))


@across_shards(rows="prompt", measured_by=PROMPTS)
def test_no_single_head_moves_the_association_beyond_sesoi_across_sentences(run):
    """Primary: across the sentence population, every head's mean change of the association
    lies within ±SESOI (TOST, powered, Bonferroni over heads; refuted by a head shown beyond)."""
    claim(run, within_verdict(heads(run), run.setup.plan, bound=run.setup.plan.sesoi, what="heads"))


@across_shards(rows="prompt", measured_by=PROMPTS)
def test_no_single_head_moves_the_association_macroscopically_across_prompts(run):
    """Primary, macroscopic: across the sentence population, every head's mean change lies
    within the plan's per-head bound (TOST at ±max_abs_delta_per_head, powered, Bonferroni)."""
    s = run.setup
    keys = [(L, h) for L in range(s.n_layers) for h in range(s.n_heads)]
    bound = s.plan.max_abs_delta_per_head
    rows = unit_table(head_samples(run), keys, s.plan, sesoi=bound, label="heads-bound")
    claim(run, within_verdict(rows, s.plan, bound=bound, what="heads"))


@across_shards(rows="prompt", measured_by=PROMPTS)
def test_control_the_head_test_sees_a_sesoi_shift_as_predicted(run):
    """Control of the primary unit: a SESOI shift planted into uniformly drawn heads, on their
    real sign-flipped noise across sentences, is found at least as often as predicted."""
    judge(run, planted_control(head_samples(run), heads(run), run.setup.plan, family="heads"))
