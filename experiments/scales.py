"""Interventions of growing scale at the silenced token, on the test part of the prompt set,
measured with the same readouts: where does the effect appear as the intervention grows?
Per test sentence, the kinds at the token are one shard of a run, the positive control's kind
another (with the top-k rows in its pass) and the every-token kind a third (experiments/shards.py).

Per block L (one intervention confined to block L, at the token unless said otherwise):

    top head @ token      the block's head with the largest |mean Δ| across prompts (microscopic)
    top head @ every token  the same head silenced at every position
    all heads @ token     every head of block L silenced at the token
    update x1.5 / x0.5 / x0   block L's update of the residual stream scaled at the token
                              (hooks.scale_block; x0 = the block skipped at the token)

and across blocks (multi-point): the top-k heads of the whole model by single-head |mean Δ|,
silenced together at the token, for k in the analysis plan's top_k.

Readouts of each (intervention, prompt), all against a clean row of the SAME batched forward
pass (so batch-size rounding cancels):
    cos     cosine(tested pair) at block L's output, minus clean      ([n_layers, n_prompts])
    ripple  the same at EVERY block's output                          ([n_layers, n_blocks, n_prompts])
    logprob log p(second word's last token | its prefix), minus clean, nats
    kl      KL(clean || ablated) of the next-token distribution at the last position, nats
Top-k rows read the cosine at the last block's output (heads from many blocks are involved).

The prompts are split by the analysis plan (scale_test_prompts): the interventions are
measured on the first ones; the "top" heads are chosen on the others (`select_heads`), so
no prompt both selects and confirms.

Cost: one batched forward pass per prompt for all the kinds at the token (n_layers rows per
kind, the top-k rows, + 1 clean row: `measure_kinds`), one more for the every-token kind; every block's
intervention rides in its own batch row (the hooks' `rows`). engine="fast" (default)
runs that pass as hooks.resumed_pass does: row L only from block L on (before, it is the
clean row), and, for the kinds at the token, only at positions token.. (before, every row
is clean); about a quarter of the plain pass's work on SmolLM2's test sentences. One row
(the last block's, WITNESS) runs every block, so that "nothing changes before its block"
stays a computed fact on the real model. engine="naive" is the plain batched pass, the
reference; both agree to the engine's bound (hooks/precision.py). The top-k rows resume the
same way, each from the first block it silences.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments.question import Prompt
from hooks import ablate, layout_of, resumed_pass, scale_block
from metrics.readouts import cosine_per_block, kl, log_prob_of, next_token_log_probs

# Per block, ordered from the smallest to the largest intervention (the x-axis of scales.png).
KINDS = ("top head @ token", "top head @ every token", "all heads @ token",
         "update x1.5 @ token", "update x0.5 @ token", "update x0 @ token")
# The positive control among them (analysis plan: skip_block_control): the block skipped at the token.
SKIP_BLOCK = KINDS[-1]
# The one kind that edits positions before the token: its rows resume at their block, at every position.
EVERY_TOKEN = KINDS[1]
# measure_kinds's key for the top-k rows it measured in the same pass as the kinds at the token.
TOP_K = "top-k"
# The row that runs every block in the fast ladder (the others start at their own): the last
# block's, which has the most earlier blocks to leave unchanged (claims/scales.py reads them).
WITNESS = -1


def slug(kind: str) -> str:
    """A kind as it appears in shard names and test ids: "update x0 @ token" -> "update-x0-at-token"."""
    return kind.replace(" @ ", " at ").replace(" ", "-")


def _enter(stack: ExitStack, model, kind: str, L: int, token: int, row: int, top_head: int, n_heads: int):
    if kind == "top head @ token":
        stack.enter_context(ablate(model, L, top_head, token, rows=[row]))
    elif kind == "top head @ every token":
        stack.enter_context(ablate(model, L, top_head, None, rows=[row]))
    elif kind == "all heads @ token":
        stack.enter_context(ablate(model, L, range(n_heads), token, rows=[row]))
    else:
        factor = float(kind.split()[1][1:])
        stack.enter_context(scale_block(model, L, factor, token, rows=[row]))


@dataclass(frozen=True)
class Selection:
    """Heads chosen on the selection prompts by their single-head |mean delta| there."""

    top_heads: list          # [n_layers]: the head of each block with the largest |mean delta|
    ranked: list             # every (layer, head), the largest |mean delta| first


def select_heads(head_deltas) -> Selection:
    """head_deltas [n_layers, n_heads, n_selection_prompts] (metrics of the selection prompts only)."""
    effect = torch.as_tensor(head_deltas).mean(-1).abs()
    n_heads = effect.shape[1]
    order = torch.argsort(effect.flatten(), descending=True, stable=True).tolist()
    return Selection(effect.argmax(1).tolist(), [(i // n_heads, i % n_heads) for i in order])


@dataclass(frozen=True)
class ScaleMeasurement:
    """One intervention kind, measured per block on the test prompts (intervened - clean).

    cos [n_layers, n_prompts]: cosine of the tested pair at block L's output;
    ripple [n_layers, n_blocks, n_prompts]: the same read at every block's output;
    logprob, kl [n_layers, n_prompts] nats (see the module docstring).
    """

    kind: str
    top_heads: list
    cos: torch.Tensor
    ripple: torch.Tensor
    logprob: torch.Tensor
    kl: torch.Tensor

    @staticmethod
    def joined(parts: list["ScaleMeasurement"]) -> "ScaleMeasurement":
        """One measurement of the parts' sentences, in order (each part measured some of them;
        every sentence's numbers come from its own batched pass, so joining changes none)."""
        first = parts[0]
        if any(p.kind != first.kind or p.top_heads != first.top_heads for p in parts):
            raise ValueError("joining measurements of different kinds or head selections")
        return ScaleMeasurement(first.kind, first.top_heads, *(torch.cat([getattr(p, name) for p in parts], -1)
                                                              for name in ("cos", "ripple", "logprob", "kl")))


