"""The study's claims, on the model the run resolved (--model; SmolLM2-135M-Instruct offline).

Finding under test (METHOD.md): in the clean model, cosine(pineapple, pizza) beats
cosine(butter, pizza) at almost every block; silencing ONE head of ONE block at the
pineapple token changes that cosine (the hook works) but never significantly: no block's
one-sample t-test survives Bonferroni. Controls show that the same checks DO see a large
intervention, so "no effect" is not the result of a test that cannot fail.
"""
import pytest
import torch

from metrics.statistics import block_tests, one_sample_t

pytestmark = pytest.mark.study

# "Almost every block": the study sees exceptions at the first and last blocks, which
# "look qualitatively different". Allowing 10% of blocks (3 of 30 or 36) admits those two
# and one more, while a baseline that holds at only two thirds of blocks would fail.
BASELINE_MIN_FRACTION = 0.9


def _tested(study):
    return study.plan.pairs[0]


def test_pineapple_pizza_beats_butter_pizza_at_almost_every_block(study, record):
    if len(study.plan.pairs) < 2:
        pytest.skip("the baseline compares two pairs; this run was given one --pair")
    first, second = study.plan.pairs[:2]
    a, b = study.clean_cosine(first), study.clean_cosine(second)
    for L in range(study.n_layers):
        record("baseline", {"layer": L, "pair": first.label, "clean": a[L].item()})
        record("baseline", {"layer": L, "pair": second.label, "clean": b[L].item()})
    beats = int((a > b).sum())
    need = BASELINE_MIN_FRACTION * study.n_layers
    assert beats >= need, (f"{first.label} > {second.label} at only {beats} of {study.n_layers} blocks "
                           f"(need {need:.1f}); blocks where it fails: {torch.where(a <= b)[0].tolist()}")


def test_silencing_one_head_moves_pineapple_but_not_the_association(study, site, setup, record):
    """One scenario: head h of block L silenced at the pineapple token, read at block L."""
    L, h = site
    t = study.plan.token
    clean, silenced = study.clean[L], study.silenced[L, h]
    for pair in study.plan.pairs:
        c = study.clean_cosine(pair)[L].item()
        s = study.silenced_cosine(pair)[L, h].item()
        record("scenario", {"layer": L, "head": h, "token": t, "pair": pair.label,
                            "clean": c, "silenced": s, "delta": s - c})

    # Manipulation check: the hook really changed the silenced token's vector.
    assert not torch.equal(silenced[t], clean[t]), f"silencing L{L} H{h} left token {t} unchanged"
    # Attention is causal: nothing before the token can see the change.
    assert torch.equal(silenced[:t], clean[:t]), "a position before the silenced token changed"
    # At block L's own output only the silenced position changes, so every pair without
    # the silenced token (butter-pizza) keeps its cosine exactly.
    for pair in study.plan.pairs:
        if t not in (pair.i, pair.j):
            assert study.silenced_cosine(pair)[L, h] == study.clean_cosine(pair)[L], (
                f"{pair.label} changed although neither of its tokens was silenced")
    delta = study.deltas(_tested(study))[L, h].item()
    assert abs(delta) <= setup.max_delta, (
        f"silencing L{L} H{h} moved {_tested(study).label} by {delta:+.4f}, more than ±{setup.max_delta}")


def test_no_block_heads_shift_the_association_significantly(study, block):
    """Per block: a one-sample t-test of its heads' differences, Bonferroni over blocks."""
    deltas = study.deltas(_tested(study))[block]
    t, p = one_sample_t(deltas.numpy())
    threshold = 0.05 / study.n_layers
    assert p >= threshold, (f"block {block}: heads shift {_tested(study).label} by {deltas.mean():+.2e} on "
                            f"average, t = {t:.2f}, p = {p:.2e} < {threshold:.2e}")


def test_zero_blocks_significant_after_bonferroni(study):
    tests = block_tests(study.deltas(_tested(study)).numpy())
    significant = [t.layer for t in tests if t.significant]
    assert significant == [], f"blocks significant after Bonferroni: {significant}"


# ---- controls: the same checks can see an effect -------------------------------------

def test_control_statistics_detect_silencing_all_but_one_head(study, record):
    """Silencing all heads but h of a block (one sample per h) is a large, consistent
    intervention: the same per-block t-test must flag it, or it could never flag anything."""
    deltas = study.all_but_one_deltas(_tested(study))
    tests = block_tests(deltas.numpy())
    for t in tests:
        record("control", {"name": "all_but_one_head", "layer": t.layer, "mean_delta": t.mean_delta,
                           "t": t.t, "p": t.p, "significant": t.significant})
    detected = [t.layer for t in tests if t.significant]
    assert detected, "the t-test flagged no block even with all but one head silenced"


def test_control_bound_catches_silencing_a_whole_block(study, setup, record):
    """Silencing every head of a block at the token must break the per-head bound somewhere:
    the bound is tight enough to catch a macroscopic intervention."""
    deltas = study.whole_block_deltas(_tested(study))
    for L, d in enumerate(deltas.tolist()):
        record("control", {"name": "whole_block", "layer": L, "delta": d})
    assert deltas.abs().max() > setup.max_delta, (
        f"silencing whole blocks moved the cosine by at most {deltas.abs().max():.4f}, "
        f"within the per-head bound ±{setup.max_delta}: the bound could not catch anything")


def test_control_every_single_head_silencing_is_seen(study):
    """The sweep changed the token's vector for every (layer, head): a no-op hook fails here."""
    t = study.plan.token
    unchanged = (study.silenced[:, :, t] == study.clean[:, None, t]).all(-1)
    assert not unchanged.any(), f"(layer, head) pairs with no effect: {torch.nonzero(unchanged).tolist()}"
