"""How many xdist workers `-n auto` starts: no more than the memory holds, one per GPU on CUDA.

xdist's own `-n auto` counts CPU cores only: -n 16 with GPT-2 Large needs ~61 GiB. Here the
count is capped so that workers x (model + activations) fit in the memory available now
(models/placement.worker_cap), and the header says what was chosen and why. An explicit
`-n N` is kept as given.
"""
from __future__ import annotations

import pytest

NOTE = pytest.StashKey[str]()


def _model_bytes(config) -> int | None:
    """The size of the run's weight files, read without loading them (None: not on disk yet)."""
    from models.loading import ModelNotAvailable, resolve
    from models.placement import bytes_on_disk

    try:
        choice = resolve(config.getoption("model"))
    except ModelNotAvailable:
        return None                       # read_options says why, in one line, at configure
    from pathlib import Path

    folder = choice.source
    if bytes_on_disk(folder):
        return bytes_on_disk(folder)
    if Path(str(folder)).is_absolute() or Path(str(folder)).exists():
        return None                       # a local folder not made yet (a bundled model before its conversion)
    from huggingface_hub import try_to_load_from_cache   # a hub id: the cached snapshot's folder

    try:
        found = try_to_load_from_cache(str(choice.source), "config.json")
    except ValueError:                    # not a valid hub id either: size unknown
        return None
    return bytes_on_disk(Path(found).parent) if isinstance(found, str) else None


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
    model_bytes = _model_bytes(config)
    if model_bytes is None:
        config.stash[NOTE] = f"workers: {requested} (one per core; the model's size is unknown until it is on disk)"
        return requested
    import psutil

    from models.placement import worker_cap

    workers, why = worker_cap(requested, model_bytes, psutil.virtual_memory().available)
    config.stash[NOTE] = f"workers: {workers} (-n auto: {why})"
    return workers


def pytest_report_header(config):
    note = config.stash.get(NOTE, None)
    return [note] if note else []
