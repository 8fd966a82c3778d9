"""Claims that need every shard of a run: evaluated once, on the controller (or the only
process of `-n 0`) after every item ran (plugin/reduce.py), each reported as a test of its
own: `tests/across_shards.py::<name>` in the terminal and in --junitxml.

Every threshold is the analysis plan's (analysis_plan.toml). The tables these claims compute
(per block, per head, power, controls) are the very objects results/ prints.
"""
import numpy as np
import pytest

from experiments.analysis import planted_control, power_rows, unit_table
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
        run.keep("blocks", unit_table(deltas, keys, s.plan, correction=s.plan.block_correction, label="blocks"))
        run.extend("power", power_rows(deltas, "blocks", s.plan, correction=s.plan.block_correction))
    return run.kept["blocks"]


def heads(run):
    """The per-head table across the prompt set at ±SESOI (with power), kept for heads.csv."""
    if "heads" not in run.kept:
        s = run.setup
        samples = prompt_deltas(run).reshape(s.n_layers * s.n_heads, -1)
        keys = [(L, h) for L in range(s.n_layers) for h in range(s.n_heads)]
        run.keep("heads", unit_table(samples, keys, s.plan, correction=s.plan.head_correction, label="heads"))
        run.extend("power", power_rows(samples, "heads", s.plan, correction=s.plan.head_correction))
        rows = run.kept["heads"]
        run.keep("observations", {**run.kept.get("observations", {}), "heads across prompts": {
            "effect beyond SESOI": [r.label for r in rows if r.category == "effect"],
            **{c: sum(r.category == c for r in rows) for c in ("effect", "negligible effect", "equivalent",
                                                                "undecided")}}})
    return run.kept["heads"]


def _powered(rows, target, size="a SESOI shift") -> str:
    return f"power to see {size} >= {target} at {sum(r.power >= target for r in rows)} of {len(rows)}"


def judge(run, control) -> None:
    """A planted-effect control: found at the plan's power target, where a "no effect" claim stands."""
    run.extend("controls", [control])
    if not control.candidates:
        pytest.skip(f"no unit of {control.family} is called equivalent, so no 'no effect' claim needs this control")
    run.say(f"found in {control.detected} of {control.draws} draws ({control.rate:.2f}; needed "
            f"{control.needed})", outcome="held" if control.passed else "refuted")
    assert control.passed, f"a planted SESOI shift was found in only {control.rate:.2f} of draws (< {control.needed})"


@across_shards(rows="scenario", measured_by=SCENARIOS)
def test_zero_blocks_significant_after_bonferroni(run):
    """The seed's verdict: no block's one-sample t-test of its heads' differences survives the
    plan's correction over blocks."""
    rows = blocks(run)
    significant = [r.label for r in rows if r.significant]
    run.say(f"{len(significant)} of {len(rows)} blocks significant; {_powered(rows, run.setup.plan.power_target)} "
            "blocks", outcome="held" if not significant else "refuted")
    assert not significant, f"blocks significant after {run.setup.plan.block_correction}: {significant}"


@across_shards(rows="scenario", measured_by=SCENARIOS)
def test_blocks_are_equivalent_to_no_change_where_power_allows(run):
    """No block's heads shift the association beyond ±SESOI (TOST, Holm over blocks); a block is
    called equivalent only where the test had the power to see a SESOI shift, else undecided."""
    rows = blocks(run)
    effects = [f"{r.label} {r.mean:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]" for r in rows if r.category == "effect"]
    undecided = [f"{r.label} (power {r.power:.2f})" for r in rows if r.category == "undecided"]
    equivalent = sum(r.category == "equivalent" for r in rows)
    run.say(f"{equivalent} of {len(rows)} blocks equivalent within ±{run.setup.plan.sesoi}; undecided: "
            f"{', '.join(undecided) or 'none'}", outcome="held" if equivalent else "undecided")
    assert not effects, f"blocks whose heads shift the association beyond ±{run.setup.plan.sesoi}: {effects}"


@across_shards(rows="scenario", measured_by=SCENARIOS)
def test_control_a_planted_sesoi_shift_of_a_block_is_detected(run):
    """Control: a shift of SESOI planted in a random block that the analysis calls equivalent
    (its real noise kept) is found by the same test, at the plan's power target."""
    s = run.setup
    judge(run, planted_control(study_deltas(run), blocks(run), s.plan, family="blocks",
                               correction=s.plan.block_correction))


@across_shards(rows="prompt", measured_by=PROMPTS)
def test_no_single_head_moves_the_association_macroscopically_across_prompts(run):
    """Across the prompt set, every head's mean change lies within the plan's per-head bound
    (TOST at ±max_abs_delta_per_head, corrected over all heads), where power allows."""
    s = run.setup
    heads(run)
    samples = prompt_deltas(run).reshape(s.n_layers * s.n_heads, -1)
    keys = [(L, h) for L in range(s.n_layers) for h in range(s.n_heads)]
    bound = s.plan.max_abs_delta_per_head
    rows = unit_table(samples, keys, s.plan, correction=s.plan.head_correction, sesoi=bound, label="heads-bound")
    beyond = [f"{r.label} {r.mean:+.4f}" for r in rows if r.category == "effect"]
    within = sum(r.category in ("equivalent", "negligible effect") for r in rows)
    run.say(f"{within} of {len(rows)} heads shown within ±{bound}; "
            f"{_powered(rows, s.plan.power_target, f'a shift of {bound}')} heads", outcome="held" if within else "undecided")
    assert not beyond, f"heads that move the association beyond ±{bound} across prompts: {beyond}"


@across_shards(rows="prompt", measured_by=PROMPTS)
def test_control_a_planted_sesoi_shift_of_one_head_is_detected_across_prompts(run):
    """Control of single-head size: a shift of SESOI planted in a random head that the analysis
    calls equivalent (its real prompt-to-prompt noise kept) is found by the same per-head test."""
    s = run.setup
    samples = prompt_deltas(run).reshape(s.n_layers * s.n_heads, -1)
    judge(run, planted_control(samples, heads(run), s.plan, family="heads", correction=s.plan.head_correction))
