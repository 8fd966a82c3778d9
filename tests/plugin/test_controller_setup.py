"""An xdist controller takes the study's Setup from a worker (plugin/setup.py, plugin/store.py
`share`): it then never reads the model's config and tokenizer, so it imports neither
transformers nor torch, whose CPU the workers of a small machine need. Where no worker shared
one for its options, it resolves its own."""
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from plugin import setup as plugin_setup
from plugin.options import OPTIONS
from plugin.store import STORE, ShardStore

ROOT = Path(__file__).resolve().parents[2]


def test_a_shared_value_is_the_first_writers_and_absent_until_written(tmp_path):
    first, second = ShardStore(tmp_path, "gw0"), ShardStore(tmp_path, "gw1")
    assert second.shared("setup") is None
    first.share("setup", {"n_layers": 4})
    second.share("setup", {"n_layers": 5})              # the first writer's stays
    assert second.shared("setup") == {"n_layers": 4}


def _config(tmp_path, options, dist="loadgroup", worker=False):
    config = SimpleNamespace(stash=pytest.Stash(), option=SimpleNamespace(dist=dist))
    if worker:
        config.workerinput = {}
    config.stash[OPTIONS] = options
    config.stash[STORE] = ShardStore(tmp_path)
    return config


def test_the_controller_takes_a_workers_setup_only_for_its_own_options(tmp_path, monkeypatch):
    options = SimpleNamespace(name="options of this run")
    found = plugin_setup.Setup(options, 4, 4, None, (), "")
    resolved = []
    monkeypatch.setattr(plugin_setup, "_resolve", lambda o: resolved.append(o) or plugin_setup.Setup(o, 2, 2, None, (), ""))

    worker = _config(tmp_path, options, worker=True)
    assert plugin_setup.setup_of(worker).n_layers == 2 and resolved == [options]      # resolved, and shared
    ShardStore(tmp_path).folder.joinpath("setup.pickle").unlink()
    ShardStore(tmp_path).share("setup", found)

    controller = _config(tmp_path, options)
    assert plugin_setup.setup_of(controller) == found and len(resolved) == 1          # taken, not resolved
    other = _config(tmp_path, SimpleNamespace(name="another run's options"))
    assert plugin_setup.setup_of(other).n_layers == 2 and len(resolved) == 2           # not its options
    single = _config(tmp_path, options, dist="no")
    assert plugin_setup.setup_of(single).n_layers == 2 and len(resolved) == 3          # -n 0 resolves its own


PROBE = '''import os, sys


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):
        with open(os.environ["CONTROLLER_MODULES"], "w") as out:
            out.write(" ".join(m for m in ("torch", "transformers") if m in sys.modules))
'''


@pytest.mark.slow
def test_an_xdist_controller_imports_neither_torch_nor_transformers(tmp_path):
    from tests.helpers.tiny_models import tiny_gpt2_checkpoint

    model = tiny_gpt2_checkpoint(tmp_path / "tiny-random-gpt2")
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "controller_probe.py").write_text(PROBE)
    found = tmp_path / "modules.txt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CONTROLLER_MODULES": str(found),
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "probe"), os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "study", "-q", "-p", "no:randomly", "-n", "2",
                           "-p", "controller_probe", f"--model={model}", f"--results-dir={tmp_path / 'results'}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), (proc.stdout + proc.stderr)[-3000:]     # random weights may refute claims
    assert "each computed once" in proc.stdout, proc.stdout[-3000:]                # the study ran whole
    assert found.read_text() == "", f"the controller imported {found.read_text()}"
