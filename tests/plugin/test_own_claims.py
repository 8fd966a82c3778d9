"""A researcher's own claim, in one file (README, "Your own claim"): the example runs as the
README says and shows in it; a second claim file, written here, runs under two workers with
its shards computed once, and its four outcomes (held, refuted, not established, error) show
in the terminal, claims.csv, summary.json and report.html; the study's plan is untouched."""
import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "top_ioi_head.py"


def test_the_readme_shows_the_example_file_as_it_is():
    """The README's "Your own claim" section quotes examples/top_ioi_head.py whole, and its plan."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert EXAMPLE.read_text() in blocks, "README.md's example differs from examples/top_ioi_head.py"
    assert "./run study --claims examples/top_ioi_head.py" in text


def _run(*args, env=None):
    full = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    full.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(list(args), cwd=ROOT, env=full, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.xdist_group("own-claims")
def test_the_example_claim_runs_as_the_readme_says(tmp_path):
    proc = _run("./run", "study", "--claims", "examples/top_ioi_head.py", "--results-dir", str(tmp_path),
                "--model", "smollm2-135m-instruct", "-p", "no:randomly")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    (folder,) = (tmp_path / "smollm2-135m-instruct").glob("top-ioi-head-*")
    claims = {r["test"].split("::")[-1]: r for r in csv.DictReader(open(folder / "claims.csv"))}
    assert {c["outcome"] for c in claims.values()} == {"held"}, claims
    summary = json.loads((folder / "summary.json").read_text())
    plan = EXAMPLE.with_suffix(".plan.toml")
    assert summary["plans"] == {plan.name: {"sha256": hashlib.sha256(plan.read_bytes()).hexdigest()}}
    assert "top-ioi-head: 2 claim(s), results in" in out and "each computed once" in out
    assert not list((tmp_path / "smollm2-135m-instruct").glob("pineapple-*")), "the study's own report was written"


CLAIM_FILE = '''"""A claim file of one's own, for tests/plugin/test_own_claims.py: four claims about silencing
every head of a block at the study token, one for each outcome."""
import numpy as np
import torch

from experiments.analysis import Verdict, unit_table, within_verdict
from experiments.plan import load_claim_plan
from hooks import ablate
from metrics import outcomes
from metrics.similarity import cosine
from plugin.protocol import EVERY_UNIT_WITHIN, ITEMS_COMBINED, claim, decide

PLAN = load_claim_plan(__file__)
REPORT = "blocks-silenced"


@torch.no_grad()
def block_silenced(model, prompt, layer):
    ids = torch.tensor([prompt.tokens.ids])
    clean = model(ids, output_hidden_states=True).hidden_states[layer + 1][0]
    with ablate(model, layer, range(model.config.n_head), prompt.token):
        silenced = model(ids, output_hidden_states=True).hidden_states[layer + 1][0]
    i, j = prompt.tested.i, prompt.tested.j
    return float(cosine(silenced, i, j) - cosine(clean, i, j))


@claim(unit="block", rule=ITEMS_COMBINED, plan=PLAN, report=REPORT)
def test_silencing_a_block_is_measured(shards, block, study_setup, record, conclude):
    """Every block silenced at the token moves the tested pair's cosine at its output."""
    change = shards.compute(f"{REPORT}-L{block:02d}", lambda model: block_silenced(model, study_setup.prompt, block))
    record(REPORT, {"layer": block, "change": change})
    decide(conclude, Verdict(outcomes.HELD if change != 0 else outcomes.REFUTED, "", (), ()), PLAN.fail_on)


ACROSS = dict(reads=REPORT, after=test_silencing_a_block_is_measured)


def changes(run):
    return np.array([r["change"] for r in sorted(run.rows[REPORT], key=lambda r: r["layer"])])


@claim(unit="block", rule=EVERY_UNIT_WITHIN, plan=PLAN, report=REPORT, **ACROSS)
def test_no_block_moves_it_by_more_than_two(run):
    """No block's silencing moves a cosine by more than 2 (its range): held."""
    c = changes(run)
    decide(run, Verdict(outcomes.HELD if np.all(np.abs(c) <= 2) else outcomes.REFUTED, f"largest {np.abs(c).max():.3f}",
                        (), ()), PLAN.fail_on)


