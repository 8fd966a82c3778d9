"""The confirmatory run: the whole study on the confirmation set (tests/data/
sentences_confirmation.txt: 30 held-out templates and fillers that appear nowhere in
exploration, generated and committed before any run on them), under the frozen plan. What it
concluded is an observation of that run, pinned in claims/golden/verdicts/ (`./run study
--prompts confirmation --update-golden`); a run that concludes otherwise fails here, naming
each claim and the units it names. The run must be confirmatory: with a plan other than the
frozen one it is exploratory, and this test says so; its claims on the study sentence stay
exploratory (SmolLM2's results on it were seen before the plan)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from report import golden

ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"


@pytest.mark.slow
def test_the_confirmatory_run_gives_its_golden_verdicts(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "STUDY_MODEL": MODEL}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "study", "-q", "-n", "2", "-p", "no:randomly",
                           "--prompts=confirmation", f"--results-dir={tmp_path}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1) and "complete run" in out, out[-4000:]
    assert "prompt set: 120 sentences from" in out and "sentences_confirmation.txt" in out, out[:3000]
    assert "(confirmation), 30 templates" in out, out[:3000]
    (folder,) = (tmp_path / MODEL).iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["run"]["kind"] == "confirmatory", summary["run"]
    actual = golden.verdicts_of((folder / "claims.csv").read_text(), summary)
    path = golden.verdicts_path(MODEL, "confirmation")
    assert path.is_file(), f"no golden verdicts {path}: ./run study --prompts confirmation --update-golden"
    problems = golden.compare_verdicts(json.loads(path.read_text()), actual)
    assert not problems, f"verdicts changed from {path.name}:\n" + "\n".join(problems)
    rows = list(csv.DictReader(open(folder / "claims.csv")))
    data = {r["test"].split("::")[0]: r["data"] for r in rows}
    assert data["claims/study_sentence.py"] == "exploratory" and data["claims/population.py"] == "confirmatory", data
    assert not [r for r in rows if r["outcome"] == "error"], "a claim of the confirmatory run ended in an error"
    failed = {r["outcome"] for r in rows} & {"refuted"}
    assert (proc.returncode == 1) == bool(failed), out[-3000:]     # the plan's fail_on: refuted fails the run