@dataclass(frozen=True)
class TopKMeasurement:
    """The top-k heads silenced together; cosine at the LAST block's output [len(ks), n_prompts]."""

    ks: tuple
    sites: list
    cos: torch.Tensor
    logprob: torch.Tensor
    kl: torch.Tensor

    @staticmethod
    def empty(n_prompts: int) -> "TopKMeasurement":
        """No row: no k of the plan has that many heads (a model smaller than the plan's ks)."""
        return TopKMeasurement((), [], *(torch.zeros(0, n_prompts) for _ in range(3)))

    @staticmethod
    def joined(parts: list["TopKMeasurement"]) -> "TopKMeasurement":
        """One measurement of the parts' sentences, in order (each from its own batched pass)."""
        first = parts[0]
        if any(p.ks != first.ks or p.sites != first.sites for p in parts):
            raise ValueError("joining top-k measurements of different ks or heads")
        return TopKMeasurement(first.ks, first.sites, *(torch.cat([getattr(p, name) for p in parts], -1)
                                                        for name in ("cos", "logprob", "kl")))


@torch.no_grad()
def deltas(model, prompt: Prompt, states) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The readouts of one batched pass of n edited copies of the prompt + one clean row (the
    last): hidden_states (n_blocks + 1 tensors [n + 1, seq, d]) -> Δcos per block [n, n_blocks],
    Δlogprob [n] (nats) and KL [n] (nats), all against the clean row, on the CPU."""
    pair, n = prompt.tested, states[0].shape[0] - 1
    cos = cosine_per_block(states, pair.i, pair.j).cpu()
    j, last = pair.j, len(prompt.tokens.ids) - 1
    logp = next_token_log_probs(model, states[-1], [j - 1, last]).cpu()
    lp = log_prob_of(logp[:, 0], prompt.tokens.ids[j])
    return cos[:n] - cos[n], lp[:n] - lp[n], kl(logp[n:, 1], logp[:n, 1])


@torch.no_grad()
def _batched(model, prompt: Prompt, starts: list[int], token: int | None, install,
             engine: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`deltas` of one forward pass of len(starts) copies of the prompt + one clean row, as
    hooks.resumed_pass runs it (starts, token: its promise about the rows' interventions;
    install(stack, r, row, offset) enters row r's on batch row `row`, positions shifted by
    `offset`)."""
    ids = torch.tensor([prompt.tokens.ids], device=next(model.parameters()).device)
    return deltas(model, prompt, resumed_pass(model, ids, token, starts, install, engine))


@torch.no_grad()
def measure_kind(model, prompts: list[Prompt], kind: str, selection: Selection,
                 engine: str = "fast") -> ScaleMeasurement:
    """One kind on every test prompt: per prompt one batched pass, block L's intervention in
    row L (engine: "fast", the resumed pass, or "naive", the plain one; module docstring)."""
    return measure_kinds(model, prompts, [kind], selection, engine)[kind]


def _passes(kinds) -> list[list[str]]:
    """The kinds that share one resumed pass per prompt: every kind at the token together (the
    same promise: nothing changes before the token), the every-token kind alone."""
    at_token = [k for k in kinds if k != EVERY_TOKEN]
    return [group for group in (at_token, [k for k in kinds if k == EVERY_TOKEN]) if group]


