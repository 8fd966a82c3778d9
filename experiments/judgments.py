"""Every claim's judgment, in one module: measurements in, a Verdict out.

The study's claims (claims/*.py, pytest items, a thin layer) and the study as a library call
(experiments/run.py `run_study`) both call these, so a pytest run and a call reach the same
outcomes, bit for bit. Each judgment applies one rule of metrics/outcomes.py; the numbers
come from the plan (experiments/plan.py).

    baseline(m, plan)                      the tested pair above the comparison pair at every non-exempt block
    per_head(m, plan, L, h)                one head on the study sentence: the hook acted, |change| <= bound
    per_block(m, plan, L)                  the seed's t-test of one block's heads
    seed_verdict(blocks)                   no block significant after Bonferroni
    block_means(deltas, plan)              every block's mean within ±SESOI (no sampling error)
    primary(heads, plan)                   every head within ±SESOI across templates
    macroscopic(samples, plan)             every head within the per-head bound
    sentence_share(shares, plan)           no head moves more than a share of sentences beyond ±SESOI
    manipulation_on_prompt(chunk, i, plan) every head's ablation moved the token of sentence i
    positive_control(rows, plan)           skipping a block is beyond ±SESOI at more than a share of blocks
    ... and the engine's invariants on the real model (nothing_before_block, moves_own_block,
    top_k_moved, batched_equals_sweep, two_shards_agree, ioi_fixed_points).
"""
from __future__ import annotations

import numpy as np

from experiments.analysis import (Verdict, bound_verdict, cluster_means, detectable_note, planted_control, share_verdict,
                                  unit_table, within_verdict)
from metrics import outcomes
from metrics.statistics import BEYOND, WITHIN, one_sample_t


def combine_items(items: list[dict]) -> Verdict:
    """A claim made of items as one verdict: items [{"item", "outcome", "detail", "message",
    "named"}] (one per item: a head, a block, a sentence; "" for a claim decided once), their
    outcome by metrics.outcomes.combine, their words: the errors first (not a result), then for
    one item its detail, for many the items refuted and what the items that did not hold said.
    Items are taken in the order of their ids, so the words do not depend on which process
    finished first."""
    items = sorted(items, key=lambda i: i["item"])
    outcome = outcomes.combine([i["outcome"] for i in items])
    errors = [i for i in items if i["outcome"] == outcomes.ERROR]
    words = []
    if errors:
        words.append(f"ERROR (not a result) at {len(errors)} of {len(items)} item(s): "
                     + "; ".join(f"{i['item'] or 'the claim'}: {i.get('message', '')}" for i in errors[:5]))
    if len(items) <= 1:
        words += [i["detail"] for i in items if i.get("detail")]
    else:
        refuted = [i for i in items if i["outcome"] == outcomes.REFUTED]
        odd = [i for i in items if i.get("detail") and i["outcome"] != outcomes.HELD]
        if refuted:
            words.append(f"refuted at {len(refuted)} of {len(items)} items: "
                         + ", ".join(i["item"] for i in refuted[:12]) + (" and more" if len(refuted) > 12 else ""))
        if odd:
            words.append(f"{len(odd)} of {len(items)} items said: " + "; ".join(
                f"{i['item']}: {i['detail']}" if i["item"] else i["detail"] for i in odd[:6]))
    named = {role: tuple(label for i in items for label in i.get("named", {}).get(role, []))
             for role in ("beyond", "not shown")}
    return Verdict(outcome, "; ".join(words), named["beyond"], named["not shown"])


def moved(change, plan):
    """experiments.manipulation.moved, imported when first needed (it needs torch; the verdicts
    need not)."""
    from experiments.manipulation import moved as moved_beyond_round_off
    return moved_beyond_round_off(change, plan)


def threshold(plan):
    from experiments.manipulation import threshold as smallest_move
    return smallest_move(plan)


def _held_unless(failed: list, detail_if_failed: str, detail: str = "") -> Verdict:
    """An invariant's verdict: held, or refuted naming what failed."""
    if failed:
        return Verdict(outcomes.REFUTED, detail_if_failed, tuple(str(f) for f in failed), ())
    return Verdict(outcomes.HELD, detail, (), ())


def as_verdict(control) -> Verdict:
    """A planted-effect control's outcome as a claim's verdict."""
    return Verdict(control.outcome, control.detail, (), ())


# --- the study sentence (the seed's replication) ---------------------------------------------

