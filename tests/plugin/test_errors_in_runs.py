"""An error of the tool is never a result (issue 21): a TypeError planted in a per-head item, in
a claim across shards and in a shard (tests/helpers/planted_errors.py) makes that claim "error" in the
terminal, claims.csv, summary.json and report.html, fails the run with a line that says it
is not a result, and is never counted as refuted. On a tiny random GPT-2 (the machinery only)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.tiny_models import tiny_gpt2_checkpoint

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("errors-in-runs")]
PER_HEAD = "test_silencing_one_head_moves_its_token_but_not_the_association_macroscopically"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_gpt2_checkpoint(tmp_path_factory.mktemp("models") / "tiny-random-gpt2")


def planted(tiny, tmp_path, error: str, *spread):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTEST_PLUGINS": "tests.helpers.planted_errors", "STUDY_ERROR": error}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-m", "study", f"--model={tiny}",
                           f"--results-dir={tmp_path}", *spread], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    out = proc.stdout + proc.stderr
    (folder,) = tmp_path.glob("*/*/")
    claims = {r["test"].split("::")[-1]: r for r in csv.DictReader(open(folder / "claims.csv"))}
    summary = json.loads((folder / "summary.json").read_text())
    return proc.returncode, out, claims, summary, (folder / "report.html").read_text()


def assert_an_error_not_a_result(claim, code, out, claims, summary, page):
    assert code == 1, out[-3000:]
    assert claims[claim]["outcome"] == "error", claims[claim]
    assert summary["claims"][next(t for t in summary["claims"] if t.endswith(claim))]["outcome"] == "error"
    assert "ERROR (not a result)" in claims[claim]["detail"] and "PlantedError" in claims[claim]["detail"]
    line = next(x for x in out.splitlines() if x.startswith("TOOL ERROR:"))
    assert "not a result" in line and claim in line, line
    assert f"error           {claim}" in out
    assert "ERROR (the tool failed: not a result)" in page.split("</h1>")[0]
    assert not any(c["outcome"] == "refuted" and c["errors"] != "0" for c in claims.values())


def test_an_exception_in_a_per_head_item_is_an_error_of_that_claim(tiny, tmp_path):
    code, out, claims, summary, page = planted(tiny, tmp_path, "item L01-H02", "-n", "2")
    assert_an_error_not_a_result(PER_HEAD, code, out, claims, summary, page)
    assert claims[PER_HEAD]["errors"] == "1" and "L01-H02" in claims[PER_HEAD]["detail"]


def test_an_exception_in_a_claim_across_shards_is_an_error_of_that_claim(tiny, tmp_path):
    code, out, claims, summary, page = planted(tiny, tmp_path, "claim", "-p", "no:xdist")
    assert_an_error_not_a_result("test_zero_blocks_significant_after_bonferroni", code, out, claims, summary, page)
    assert "the tool failed while deciding this claim" in out


def test_an_exception_in_a_shard_is_an_error_of_the_claims_that_read_it(tiny, tmp_path):
    code, out, claims, summary, page = planted(tiny, tmp_path, "shard top-k", "-n", "2")
    assert_an_error_not_a_result("test_top_k_heads_silenced_together_move_the_last_block", code, out, claims,
                                 summary, page)
