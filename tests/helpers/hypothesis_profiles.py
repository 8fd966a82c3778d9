"""Hypothesis profiles, loaded before any test module is imported (conftest.py lists this
module in pytest_plugins, so every xdist worker loads it too).

    ci    derandomize=True: the draws are a function of the test alone, so a failure seen in
          one CI run comes back in the next (and on a laptop with HYPOTHESIS_PROFILE=ci);
          twice the examples (the same draws every run, so CI searches wider instead of
          afresh); no deadline (the shared 2-core machines make timings noise); print_blob,
          so a failure prints the @reproduce_failure line that replays it.
    dev   fresh draws every run (the way to find new failures), the tests' own counts.

Chosen by HYPOTHESIS_PROFILE; without it, `ci` when the environment variable CI is set
(.ci/run sets it, as most CI services do), else `dev`. A test's own @settings(max_examples=n)
would win over any profile, so the property tests ask for examples(n), which the profile
scales. Draws that once found a bug by chance are @example's of their test, so they run
under every profile.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILES = ("ci", "dev")
EXAMPLE_FACTOR = {"ci": 2, "dev": 1}

settings.register_profile("ci", derandomize=True, max_examples=200, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, print_blob=True)


def chosen() -> str:
    """The profile this process runs under (see the module docstring)."""
    name = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    if name not in PROFILES:
        raise ValueError(f"HYPOTHESIS_PROFILE={name!r}: use one of {', '.join(PROFILES)}")
    return name


settings.load_profile(chosen())


def examples(n: int) -> int:
    """A property test's example count under this run's profile (n under dev, 2n under ci)."""
    return n * EXAMPLE_FACTOR.get(settings.get_current_profile_name(), 1)


def pytest_report_header(config):
    return f"hypothesis profile: {settings.get_current_profile_name()}"
