"""Where a run's model goes: which GPU each xdist worker uses, how many CPU workers fit in
memory, and how a model too large for one GPU is spread over several.

    worker_device("cuda", "gw5", gpu_count=4)                  # "cuda:1": worker I uses GPU I mod count
    worker_cap(16, model_bytes=3.1e9, available_bytes=32e9)     # (7, "why, in words"): a copy each
    worker_cap(16, 3.1e9, 32e9, shared=True)                    # (16, ...): the weights' file mapped once
    weights_shared(folder, "float32")                           # will the workers share the weights' pages?
    device_map(model, {0: 20e9, 1: 20e9})                       # {"transformer.h.0": 0, ...}

Pure functions of their arguments (counts, bytes, a model skeleton): unit tested on a CPU
with made-up counts and sizes (tests/plugin/test_placement.py).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

GIB = 2**30
# What one worker holds besides the weights: Python, torch and transformers (0.625 GiB) plus a
# quarter of the weights for activations and the sweep's rows. Measured 2026-12-06 (-n 2
# studies): a GPT-2 Large-shaped worker peaked at 3.98-4.15 GiB resident, 2.9 GiB of it the
# weights' file pages, so about 1.0-1.1 GiB its own (estimate 1.35); a SmolLM2 worker at 1.25 GiB,
# 0.5 of it the weights and 0.12 shared libraries, about 0.63 its own (estimate 0.75).
WORKER_OVERHEAD_BYTES = 5 * GIB // 8
ACTIVATION_SHARE = 0.25
# safetensors' names of the floating-point dtypes a run can ask for (models.loading.DTYPES).
SAFETENSORS_DTYPE = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
FLOATING = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
# config.json keys of a mixture of experts: transformers fuses the experts' tensors as it loads
# them (tiny Qwen3-MoE: 30 of 36 parameters mapped, the fused experts copied), so each worker
# holds its own copy of most of the weights.
EXPERT_COUNTS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")


def worker_device(device: str, worker: str | None, gpu_count: int) -> str:
    """The device of xdist worker `worker` ("gw0", "gw1", ...; None without xdist).

    Only a bare "cuda" is spread: worker gwI gets cuda:(I mod gpu_count). "cpu" and an
    explicit "cuda:K" are kept as asked.
    """
    if device != "cuda" or worker is None:
        return device
    found = re.fullmatch(r"gw(\d+)", worker)
    if found is None:
        raise ValueError(f"xdist worker id {worker!r}: expected gw<number>")
    if gpu_count < 1:
        raise ValueError(f"--device cuda with {gpu_count} GPUs: no CUDA device to give worker {worker}")
    return f"cuda:{int(found.group(1)) % gpu_count}"


def per_worker_bytes(model_bytes: int, shared: bool = False) -> int:
    """Memory one CPU worker needs of its own (WORKER_OVERHEAD_BYTES, ACTIVATION_SHARE): the activations and
    Python, and a copy of the weights unless the workers share the weights' file pages
    (`weights_shared`)."""
    return (0 if shared else model_bytes) + int(model_bytes * ACTIVATION_SHARE) + WORKER_OVERHEAD_BYTES


def worker_cap(requested: int, model_bytes: int, available_bytes: int, shared: bool = False) -> tuple[int, str]:
    """(workers, why): at most `requested`, at least 1, and no more than fit in
    `available_bytes` at per_worker_bytes(model_bytes, shared) each; with shared weights their
    file pages are counted once, for all workers."""
    if requested < 1:
        raise ValueError(f"{requested} workers requested: ask for at least 1")
    each = per_worker_bytes(model_bytes, shared)
    room = available_bytes - (model_bytes if shared else 0)
    fit = max(1, int(room // each))
    gib, model, available = each / GIB, model_bytes / GIB, available_bytes / GIB
    if shared:
        if fit >= requested:
            return requested, (f"{requested} workers x {gib:.1f} GiB, and the weights' {model:.1f} GiB mapped once "
                               f"for all of them, fit in {available:.1f} GiB available")
        return fit, (f"capped from {requested} to {fit}: the weights' {model:.1f} GiB are mapped once for all "
                     f"workers, each worker needs {gib:.1f} GiB more (activations + Python) and {available:.1f} GiB "
                     f"is available")
    if fit >= requested:
        return requested, f"{requested} workers x {gib:.1f} GiB (model {model:.1f} GiB) fit in {available:.1f} GiB available"
    return fit, (f"capped from {requested} to {fit}: each worker needs {gib:.1f} GiB (model {model:.1f} GiB + "
                 f"activations + Python) and {available:.1f} GiB is available")


def safetensors_dtypes(path: str | Path) -> set[str]:
    """The dtypes of a safetensors file's tensors ("F32", "BF16", ...), from its header alone
    (8 bytes of length, then JSON); no tensor is read."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
    return {entry["dtype"] for name, entry in header.items() if name != "__metadata__"}


