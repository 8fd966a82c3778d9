"""Regression gate on tiny random models: their numbers equal the checked-in golden ones
(tests/golden/tiny/), and a planted drift trips the gate. The real model's gate is a claim of
the study (claims/golden_gate.py). `pytest --update-golden` rewrites the files on purpose;
review their diff like code.
"""
import copy
from pathlib import Path

import pytest
import torch

from experiments.question import synthetic_prompt
from experiments.study import measure_study
from report import golden
from report.results import versions
from tests.helpers.tiny_models import tiny

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
TINY_IDS = [3, 17, 42, 8, 99, 23, 5, 61, 77]     # 9 tokens, like the study sentence
TINY_PROMPT = synthetic_prompt(TINY_IDS, token=4, pairs=[(4, 8), (2, 8)])


def _gate(path: Path, actual: dict, update: bool) -> None:
    problems = golden.gate(path, actual, versions(), update=update)
    assert not problems, "\n".join(problems[:40])


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
