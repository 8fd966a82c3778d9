"""The engine in bfloat16 and float16 (--dtype): the fast sweep takes its fast path and stays
within the bound hooks/precision.py states for that dtype, of the plain hooked pass in the
same dtype and of the plain hooked pass in float32; the statistics stay float64.

Bound, per (layer, head) entry: max|fast - plain| <= bound(dtype) * max(1, max|plain|)
(bfloat16 3e-2, float16 5e-3; how they were measured: hooks/precision.py).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from hooks import sweep
from hooks.precision import bound
from models.loading import DTYPES, default_dtype, torch_dtype
from tests.helpers.sweep_cases import fast_path_only
from tests.engine.test_sweep_exact import random_ids, tiny_model

HALF = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def worst_relative(fast: torch.Tensor, plain: torch.Tensor) -> float:
    """max over (layer, head) entries of max|fast - plain| / max(1, max|plain|)."""
    err = (fast.float() - plain.float()).abs().amax(dim=(-2, -1))
    return (err / plain.float().abs().amax(dim=(-2, -1)).clamp(min=1.0)).max().item()


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("readout", ["block", "final"])
@pytest.mark.parametrize("family, seed", [("gpt2", 0), ("gpt2", 1), ("llama", 0), ("llama", 1)])
def test_half_precision_sweep_takes_the_fast_path_within_its_bound(family, seed, readout, dtype):
    model32 = tiny_model(family, layers=4, heads=4, head_dim=16, kv_heads=2, seed=seed)
    model = copy.deepcopy(model32).to(HALF[dtype])
    ids = random_ids(12, seed)
    with fast_path_only():
        fast = sweep(model, ids, 5, readout)
    plain = sweep(model, ids, 5, readout, engine="naive")
    plain32 = sweep(model32, ids, 5, readout, engine="naive")
    limit = bound(HALF[dtype])
    assert fast.dtype == torch.float32                      # whatever the model's dtype
    assert worst_relative(fast, plain) <= limit, f"fast vs plain {dtype}: {worst_relative(fast, plain):.3g}"
    assert worst_relative(fast, plain32) <= limit, f"fast vs plain float32: {worst_relative(fast, plain32):.3g}"


def test_each_loadable_dtype_has_a_stated_bound():
    for name in DTYPES:
        assert bound(torch_dtype(name)) > 0
    assert bound(torch.bfloat16) > bound(torch.float16) > bound(torch.float32)


def test_the_study_statistics_are_float64_in_bfloat16():
    """Cosines are computed from float32 copies of the bfloat16 states and handed on as float64."""
    from experiments.study import measure_study
    from tests.study.test_golden import TINY_PROMPT
    from tests.helpers.tiny_models import tiny

    m = measure_study(copy.deepcopy(tiny("gpt2", 4, 4, 8)).to(torch.bfloat16), TINY_PROMPT)
    for label in m.clean_cosine:
        assert m.clean_cosine[label].dtype == np.float64 and m.deltas(label).dtype == np.float64
    assert m.token_change.dtype == np.float64


def test_dtype_names_and_defaults():
    assert torch_dtype("bfloat16") is torch.bfloat16 and torch_dtype(torch.float16) is torch.float16
    assert default_dtype("cpu") == "float32"
    assert default_dtype("cuda") == default_dtype("cuda:1") == "bfloat16"
    with pytest.raises(ValueError, match="dtype 'float8': use one of float32, bfloat16, float16"):
        torch_dtype("float8")


@pytest.mark.parametrize("dtype", DTYPES)
def test_load_gives_the_asked_dtype(dtype, tmp_path):
    from models.loading import load, resolve
    from tests.helpers.tiny_models import tiny_gpt2_checkpoint

    model, _ = load(resolve(tiny_gpt2_checkpoint(tmp_path / "tiny", n_layer=2)), dtype=dtype)
    assert {p.dtype for p in model.parameters()} == {torch_dtype(dtype)}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (./run gpu-check on a GPU machine)")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("readout", ["block", "final"])
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_sweep_on_cuda_takes_the_fast_path_within_its_bound(family, readout, dtype):
    """On the GPU (other kernels, other summation orders) the bound holds against the plain
    hooked pass there in the same dtype, and against the float32 one on the CPU."""
    model32 = tiny_model(family, layers=4, heads=4, head_dim=16, kv_heads=2)
    model = copy.deepcopy(model32).to("cuda", torch_dtype(dtype))
    ids = random_ids(12)
    with fast_path_only():
        fast = sweep(model, ids.cuda(), 5, readout).cpu()
    plain = sweep(model, ids.cuda(), 5, readout, engine="naive").cpu()
    plain32 = sweep(model32, ids, 5, readout, engine="naive")
    limit = bound(torch_dtype(dtype))
    assert worst_relative(fast, plain) <= limit, f"fast vs plain {dtype}: {worst_relative(fast, plain):.3g}"
    assert worst_relative(fast, plain32) <= limit, f"fast vs float32: {worst_relative(fast, plain32):.3g}"
