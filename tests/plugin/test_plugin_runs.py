"""The pytest plugin end to end, on a tiny random GPT-2 with the real GPT-2 tokenizer (the
whole study in seconds): map on workers, reduce on the controller, shards computed once,
claims as items, one results folder per question, no model touched by tests that need none.

Random weights make no scientific sense: these tests check the machinery only. The real
model's runs (byte-identical reports across -n 0, -n 2, --tx) are in
tests/study/test_reports_are_reproducible.py.
"""
import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers.tiny_models import tiny_gpt2_checkpoint

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_gpt2_checkpoint(tmp_path_factory.mktemp("models") / "tiny-random-gpt2")


def run(*args, env=None):
    full = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    full.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=900)


def summary(results: Path) -> dict:
    (found,) = results.glob("*/*/summary.json")
    return json.loads(found.read_text())


RUN_SPREADS = {"two-workers": ["-n", "2"], "two-gateways": ["--tx", f"2*popen//python={sys.executable}"],
           "one-process": ["-p", "no:xdist"]}


@pytest.fixture(scope="module")
def three_spreads(tiny, tmp_path_factory):
    """{spread: (process, results folder, junit path)}: the study on the tiny model, run over two
    xdist workers, two execnet gateways (the transport xdist uses to reach other machines) and
    one process."""
    out = {}
    for name, spread in RUN_SPREADS.items():
        folder = tmp_path_factory.mktemp(name)
        junit = folder / "junit.xml"
        proc = run("-m", "study", "-v", "-v", f"--model={tiny}", f"--results-dir={folder}", f"--junitxml={junit}",
                   *spread)
        out[name] = (proc, folder, junit)
    return out


@pytest.mark.xdist_group("plugin-spreads")
@pytest.mark.parametrize("spread", list(RUN_SPREADS))
def test_each_shard_is_computed_once_and_claims_across_shards_are_items(three_spreads, spread):
    proc, folder, junit = three_spreads[spread]
    out = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), out[-3000:]            # random weights may refute claims
    if spread != "one-process":                              # xdist: each shard's items ran on one worker
        workers = {}
        for line in out.splitlines():
            if line.startswith("[gw") and "@" in line:
                workers.setdefault(line.rsplit("@", 1)[1].split()[0], set()).add(line.split("]")[0])
        assert workers and all(len(w) == 1 for w in workers.values()), f"groups split over workers: {workers}"
    shards = summary(folder)["shards"]
    assert shards and set(shards.values()) == {1}, f"shards computed more than once: {shards}"
    assert "study" in shards and any(s.startswith("prompts-") for s in shards)
    assert "scales-update-x0-at-token-P00" in shards and "top-k" not in shards     # top-k rides in the ladder's pass
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")
             if c.get("classname") == "claims.study_sentence"}
    assert "test_zero_blocks_significant_after_bonferroni" in cases, sorted(cases)
    assert "each computed once" in out


@pytest.mark.xdist_group("plugin-spreads")
def test_reports_are_byte_identical_over_workers_gateways_and_one_process(three_spreads):
    """The same bytes in every file of the report, however the run was spread (the real model's
    serial and -n 2 runs: tests/study/test_reports_are_reproducible.py)."""
    def files(folder):
        (report,) = folder.glob("*/*/summary.json")
        return {p.name: p.read_bytes() for p in sorted(report.parent.iterdir())}
    reference = files(three_spreads["one-process"][1])
    assert {"claims.csv", "heads.csv", "controls.csv", "report.html"} <= set(reference)
    for name in ("two-workers", "two-gateways"):
        other = files(three_spreads[name][1])
        assert other.keys() == reference.keys(), name
        assert not [f for f in other if other[f] != reference[f]], f"{name} wrote other bytes"


def test_a_refuted_claim_across_shards_fails_the_run(tiny, tmp_path):
    """An override no head can meet: the per-head items and the claim across shards both fail,
    the exit status says so, and the verdict names the refuted claims first."""
    junit = tmp_path / "junit.xml"
    proc = run("-m", "study", "-n", "2", f"--model={tiny}", f"--results-dir={tmp_path}", f"--junitxml={junit}",
               "--max-delta", "1e-7")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "CLAIMS FAILED" in out and "test_no_single_head_moves_the_association_macroscopically" in out
    case = next(c for c in ET.parse(junit).getroot().iter("testcase")
                if c.get("name") == "test_no_single_head_moves_the_association_macroscopically_across_prompts")
    assert case.find("failure") is not None
    assert summary(tmp_path)["plan"]["overrides"] == {"max_abs_delta_per_head": 1e-07}


