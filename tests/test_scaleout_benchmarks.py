"""`pytest -m study` spread over xdist workers: wall time of -n 0 and -n 2 side by side in one
run (one torch thread in every process either way), peak resident memory per process, and
identical results. Goal: -n 2 at least 1.7x faster than -n 0 on the 2-core machine.

    python -m pytest tests/test_scaleout_benchmarks.py --benchmark-only -s

(a) the default offline model (SmolLM2-135M-Instruct) and the shipped prompt set;
(b) a random GPT-2 Large-shaped checkpoint (36 x 20 x 1280) in a Hugging Face cache, with the
    prompt set: the study as it would run on the real GPT-2 Large.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.7


def _study(results: Path, spread: list[str], env: dict) -> tuple[float, str]:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    full.pop("PYTEST_XDIST_WORKER", None)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "study", "-q", "-p", "no:randomly",
                           f"--results-dir={results}", *spread], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=7200)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0 or "complete run" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    return seconds, proc.stdout


def _files(results: Path) -> dict[str, bytes]:
    return {p.relative_to(results).as_posix(): p.read_bytes() for p in sorted(results.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def gpt2_large_home(tmp_path_factory):
    """Built in a subprocess: a child started by a process that once held the 3 GB model
    would report that process's resident memory as its own peak (Linux carries it over fork)."""
    home = tmp_path_factory.mktemp("hf")
    subprocess.run([sys.executable, "-c", "import sys; from tests.tiny_models import random_gpt2_large_in_hf_cache; "
                    "random_gpt2_large_in_hf_cache(sys.argv[1])", str(home)], cwd=ROOT, check=True,
                   capture_output=True)
    return home


@pytest.mark.parametrize("model", ["smollm2-135m-instruct", "gpt2-large"])
def test_two_workers_against_one_process(benchmark, model, tmp_path, request):
    env = {"STUDY_MODEL": model}
    if model == "gpt2-large":
        env["HF_HOME"] = str(request.getfixturevalue("gpt2_large_home"))
    serial_s, serial_out = _study(tmp_path / "n0", ["-p", "no:xdist"], env)
    parallel_s, parallel_out = benchmark.pedantic(lambda: _study(tmp_path / "n2", ["-n", "2"], env),
                                                  rounds=1, iterations=1)
    ratio = serial_s / parallel_s
    memory = [next((line for line in out.splitlines() if line.startswith("peak resident memory")), "")
              for out in (serial_out, parallel_out)]
    same = _files(tmp_path / "n0") == _files(tmp_path / "n2")
    benchmark.extra_info.update(model=model, serial_s=round(serial_s, 1), parallel_s=round(parallel_s, 1),
                                speedup=round(ratio, 2), identical_results=same, memory_n0=memory[0],
                                memory_n2=memory[1])
    print(f"\n[{model}] pytest -m study: -n 0 {serial_s:.1f} s, -n 2 {parallel_s:.1f} s: {ratio:.2f}x; "
          f"results identical: {same}\n  -n 0 {memory[0]}\n  -n 2 {memory[1]}")
    assert same, "-n 0 and -n 2 wrote different results"
    if model == "smollm2-135m-instruct":
        assert ratio >= TARGET, f"-n 2 is only {ratio:.2f}x faster than -n 0 (target {TARGET}x)"