@torch.no_grad()
def measure_kinds(model, prompts: list[Prompt], kinds, selection: Selection, engine: str = "fast",
                  ks=None) -> dict:
    """Several kinds on every test prompt, {kind: ScaleMeasurement}: per prompt ONE batched
    pass for all the kinds at the token (`_passes`; kind i's block-L intervention in row
    i * n_layers + L), so they share its clean pass and each block runs once on all their
    rows; the same numbers as measure_kind of each kind, to the engine's bound.

    ks (unless None): the top-k heads of `selection.ranked` silenced together, for each k
    (`top_k_rows`), in that same pass (after the kinds' rows, each resumed from the first block it silences), under
    the key TOP_K: a TopKMeasurement. A pass of its own costs a prompt's weights read twice more
    (a clean pass and the resumed one) for a few rows: on SmolLM2 the top-k shard was the run's
    largest, 2.4 s for 8 sentences, nearly all of it reading weights."""
    kinds = list(kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad or len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds={kinds}: use each of {KINDS} at most once")
    layout = layout_of(model)
    nL, nH = layout.n_layers, layout.n_heads
    if any(p.tested.j == 0 for p in prompts):
        raise ValueError("the tested pair's second word is the first token: there is no log-prob to read")
    top_k = ks is not None
    ks, sites, k_starts = top_k_rows(selection, ks) if top_k else ((), [], [])
    # Block L's intervention changes nothing before block L, and (but for EVERY_TOKEN) nothing
    # before the token; each kind's WITNESS row starts at block 0 all the same.
    starts = list(range(nL))
    starts[WITNESS] = 0
    passes = _passes(kinds)
    if ks and all(group == [EVERY_TOKEN] for group in passes):
        passes.insert(0, [])                      # the top-k rows alone, at the token
    per = {k: [] for k in kinds}
    top = []
    for p in prompts:
        for group in passes:
            at_token = group != [EVERY_TOKEN]
            kind_rows = nL * len(group)

            def install(stack, r, row, offset, p=p, group=group, kind_rows=kind_rows):
                if r >= kind_rows:
                    for L, h in sites[:ks[r - kind_rows]]:
                        stack.enter_context(ablate(model, L, h, p.token - offset, rows=[row]))
                    return
                L = r % nL
                _enter(stack, model, group[r // nL], L, p.token - offset, row, selection.top_heads[L], nH)

            rows = starts * len(group) + (k_starts if at_token else [])
            cos, lp, kl_ = _batched(model, p, rows, p.token if at_token else None, install, engine)
            for i, k in enumerate(group):
                part = slice(i * nL, (i + 1) * nL)
                per[k].append((cos[part], lp[part], kl_[part]))
            if ks and at_token:
                top.append((cos[kind_rows:, -1], lp[kind_rows:], kl_[kind_rows:]))
    out = {}
    for k in kinds:
        ripple = torch.stack([c for c, _, _ in per[k]], -1)                          # [nL, n_blocks, P]
        out[k] = ScaleMeasurement(k, list(selection.top_heads), torch.stack([ripple[L, L] for L in range(nL)]),
                                  ripple, torch.stack([lp for _, lp, _ in per[k]], -1),
                                  torch.stack([x for _, _, x in per[k]], -1))
    if top_k:
        out[TOP_K] = TopKMeasurement(ks, sites, *(torch.stack([t[i] for t in top], -1) for i in range(3))) if ks \
            else TopKMeasurement.empty(len(prompts))
    return out


def top_k_rows(selection: Selection, ks) -> tuple[tuple, list, list]:
    """(the ks there are heads for, the sites [(layer, head), ...] of the largest, each k's first
    silenced block): row r silences the first ks[r] heads of `selection.ranked`."""
    ks = tuple(k for k in ks if k <= len(selection.ranked))
    sites = selection.ranked[:max(ks, default=0)]
    return ks, sites, [min(L for L, _ in sites[:k]) for k in ks]


@torch.no_grad()
def measure_top_k(model, prompts: list[Prompt], ks, selection: Selection, engine: str = "fast") -> TopKMeasurement:
    """The top-k heads of `selection.ranked` silenced together at the token, for each k: per
    prompt one batched pass, row r silencing the first ks[r] heads (engine "fast": each row
    resumed from the first block it silences, at positions token.. only; "naive": the plain
    pass). A run measures them in the ladder's pass of the kinds at the token (measure_kinds)."""
    return measure_kinds(model, prompts, [], selection, engine, ks)[TOP_K]
