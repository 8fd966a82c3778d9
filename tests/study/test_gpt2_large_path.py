"""The GPT-2 Large path, proven without GPT-2 Large.

A random GPT-2 Large-shaped checkpoint (36 blocks x 20 heads, width 1280) with the REAL
GPT-2 tokenizer files is laid out exactly as the Hugging Face cache holds a download of
`openai-community/gpt2-large`. The whole study suite then runs on it with
`--model gpt2-large` (and with `auto`, which must pick it), offline, through the same
loading code a user's run takes: only the weights differ from the real thing.

Random weights do not share GPT-2 Large's semantics, so the study's claims may fail
here; what this test checks is the path: resolution, loading, tokens, 720 collected and
executed scenarios, a complete report.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.tiny_models import GPT2_LARGE as REPO
from tests.helpers.tiny_models import random_gpt2_large_in_hf_cache

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = "0" * 40


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    """An HF_HOME whose hub cache holds a random GPT-2 Large under the real repo id."""
    home = tmp_path_factory.mktemp("hf")
    random_gpt2_large_in_hf_cache(home)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _study(hf_home: Path, results: Path, *args):
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-m", "study", "-p", "no:xdist", "-q",
                           "-W", "ignore::pytest.PytestUnknownMarkWarning", f"--results-dir={results}", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)


def test_auto_picks_cached_gpt2_large(hf_home):
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-m", "study", "-p", "no:xdist",
                           "claims/study_sentence.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "model: gpt2-large" in proc.stdout and "36 blocks x 20 heads" in proc.stdout
    assert "GPT-2 Large weights found in the local Hugging Face cache" in proc.stdout
    assert "Pe|anut| butter| and| pineapple| taste| great| on| pizza" in proc.stdout


def test_the_study_runs_on_a_gpt2_large_shaped_checkpoint(hf_home, tmp_path):
    # The path is what is tested, not the population: the first 12 sentences of the exploration
    # half (the study sentence first; MIN_PROMPTS is 10) keep this run to minutes on 2 cores.
    # The scale ladder is left out: at this shape it is 8 CPU-minutes (6 kinds x 8 sentences
    # of 36-row passes), and its code does not depend on the model's size: it runs in CI on the
    # tiny GPT-2 (tests/plugin/test_plugin_runs.py), SmolLM2 and Gemma-3 (the pinned runs).
    sentences = (ROOT / "claims" / "data" / "sentences_exploration.txt").read_text().splitlines()
    prompts = tmp_path / "first-12.txt"
    prompts.write_text("\n".join([line for line in sentences if line and not line.startswith("#")][:12]) + "\n")
    proc = _study(hf_home, tmp_path / "results", "--model=gpt2-large", f"--prompts={prompts}", "-k", "not scales")
    out = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), out[-4000:]          # claims may fail on random weights
    last = out.strip().splitlines()[-1]
    assert "error" not in last, out[-4000:]                # but nothing may break
    assert "PARTIAL" not in out and "complete run, 720 scenarios" in out
    (folder,) = (tmp_path / "results" / "gpt2-large").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["model"]["source"] == REPO and summary["model"]["revision"] == SNAPSHOT
    assert (summary["model"]["n_layers"], summary["model"]["n_heads"]) == (36, 20)
    q = summary["question"]
    assert q["tokens"] == ["Pe", "anut", " butter", " and", " pineapple", " taste", " great", " on", " pizza"]
    assert q["silenced_token_index"] == 4
    assert q["pairs"] == {"pineapple-pizza": [4, 8], "butter-pizza": [2, 8]}
    assert set(summary["shards"].values()) == {1}
    scenarios = (folder / "scenarios.csv").read_text().splitlines()
    assert len(scenarios) == 1 + 720 * 2
