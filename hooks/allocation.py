"""Large result tensors in transparent huge pages, where Linux offers them.

    out = empty((24, 36, 20, 14, 1280))     # as torch.empty; on the CPU, in 2 MiB pages

A sweep writes its result once, and the largest are over a gigabyte (24 prompts of the GPT-2
Large shape, readout "block": 1.2 GB). Memory fresh from the kernel costs one page fault per
4 KiB page at its first write: on this project's 2-core machine, writing that 1.2 GB took
0.24 s in 4 KiB pages and 0.11 s in 2 MiB pages (2026-12-06). torch's CPU allocator asks for
huge pages only where THP_MEM_ALLOC_ENABLE=1 was set before its first large allocation,
which a library cannot count on; so `empty` maps the memory itself (a private anonymous
mapping advised MADV_HUGEPAGE) and hands it to torch.frombuffer, whose tensor keeps the
mapping alive: the mapping goes when the tensor does.

Anywhere else (a device other than the CPU, a result under HUGE_PAGE_MIN_BYTES, a system
without MADV_HUGEPAGE, huge pages switched off in /sys/kernel/mm/transparent_hugepage/enabled,
THP_MEM_ALLOC_ENABLE=0 in the environment, or a mapping the system refuses) it is torch.empty. The numbers are the same either way
(tests/engine/test_result_memory.py): only where the memory comes from differs.
"""
from __future__ import annotations

import functools
import math
import mmap
import os
from pathlib import Path

import torch

# From four 2 MiB pages on (a sweep of one 9-token prompt on the GPT-2 Large shape: 33 MB): a
# mapping costs two system calls, a 4 KiB page's first write one fault, and 8 MiB are 2,048 faults.
HUGE_PAGE_MIN_BYTES = 8 * 2**20
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")
# torch's own switch for huge pages, which the plugin sets to "1" (plugin/options.HUGE_PAGES;
# the plugin's controller runs without torch, so it cannot import this module). "0" is a
# user's "keep 4 KB pages", and the sweep's result keeps them too.
TORCH_HUGE_PAGES = "THP_MEM_ALLOC_ENABLE"


@functools.lru_cache(maxsize=1)
def huge_pages_offered() -> bool:
    """True where madvise(MADV_HUGEPAGE) can give this process 2 MiB pages: Linux with
    transparent huge pages in mode "always" or "madvise" (the selected mode is in brackets)."""
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    try:
        setting = THP_SETTING.read_text()
    except OSError:
        return False
    return "[never]" not in setting


def empty(shape, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """An uninitialised contiguous tensor of `shape`, as torch.empty (device=None: torch's
    default device); on the CPU and at least HUGE_PAGE_MIN_BYTES, in memory advised for
    transparent huge pages (module docstring)."""
    device = torch.get_default_device() if device is None else torch.device(device)
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    declined = os.environ.get(TORCH_HUGE_PAGES, "").strip() == "0"
    if device.type != "cpu" or nbytes < HUGE_PAGE_MIN_BYTES or declined or not huge_pages_offered():
        return torch.empty(shape, dtype=dtype, device=device)
    try:
        memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        memory.madvise(mmap.MADV_HUGEPAGE)
    except (OSError, ValueError):
        return torch.empty(shape, dtype=dtype, device=device)
    return torch.frombuffer(memory, dtype=dtype, count=count).view(shape)
