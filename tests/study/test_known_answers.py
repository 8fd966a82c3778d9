"""Known answers in every direction: every claim of the study can fail, and fails where an
effect was planted; holds for a unit where nothing was planted; and is not established where
the planted effect sits on the bound.

Two models are built from the real SmolLM2-135M-Instruct (experiments/known_answers.py), with
effects whose size the plain hooked pass measured on the exploration half of the sentence
population (recorded in the checkpoint's known_answer.json, with the heads drawn and the seed):

  macroscopic   one head moving the association by 2-4x the per-head bound; one silent head
                (its output projection slice zero: silencing it changes nothing, exactly)
  sesoi         one block whose heads each move it by -(2-4) x SESOI on the study sentence;
                one head in a later block moving it by 2.5-3.5x SESOI; one after it by 0.9-1.1x

Each runs through the whole study as `./run study --model <folder>` does (the plugin, its
shards and claims; the scale ladder left out, as it has known answers of its own below), and
the claims are read from what the run wrote: claims.csv, heads.csv, the JUnit XML of its
items, its exit status; no claim of a known-answer run may end in an error of the tool. The
baseline claim's known answer is the real model asked with its two pairs swapped; the
positive control's, a tiny model whose blocks write nothing (refuted) and one whose blocks
write ten times what they did (held). What the unmodified model gives:
tests/study/test_reports_are_reproducible.py (golden verdicts).
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

ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("known-answers")]

MACRO = "test_no_single_head_moves_the_association_macroscopically_across_prompts"
PRIMARY = "test_no_single_head_moves_the_association_beyond_sesoi_across_sentences"
SEED_VERDICT = "test_zero_blocks_significant_after_bonferroni"
BLOCKS_WITHIN = "test_every_block_mean_lies_within_sesoi"
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
        errors = {name: c["detail"] for name, c in self.claims.items() if c["outcome"] == "error"}
        assert not errors, f"a known-answer run must not end in an error of the tool: {errors}"
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
        out[kind] = (record["plants"], study(folder, f"--model={folder / 'model'}", "-k", "not scales"))
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


def test_a_silent_head_fails_the_manipulation_check_and_its_item_is_not_established(known):
    """The hook acted on nothing the readout sees: the per-head item says "not established" for
    that head (it neither holds nor refutes the association claim), naming it; across the
    sentences the manipulation check itself is refuted, naming it."""
    plants, run = known["macroscopic"]
    silent = plants["silent head"]
    label = f"L{silent['layer']:02d}-H{silent['head']:02d}"
    assert run.item_failed(PER_HEAD, label) is None, run.failed
    assert label in run.claims[PER_HEAD]["not_shown"].split() and "did nothing measurable" in run.detail(PER_HEAD)
    across = run.item_failed(PER_PROMPT, "P00")                  # and on the sentences, naming it
    assert across is not None and label in across, run.failed
    assert run.outcome(PER_PROMPT) == "refuted"


# A cosine computed by two exact routes: the engine's bound for cosines (hooks/precision.py's
# 1e-5 on hidden states carries to ~1e-6 on their cosines).
COSINE_ROUND_OFF = 1e-6


def test_a_planted_null_holds_for_its_head(known):
    """Silencing the silent head changes nothing: on the study sentence exactly, across the
    sentences (padded batches, whose per-head projection sums the heads' products in another
    order than the clean pass: about 5e-10) within round-off; it is shown within SESOI and
    within the per-head bound, and no claim names it as beyond or not shown."""
    plants, run = known["macroscopic"]
    silent = plants["silent head"]
    label = f"L{silent['layer']:02d}-H{silent['head']:02d}"
    assert silent["effect_mean"] == 0.0 and silent["effect_sd"] == 0.0, silent
    assert run.heads[label]["category"] == "within SESOI", run.heads[label]
    assert abs(float(run.heads[label]["mean"])) <= COSINE_ROUND_OFF, run.heads[label]
    for claim in (PRIMARY, MACRO):
        assert label not in run.claims[claim]["beyond"].split() + run.claims[claim]["not_shown"].split()


def test_a_head_near_sesoi_is_not_established_for_that_head(known):
    """An effect of about SESOI can be shown neither within nor beyond: the primary claim
    names the head among those not shown, never as beyond, and heads.csv says neither."""
    plants, run = known["sesoi"]
    head = plants["head near SESOI"]
    label = f"L{head['layer']:02d}-H{head['head']:02d}"
    assert 0.009 <= abs(head["effect_mean"]) <= 0.011, head
    assert run.heads[label]["category"] in ("undecided", "not shown negligible"), run.heads[label]
    assert label in run.claims[PRIMARY]["not_shown"].split() and label not in run.claims[PRIMARY]["beyond"].split()


def test_a_head_of_sesoi_size_refutes_the_primary_claim_not_the_macroscopic_one(known):
    plants, run = known["sesoi"]
    head = plants["head beyond SESOI"]
    label = f"L{head['layer']:02d}-H{head['head']:02d}"
    assert 0.025 <= abs(head["effect_mean"]) <= 0.035, head
    assert run.outcome(PRIMARY) == "refuted" and label in run.claims[PRIMARY]["beyond"].split(), run.detail(PRIMARY)
    assert run.heads[label]["category"] == "beyond SESOI"
    assert label not in run.detail(MACRO), run.detail(MACRO)
    assert run.item_failed(PER_HEAD, label) is None                  # below the per-head bound on one sentence


def test_a_block_of_alike_heads_refutes_the_seeds_block_claims_and_is_named(known):
    plants, run = known["sesoi"]
    block = plants["block"]
    label = f"L{block[0]['layer']:02d}"
    assert all(-0.04 <= h["effect_study"] <= -0.02 for h in block), block
    assert run.outcome(SEED_VERDICT) == "refuted" and label in run.detail(SEED_VERDICT), run.detail(SEED_VERDICT)
    assert run.outcome(BLOCKS_WITHIN) == "refuted" and label in run.claims[BLOCKS_WITHIN]["beyond"].split(), \
        run.detail(BLOCKS_WITHIN)
    assert run.blocks[label]["category"] == "beyond SESOI"
    assert run.item_failed(PER_BLOCK, label) is not None, run.failed


def test_the_baseline_claim_fails_with_its_two_pairs_swapped(tmp_path):
    """The real model, the comparison pair asked to beat the tested one: refuted, naming blocks."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "study", "-q", "-p", "no:randomly", "-p", "no:xdist",
                           f"--model={MODEL}", f"--results-dir={tmp_path}", "-k", "beats",
                           "--pair", "butter:pizza", "--pair", "pineapple:pizza"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "refuted: butter-pizza above pineapple-pizza at 1 of 30 blocks; below at [" in out, \
        out[-3000:]


