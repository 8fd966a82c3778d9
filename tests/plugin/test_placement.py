"""Where the model goes (models/placement.py), tested on a CPU with made-up GPU counts and
memory sizes: which GPU each worker uses, how many CPU workers fit, how a model is spread
over GPUs. The spread run itself needs two GPUs (skipped, with the reason, elsewhere)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.placement import (GIB, bytes_on_disk, device_map, per_worker_bytes, plan_over_gpus, weights_shared,
                              worker_cap, worker_device)
from tests.helpers.tiny_models import CASES, tiny


@pytest.mark.parametrize("worker, count, expected", [
    ("gw0", 4, "cuda:0"), ("gw3", 4, "cuda:3"), ("gw5", 4, "cuda:1"), ("gw7", 2, "cuda:1"), ("gw12", 1, "cuda:0"),
    (None, 4, "cuda"),               # no xdist: torch's current device
])
def test_worker_i_uses_gpu_i_mod_count(worker, count, expected):
    assert worker_device("cuda", worker, count) == expected


def test_cpu_and_an_explicit_gpu_are_kept_as_asked():
    assert worker_device("cpu", "gw5", 4) == "cpu"
    assert worker_device("cuda:2", "gw5", 4) == "cuda:2"


def test_a_bare_cuda_without_gpus_is_an_error_naming_the_worker():
    with pytest.raises(ValueError, match="--device cuda with 0 GPUs: no CUDA device to give worker gw1"):
        worker_device("cuda", "gw1", 0)


def test_gpt2_large_at_16_workers_is_capped_to_what_memory_holds():
    gpt2_large = 3_250_000_000                      # its float32 safetensors file
    assert per_worker_bytes(gpt2_large) / GIB == pytest.approx(1.25 * 3.25e9 / GIB + 0.625)      # 4.41
    workers, why = worker_cap(16, gpt2_large, 32 * GIB)
    assert workers == 7
    assert why == "capped from 16 to 7: each worker needs 4.4 GiB (model 3.0 GiB + activations + Python) and 32.0 GiB is available"


def test_shared_weights_are_counted_once_for_all_workers():
    """Worked by hand: GPT-2 Large's 3.25 GB of float32 weights mapped once; each worker then
    needs a quarter of them for activations and 0.625 GiB for Python: 0.8125 GB + 0.625 GiB."""
    gpt2_large = 3_250_000_000
    each = 0.25 * gpt2_large + 0.625 * GIB                                 # 1.38 GiB
    assert per_worker_bytes(gpt2_large, shared=True) == int(each)
    assert worker_cap(16, gpt2_large, 32 * GIB, shared=True) == (
        16, "16 workers x 1.4 GiB, and the weights' 3.0 GiB mapped once for all of them, fit in 32.0 GiB available")
    fit = int((8 * GIB - gpt2_large) // int(each))                       # 3: (8 GiB - 3.03) / 1.38 GiB
    assert fit == 3
    assert worker_cap(16, gpt2_large, 8 * GIB, shared=True) == (
        3, "capped from 16 to 3: the weights' 3.0 GiB are mapped once for all workers, each worker needs 1.4 GiB "
           "more (activations + Python) and 8.0 GiB is available")
    assert worker_cap(16, gpt2_large, 2 * GIB, shared=True)[0] == 1         # not even the weights fit: one worker
    # the same machine without sharing: a copy each, 7 workers (the test above)
    assert worker_cap(16, gpt2_large, 32 * GIB, shared=False)[0] == 7


def _safetensors(folder, **tensors):
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({name: t.contiguous() for name, t in tensors.items()}, str(folder / "model.safetensors"))
    return folder


def test_weights_are_shared_only_from_safetensors_already_in_the_run_dtype(tmp_path):
    w = torch.ones(4, 4)
    f32 = _safetensors(tmp_path / "f32", weight=w, position_ids=torch.arange(4))    # integer buffers stay as they are
    bf16 = _safetensors(tmp_path / "bf16", weight=w.bfloat16())
    mixed = _safetensors(tmp_path / "mixed", weight=w, norm=w.bfloat16())
    assert weights_shared(f32, "float32") and weights_shared(bf16, "bfloat16")
    assert not weights_shared(f32, "bfloat16") and not weights_shared(bf16, "float32")   # a conversion: a copy each
    assert not weights_shared(mixed, "float32") and not weights_shared(mixed, "bfloat16")
    assert not weights_shared(f32, "float64")                                 # not a dtype a run can ask for
    torch.save({"weight": w}, f32 / "pytorch_model.bin")
    assert not weights_shared(f32, "float32")                                 # a .bin is read into memory
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"\x00" * 16)
    assert not weights_shared(tmp_path / "broken", "float32")                 # no header: assume a copy
    assert not weights_shared(tmp_path / "missing", "float32") and not weights_shared(tmp_path, "float32")


def _mapped_from(path) -> list[tuple[int, int]]:
    """The address ranges of this process that map `path` (Linux's /proc/self/maps)."""
    ranges = []
    for line in open("/proc/self/maps"):
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].strip() == str(path):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_loading_maps_the_weight_file_when_placement_says_the_weights_are_shared(tmp_path):
    """The premise of weights_shared, against the operating system's own memory map: loaded in
    the checkpoint's dtype, every parameter lies in the mapping of model.safetensors (its pages,
    which every worker maps, are the parameters); converted, none does."""
    from models.loading import load, resolve
    from tests.helpers.tiny_models import tiny_gpt2_checkpoint

    folder = Path(tiny_gpt2_checkpoint(tmp_path / "ckpt"))
    weights = (folder / "model.safetensors").resolve()
    for dtype, shared in (("float32", True), ("bfloat16", False)):
        assert weights_shared(folder, dtype) is shared
        model, _ = load(resolve(str(folder)), dtype=dtype)
        ranges = _mapped_from(weights)
        inside = [any(a <= p.data_ptr() < b for a, b in ranges) for p in model.parameters()]
        assert all(inside) if shared else not any(inside), (dtype, sum(inside), len(inside))
        del model


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
@pytest.mark.parametrize("case", ["gpt2", *CASES])
def test_every_family_maps_its_weights_exactly_when_placement_says_so(tmp_path, case):
    """weights_shared against the operating system for each family the engine knows: True where
    every parameter of the float32 model lies in its checkpoint's mapping, False where transformers
    copies any (a mixture of experts fuses its experts' tensors as it loads them)."""
    import transformers

    tiny(case).save_pretrained(tmp_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)  # as models.loading.load
    ranges = _mapped_from((tmp_path / "model.safetensors").resolve())
    inside = [any(a <= p.data_ptr() < b for a, b in ranges) for p in model.parameters()]
    assert weights_shared(tmp_path, "float32") is all(inside), f"{sum(inside)} of {len(inside)} parameters mapped"


