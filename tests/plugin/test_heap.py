"""Each process of a run freezes what lives to its end out of the garbage collector's sweeps
(plugin/heap.py): the imports, the collected items, what the tests kept. Checked in a pytest
process of its own, where a probe asks the collector which objects it would still sweep; the
same probe without the plugin is the control that it can tell."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE_CONFTEST = '''import json
import os

import test_probe


def pytest_collection_modifyitems(session, config, items):
    test_probe.SEEN["imported before configure, while collecting"] = test_probe.swept(json)


def pytest_unconfigure(config):
    test_probe.SEEN["kept by a test, at the end"] = test_probe.swept(test_probe.KEPT[0])
    with open(os.environ["HEAP_SEEN"], "w") as f:
        json.dump(test_probe.SEEN, f)
'''

PROBE = '''import gc

KEPT = []
SEEN = {}


def swept(obj) -> bool:
    """The collector's next full collection would walk `obj` (it is not frozen)."""
    return any(o is obj for generation in range(3) for o in gc.get_objects(generation))


def test_probe(request):
    SEEN["its collected item, in a test"] = swept(request.node)
    made = ["made in a test"]
    KEPT.append(made)
    SEEN["made in a test, in the test"] = swept(made)
    cycle = []
    cycle.append(cycle)
    del cycle
    SEEN["young garbage still collected"] = gc.collect() >= 1
'''


def _probe_run(tmp_path, plugins: list[str]) -> dict:
    tmp_path.mkdir()
    (tmp_path / "conftest.py").write_text(PROBE_CONFTEST)
    (tmp_path / "test_probe.py").write_text(PROBE)
    seen = tmp_path / "seen.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}
    env.update(HEAP_SEEN=str(seen), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", *plugins, "-p", "no:cacheprovider",
                           "-p", "no:randomly", "test_probe.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return json.loads(seen.read_text())


def test_a_run_freezes_its_long_lived_objects_and_still_collects_young_garbage(tmp_path):
    # True: the collector's next full collection would walk the object; False: it is frozen.
    swept = _probe_run(tmp_path / "heap", ["-p", "plugin.heap"])
    assert swept == {"imported before configure, while collecting": False,  # frozen at configure
                     "its collected item, in a test": False,                # frozen once collected
                     "made in a test, in the test": True,                   # young: swept as before
                     "young garbage still collected": True,
                     "kept by a test, at the end": False}                   # frozen at sessionfinish
    without_the_plugin = _probe_run(tmp_path / "plain", [])
    assert without_the_plugin == {"imported before configure, while collecting": True,
                                  "its collected item, in a test": True, "made in a test, in the test": True,
                                  "young garbage still collected": True, "kept by a test, at the end": True}