@claim(unit="block", rule=EVERY_UNIT_WITHIN, plan=PLAN, report=REPORT, **ACROSS)
def test_every_block_moves_it_by_exactly_nothing(run):
    """Silencing a block moves nothing (false on a random model): refuted."""
    c = changes(run)
    decide(run, Verdict(outcomes.REFUTED if np.any(c != 0) else outcomes.HELD, "a block moved it", (), ()), PLAN.fail_on)


@claim(unit="block", rule=EVERY_UNIT_WITHIN, plan=PLAN, report=REPORT, **ACROSS)
def test_the_blocks_mean_change_is_within_a_tiny_bound(run):
    """The blocks' changes, taken as a sample, lie within ±bound (too few and too spread to decide)."""
    c = changes(run)
    rows = unit_table(np.stack([c, -c]), [(0, None), (1, None)], PLAN, sesoi=PLAN.bound)
    decide(run, within_verdict(rows, PLAN, bound=PLAN.bound, what="samples"), PLAN.fail_on)


@claim(unit="block", rule=EVERY_UNIT_WITHIN, plan=PLAN, report=REPORT, **ACROSS)
def test_a_claim_whose_code_fails(run):
    """A claim whose own code raises (a bug of its author): an error, not a result."""
    raise TypeError("a bug in the claim's own code")
'''

ENTRIES = [("bound", "0.001"), ("alpha", "0.05"), ("head_correction", '"bonferroni"'),
           ("equivalence_correction", '"bonferroni"'), ("sd_upper_confidence", "0.8"), ("simulation_seed", "1"),
           ("fail_on", '["refuted"]')]
PLAN_FILE = "".join(f"[{name}]\nvalue = {value}\nreason = \"{name}: a number of this claim file's own plan.\"\n"
                    f"history = [{{ date = \"2026-12-05\", value = {value}, why = \"first plan\" }}]\n\n"
                    for name, value in ENTRIES)


@pytest.mark.slow
@pytest.mark.xdist_group("own-claims")
def test_a_second_claim_file_runs_under_two_workers_with_its_shards_computed_once(tmp_path):
    from tests.helpers.tiny_models import tiny_gpt2_checkpoint

    model = tiny_gpt2_checkpoint(tmp_path / "tiny-random-gpt2")
    folder = ROOT / ".cache" / f"own-claims-{os.getpid()}"      # under the repository: its own node ids
    folder.mkdir(parents=True, exist_ok=True)
    try:
        (folder / "blocks_silenced.py").write_text(CLAIM_FILE)
        (folder / "blocks_silenced.plan.toml").write_text(PLAN_FILE)
        before = hashlib.sha256((ROOT / "analysis_plan.toml").read_bytes()).hexdigest()
        proc = _run(sys.executable, "-m", "pytest", "-m", "claim", "-n", "2", "-p", "no:randomly",
                    f"--model={model}", f"--results-dir={tmp_path / 'results'}", str(folder / "blocks_silenced.py"))
    finally:
        import shutil
        shutil.rmtree(folder, ignore_errors=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]                               # refuted (and an error) fail the run
    (report,) = (tmp_path / "results" / "tiny-random-gpt2").glob("blocks-silenced-*")
    claims = {r["test"].split("::")[-1]: r for r in csv.DictReader(open(report / "claims.csv"))}
    want = {"test_silencing_a_block_is_measured": "held", "test_no_block_moves_it_by_more_than_two": "held",
            "test_every_block_moves_it_by_exactly_nothing": "refuted",
            "test_the_blocks_mean_change_is_within_a_tiny_bound": "not established",
            "test_a_claim_whose_code_fails": "error"}
    assert {name: c["outcome"] for name, c in claims.items()} == want
    summary = json.loads((report / "summary.json").read_text())
    assert {t.split("::")[-1]: c["outcome"] for t, c in summary["claims"].items()} == want
    assert summary["shards"] and set(summary["shards"].values()) == {1}, summary["shards"]
    assert "each computed once" in out and "TOOL ERROR: 1 claim(s)" in out
    for name, outcome in want.items():
        assert f"{outcome:<15} {name}" in out
    page = (report / "report.html").read_text()
    assert "1 refuted, 1 not established, 1 ERROR (the tool failed: not a result)" in page.split("</h1>")[0]
    assert hashlib.sha256((ROOT / "analysis_plan.toml").read_bytes()).hexdigest() == before
