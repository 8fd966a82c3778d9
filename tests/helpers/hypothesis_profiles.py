"""Hypothesis profiles, loaded before the first test module of tests/ is imported (conftest.py
lists this module in pytest_plugins, so every xdist worker loads it too).

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

Importing Hypothesis takes about a second per process; a run that collects no module of
tests/ (`./run study`: claims/ only, in the controller and in every worker) does not pay it.
The profiles are loaded when pytest is about to import a module of tests/ (`pytest_pycollect_makemodule`),
or when a module calls `examples` (one imported outside pytest); Hypothesis's own plugin, which
would import it for its summary, is left out of a run that had no Hypothesis test.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

PROFILES = ("ci", "dev")
EXAMPLE_FACTOR = {"ci": 2, "dev": 1}
TESTS = Path(__file__).resolve().parents[1]          # tests/: the modules that may use Hypothesis
_loaded: list[str] = []
_reported: list[bool] = []                           # a Hypothesis test reported in this process


def chosen() -> str:
    """The profile this process runs under (see the module docstring)."""
    name = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    if name not in PROFILES:
        raise ValueError(f"HYPOTHESIS_PROFILE={name!r}: use one of {', '.join(PROFILES)}")
    return name


def load() -> str:
    """Register the profiles and load the chosen one, once per process; its name."""
    if not _loaded:
        from hypothesis import HealthCheck, settings

        settings.register_profile("ci", derandomize=True, max_examples=200, deadline=None, print_blob=True,
                                  suppress_health_check=[HealthCheck.too_slow])
        settings.register_profile("dev", deadline=None, print_blob=True)
        settings.load_profile(chosen())
        _loaded.append(chosen())
    return _loaded[0]


def examples(n: int) -> int:
    """A property test's example count under this run's profile (n under dev, 2n under ci)."""
    load()
    from hypothesis import settings

    return n * EXAMPLE_FACTOR.get(settings.get_current_profile_name(), 1)


def pytest_configure(config):
    try:
        chosen()                # a wrong HYPOTHESIS_PROFILE is said at start-up, before any test
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None


def pytest_pycollect_makemodule(module_path, parent):
    """Before pytest imports a module of tests/ (whose @settings and @given read the profile
    when they are applied), load the profiles."""
    if Path(module_path).resolve().is_relative_to(TESTS):
        load()


def pytest_runtest_logreport(report):
    if not _reported and "hypothesis" in report.keywords:      # the marker Hypothesis gives its tests
        _reported.append(True)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    """Hypothesis's own pytest plugin imports Hypothesis to write its terminal summary, even in
    a run without a Hypothesis test: in a process that neither imported it nor received a
    Hypothesis test's report (an xdist controller gets its workers'), it has nothing to say."""
    plugin = session.config.pluginmanager.get_plugin("hypothesispytest")
    if plugin is not None and "hypothesis" not in sys.modules and not _reported:
        session.config.pluginmanager.unregister(plugin)


def pytest_report_header(config):
    return f"hypothesis profile: {chosen()}"
