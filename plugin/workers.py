"""How many xdist workers `-n auto` starts: no more than the memory holds, one per GPU on CUDA.

xdist's own `-n auto` counts CPU cores only. Here the count is capped so that the workers fit
in the memory available now (models/placement.worker_cap): each worker's activations and
Python, and the weights either once (a safetensors checkpoint already in the run's dtype: every
worker maps the same file pages, models/placement.weights_shared) or once per worker (a copy
each). The header says what was chosen and why. An explicit `-n N` is kept as given.
"""
from __future__ import annotations

import pytest

NOTE = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True, optionalhook=True)   # pytest-xdist's; absent under -p no:xdist
def pytest_xdist_auto_num_workers(config):
    from xdist.plugin import pytest_xdist_auto_num_workers as cores

    requested = cores(config)
    device = config.getoption("device")
    if device.startswith("cuda"):
        import torch

        count = torch.cuda.device_count()
        if device != "cuda" or count == 0:
            return requested              # --device cuda:K, or no GPU (read_options stops the run)
        if config.getoption("device_map"):
            config.stash[NOTE] = "workers: 1 (-n auto with --device-map auto: one model spread over every GPU)"
            return 1
        config.stash[NOTE] = f"workers: {count}, one per GPU (-n auto with --device cuda; worker gwI uses cuda:I)"
        return count
    from models.loading import checkpoint_folder, default_dtype

    folder = checkpoint_folder(config.getoption("model"))
    if folder is None:
        config.stash[NOTE] = f"workers: {requested} (one per core; the model's size is unknown until it is on disk)"
        return requested
    import psutil

    from models.placement import bytes_on_disk, weights_shared, worker_cap

    shared = weights_shared(folder, config.getoption("dtype") or default_dtype(device))
    workers, why = worker_cap(requested, bytes_on_disk(folder), psutil.virtual_memory().available, shared)
    config.stash[NOTE] = f"workers: {workers} (-n auto: {why})"
    return workers


def pytest_report_header(config):
    note = config.stash.get(NOTE, None)
    return [note] if note else []
