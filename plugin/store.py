"""Compute each shard once per run, whichever pytest process asks for it first.

    store = ShardStore(folder)
    value = store.get("study", compute)     # computed here, or read from another worker's file

pytest-xdist schedules the test items (`--dist loadgroup`: the items of one shard go to one
worker); the store only makes sure a shard that several items need, on several workers,
is computed once: the first caller takes the shard's file lock, computes and writes it
(atomically, by rename); any other caller waits for the lock and reads the file. The
folder is made by the controller (or the single process of `-n 0`) and handed to every
worker; a worker on another host without that folder makes its own (compute-once then
holds per host).

Every computation is logged (`drain()`), so the test item that caused it can ship the
fact to the controller, which counts them (the report says how many ran; a test checks
that none ran twice).

    store.share("setup", value)      # a worker leaves a plain Python value for the controller
    store.shared("setup")            # ... which reads it (None if no worker of this host left it)
"""
from __future__ import annotations

import fcntl
import os
import pickle
import re
import time
from pathlib import Path
from typing import Callable

import pytest


class ShardStore:
    def __init__(self, folder: Path, worker: str = "main"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.worker = worker
        self._memo: dict = {}
        self._log: list[dict] = []
        self._nested: list[float] = []      # per computation under way: seconds of shards computed inside it

    def _path(self, name: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ValueError(f"shard name {name!r}: use letters, digits, '.', '_' and '-'")
        return self.folder / f"{name}.pt"

    def get(self, name: str, compute: Callable, before: Callable | None = None):
        """The shard's value: from this process's memory, the folder, or `compute()` (once).

        `before()` (loading the model) runs first when the shard must be computed, outside the
        time logged for it; so does any other shard got inside `compute()`, computed there or
        waited for while another worker computes it: the log holds each shard's own seconds,
        which add up to the run's shard work.
        """
        if name in self._memo:
            return self._memo[name]
        begun = time.perf_counter()
        try:
            return self._get(name, compute, before)
        finally:
            if self._nested:                    # all of it is not the outer shard's own work
                self._nested[-1] += time.perf_counter() - begun

    def _get(self, name: str, compute: Callable, before: Callable | None):
        path = self._path(name)
        if not path.is_file():
            with open(path.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)        # released when the file closes
                if not path.is_file():
                    import torch

                    if before is not None:
                        before()
                    self._nested.append(0.0)
                    start = time.perf_counter()
                    try:
                        value = compute()
                    finally:
                        inner = self._nested.pop()
                    seconds = time.perf_counter() - start - inner
                    partial = path.with_suffix(f".tmp-{os.getpid()}")
                    torch.save(value, partial)
                    os.replace(partial, path)
                    self._log.append({"name": name, "worker": self.worker, "seconds": round(seconds, 3)})
                    self._memo[name] = value
                    return value
        # Our own files, written above by a process of this run: safe to unpickle.
        import torch

        value = torch.load(path, weights_only=False)
        self._memo[name] = value
        return value

    def drain(self) -> list[dict]:
        """The computations since the last call (name, worker, seconds), oldest first."""
        out, self._log = self._log, []
        return out

    def share(self, name: str, value) -> None:
        """Leave `value` (plain Python, pickled: no torch needed to read it) for the other
        processes of the run, if none is there yet (the processes of one run share equal values;
        two writing at once leave one whole file, by rename)."""
        path = self._path(name).with_suffix(".pickle")
        if path.is_file():
            return
        partial = path.with_suffix(f".tmp-{os.getpid()}")
        partial.write_bytes(pickle.dumps(value))
        os.replace(partial, path)

    def shared(self, name: str):
        """What a process of this run shared under `name`, or None."""
        path = self._path(name).with_suffix(".pickle")
        # Our own file, written by a process of this run: safe to unpickle.
        return pickle.loads(path.read_bytes()) if path.is_file() else None


STORE = pytest.StashKey[ShardStore]()     # the run's store, in every process (plugin/fixtures.py makes it)
