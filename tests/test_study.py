"""The seed's claims on the study sentence, on the model the run resolved (--model): the
REPLICATION of the seed's design, one item per layer x head and per block. Every number
comes from the run's "study" shard (experiments/study.py: one clean pass and one sweep of
every single-head silencing, computed once per run).

Thresholds come from the analysis plan (analysis_plan.toml). The study-level claims that
need every block at once, and the primary claims (every head across the sentence
population), are in tests/across_shards.py. Each claim here can fail on a model with a
planted effect of known size: tests/test_known_answers.py. Invariants of the engine
(nothing before the silenced token changes) are tested where they can fail:
tests/test_hooks_properties.py and tests/test_sweep_exact.py.
"""
import numpy as np
import pytest

from experiments.analysis import per_unit_threshold
from experiments.manipulation import moved, threshold
from metrics.statistics import one_sample_t

pytestmark = [pytest.mark.study, pytest.mark.data("study sentence")]


def test_pineapple_pizza_beats_butter_pizza_at_almost_every_block(shards, setup, record, say):
    """Replication of the seed's baseline: on the clean model the tested pair's cosine is above
    the comparison pair's at every block but those the plan exempts (the seed's first and last)."""
    m = shards.study()
    if len(m.prompt.pairs) < 2:
        pytest.skip("the baseline compares two pairs; this run was given one --pair")
    first, second = (p.label for p in m.prompt.pairs[:2])
    for label in (first, second):
        record("baseline", {"pair": label, "clean": m.clean_cosine[label].tolist(),
                            "before_norm": m.last_block_before_norm[label]})
    a, b = m.clean_cosine[first], m.clean_cosine[second]
    n = len(a)
    exempt = {{"first": 0, "last": n - 1}[name] for name in setup.plan.baseline_exempt_blocks}
    below = [L for L in range(n) if not a[L] > b[L]]
    say(f"{first} above {second} at {n - len(below)} of {n} blocks; below at {below} (exempt: "
        f"{sorted(exempt)}); last block before the final norm: {m.last_block_before_norm[first]:.3f} vs "
        f"{m.last_block_before_norm[second]:.3f}")
    assert set(below) <= exempt, f"{first} is not above {second} at blocks {sorted(set(below) - exempt)}"


def test_silencing_one_head_moves_its_token_but_not_the_association_macroscopically(shards, site, setup, record,
                                                                                   say):
    """Replication of the seed, per head: head h of block L silenced at the token moves the
    token's vector beyond round-off (the hook acted; plan: manipulation_factor), and moves the
    tested pair's cosine at block L by at most the plan's per-head bound."""
    L, h = site
    m = shards.study()
    for pair in m.prompt.pairs:
        clean, silenced = float(m.clean_cosine[pair.label][L]), float(m.silenced_cosine[pair.label][L, h])
        record("scenario", {"layer": L, "head": h, "token": m.prompt.token, "pair": pair.label,
                            "clean": clean, "silenced": silenced, "delta": silenced - clean})
    if not moved(m.token_change[L, h], setup.plan):
        # The manipulation failed: nothing was silenced that the readout could see, so this
        # item says nothing about the association either way.
        say(f"the silencing moved the token's vector by {m.token_change[L, h]:.1e} (relative), not beyond "
            f"{threshold(setup.plan):.0e}: it did nothing measurable", outcome="not established",
            named={"not shown": [f"L{L:02d}-H{h:02d}"]})
        return
    delta = float(m.deltas(m.prompt.tested.label)[L, h])
    bound = setup.plan.max_abs_delta_per_head
    assert abs(delta) <= bound, f"silencing L{L} H{h} moved {m.prompt.tested.label} by {delta:+.4f}, beyond ±{bound}"


def test_no_block_heads_shift_the_association_significantly(shards, block, setup):
    """Replication of the seed's test, per block: a one-sample t-test of the block's per-head
    differences is not significant at the plan's per-block level (alpha / n_blocks)."""
    m = shards.study()
    deltas = m.deltas(m.prompt.tested.label)[block]
    t, p = one_sample_t(deltas)
    threshold = per_unit_threshold(setup.plan, setup.plan.block_correction, m.n_layers)
    assert p >= threshold, (f"block {block}: heads shift {m.prompt.tested.label} by {np.mean(deltas):+.2e} on "
                            f"average, t = {t:.2f}, p = {p:.2e} < {threshold:.2e}")