def weight_files(folder: str | Path | None) -> set[str]:
    """The real paths of a checkpoint's safetensors files (a Hugging Face cache's snapshot holds
    links to its blobs, and a process's memory map names the blob): what mapped_weights_gib counts."""
    if folder is None or not Path(folder).is_dir():
        return set()
    return {str(f.resolve()) for f in Path(folder).glob("*.safetensors")}


def weights_shared(folder: str | Path, dtype: str) -> bool:
    """Whether the CPU workers of a run in `dtype` will share the weights' pages: the checkpoint
    is safetensors files only and every floating-point tensor in it is already in `dtype`.
    transformers then maps the file and uses its pages as the parameters (no copy; the page
    cache holds them once for every process; tests/plugin/test_placement.py checks this on a
    tiny model of every family against the process's own memory map). A .bin file, a conversion
    to another dtype, or a mixture of experts (EXPERT_COUNTS) gives each worker a copy."""
    folder = Path(folder)
    if not folder.is_dir() or any(folder.glob("*.bin")) or dtype not in SAFETENSORS_DTYPE:
        return False
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    if any(isinstance(config.get(key), int) and config[key] > 0 for key in EXPERT_COUNTS):
        return False
    files = sorted(folder.glob("*.safetensors"))
    try:
        floating = set().union(*(safetensors_dtypes(f) for f in files)) & FLOATING
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False                      # not a readable safetensors header: assume a copy each
    return bool(files) and floating <= {SAFETENSORS_DTYPE[dtype]}


def bytes_on_disk(folder: str | Path) -> int | None:
    """The size of a checkpoint folder's weight files (a stand-in for the model's bytes in
    memory, read without loading it); None when the folder holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    sizes = [f.stat().st_size for pattern in ("*.safetensors", "*.bin") for f in folder.glob(pattern)]
    return sum(sizes) if sizes else None


def device_map(model, max_memory: dict) -> dict:
    """{module name: device} that spreads `model`'s blocks over the devices of `max_memory`
    ({device: bytes it may hold}), whole blocks only, in order (accelerate's own planner,
    given the model's blocks as the pieces it must not split). `model` may live on the
    meta device: no weights are needed to plan."""
    from accelerate import infer_auto_device_map

    return infer_auto_device_map(model, max_memory=max_memory,
                                 no_split_module_classes=getattr(model, "_no_split_modules", None) or [])


def plan_over_gpus(config, dtype, free_bytes: dict) -> dict:
    """device_map for a model of `config` in `dtype` over the GPUs of `free_bytes` ({gpu index:
    bytes free}), planned on a weightless (meta) skeleton; each GPU keeps a tenth free for
    activations. Raises ValueError if the model does not fit."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, dtype=dtype)
    plan = device_map(skeleton, {gpu: int(free * 0.9) for gpu, free in free_bytes.items()})
    off_gpu = sorted({str(d) for d in plan.values() if not isinstance(d, int)})
    if off_gpu:
        raise ValueError(f"--device-map auto: the model does not fit on {len(free_bytes)} GPU(s) "
                         f"({', '.join(f'{b / GIB:.1f}' for b in free_bytes.values())} GiB free); parts would go to "
                         f"{', '.join(off_gpu)}: free GPU memory, or use --dtype bfloat16")
    return plan
