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
