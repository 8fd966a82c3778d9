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


def _checkpoint_folder(config):
    """The folder of the run's weight files, found without loading them (None: not on disk yet,
    or the model is unknown)."""
    from models.loading import ModelNotAvailable, resolve
    from models.placement import bytes_on_disk

    try:
        choice = resolve(config.getoption("model"))
    except ModelNotAvailable:
        return None                       # read_options says why, in one line, at configure
    from pathlib import Path

    folder = choice.source
    if bytes_on_disk(folder):
        return Path(folder)
    if Path(str(folder)).is_absolute() or Path(str(folder)).exists():
        return None                       # a local folder not made yet (a bundled model before its conversion)
    from huggingface_hub import try_to_load_from_cache   # a hub id: the cached snapshot's folder

    try:
        found = try_to_load_from_cache(str(choice.source), "config.json")
    except ValueError:                    # not a valid hub id either: size unknown
        return None
    return Path(found).parent if isinstance(found, str) and bytes_on_disk(Path(found).parent) else None


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
    folder = _checkpoint_folder(config)
    if folder is None:
        config.stash[NOTE] = f"workers: {requested} (one per core; the model's size is unknown until it is on disk)"
        return requested
    import psutil

    from models.loading import default_dtype
    from models.placement import bytes_on_disk, weights_shared, worker_cap

    shared = weights_shared(folder, config.getoption("dtype") or default_dtype(device))
    workers, why = worker_cap(requested, bytes_on_disk(folder), psutil.virtual_memory().available, shared)
    config.stash[NOTE] = f"workers: {workers} (-n auto: {why})"
    return workers


def pytest_report_header(config):
    note = config.stash.get(NOTE, None)
    return [note] if note else []
