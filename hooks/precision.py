"""The engine's exactness bound: how far two routes to the same number may differ by round-off.

    bound(torch.float32)                 # 1e-5: relative to max(1, max|reference|)
    within_bound(fast, plain, dtype)     # max|fast - plain| <= bound(dtype) * max(1, max|plain|)

Every fast path of hooks/ (and every test that compares it with the plain hooked pass or the
hand-written reference) uses this one definition; so does the manipulation check of
experiments/ (a "moved" token must move by far more than round-off can).
"""
from __future__ import annotations

import torch

# Relative to max(1, max|reference|). float32: measured largest relative difference between
# the fast engine and the plain loop on every real and tiny model here was 3.6e-6.
# bfloat16, float16: the fast sweep of a model in that dtype against (a) the plain hooked
# pass in the same dtype and (b) the plain hooked pass of the float32 model, per (layer, head)
# entry, both readouts, on 16 small random GPT-2 and Llama models (3-4 blocks x 4 heads,
# head_dim 8 and 16, 12 tokens, seeds 0-3; CPU, torch 2.13): (a) 0 in both dtypes (the same
# kernels on the same rows), (b) at most 1.27e-2 (bfloat16) and 1.73e-3 (float16), which is
# about 3 units of each dtype's rounding (2**-8, 2**-11) carried through a few blocks. The
# bounds are ~2.5x those, 8 and 10 units of rounding, leaving room for GPU kernels, whose
# sums change order with the batch size. float64 is held to float32's bound (no finer claim).
BOUNDS = {torch.float32: 1e-5, torch.float64: 1e-5, torch.bfloat16: 3e-2, torch.float16: 5e-3}


def bound(dtype: torch.dtype = torch.float32) -> float:
    """The relative exactness bound of the engine in `dtype`; a ValueError for a dtype without one."""
    try:
        return BOUNDS[dtype]
    except KeyError:
        raise ValueError(f"no exactness bound is stated for {dtype}; use one of "
                         f"{', '.join(str(d) for d in BOUNDS)}") from None


def scale_of(reference: torch.Tensor) -> float:
    """max(1, max|reference|): what the relative bound multiplies."""
    return max(1.0, reference.detach().float().abs().max().item()) if reference.numel() else 1.0


def within_bound(fast: torch.Tensor, reference: torch.Tensor, dtype: torch.dtype = torch.float32) -> bool:
    """max|fast - reference| <= bound(dtype) * max(1, max|reference|)."""
    return (fast.float() - reference.float()).abs().max().item() <= bound(dtype) * scale_of(reference)