def test_two_questions_keep_two_results_folders(tiny, tmp_path):
    for sentence in ("Peanut butter and pineapple taste great on pizza", "Butter and pineapple taste great on pizza"):
        run("-m", "study", "-p", "no:xdist", f"--model={tiny}", f"--results-dir={tmp_path}", "--sentence", sentence,
            "--pair", "pineapple:pizza")
    folders = sorted(p.name for p in (tmp_path / "tiny-random-gpt2").iterdir())
    assert len(folders) == 2 and all(f.startswith("pineapple-in-") for f in folders), folders


def test_a_run_without_study_tests_touches_no_model(tmp_path):
    """`pytest tests/verdicts/test_statistics.py` converts, loads and even reads no model: its cache stays
    empty (a model that is not there is not needed)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    proc = run("-p", "no:xdist", "tests/verdicts/test_statistics.py", "--model", "smollm2-135m-instruct",
               env={"STUDY_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert list(cache.iterdir()) == []


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def test_the_report_page_opens_in_a_browser_with_its_headline_and_claims(tiny, tmp_path):
    """report.html, loaded by headless Chromium: the headline names the model and the claims'
    outcome, and every claim has its line (the DOM as the browser built it, not the file's text)."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian package chromium; .ci/run installs it)")
    proc = run("-m", "study", "-n", "2", f"--model={tiny}", f"--results-dir={tmp_path / 'results'}")
    assert proc.returncode in (0, 1), proc.stdout[-3000:]
    (page,) = (tmp_path / "results").glob("*/*/report.html")
    claims = summary(tmp_path / "results")["claims"]
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    held, refuted, open_ = (sum(c["outcome"] == o for c in claims.values()) for o in ("held", "refuted", "not established"))
    kind = summary(tmp_path / "results")["run"]["kind"].capitalize()
    assert (f"<h1 id=\"headline\">{kind} run, tiny-random-gpt2: {held} of {len(claims)} claims held, {refuted} refuted, "
            f"{open_} not established</h1>") in dom, dom[:2000]
    assert dom.count("<tr class=") == len(claims)
    shot = tmp_path / "page.png"
    subprocess.run([browser, *flags, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bfloat16_run_names_its_dtype_in_the_header_and_summary(tiny, tmp_path):
    proc = run("-m", "study", "-p", "no:xdist", f"--model={tiny}", f"--results-dir={tmp_path}", "--dtype", "bfloat16")
    out = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), out[-3000:]            # random weights may refute claims
    assert "device cpu, dtype bfloat16, engine fast" in out, out[:3000]
    assert summary(tmp_path)["dtype"] == "bfloat16"


# ---------------------------------------------------------------------------------------
# Faults in a run: a worker killed, two runs of one question at once. Nothing half-written,
# nothing lost: the previous complete report stays unless a complete run replaces it.
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def questions(tiny, tmp_path_factory) -> dict[str, Path]:
    """{"study", "ioi"}: the results folders of the tiny model's default question and of its IOI
    study, relative to --results-dir, as a run's header names them."""
    results = tmp_path_factory.mktemp("question")
    proc = run("-m", "study or ioi", "-p", "no:xdist", "--collect-only", f"--model={tiny}", f"--results-dir={results}")
    lines = proc.stdout.splitlines()
    study = next(line for line in lines if line.startswith("results: "))
    ioi = next(line for line in lines if line.startswith("IOI: "))
    return {name: Path(line.rpartition("results: ")[2]).relative_to(results)
            for name, line in (("study", study), ("ioi", ioi))}


@pytest.fixture(scope="module")
def question(questions) -> Path:
    return questions["study"]


def _previous_report(results: Path, question: Path) -> Path:
    """A stand-in for an earlier complete report, in the folder this run's question writes to."""
    folder = results / question
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text('{"complete": true}')
    return folder


@pytest.mark.parametrize("when", ["after", "during"])
def test_a_worker_killed_mid_run_makes_it_partial_and_publishes_nothing(tiny, question, tmp_path, when):
    """SIGKILL on worker gw1 as its second item ends (its rows already shipped: the run could
    look complete, the crashed item failed) or starts (its rows lost). Either way the run says
    PARTIAL and names the crash, exits non-zero, and the previous report stays untouched."""
    previous = _previous_report(tmp_path, question)
    proc = run("-m", "study", "-n", "2", f"--model={tiny}", f"--results-dir={tmp_path}",
               env={"PYTEST_PLUGINS": "tests.helpers.fault_injection", "STUDY_FAULT": f"kill gw1 {when} 2"})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "PARTIAL run, worker gw1 crashed" in out and "report not written" in out, out[-3000:]
    assert (previous / "summary.json").read_text() == '{"complete": true}'
    assert [p.name for p in previous.parent.iterdir()] == [previous.name], "a staging folder was left behind"


def test_two_runs_of_one_question_at_once_leave_one_complete_report(tiny, tmp_path):
    """Both runs complete and publish; their publishes take turns (report/files.py), so the
    folder holds one whole report, the same bytes a run alone writes, and nothing else."""
    alone = tmp_path / "alone"
    assert run("-m", "study", "-p", "no:xdist", f"--model={tiny}", f"--results-dir={alone}").returncode in (0, 1)
    together = tmp_path / "together"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    procs = [subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:xdist", "-m", "study",
                               f"--model={tiny}", f"--results-dir={together}"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode in (0, 1) and "complete run" in out, out[-3000:]
    (folder,) = (alone / "tiny-random-gpt2").iterdir()
    assert [p.name for p in (together / "tiny-random-gpt2").iterdir()] == [folder.name], "leftovers beside the report"
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert {p.name: p.read_bytes() for p in (together / "tiny-random-gpt2" / folder.name).iterdir()} == files


# ---------------------------------------------------------------------------------------
# Faults of the environment (plugin/faults.py), in whole runs: SIGTERM, a full --results-dir,
# a STUDY_CACHE that cannot take the model. Each ends in one line, with no traceback and the
# exit status the README states; the previous report stays byte-identical, and nothing is left
# behind: no staging folder, no shard store, no worker.
# ---------------------------------------------------------------------------------------

SPREADS = {"n0": ["-p", "no:xdist"], "n2": ["-n", "2"]}
NOISE = ("Traceback", "PluggyTeardownRaisedWarning", "cannot send", "[Errno")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _assert_ended_by_sigterm_keeping(previous: Path, before: dict, returncode: int, out: str) -> None:
    """Exit status 143, the one sentence, no traceback noise, the previous report byte-identical
    and no staging folder beside it."""
    assert returncode == 143, out[-3000:]
    assert out.count("run interrupted by SIGTERM: report not written; the results folder keeps the previous "
                     "complete report, if any\n") == 1, out[-3000:]
    assert not [n for n in NOISE if n in out], out[-3000:]
    assert _files(previous) == before
    assert [p.name for p in previous.parent.iterdir()] == [previous.name], "a staging folder was left behind"


def _alive_in_session(session: int) -> list[str]:
    """The processes of `session` (a run started in a session of its own) still running, as ps shows them."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            command, fields = stat.read_text().rsplit(")", 1)
        except OSError:                                    # gone meanwhile
            continue
        state, _, _, sid = fields.split()[:4]
        if int(sid) == session and state != "Z":
            alive.append(f"{stat.parent.name} {command.split('(', 1)[1]}")
    return alive


@pytest.mark.parametrize("spread, to", [("n0", "the process"), ("n2", "the controller"), ("n2", "the process group")],
                         ids=["n0", "n2-controller", "n2-group"])
def test_sigterm_ends_the_run_in_one_sentence_and_keeps_the_previous_report(tiny, question, tmp_path, spread, to):
    """SIGTERM once the first study item passed, as a container stop sends it (to the controller) or
    `timeout` and CI runners do (to the whole process group): pytest's Ctrl-C path, exit status 143."""
    results, tmp = tmp_path / "results", tmp_path / "tmp"
    tmp.mkdir()
    previous = _previous_report(results, question)
    before = _files(previous)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp)}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-v", "-p", "no:randomly", "-m", "study",
                             *SPREADS[spread], f"--model={tiny}", f"--results-dir={results}"], cwd=ROOT, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if " PASSED" in line:
            (os.killpg if to == "the process group" else os.kill)(proc.pid, signal.SIGTERM)
            break
    seen.extend(proc.stdout)
    proc.wait(timeout=120)
    out = "".join(seen)
    _assert_ended_by_sigterm_keeping(previous, before, proc.returncode, out)
    assert not list(tmp.glob("head-silencing-shards-*")), "the shard store was left behind"
    assert _alive_in_session(proc.pid) == [], "workers outlived the run"