def test_workers_that_fit_are_kept():
    assert worker_cap(8, 500_000_000, 64 * GIB)[0] == 8


def test_at_least_one_worker_even_when_nothing_fits():
    assert worker_cap(16, 40 * GIB, 8 * GIB)[0] == 1


@pytest.mark.parametrize("requested", [0, -2])
def test_no_workers_requested_is_an_error(requested):
    with pytest.raises(ValueError, match="ask for at least 1"):
        worker_cap(requested, GIB, GIB)


def test_bytes_on_disk_reads_only_weight_files(tmp_path):
    assert bytes_on_disk(tmp_path / "missing") is None and bytes_on_disk(tmp_path) is None
    (tmp_path / "model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "config.json").write_text("{}")
    assert bytes_on_disk(tmp_path) == 1000


def _tiny_llama_config(layers=8):
    import transformers as tf

    return tf.LlamaConfig(hidden_size=64, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                          intermediate_size=128, vocab_size=1000, max_position_embeddings=64)


def _blocks_by_gpu(plan: dict, layers: int) -> list:
    """Which GPU holds each block, in order (every block must be placed whole)."""
    def gpu_of(block):
        names = [n for n in plan if block == n or block.startswith(n + ".")]
        assert names, f"{block} is not placed"
        return plan[names[0]]
    return [gpu_of(f"model.layers.{i}") for i in range(layers)]


def test_a_model_too_large_for_one_gpu_is_spread_over_two_in_block_order():
    config = _tiny_llama_config()
    with torch.device("meta"):
        from transformers import AutoModelForCausalLM
        skeleton = AutoModelForCausalLM.from_config(config)
    size = sum(p.numel() * p.element_size() for p in skeleton.parameters())
    plan = device_map(skeleton, {0: int(size * 0.6), 1: int(size * 0.6)})
    gpus = _blocks_by_gpu(plan, 8)
    assert set(gpus) == {0, 1} and gpus == sorted(gpus), gpus   # both used, blocks 0.. then ..7


def test_the_gpu_plan_keeps_a_model_that_fits_on_one_gpu():
    plan = plan_over_gpus(_tiny_llama_config(), torch.bfloat16, {0: 10 * GIB, 1: 10 * GIB})
    assert set(plan.values()) == {0}


def test_a_model_larger_than_every_gpu_together_is_refused_in_one_line():
    with pytest.raises(ValueError, match="the model does not fit on 2 GPU"):
        plan_over_gpus(_tiny_llama_config(), torch.float32, {0: 100_000, 1: 100_000})


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="the spread run needs two CUDA devices; this machine has "
                    f"{torch.cuda.device_count()}")