def baseline(m, plan) -> Verdict:
    """Every block but the exempt ones has the tested pair's cosine above the comparison pair's:
    each block a comparison (above: within the claim; below: against it), the universal rule."""
    first, second = (p.label for p in m.prompt.pairs[:2])
    a, b = m.clean_cosine[first], m.clean_cosine[second]
    n = len(a)
    exempt = {{"first": 0, "last": n - 1}[name] for name in plan.baseline_exempt_blocks}
    judged = [L for L in range(n) if L not in exempt]
    outcome = outcomes.every_unit_within([WITHIN if a[L] > b[L] else BEYOND for L in judged])
    below = [L for L in range(n) if not a[L] > b[L]]
    detail = (f"{first} above {second} at {n - len(below)} of {n} blocks; below at {below} (exempt: "
              f"{sorted(exempt)}); last block before the final norm: {m.last_block_before_norm[first]:.3f} vs "
              f"{m.last_block_before_norm[second]:.3f}")
    return Verdict(outcome, detail, tuple(f"L{L:02d}" for L in below if L not in exempt), ())


def per_head(m, plan, layer: int, head: int) -> Verdict:
    """Head h of block L on the study sentence: the silencing moved the token's vector beyond
    round-off (else not established: nothing the readout sees was silenced), and moved the
    tested pair's cosine at block L by at most the per-head bound."""
    label = f"L{layer:02d}-H{head:02d}"
    if not moved(m.token_change[layer, head], plan):
        return Verdict(outcomes.NOT_ESTABLISHED,
                       f"the silencing moved the token's vector by {m.token_change[layer, head]:.1e} (relative), "
                       f"not beyond {threshold(plan):.0e}: it did nothing measurable", (), (label,))
    delta = float(m.deltas(m.prompt.tested.label)[layer, head])
    bound = plan.max_abs_delta_per_head
    if abs(delta) > bound:
        return Verdict(outcomes.REFUTED, f"silencing {label} moved {m.prompt.tested.label} by {delta:+.4f}, "
                                         f"beyond ±{bound}", (label,), ())
    return Verdict(outcomes.HELD, "", (), ())


def per_block(m, plan, layer: int) -> Verdict:
    """The seed's one-sample t-test of block L's per-head differences: not significant at alpha / n_blocks."""
    deltas = m.deltas(m.prompt.tested.label)[layer]
    t, p = one_sample_t(deltas)
    level = plan.alpha / m.n_layers
    if p < level:
        return Verdict(outcomes.REFUTED, f"block {layer}: heads shift {m.prompt.tested.label} by "
                                         f"{np.mean(deltas):+.2e} on average, t = {t:.2f}, p = {p:.2e} < {level:.2e}",
                       (f"L{layer:02d}",), ())
    return Verdict(outcomes.HELD, "", (), ())


def block_rows(deltas, plan) -> list:
    """The per-block table of the study sentence: each block's heads' differences as the sample."""
    return unit_table(deltas, [(L, None) for L in range(deltas.shape[0])], plan, label="blocks")


def seed_verdict(blocks) -> Verdict:
    """No block's t-test survives Bonferroni over blocks (metrics.outcomes.none_flagged)."""
    significant = [r for r in blocks if r.significant]
    words = ", ".join(f"{r.label} {r.mean:+.4f} {r.interval()} ({r.verdict})" for r in significant)
    return Verdict(outcomes.none_flagged([r.significant for r in blocks]),
                   f"{len(significant)} of {len(blocks)} blocks significant" + (f": {words}" if words else ""),
                   tuple(r.label for r in significant), ())


def block_means(deltas, plan) -> Verdict:
    """Every block's mean head difference lies within ±SESOI: a number without sampling error."""
    return bound_verdict(np.asarray(deltas).mean(1), [f"L{L:02d}" for L in range(len(deltas))], bound=plan.sesoi,
                         what="blocks")


# --- the population (the primary claims) ------------------------------------------------------

def head_keys(n_layers: int, n_heads: int) -> list:
    return [(L, h) for L in range(n_layers) for h in range(n_heads)]


def head_samples(deltas, templates) -> tuple[np.ndarray, list]:
    """deltas [n_layers, n_heads, n_sentences] -> ([heads, n_templates] template means, templates)."""
    deltas = np.asarray(deltas)
    return cluster_means(deltas.reshape(-1, deltas.shape[-1]), templates)


def head_rows(samples, keys, plan) -> list:
    """The per-head table across templates at ±SESOI."""
    return unit_table(samples, keys, plan, label="heads")


def primary(heads, plan) -> Verdict:
    """Every head's mean change across templates lies within ±SESOI (TOST; refuted by a head
    shown beyond), with what the refuting test could see."""
    return within_verdict(heads, plan, bound=plan.sesoi, what="heads", note=detectable_note(heads, plan, "head"))


def macroscopic(samples, keys, plan) -> Verdict:
    """Every head's mean change across templates lies within the per-head bound."""
    bound = plan.max_abs_delta_per_head
    rows = unit_table(samples, keys, plan, sesoi=bound, label="heads-bound")
    return within_verdict(rows, plan, bound=bound, what="heads")


