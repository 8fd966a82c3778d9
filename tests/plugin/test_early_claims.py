"""Under xdist, claims across shards are evaluated on the controller as soon as their rows are
complete, beside the workers still running (plugin/reduce.py, `Early`), and reported after the
test loop in their own order, as if evaluated there; in a single process, after the loop.

- `Early` on its own: it takes the claims in order, each only once it is ready and the ones
  before it are done; `finish` stops it and hands them over in order.
- End to end, on a tiny model: under -n 2 a later item (on the other worker) sees the claim
  across shards evaluated while it runs (the early path was taken); under -n 0 it does not
  (the claim waits for the loop's end). In both, the claim's outcome, detail and place in the
  terminal are those of a claim evaluated at the end.
"""
import csv
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from plugin.reduce import Early

ROOT = Path(__file__).resolve().parents[2]


class Claims:
    """A stand-in for Reduce: which claims are ready, and the order they were evaluated in."""

    def __init__(self, names):
        self.claims = list(names)
        self.is_ready = set()
        self.evaluated = []
        self.running = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def ready(self, claim):
        return claim in self.is_ready

    def evaluate(self, claim):
        self.running.set()
        self.release.wait(10)
        self.evaluated.append(claim)
        return f"evaluated {claim}"


def test_claims_are_evaluated_in_their_order_each_once_ready():
    claims = Claims(["a", "b", "c"])
    early = Early(claims)
    early.poke()                                  # nothing ready: no thread
    assert early.thread is None
    claims.is_ready.add("b")                      # b is ready, but a (before it) is not
    early.poke()
    assert early.thread is None and claims.evaluated == []
    claims.is_ready.add("a")
    early.poke()
    early.thread.join(10)
    assert claims.evaluated == ["a", "b"]         # a, then b, which was waiting for it
    claims.is_ready.add("c")
    early.poke()
    assert early.finish() == ["evaluated a", "evaluated b", "evaluated c"]
    assert claims.evaluated == ["a", "b", "c"]


def test_finish_waits_for_the_claim_under_way_and_starts_no_other():
    claims = Claims(["a", "b"])
    claims.is_ready.update({"a", "b"})
    claims.release.clear()                        # a's evaluation holds until released
    early = Early(claims)
    early.poke()
    assert claims.running.wait(10)
    threading.Timer(0.2, claims.release.set).start()
    done = early.finish()
    assert done == ["evaluated a"] and claims.evaluated == ["a"]     # b is left to the end of the run
    early.poke()
    assert claims.evaluated == ["a"]


CLAIM_FILE = '''"""Claims for tests/plugin/test_early_claims.py: a claim across shards whose rows are complete
long before the run ends, and a later item that waits until that claim has been evaluated."""
import os
import time
from pathlib import Path

import numpy as np

from experiments.analysis import Verdict
from metrics import outcomes
from plugin.protocol import EVERY_UNIT_WITHIN, ITEMS_COMBINED, claim, decide

MARK = Path(os.environ["EARLY_CLAIM_MARK"])
REPORT = "early"


@claim(unit="number", rule=ITEMS_COMBINED, report=REPORT)
def test_a_number_is_recorded(number, record, conclude):
    """Each number is recorded."""
    record(REPORT, {"number": number})
    decide(conclude, Verdict(outcomes.HELD, "", (), ()), ("refuted",))


@claim(unit="number", rule=EVERY_UNIT_WITHIN, report=REPORT, reads=REPORT, after=test_a_number_is_recorded)
def test_the_numbers_sum_to_three(run):
    """The numbers recorded sum to three."""
    total = sum(r["number"] for r in run.rows[REPORT])
    MARK.write_text("evaluated")
    decide(run, Verdict(outcomes.HELD if total == 3 else outcomes.REFUTED, f"sum {total}", (), ()), ("refuted",))


@claim(unit="wait", rule=ITEMS_COMBINED, report=REPORT)
def test_the_claim_across_shards_came_first(wait, conclude):
    """Whether the claim across shards was evaluated while this item ran (it waits EARLY_CLAIM_WAIT s)."""
    start = time.monotonic()
    while not MARK.exists() and time.monotonic() - start < float(os.environ["EARLY_CLAIM_WAIT"]):
        time.sleep(0.05)
    decide(conclude, Verdict(outcomes.HELD, "early" if MARK.exists() else "not yet", (), ()), ("refuted",))
'''

CONFTEST = '''import pytest


def pytest_generate_tests(metafunc):
    if "number" in metafunc.fixturenames:
        metafunc.parametrize("number", [0, 1, 2], ids=["N0", "N1", "N2"])
    if "wait" in metafunc.fixturenames:      # in a group of its own, after the numbers' (xdist: another worker's)
        metafunc.parametrize("wait", [pytest.param(0, id="W0", marks=pytest.mark.xdist_group("zz-later"))])
'''


@pytest.mark.slow
@pytest.mark.parametrize("spread, wait, seen", [(["-n", "2"], 60, "early"), (["-p", "no:xdist"], 2, "not yet")],
                         ids=["two-workers", "one-process"])
def test_a_claim_across_shards_is_evaluated_beside_the_workers(spread, wait, seen, tmp_path):
    from tests.helpers.tiny_models import tiny_gpt2_checkpoint

    model = tiny_gpt2_checkpoint(tmp_path / "tiny-random-gpt2")
    folder = ROOT / ".cache" / f"early-claims-{os.getpid()}-{spread[-1].replace(':', '')}"   # own node ids
    folder.mkdir(parents=True, exist_ok=True)
    mark = tmp_path / "evaluated"
    try:
        (folder / "early_claims.py").write_text(CLAIM_FILE)
        (folder / "conftest.py").write_text(CONFTEST)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "EARLY_CLAIM_MARK": str(mark), "EARLY_CLAIM_WAIT": str(wait)}
        env.pop("PYTEST_XDIST_WORKER", None)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "claim", "-v", "-p", "no:randomly", *spread,
                               f"--model={model}", f"--results-dir={tmp_path / 'results'}", str(folder / "early_claims.py")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    finally:
        import shutil
        shutil.rmtree(folder, ignore_errors=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert mark.read_text() == "evaluated"
    (report,) = (tmp_path / "results" / "tiny-random-gpt2").glob("early-*")
    claims = {r["test"].split("::")[-1]: r for r in csv.DictReader(open(report / "claims.csv"))}
    assert {name: (c["outcome"], c["detail"]) for name, c in claims.items()} == {
        "test_a_number_is_recorded": ("held", ""), "test_the_numbers_sum_to_three": ("held", "sum 3"),
        "test_the_claim_across_shards_came_first": ("held", seen)}
    lines = [line for line in out.splitlines() if "::test_" in line and ("PASSED" in line or "FAILED" in line)]
    assert "test_the_numbers_sum_to_three" in lines[-1], lines       # reported after every item, as before
