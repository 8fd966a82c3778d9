"""Wiring only. The suite's pytest plugin lives in plugin/, one module per job:

    plugin/faults.py      faults of the environment (full disk, unwritable folder, SIGTERM) in one line each
    plugin/heap.py        what lives to the end of a run frozen out of the garbage collector's sweeps
    plugin/options.py     the options, checked at start-up without loading any model
    plugin/workers.py     how many workers -n auto starts: as many as memory (or GPUs) allow
    plugin/setup.py       what the model's config and tokenizer say, resolved when first needed
    plugin/collection.py  one item per layer x head / block / prompt chunk / scale kind, grouped by shard
    plugin/fixtures.py    setup, the model (once per worker), the shards (once per run), record
    plugin/store.py       computes each shard once, whichever worker asks first
    plugin/reduce.py      claims that need every shard, evaluated once on the controller
    plugin/reporting.py   the report and the terminal verdict

and tests/helpers/hypothesis_profiles.py: the Hypothesis profiles (ci, dev), loaded before any test module;
tests/helpers/benchmark_ratios.py: --benchmark-only's table of fast/plain ratios.
"""
pytest_plugins = [
    "plugin.faults",
    "plugin.heap",
    "plugin.options",
    "plugin.workers",
    "plugin.collection",
    "plugin.reduce",
    "plugin.fixtures",
    "plugin.reporting",
    "tests.helpers.hypothesis_profiles",
    "tests.helpers.benchmark_ratios",
]
