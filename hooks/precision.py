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
BOUNDS = {torch.float32: 1e-5}


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
