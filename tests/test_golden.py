"""Regression gate: this run's numbers equal the checked-in golden ones (tests/golden/).

`pytest --update-golden` rewrites the files on purpose; review their diff like code.
"""
import copy
from pathlib import Path

import pytest
import torch

from experiments.question import Question, synthetic_prompt
from experiments.study import measure_study
from plugin import faults
from report import golden
from report.files import NotWritten
from report.results import versions
from tests.tiny_models import tiny

GOLDEN = Path(__file__).parent / "golden"
TINY_IDS = [3, 17, 42, 8, 99, 23, 5, 61, 77]     # 9 tokens, like the study sentence
TINY_PROMPT = synthetic_prompt(TINY_IDS, token=4, pairs=[(4, 8), (2, 8)])


def _gate(path: Path, actual: dict, update: bool, not_measured: tuple[str, ...] = ()) -> None:
    """Compare `actual` with the golden file; kinds in `not_measured` are left out on purpose
    (this run's options do not produce them), every other golden value must be present."""
    if update and not not_measured:       # only a run that measures everything rewrites the file;
        try:                              # another run (the confirmation half, say) is gated as usual
            golden.save(path, actual, versions())
        except NotWritten as err:         # a full disk, a read-only checkout: one line, the old file kept
            pytest.fail(faults.golden_not_written(err), pytrace=False)
        return
    expected = golden.load(path)
    assert expected is not None, f"no golden file {path}: create it with pytest --update-golden and commit it"
    expected = {k: v for k, v in expected.items() if k not in not_measured}
    problems = golden.compare(expected, actual)
    assert not problems, (f"{len(problems)} value(s) drifted from {path.name} (made with "
                          f"{expected.get('versions')}, now {versions()}):\n" + "\n".join(problems[:40]))


@pytest.mark.study
@pytest.mark.data("study sentence")       # the study sentence's numbers (and, on the exploration half, head means)
@pytest.mark.xdist_group("golden")        # reads every prompt chunk: scheduled after them
def test_study_numbers_match_golden(shards, setup, pytestconfig):
    """Regression gate: the study's numbers on this model equal the checked-in golden ones."""
    if setup.options.question != Question():
        pytest.skip("golden numbers exist for the study's own sentence, word and pairs only")
    if setup.options.dtype != "float32":
        pytest.skip(f"golden numbers are float32 ones; a {setup.options.dtype} run differs from them by "
                    "round-off far above the gate's tolerance (hooks/precision.py)")
    path = GOLDEN / f"{setup.model_name}.json"
    head_means, not_measured = None, ("head_means_across_prompts",)
    if setup.options.default_prompts and setup.options.ablation == "zero" and setup.prompts:
        head_means, not_measured = shards.prompt_deltas(range(len(setup.prompts))).mean(-1), ()
    if not path.is_file() and (not_measured or not pytestconfig.getoption("update_golden")):
        pytest.skip(f"no golden file for {setup.model_name}; a run on the exploration half makes one with --update-golden")
    _gate(path, golden.numbers(shards.study(), head_means), pytestconfig.getoption("update_golden"), not_measured)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_tiny_model_numbers_match_golden(family, pytestconfig):
    m = measure_study(tiny(family, 4, 4, 8), TINY_PROMPT)
    _gate(GOLDEN / "tiny" / f"{family}.json", golden.numbers(m), pytestconfig.getoption("update_golden"))


@pytest.mark.parametrize("scale", [1e-2, 1e-3])
def test_planted_drift_fails_the_gate(scale):
    """Perturb one weight matrix of block 2: the gate names values of block 2 and later."""
    model = copy.deepcopy(tiny("gpt2", 4, 4, 8))
    expected = golden.load(GOLDEN / "tiny" / "gpt2.json")
    assert expected is not None
    with torch.no_grad():
        w = model.transformer.h[2].mlp.c_fc.weight
        w += scale * torch.randn(w.shape, generator=torch.Generator().manual_seed(0))
    problems = golden.compare(expected, golden.numbers(measure_study(model, TINY_PROMPT)))
    assert problems, "a perturbed weight went unnoticed"
    assert all("[L00" not in p and "[L01" not in p for p in problems), "blocks before the perturbed one drifted"
    assert any("[L02" in p for p in problems)


def test_the_gate_names_each_drifted_value():
    expected = {"tokens": [1, 2], "clean_cosine": {"a-b": [0.5, 0.6]}, "deltas": {"a-b": [[0.0, 1e-3], [2e-3, 0.0]]}}
    actual = copy.deepcopy(expected)
    actual["deltas"]["a-b"][1][0] += 1e-4
    actual["clean_cosine"]["a-b"][0] += 1e-6          # within tolerance
    assert golden.compare(expected, actual) == [
        "deltas[a-b][L01-H00]: golden +0.002000, now +0.002100 (|diff| 1.0e-04 > 2e-05)"]


def test_a_golden_value_this_run_did_not_compute_fails_the_gate():
    expected = {"tokens": [1], "clean_cosine": {"a-b": [0.5]}, "head_means_across_prompts": {"a-b": [[0.1]]}}
    actual = {"tokens": [1], "clean_cosine": {"a-b": [0.5]}}
    assert golden.compare(expected, actual) == [
        "head_means_across_prompts[a-b]: in the golden file, not computed by this run"]
