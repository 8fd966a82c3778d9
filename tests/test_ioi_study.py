"""The IOI head-patching study on the run's model (`./run ioi`, `pytest -m ioi`): every head
of every block, at the last position, takes its output from the donor prompt (the names
swapped); the logit difference logit(IO) - logit(S) is read at the last position.

What the model does (which heads carry the indirect object) is reported, not asserted:
results/<model>/ioi-<hash>/ (per-head tests across pairs, corrected over all heads, at the
plan's ioi_sesoi; a layer x head heatmap). What is asserted here is the method, on the real
model: its two fixed points hold exactly.
"""
import numpy as np
import pytest

pytestmark = pytest.mark.ioi


def test_patching_no_head_gives_the_recipient_and_every_head_the_donor(shards, ioi_chunk, setup, record):
    """The method's fixed points on the real model: patching nothing reproduces the recipient's
    logit difference, patching every head of every block at the last position the donor's."""
    c = shards.ioi_chunk(ioi_chunk)
    for k, i in enumerate(c.indices):
        pair = setup.ioi_pairs[i]
        record("ioi-pair", {"index": i, "template": pair.template, "io": pair.io, "s": pair.s,
                            "clean": float(c.clean[k]), "donor": float(c.donor[k]),
                            "change": (c.patched[:, :, k] - c.clean[k]).tolist()})
    scale = max(1.0, float(np.abs(c.clean).max()), float(np.abs(c.donor).max()))
    assert np.abs(c.nothing - c.clean).max() <= 1e-5 * scale, "patching nothing changed the logit difference"
    assert np.abs(c.everything - c.donor).max() <= 1e-5 * scale, (
        "patching every head at the last position did not reproduce the donor")
