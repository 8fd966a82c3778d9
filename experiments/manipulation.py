"""The manipulation check: did an intervention act, beyond what round-off could do?

    threshold(plan, torch.float32)    # plan.manipulation_factor x the engine's bound, e.g. 1e-4
    moved(change, plan, dtype)        # change > threshold (elementwise), change a relative change

A silenced token's vector (or a replaced head value, or a cosine) "moved" only when it moved
by more than manipulation_factor times the engine's exactness bound for the run's dtype
(hooks/precision.py). Two routes to the same number differ by less than that bound, so a
silencing that does nothing cannot pass; comparing with `!=` let round-off alone pass.
Changes are relative, as the bound is: metrics.similarity.relative_change.
"""
from __future__ import annotations

import numpy as np
import torch

from hooks.precision import bound


def threshold(plan, dtype: torch.dtype = torch.float32) -> float:
    """The smallest relative change that counts as "moved"."""
    return plan.manipulation_factor * bound(dtype)


def moved(change, plan, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Elementwise: did it move (change > threshold)? `change` an array or tensor of relative changes."""
    change = change.cpu().numpy() if isinstance(change, torch.Tensor) else np.asarray(change)
    return change > threshold(plan, dtype)
