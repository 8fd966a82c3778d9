"""A sweep's result in transparent huge pages (hooks/allocation.py): where the memory comes
from, checked against the operating system's own account of this process (/proc/self/smaps),
and that the numbers do not depend on it.

- Above the threshold, on a Linux that offers huge pages, the tensor is its own private
  anonymous mapping that the kernel counts as eligible for huge pages, and the mapping goes
  when the tensor does.
- Below it, where the mapping fails, or where THP_MEM_ALLOC_ENABLE=0 says "keep 4 KB pages"
  (the plugin's switch, plugin/options.HUGE_PAGES), it is torch.empty.
- The setting is read as the kernel writes it (the selected mode in brackets).
- A sweep takes that path for its result (block and final readouts), and gives the same
  numbers, bit for bit, as with torch.empty.
"""
from __future__ import annotations

import gc
import os
import sys

import pytest
import torch

from hooks import allocation, sweep
from tests.engine.test_sweep_exact import tiny_model

linux_huge_pages = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not allocation.huge_pages_offered()
    or os.environ.get(allocation.TORCH_HUGE_PAGES) == "0",
    reason="transparent huge pages are a Linux feature, switched off here (by the kernel or THP_MEM_ALLOC_ENABLE=0)")


def _mapping_of(address: int) -> dict | None:
    """The /proc/self/smaps entry (its header fields and counters) of the mapping holding
    `address`, or None."""
    entry = None
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                lo, hi = (int(v, 16) for v in fields[0].split("-"))
                entry = {"lo": lo, "hi": hi, "perms": fields[1], "path": fields[5] if len(fields) > 5 else ""}
                inside = lo <= address < hi
            elif entry is not None and inside:
                entry[fields[0].rstrip(":")] = fields[1]
            if entry is not None and inside and fields[0] == "VmFlags:":
                entry["VmFlags"] = fields[1:]
                return entry
    return None


@linux_huge_pages
def test_a_large_result_is_its_own_mapping_advised_for_huge_pages_and_goes_with_the_tensor():
    shape = (3, allocation.HUGE_PAGE_MIN_BYTES // 4 // 3 + 1)
    out = allocation.empty(shape)
    out.fill_(1.5)
    assert out.shape == shape and out.dtype == torch.float32 and out.is_contiguous() and bool((out == 1.5).all())
    entry = _mapping_of(out.data_ptr())
    assert entry is not None and entry["path"] == "" and entry["perms"] == "rw-p"       # private, anonymous
    assert entry["hi"] - entry["lo"] >= out.numel() * 4
    assert "hg" in entry["VmFlags"], entry["VmFlags"]                                   # MADV_HUGEPAGE
    assert entry.get("THPeligible") == "1", entry
    address = out.data_ptr()
    del out
    gc.collect()
    after = _mapping_of(address)
    assert after is None or (after["lo"], after["hi"]) != (entry["lo"], entry["hi"])


@linux_huge_pages
def test_the_huge_page_mapping_holds_any_dtype_and_shape_torch_empty_would():
    out = allocation.empty((2, 3, allocation.HUGE_PAGE_MIN_BYTES // 2), dtype=torch.bfloat16)
    assert out.shape == (2, 3, allocation.HUGE_PAGE_MIN_BYTES // 2) and out.dtype == torch.bfloat16
    out[1, 2, -1] = 3.0
    assert out[1, 2, -1].item() == 3.0 and "hg" in _mapping_of(out.data_ptr())["VmFlags"]


def test_a_small_result_or_a_failed_mapping_is_torch_empty(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(allocation.mmap, "mmap", lambda *a, **k: pytest.fail("a small result was mapped"))
    small = allocation.empty((4, 5))
    assert small.shape == (4, 5)
    monkeypatch.setattr(allocation.mmap, "mmap", refuse)
    big = allocation.empty((allocation.HUGE_PAGE_MIN_BYTES // 4 + 1,))
    big.fill_(2.0)
    assert big.numel() == allocation.HUGE_PAGE_MIN_BYTES // 4 + 1 and bool((big == 2.0).all())


@pytest.mark.parametrize("setting, offered", [("always [madvise] never\n", True), ("[always] madvise never\n", True),
                                              ("always madvise [never]\n", False), (None, False)])
def test_huge_pages_are_offered_as_the_kernels_setting_says(setting, offered, tmp_path, monkeypatch):
    path = tmp_path / "enabled"
    if setting is not None:
        path.write_text(setting)
    monkeypatch.setattr(allocation, "THP_SETTING", path)
    allocation.huge_pages_offered.cache_clear()
    try:
        assert allocation.huge_pages_offered() is offered
    finally:
        allocation.huge_pages_offered.cache_clear()


@linux_huge_pages
@pytest.mark.parametrize("readout", ["block", "final"])
def test_a_sweep_takes_the_huge_page_path_and_its_numbers_do_not_depend_on_it(readout, monkeypatch):
    model = tiny_model("gpt2")
    ids = torch.randint(0, model.config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(3))
    mask = torch.tensor([[1] * 7, [0, 0, 1, 1, 1, 1, 1]])
    plain = sweep(model, ids, torch.tensor([3, 4]), readout, attention_mask=mask)
    mapped = []
    real_mmap = allocation.mmap.mmap

    def counting(*args, **kwargs):
        mapped.append(args[1])
        return real_mmap(*args, **kwargs)

    monkeypatch.setattr(allocation, "HUGE_PAGE_MIN_BYTES", 1)
    monkeypatch.setattr(allocation.mmap, "mmap", counting)
    huge = sweep(model, ids, torch.tensor([3, 4]), readout, attention_mask=mask)
    assert huge.numel() * 4 in mapped, (mapped, huge.numel() * 4)
    assert "hg" in _mapping_of(huge.data_ptr())["VmFlags"]
    assert torch.equal(huge.isnan(), plain.isnan())
    assert torch.equal(huge.nan_to_num(), plain.nan_to_num())


def test_the_plugins_switch_set_to_0_keeps_the_result_on_4_kb_pages(monkeypatch):
    """THP_MEM_ALLOC_ENABLE=0 is the README's way to keep 4 KB pages; the sweep's result obeys it
    too, and the name is the plugin's (the two cannot share one constant: hooks/ is below plugin/)."""
    from plugin.options import HUGE_PAGES

    assert allocation.TORCH_HUGE_PAGES == HUGE_PAGES
    monkeypatch.setenv(HUGE_PAGES, "0")
    monkeypatch.setattr(allocation.mmap, "mmap", lambda *a, **k: pytest.fail("mapped although the switch says 0"))
    out = allocation.empty((allocation.HUGE_PAGE_MIN_BYTES // 4 + 1,))
    assert out.numel() == allocation.HUGE_PAGE_MIN_BYTES // 4 + 1