def sentence_shares(deltas, templates, keys, plan) -> list:
    """Per head, each template's share of sentences moved beyond ±SESOI, tested across templates
    at ±sentence_share."""
    moved_beyond = (np.abs(np.asarray(deltas)) > plan.sesoi).reshape(len(keys), -1).astype(np.float64)
    shares, _ = cluster_means(moved_beyond, templates)
    return unit_table(shares, keys, plan, sesoi=plan.sentence_share, label="heads-share")


def sentence_share(rows, plan) -> Verdict:
    """No head moves the association beyond ±SESOI on more than the plan's share of sentences."""
    return within_verdict(rows, plan, bound=plan.sentence_share,
                          what=f"heads (share of a template's sentences moved beyond ±{plan.sesoi:g})")


def control(samples, rows, plan, family: str, test: str = "sesoi"):
    """The planted-effect control of a family (experiments/analysis.planted_control)."""
    return planted_control(samples, rows, plan, family=family, test=test)


def manipulation_on_prompt(chunk, index: int, plan) -> Verdict:
    """Every head whose ablation gives it another value moved the token of sentence `index`
    beyond round-off."""
    k = chunk.indices.index(index)
    replaced, acted = moved(chunk.value_change[:, :, k], plan), moved(chunk.token_change[:, :, k], plan)
    still = [f"L{L:02d}-H{h:02d}" for L, h in np.argwhere(replaced & ~acted)]
    return _held_unless(still, f"{chunk.ablation} ablation did not move the token of sentence {index} beyond "
                               f"{threshold(plan):.0e} (relative): {still[:10]}")


def two_shards_agree(swept_as_prompt, swept_alone, bound: float = 1e-6) -> Verdict:
    """The study sentence swept in a padded batch of prompts equals it swept alone (the engine's bound)."""
    diff = float(np.abs(np.asarray(swept_as_prompt) - np.asarray(swept_alone)).max())
    return _held_unless([f"{diff:.2e}"] if diff > bound else [],
                        f"the prompt shard and the study shard disagree by {diff:.2e}")


# --- the scale ladder ---------------------------------------------------------------------------

def scale_rows(cos, plan, label: str) -> list:
    """Per block, an intervention's change of the cosine across its test sentences."""
    keys = [(L, None) for L in range(cos.shape[0])]
    return unit_table(np.asarray(cos, dtype=np.float64), keys, plan, label=label)


def nothing_before_block(part, kind: str, index: int) -> Verdict:
    """An intervention confined to block L leaves every earlier block's output exactly unchanged."""
    ripple = np.asarray(part.ripple)
    earlier = [L for L in range(ripple.shape[0]) if not np.all(ripple[L, :L] == 0)]
    return _held_unless(earlier, f"{kind}, test sentence {index}: blocks before the intervened one changed, "
                                 f"for {earlier}")


def moves_own_block(measurement, plan) -> Verdict:
    """An intervention confined to block L moves block L's cosine beyond round-off on some sentence."""
    ripple = measurement.ripple
    still = [L for L in range(ripple.shape[0]) if not moved(ripple[L, L].abs().max(), plan)]
    return _held_unless(still, f"{measurement.kind}: the intervened block's cosine did not move beyond "
                               f"{threshold(plan):.0e} at blocks {still}")


def positive_control(rows, plan) -> Verdict:
    """Skipping a block's update at the token is shown beyond ±SESOI at more than the plan's share."""
    return share_verdict(rows, plan, share=plan.skip_block_control, bound=plan.sesoi, what="blocks")


def top_k_moved(measurement, plan) -> Verdict:
    """The top-k heads silenced together move the last block's cosine on every test sentence."""
    unmoved = [(k, p) for i, k in enumerate(measurement.ks) for p in range(measurement.cos.shape[1])
               if not moved(measurement.cos[i, p].abs(), plan)]
    return _held_unless(unmoved, f"(k, prompt) whose last block did not move: {unmoved}")


def batched_equals_sweep(measurement, swept, bound: float = 1e-5) -> Verdict:
    """"top head @ token" by batched hooks equals the sweep's number for that head."""
    want = np.stack([swept[L, h] for L, h in enumerate(measurement.top_heads)])
    diff = float(np.abs(measurement.cos.double().numpy() - want).max())
    return _held_unless([f"{diff:.2e}"] if diff > bound else [], f"the two routes differ by {diff:.2e} > {bound}")


def ioi_fixed_points(chunk, bound: float = 1e-5) -> Verdict:
    """Patching nothing gives the recipient's logit difference, patching every head the donor's."""
    scale = max(1.0, float(np.abs(chunk.clean).max()), float(np.abs(chunk.donor).max()))
    failed = []
    if np.abs(chunk.nothing - chunk.clean).max() > bound * scale:
        failed.append("patching nothing changed the logit difference")
    if np.abs(chunk.everything - chunk.donor).max() > bound * scale:
        failed.append("patching every head at the last position did not reproduce the donor")
    return _held_unless(failed, "; ".join(failed))
