"""The report as a CI artefact, on the real offline model: reproducible, never half-written,
the same however the run is spread over processes (xdist's -n, or execnet's --tx as across
machines), every shard computed once. (The plugin's machinery on a tiny model, including a
run whose claims fail: tests/plugin/test_plugin_runs.py.)"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from report.files import publish

ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"

# How a run is spread: serially and over two xdist workers. (Over two execnet gateways started
# with --tx, the transport pytest-xdist uses to reach other machines, the same bytes are checked
# on the tiny model: tests/plugin/test_plugin_runs.py, where a run takes seconds, not minutes.)
SPREADS = {
    "serial": ["-p", "no:xdist"],
    "two workers": ["-n", "2"],
}


def _env():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "STUDY_MODEL": MODEL}
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def _study(results: Path, *args, **popen):
    cmd = [sys.executable, "-m", "pytest", "-m", "study", "-q", f"--results-dir={results}", *args]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1200, **popen)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _report(results: Path) -> Path:
    """The one question folder of a run: results/<model>/<question>-<hash>/."""
    (folder,) = (results / MODEL).iterdir()
    return folder


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """{spread: {file name: bytes}} of the study on the exploration half, once per spread.
    A refuted claim is a result (exit status 1), not a broken run: both count."""
    out = {}
    for name, args in SPREADS.items():
        results = tmp_path_factory.mktemp(name.replace(" ", "-"))
        proc = _study(results, *args)
        assert proc.returncode in (0, 1), f"{name}: {proc.stdout[-3000:]}{proc.stderr[-2000:]}"
        assert "complete run" in proc.stdout and "each computed once" in proc.stdout, proc.stdout[-3000:]
        assert ("CLAIMS FAILED" in proc.stdout) == (proc.returncode == 1), proc.stdout[-3000:]
        out[name] = _files(_report(results))
    return out


@pytest.mark.slow
def test_the_study_on_the_unmodified_model_gives_its_golden_verdicts(reports):
    """Regression gate on conclusions: every claim's outcome on SmolLM2's exploration half (an
    observation of that run, pinned in claims/golden/verdicts/) is what it was; the golden
    numbers are gated inside the run (tests/study/test_golden.py). `./run study --update-golden` rewrites both."""
    from report import golden

    files = reports["serial"]
    summary = json.loads(files["summary.json"])
    actual = golden.verdicts_of(files["claims.csv"].decode(), summary)
    path = golden.verdicts_path(MODEL, summary["question"]["prompt_set"]["name"])
    assert path.is_file(), f"no golden verdicts {path}: ./run study --update-golden writes them; commit them"
    problems = golden.compare_verdicts(json.loads(path.read_text()), actual)
    assert not problems, f"verdicts changed from {path.name}:\n" + "\n".join(problems)


@pytest.mark.slow
def test_reports_are_byte_identical_however_the_run_is_spread(reports):
    reports = dict(reports)
    serial = reports.pop("serial")
    assert {"scenarios.csv", "blocks.csv", "summary.json", "silencing.png", "report.html"} <= set(serial)
    for name, files in reports.items():
        assert files.keys() == serial.keys(), name
        differ = [f for f in files if files[f] != serial[f]]
        assert not differ, f"{name} wrote different bytes than the serial run in {differ}"


def _previous(tmp_path: Path) -> Path:
    """A stand-in for an earlier complete report in the folder this run's question writes to."""
    proc = _study(tmp_path, "-p", "no:xdist", "--collect-only")
    folder = Path(next(line for line in proc.stdout.splitlines() if line.startswith("results: "))[9:])
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text('{"complete": true}')
    return folder


@pytest.mark.slow
def test_a_partial_run_keeps_the_previous_complete_report(tmp_path):
    previous = _previous(tmp_path)
    proc = _study(tmp_path, "-p", "no:xdist", "-k", "L03")
    assert "PARTIAL run" in proc.stdout and "report not written" in proc.stdout, proc.stdout[-3000:]
    assert _files(previous) == {"summary.json": b'{"complete": true}'}


@pytest.mark.slow
def test_an_interrupted_run_keeps_the_previous_complete_report(tmp_path):
    previous = _previous(tmp_path)
    cmd = [sys.executable, "-m", "pytest", "-m", "study", "-p", "no:xdist", "-v", f"--results-dir={tmp_path}"]
    # Unbuffered: a pipe would otherwise hold pytest's lines back until kilobytes pile up,
    # and the Ctrl-C below would land after the run ended.
    # A suite started in the background by a shell without job control (CI runners, nohup
    # ... &) ignores SIGINT, and an ignored signal stays ignored across exec: give the child
    # the default disposition, as a run in a terminal has.
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**_env(), "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen, sent = [], None
    for line in proc.stdout:           # wait until the first study item passed (shards remain), then Ctrl-C
        seen.append(line)
        if " PASSED" in line:
            proc.send_signal(signal.SIGINT)
            sent = len(seen)
            break
    seen.extend(proc.stdout)
    proc.wait(timeout=300)
    out = "".join(seen)
    assert "run interrupted: report not written" in out, (
        f"Ctrl-C sent after line {sent} of {len(seen)}: {seen[sent - 1] if sent else ''!r}\n"
        + "".join(seen[:40]) + "\n...\n" + out[-2000:])
    assert _files(previous) == {"summary.json": b'{"complete": true}'}
    assert [p.name for p in previous.parent.iterdir()] == [previous.name], "a staging folder was left behind"


def test_publish_replaces_the_whole_folder_or_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    publish(folder, {"a.csv": b"1", "b.csv": b"2"})
    assert _files(folder) == {"a.csv": b"1", "b.csv": b"2"}
    publish(folder, {"a.csv": b"3"})
    assert _files(folder) == {"a.csv": b"3"}            # no stale b.csv from the old run

    def broken(self, data):
        raise OSError("disk full")
    monkeypatch.setattr(Path, "write_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        publish(folder, {"a.csv": b"4"})
    monkeypatch.undo()
    assert _files(folder) == {"a.csv": b"3"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"], "a staging folder was left behind"