def _tiny_scaled(tmp_path, factor: float) -> Path:
    """A tiny random GPT-2 whose attention and MLP outputs are scaled by `factor` in every block."""
    import torch
    from transformers import GPT2LMHeadModel

    from tests.helpers.tiny_models import tiny_gpt2_checkpoint

    folder = Path(tiny_gpt2_checkpoint(tmp_path / f"gpt2-blocks-x{factor:g}"))
    model = GPT2LMHeadModel.from_pretrained(folder)
    with torch.no_grad():
        for block in model.transformer.h:
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                proj.weight.mul_(factor)
                proj.bias.mul_(factor)
    model.save_pretrained(folder)
    return folder


def test_the_positive_control_fails_on_a_model_whose_blocks_write_nothing(tmp_path):
    """A tiny GPT-2 whose attention and MLP outputs are zero: skipping a block changes nothing,
    exactly, at every block, so every block is shown within SESOI and the positive control must
    come out refuted."""
    run = study(tmp_path, f"--model={_tiny_scaled(tmp_path, 0.0)}")
    assert run.outcome(POSITIVE) == "refuted", run.claims.get(POSITIVE)
    assert "shown within at 4" in run.detail(POSITIVE), run.detail(POSITIVE)


def test_the_positive_control_holds_on_a_model_whose_blocks_write_ten_times_more(tmp_path):
    """The same tiny GPT-2 with every block writing ten times what it did: skipping a block at
    the token moves the association far beyond SESOI, and the positive control must hold."""
    run = study(tmp_path, f"--model={_tiny_scaled(tmp_path, 10.0)}")
    assert run.outcome(POSITIVE) == "held", run.claims.get(POSITIVE)
