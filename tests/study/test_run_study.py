"""The study as a library call (experiments/run.py run_study) equals a pytest run of the
study's claims, bit for bit: every claim's outcome, detail and named units, and the tables
(the per-block and per-head UnitStats, the template means, the sentence shares, the
controls' arms and the ladder's rows), on a tiny random GPT-2 (the machinery only)."""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.tiny_models import tiny_gpt2_checkpoint

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("run-study")]


def test_run_study_equals_a_pytest_run_of_the_claims(tmp_path):
    from experiments.run import run_study

    folder = tiny_gpt2_checkpoint(tmp_path / "tiny-random-gpt2")
    dump = tmp_path / "rows.pickle"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTEST_PLUGINS": "tests.helpers.rows_dump", "STUDY_DUMP": str(dump)}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-m", "study", "-n", "2",
                           f"--model={folder}", f"--results-dir={tmp_path / 'results'}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), (proc.stdout + proc.stderr)[-3000:]
    ran = pickle.loads(dump.read_bytes())

    threads = torch.get_num_threads()
    torch.set_num_threads(1)                       # as every process of a pytest run computes
    try:
        result = run_study(folder)
    finally:
        torch.set_num_threads(threads)

    claims = {c["test"].split("::")[-1]: c for c in ran["claims"]}
    gated = {"test_study_numbers_match_golden"}         # the suite's regression gate, not a verdict
    assert set(claims) - gated == set(result.verdicts), sorted(set(claims) ^ set(result.verdicts))
    for name, verdict in result.verdicts.items():
        row = claims[name]
        assert (row["outcome"], row["detail"]) == (verdict.outcome, verdict.detail), name
        assert (row["beyond"], row["not_shown"]) == (" ".join(verdict.beyond), " ".join(verdict.not_shown)), name
    kept, tables = ran["kept"], result.tables
    for name in ("blocks", "heads", "sentence shares"):
        assert kept[name] == tables[name], name                          # UnitStats, every float equal
    keys, templates, samples = kept["heads by template"]
    assert (keys, templates) == tuple(tables["heads by template"][:2])
    assert np.array_equal(samples, tables["heads by template"][2])
    assert sorted(map(repr, kept["controls"])) == sorted(map(repr, tables["controls"]))
    assert sorted(map(repr, kept["power"])) == sorted(map(repr, tables["power"]))
    recorded = {(r["intervention"], r["layer"]): r for r in ran["scale"]}
    assert len(recorded) == len(tables["scales"])
    for row in tables["scales"]:
        got = recorded[row["intervention"], row["layer"]]
        assert {k: got[k] for k in row} == row, (row["intervention"], row["layer"])