def test_a_sweep_over_two_gpus_equals_one_on_one(tmp_path):
    from hooks import sweep
    from hooks.precision import bound
    from models.loading import load, resolve
    from tests.engine.test_dtypes import worst_relative
    from tests.helpers.tiny_models import tiny_gpt2_checkpoint

    choice = resolve(tiny_gpt2_checkpoint(tmp_path / "tiny", n_layer=4))
    spread, _ = load(choice, "cuda", "float32", device_map={**{f"transformer.h.{i}": i // 2 for i in range(4)},
                                                             "transformer.wte": 0, "transformer.wpe": 0,
                                                             "transformer.ln_f": 1, "lm_head": 1})
    whole, _ = load(choice, "cuda:0", "float32")
    ids = torch.randint(0, 1000, (1, 9), generator=torch.Generator().manual_seed(0)).cuda()
    for readout in ("block", "final"):
        assert worst_relative(sweep(spread, ids, 4, readout).cpu(), sweep(whole, ids, 4, readout).cpu()) <= bound()


def test_n_auto_is_capped_by_memory_and_the_header_says_why(tmp_path):
    """A checkpoint of 1 TiB (a sparse file: no disk used) leaves room for one worker."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with open(tmp_path / "model.safetensors", "wb") as f:
        f.truncate(2**40)
    env = {**os.environ, "PYTEST_XDIST_AUTO_NUM_WORKERS": "4", "HF_HUB_OFFLINE": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    out = subprocess.run([sys.executable, "-m", "pytest", "-n", "auto", "--collect-only", f"--model={tmp_path}",
                          "tests/plugin/test_placement.py", "-k", "worker_i_uses"], cwd=Path(__file__).parents[2],
                         env=env, capture_output=True, text=True, timeout=300).stdout
    assert "workers: 1 (-n auto: capped from 4 to 1: each worker needs 1280.6 GiB (model 1024.0 GiB" in out, out[:2000]


def test_the_worker_cap_does_not_fail_before_a_bundled_model_is_converted(tmp_path, monkeypatch):
    """A fresh machine (CI): the bundled model's folder does not exist yet. Its size is unknown,
    so -n auto keeps one worker per core; the hook must not ask the hub about a local path."""
    from models.loading import checkpoint_folder

    monkeypatch.setenv("STUDY_CACHE", str(tmp_path / "empty-cache"))

    assert checkpoint_folder("smollm2-135m-instruct") is None


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/self/smaps")
def test_the_verdict_counts_the_resident_pages_of_the_runs_weight_files(tmp_path):
    """mapped_weights_gib against the operating system: 32 MiB of a checkpoint's file, mapped
    through the link a Hugging Face snapshot holds and every page touched, add 32 MiB; a file that
    is not the checkpoint's adds nothing."""
    import mmap
    import os

    from models.placement import weight_files
    from plugin.reporting import mapped_weights_gib

    (tmp_path / "blobs").mkdir()
    (tmp_path / "snapshot").mkdir()
    blob, other = tmp_path / "blobs" / "3f2a9c", tmp_path / "other.safetensors"
    for path in (blob, other):
        path.write_bytes(b"\1" * (32 * 2**20))
    os.symlink(blob, tmp_path / "snapshot" / "model.safetensors")
    files = weight_files(tmp_path / "snapshot")
    assert files == {str(blob.resolve())}
    for path, expected in ((tmp_path / "snapshot" / "model.safetensors", 32 / 1024), (other, 0.0)):
        before = mapped_weights_gib(files)
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as pages:
            assert sum(pages[i] for i in range(0, len(pages), 4096)) == len(pages) // 4096
            during = mapped_weights_gib(files)
        assert during - before == pytest.approx(expected, abs=0.002), path.name


def test_the_memory_line_names_the_shared_weight_pages_only_where_there_are_some():
    from plugin.reporting import memory_line

    peak = {"controller": 0.25, "gw0": 4.15, "gw1": 3.98}
    assert memory_line(peak, {"controller": 0.0, "gw0": 2.99, "gw1": 3.01}) == (
        "peak resident memory: controller 0.25 GiB, gw0 4.15 GiB, gw1 3.98 GiB; up to 3.01 GiB of a process's is "
        "the weights' file pages, mapped from disk and held once for all processes")
    assert memory_line({"this process": 1.3}, {"this process": 0.0}) == "peak resident memory: this process 1.30 GiB"
    assert memory_line({"this process": 1.27}, {"this process": 0.5}) == (
        "peak resident memory: this process 1.27 GiB; 0.50 GiB of it is the weights' file pages, mapped from disk")
