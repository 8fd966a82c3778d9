"""Known answers: every claim of the study can fail, and fails where an effect was planted.

Two models are built from the real SmolLM2-135M-Instruct (experiments/known_answers.py), with
effects whose size the plain hooked pass measured on the exploration half of the sentence
population (recorded in the checkpoint's known_answer.json, with the heads drawn and the seed):

  macroscopic   one head moving the association by 2-4x the per-head bound; one silent head
  sesoi         one block whose heads each move it by -(2-4) x SESOI on the study sentence;
                one head in a later block moving it by 1.3-1.9x SESOI

Each runs through the whole study as `./run study --model <folder>` does (the plugin, its
shards and claims; the scale ladder left out, as it has a known answer of its own below), and
the claims are read from what the run wrote: claims.csv, heads.csv, blocks.csv, the JUnit
XML of its items, its exit status. The baseline claim's known answer is the real model asked
with its two pairs swapped; the positive control's, a model whose blocks write nothing.
What the unmodified model gives: tests/test_reports_are_reproducible.py (golden verdicts).
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("known-answers")]

MACRO = "test_no_single_head_moves_the_association_macroscopically_across_prompts"
PRIMARY = "test_no_single_head_moves_the_association_beyond_sesoi_across_sentences"
SEED_VERDICT = "test_zero_blocks_significant_after_bonferroni"
BLOCKS_WITHIN = "test_every_block_lies_within_sesoi"
PER_HEAD = "test_silencing_one_head_moves_its_token_but_not_the_association_macroscopically"
PER_BLOCK = "test_no_block_heads_shift_the_association_significantly"
PER_PROMPT = "test_every_single_head_ablation_moves_its_token_on_every_prompt"
POSITIVE = "test_control_skipping_a_block_at_the_token_is_an_effect_at_most_blocks"


def _env():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


class Run:
    """What one study run wrote: exit status, output, claims (by test name), unit tables, and
    the items that failed (JUnit XML)."""

    def __init__(self, proc, results: Path, junit: Path):
        self.returncode, self.output = proc.returncode, proc.stdout + proc.stderr
        found = list(results.glob("*/*/claims.csv"))
        assert len(found) == 1, f"no complete report was published:\n{self.output[-4000:]}"
        folder = found[0].parent
        self.claims = {r["test"].split("::")[-1]: r for r in csv.DictReader(open(folder / "claims.csv"))}
        self.heads = {f"L{int(r['layer']):02d}-H{int(r['head']):02d}": r
                      for r in csv.DictReader(open(folder / "heads.csv"))} if (folder / "heads.csv").is_file() else {}
        self.blocks = {f"L{int(r['layer']):02d}": r for r in csv.DictReader(open(folder / "blocks.csv"))}
        self.summary = json.loads((folder / "summary.json").read_text())
        self.failed = {}
        for case in ET.parse(junit).getroot().iter("testcase"):
            failure = case.find("failure")
            if failure is not None:
                self.failed[case.get("name")] = failure.get("message", "")

    def outcome(self, claim: str) -> str:
        return self.claims[claim]["outcome"]

    def detail(self, claim: str) -> str:
        return self.claims[claim]["detail"]

    def item_failed(self, test: str, param: str) -> str | None:
        """The failure message of item test[param], or None if it passed."""
        return next((m for name, m in self.failed.items() if name.startswith(f"{test}[{param}]")), None)


def study(tmp_path: Path, *args) -> Run:
    results, junit = tmp_path / "results", tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "study", "-q", "-p", "no:randomly", "-n", "2",
                           f"--results-dir={results}", f"--junitxml={junit}", *args],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800)
    return Run(proc, results, junit)


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """{kind: (what was planted, the study run on it)}, each model built once."""
    import torch

    from experiments import known_answers
    from experiments.plan import load_plan
    from experiments.population import HALVES
    from experiments.prompt_set import locate_prompts, read_prompts
    from experiments.question import Question
    from models.loading import load, resolve

    out = {}
    for kind in known_answers.KINDS:
        folder = tmp_path_factory.mktemp(f"known-{kind}")
        model, tokenizer = load(resolve(MODEL))             # a copy of its own: planting changes it
        prompts = locate_prompts(tokenizer, read_prompts(HALVES["exploration"]), Question())
        with torch.no_grad():
            record = known_answers.make_known_answer(kind, model, prompts, load_plan())
        known_answers.save_known_answer(model, tokenizer, folder / "model", record)
        del model
        record = json.loads((folder / "model" / "known_answer.json").read_text())
        out[kind] = (record["plants"], study(folder, f"--model={folder / 'model'}", "-k", "not test_scales"))
    return out


def test_a_head_beyond_the_per_head_bound_refutes_both_per_head_claims_and_is_named(known):
    plants, run = known["macroscopic"]
    head = plants["head beyond the per-head bound"]
    label = f"L{head['layer']:02d}-H{head['head']:02d}"
    # the known answer, as the plain hooked pass measured it
    assert abs(head["effect_mean"]) > 2 * 0.1 * 0.9 and abs(head["effect_study"]) > 0.1, head
    assert run.returncode == 1 and run.summary["run"]["kind"] == "known-answer"
    for claim in (MACRO, PRIMARY):
        assert run.outcome(claim) == "refuted" and label in run.detail(claim), (claim, run.detail(claim))
    assert run.heads[label]["category"] == "beyond SESOI"
    message = run.item_failed(PER_HEAD, label)
    assert message is not None and "beyond" in message, run.failed


def test_a_silent_head_fails_the_manipulation_check(known):
    plants, run = known["macroscopic"]
    silent = plants["silent head"]
    label = f"L{silent['layer']:02d}-H{silent['head']:02d}"
    message = run.item_failed(PER_HEAD, label)
    assert message is not None and "did nothing measurable" in message, run.failed
    across = run.item_failed(PER_PROMPT, "P00")                  # and on the sentences, naming it
    assert across is not None and label in across, run.failed
    assert run.outcome(PER_PROMPT) == "refuted"


def test_a_head_of_sesoi_size_refutes_the_primary_claim_not_the_macroscopic_one(known):
    plants, run = known["sesoi"]
    head = plants["head beyond SESOI"]
    label = f"L{head['layer']:02d}-H{head['head']:02d}"
    assert 0.01 < abs(head["effect_mean"]) < 0.02 + 0.002, head
    assert run.outcome(PRIMARY) == "refuted" and label in run.detail(PRIMARY), run.detail(PRIMARY)
    assert run.heads[label]["category"] == "beyond SESOI"
    assert label not in run.detail(MACRO), run.detail(MACRO)
    assert run.item_failed(PER_HEAD, label) is None                  # below the per-head bound on one sentence


def test_a_block_of_alike_heads_refutes_the_seeds_block_claims_and_is_named(known):
    plants, run = known["sesoi"]
    block = plants["block"]
    label = f"L{block[0]['layer']:02d}"
    assert all(-0.04 <= h["effect_study"] <= -0.02 for h in block), block
    assert run.outcome(SEED_VERDICT) == "refuted" and label in run.detail(SEED_VERDICT), run.detail(SEED_VERDICT)
    assert run.outcome(BLOCKS_WITHIN) == "refuted" and label in run.detail(BLOCKS_WITHIN), run.detail(BLOCKS_WITHIN)
    assert run.blocks[label]["category"] == "beyond SESOI"
    assert run.item_failed(PER_BLOCK, label) is not None, run.failed


def test_the_baseline_claim_fails_with_its_two_pairs_swapped(tmp_path):
    """The real model, the comparison pair asked to beat the tested one: refuted, naming blocks."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "study", "-q", "-p", "no:randomly", "-p", "no:xdist",
                           f"--model={MODEL}", f"--results-dir={tmp_path}", "-k", "beats",
                           "--pair", "butter:pizza", "--pair", "pineapple:pizza"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "butter-pizza is not above pineapple-pizza at blocks" in out, out[-3000:]


def test_the_positive_control_fails_on_a_model_whose_blocks_write_nothing(tmp_path):
    """A tiny GPT-2 whose attention and MLP outputs are zero: skipping a block changes nothing,
    so the positive control must come out refuted."""
    import torch
    from transformers import GPT2LMHeadModel

    from tests.tiny_models import tiny_gpt2_checkpoint

    folder = Path(tiny_gpt2_checkpoint(tmp_path / "silent-gpt2"))
    model = GPT2LMHeadModel.from_pretrained(folder)
    with torch.no_grad():
        for block in model.transformer.h:
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                proj.weight.zero_()
                proj.bias.zero_()
    model.save_pretrained(folder)
    run = study(tmp_path, f"--model={folder}")
    assert run.outcome(POSITIVE) == "refuted", run.claims.get(POSITIVE)