def test_sigterm_while_the_report_is_published_keeps_the_previous_one(tiny, question, tmp_path):
    """The signal lands inside publish (tests/helpers/fault_injection.py): the staging folder is removed,
    the previous report stays, and the run says so in the same sentence, exit status 143."""
    previous = _previous_report(tmp_path, question)
    before = _files(previous)
    proc = run("-m", "study", "-p", "no:xdist", f"--model={tiny}", f"--results-dir={tmp_path}",
               env={"PYTEST_PLUGINS": "tests.helpers.fault_injection", "STUDY_FAULT": "sigterm while publishing"})
    out = proc.stdout + proc.stderr
    _assert_ended_by_sigterm_keeping(previous, before, proc.returncode, out)


@pytest.mark.parametrize("study, spread", [("study", "n2"), ("ioi", "n0")], ids=["study-n2", "ioi-n0"])
def test_a_full_results_dir_is_one_line_and_publishes_nothing(tiny, questions, tmp_path, study, spread):
    """Every file written into --results-dir stops half-way with ENOSPC (tests/helpers/fault_injection.py):
    one line names the folder, says it is full and that the previous report is kept; exit status 74.
    (The study under -n 0, on a real full filesystem: the next test.)"""
    previous = _previous_report(tmp_path, questions[study])
    before = _files(previous)
    proc = run("-m", study, *SPREADS[spread], f"--model={tiny}", f"--results-dir={tmp_path}",
               env={"PYTEST_PLUGINS": "tests.helpers.fault_injection", "STUDY_FAULT": "full results-dir"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 74, out[-3000:]
    assert [line for line in out.splitlines() if "is full" in line] == [
        f"--results-dir {tmp_path} is full (no space left on device): nothing was published, {previous} keeps the "
        "previous complete report, if any; free space there or pass another --results-dir"], out[-3000:]
    assert not [n for n in NOISE if n in out], out[-3000:]
    assert _files(previous) == before
    assert [p.name for p in previous.parent.iterdir()] == [previous.name], "a staging folder was left behind"


def test_a_really_full_filesystem_says_the_same_line(tiny, question, tmp_path):
    """The same on a real 64 KiB tmpfs, mounted in a user namespace of its own (no root needed where
    the kernel allows those; skipped where it does not)."""
    import shutil

    mount = tmp_path / "full"
    mount.mkdir()
    unshare = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c"]
    mount_it = f"mount -t tmpfs -o size=64k tmpfs {mount}"
    if shutil.which("unshare") is None:
        pytest.skip("no unshare (util-linux) to mount a small tmpfs without root")
    probe = subprocess.run([*unshare, mount_it], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this machine mounts no tmpfs without root: {probe.stderr.strip()}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    previous = mount / question
    script = (f"{mount_it} && mkdir -p {previous} && printf '{{\"complete\": true}}' > {previous}/summary.json && "
              f"{sys.executable} -m pytest -q -p no:randomly -m study -p no:xdist --model={tiny} "
              f"--results-dir={mount}; echo rc=$?; cd {mount} && find . | sort && cat {previous}/summary.json")
    proc = subprocess.run([*unshare, script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert "\nrc=74\n" in out, out[-3000:]
    assert f"--results-dir {mount} is full (no space left on device): nothing was published, {previous} keeps" in out
    assert not [n for n in NOISE if n in out], out[-3000:]
    listing = out.split("rc=74\n")[1].splitlines()
    assert listing == [".", f"./{question.parts[0]}", f"./{question}", f"./{question}/summary.json",
                       '{"complete": true}'], "the previous report changed, or a staging folder was left behind"


def test_a_cache_that_cannot_be_created_stops_an_xdist_run_at_start_up_in_one_line():
    """As under -n 0 (tests/plugin/test_bad_input.py): the controller stops before it starts a worker."""
    proc = run("-m", "study", "-n", "2", "--model=smollm2-135m-instruct", env={"STUDY_CACHE": "/proc/nocache"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-3000:]
    assert [line for line in out.splitlines() if line.startswith("ERROR:")] == [
        "ERROR: STUDY_CACHE /proc/nocache cannot be created (no such file or directory): smollm2-135m-instruct is "
        "converted and loaded from there; set STUDY_CACHE to a folder you can write to, or unset it for "
        "~/.cache/head-silencing"], out[-3000:]
    assert not [n for n in NOISE if n in out], out[-3000:]


def test_a_cache_that_fills_up_while_converting_keeps_no_partial_model(tmp_path):
    """STUDY_CACHE full half-way through converting SmolLM2 (tests/helpers/fault_injection.py): one line at
    collection, and nothing of the conversion left but its lock file."""
    cache = tmp_path / "cache"
    proc = run("-m", "study", "-p", "no:xdist", "--model=smollm2-135m-instruct", env={
        "STUDY_CACHE": str(cache), "PYTEST_PLUGINS": "tests.helpers.fault_injection", "STUDY_FAULT": "full cache"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-3000:]
    assert [line for line in out.splitlines() if line.startswith("ERROR:")] == [
        f"ERROR: STUDY_CACHE {cache} is full (no space left on device): smollm2-135m-instruct is converted and "
        "loaded from there; free space there or set STUDY_CACHE to a folder you can write to, or unset it for "
        "~/.cache/head-silencing"], out[-3000:]
    assert not [n for n in NOISE if n in out], out[-3000:]
    assert [p.name for p in cache.iterdir()] == [".smollm2-135m-instruct.lock"]
