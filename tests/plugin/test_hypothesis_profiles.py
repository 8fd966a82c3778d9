"""The Hypothesis profiles (tests/helpers/hypothesis_profiles.py): CI draws the same examples every run."""
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]

DRAWS = """
import json, sys
from hypothesis import given, settings, strategies as st
from tests.helpers.hypothesis_profiles import examples
seen = []
@settings(max_examples=examples(10))
@given(st.integers(0, 10**9))
def draw(x):
    seen.append(x)
draw()
print(json.dumps(seen))
"""


def _draws(env: dict) -> tuple[str, list[int]]:
    """(profile name, the integers a test of examples(10) drew) in a fresh process with `env`."""
    full = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    full.update(env)
    script = "import tests.helpers.hypothesis_profiles as p; print(p.chosen())\n" + DRAWS
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=full, capture_output=True, text=True,
                          check=True)
    name, drawn = done.stdout.strip().splitlines()[-2:]
    return name, [int(v) for v in drawn.strip("[]").split(",")]


def test_ci_draws_the_same_examples_every_run_and_dev_draws_afresh():
    first, second = _draws({"CI": "true"}), _draws({"CI": "true"})
    assert first[0] == "ci" and first == second and len(set(first[1])) == 20    # examples(10) under ci
    assert _draws({"HYPOTHESIS_PROFILE": "ci"}) == first
    dev_a, dev_b = _draws({}), _draws({})
    assert dev_a[0] == "dev" and dev_a[1] != dev_b[1] and len(dev_a[1]) <= 10


def test_the_ci_profile_fixes_the_settings_a_reproducible_run_needs():
    ci = settings.get_profile("ci")
    assert ci.derandomize and ci.deadline is None and ci.print_blob
    assert ci.max_examples > settings.get_profile("default").max_examples


@given(st.integers())
def test_this_process_runs_under_the_chosen_profile(_):
    from tests.helpers.hypothesis_profiles import chosen

    assert settings.get_current_profile_name() == chosen()


PROBE = """
import sys
def pytest_unconfigure(config):
    print("hypothesis imported:", "hypothesis" in sys.modules)
"""


def _imported_hypothesis(tmp_path, test_source: str) -> tuple[bool, str]:
    """(whether a pytest run of one test file outside tests/, with the profiles plugin, ended
    with Hypothesis imported, its output)."""
    (tmp_path / "probe_plugin.py").write_text(PROBE)
    (tmp_path / "test_outside.py").write_text(test_source)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-m", "pytest", "--noconftest", "-p", "no:xdist", "-p", "no:randomly",
                           "-p", "tests.helpers.hypothesis_profiles", "-p", "probe_plugin", "-s", "-q",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_outside.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return "hypothesis imported: True" in done.stdout, done.stdout


def test_a_run_without_hypothesis_tests_never_imports_it(tmp_path):
    """`./run study` collects claims/ only: neither the profiles nor Hypothesis's own plugin (its
    terminal summary) may import Hypothesis there, about a second in every process."""
    imported, out = _imported_hypothesis(tmp_path, "def test_plain():\n    assert True\n")
    assert not imported, out
    imported, out = _imported_hypothesis(tmp_path, "from hypothesis import given, strategies as st\n"
                                                   "@given(st.integers())\ndef test_drawn(x):\n    assert x == x\n")
    assert imported, out


def test_the_profiles_load_when_a_test_module_asks_for_examples():
    script = ("import sys, tests.helpers.hypothesis_profiles as p\n"
              "assert 'hypothesis' not in sys.modules\n"
              "print(p.examples(3))\n"
              "from hypothesis import settings; print(settings.get_current_profile_name())\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**env, "CI": "true"}, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["6", "ci"]
