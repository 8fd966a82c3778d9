"""Every process of a run puts torch's large CPU tensors on transparent huge pages
(plugin/options.py, HUGE_PAGES), unless the environment says otherwise: checked in a pytest
process of its own, through what the kernel reports for a tensor the test writes."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugin.options import HUGE_PAGES

ROOT = Path(__file__).resolve().parents[2]
KERNEL_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")

PROBE = '''import os
from pathlib import Path


def huge_kib():
    """This process's anonymous memory on huge pages, KiB (/proc/self/smaps_rollup)."""
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return 0


def test_a_large_tensor_is_on_huge_pages_as_the_environment_says():
    import torch

    before = huge_kib()
    tensor = torch.ones(64 * 2**20 // 4)                      # 64 MiB, written once
    grew = huge_kib() - before
    Path(os.environ["HUGE_PAGES_SEEN"]).write_text(f"{os.environ.get('THP_MEM_ALLOC_ENABLE')} {grew}")
    del tensor
'''


def _kernel_offers_huge_pages() -> bool:
    """The kernel gives huge pages to memory that asks for them ("[madvise]" or "[always]")."""
    try:
        setting = KERNEL_SETTING.read_text()
    except OSError:
        return False
    return "[madvise]" in setting or "[always]" in setting


def _probe_run(tmp_path, environment: dict) -> tuple[str, int]:
    """(the variable a test item saw, KiB of huge pages its 64 MiB tensor added), in a pytest
    process that loads only the options plugin."""
    tmp_path.mkdir()
    (tmp_path / "test_probe.py").write_text(PROBE)
    seen = tmp_path / "seen.txt"
    env = {k: v for k, v in os.environ.items() if k not in (HUGE_PAGES, "PYTEST_XDIST_WORKER")}
    env.update(environment, HUGE_PAGES_SEEN=str(seen), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "plugin.options", "-p", "no:cacheprovider",
                           "-p", "no:randomly", str(tmp_path / "test_probe.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    value, grew = seen.read_text().split()
    return value, int(grew)


@pytest.mark.slow
def test_a_run_puts_large_tensors_on_huge_pages_unless_told_not_to(tmp_path):
    value, grew = _probe_run(tmp_path / "default", {})
    assert value == "1"
    if _kernel_offers_huge_pages():
        assert grew >= 32 * 1024, f"a 64 MiB tensor added only {grew} KiB of huge pages"
    value, grew = _probe_run(tmp_path / "off", {HUGE_PAGES: "0"})
    assert value == "0"
    if KERNEL_SETTING.is_file() and "[madvise]" in KERNEL_SETTING.read_text():
        assert grew == 0, f"told not to, the 64 MiB tensor still got {grew} KiB of huge pages"
