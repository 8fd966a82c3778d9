"""Interventions of growing scale at the silenced token, on a subset of the prompt set,
measured with the same readouts: where does the effect appear as the intervention grows?

Per block L (one intervention confined to block L, at the token unless said otherwise):

    top head @ token      the block's head with the largest |mean Δ| across prompts (microscopic)
    top head @ every token  the same head silenced at every position
    all heads @ token     every head of block L silenced at the token
    update x1.5 / x0.5 / x0   block L's update of the residual stream scaled at the token
                              (hooks.scale_block; x0 = the block skipped at the token)

and across blocks (multi-point): the top-k heads of the whole model by single-head |mean Δ|,
silenced together at the token, for k in TOP_K.

Readouts of each (intervention, prompt), all against a clean row of the SAME batched forward
pass (so batch-size rounding cancels):
    cos     cosine(tested pair) at block L's output, minus clean      ([n_layers, n_prompts])
    ripple  the same at EVERY block's output                          ([n_layers, n_blocks, n_prompts])
    logprob log p(second word's last token | its prefix), minus clean, nats
    kl      KL(clean || ablated) of the next-token distribution at the last position, nats
Top-k rows read the cosine at the last block's output (heads from many blocks are involved).

Cost: one batched forward pass (n_layers + 1 rows) per intervention and prompt; every
block's intervention rides in its own batch row (the hooks' `rows`).
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

import torch

from hooks import ablate, layout_of, scale_block
from metrics.readouts import cosine_per_block, kl, log_prob_of, next_token_log_probs
from experiments.study import Plan

# Per block, ordered from the smallest to the largest intervention (the x-axis of scales.png).
KINDS = ("top head @ token", "top head @ every token", "all heads @ token",
         "update x1.5 @ token", "update x0.5 @ token", "update x0 @ token")
# The macroscopic interventions: positive controls that must be detected.
MACROSCOPIC = KINDS[1:]
TOP_K = (1, 3, 9, 27, 81)
# Prompts used for the interventions of growing scale: the FIRST 8 of the set. The "top"
# heads are chosen on the OTHER prompts, so the heads are not selected and tested on the
# same data (which would bias the single-head rows towards significance). 8 paired prompts
# (7 degrees of freedom) keep the cost -- one batched forward pass per intervention and
# prompt -- near 30 s on 2 CPU cores for SmolLM2.
SCALE_PROMPTS = 8


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


@dataclass
class ScaleRun:
    """Measured changes (intervened - clean), per intervention kind; see the module docstring."""

    kinds: tuple
    top_heads: list                  # [n_layers]: the head used by the "top head" kinds
    cos: dict                        # kind -> [n_layers, n_prompts]
    ripple: dict                     # kind -> [n_layers, n_blocks, n_prompts]
    logprob: dict                    # kind -> [n_layers, n_prompts] nats
    kl: dict                         # kind -> [n_layers, n_prompts] nats
    top_k: tuple = ()
    top_sites: list = field(default_factory=list)   # (layer, head) in rank order
    top_cos: torch.Tensor | None = None             # [len(top_k), n_prompts], last block
    top_logprob: torch.Tensor | None = None
    top_kl: torch.Tensor | None = None


@torch.no_grad()
def _batched(model, plan_: Plan, rows_of) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward pass of `n` copies of the prompt + one clean row (the last).

    rows_of(stack, row) installs the interventions of each row < n. Returns Δcos per block
    [n, n_blocks], Δlogprob [n] and KL [n], all against the clean row.
    """
    n = rows_of.n
    pair = plan_.pairs[0]
    device = next(model.parameters()).device
    ids = torch.tensor([plan_.tokens.ids], device=device).expand(n + 1, -1)
    with ExitStack() as stack:
        for row in range(n):
            rows_of(stack, row)
        out = model.base_model(ids, output_hidden_states=True)
    cos = cosine_per_block(out.hidden_states, pair.i, pair.j).cpu()
    j, last = pair.j, len(plan_.tokens.ids) - 1
    logp = next_token_log_probs(model, out.hidden_states[-1], [j - 1, last]).cpu()
    lp = log_prob_of(logp[:, 0], plan_.tokens.ids[j])
    return cos[:n] - cos[n], lp[:n] - lp[n], kl(logp[n:, 1], logp[:n, 1])


class _Rows:
    def __init__(self, n, fn):
        self.n, self.fn = n, fn

    def __call__(self, stack, row):
        self.fn(stack, row)


@torch.no_grad()
def run_scales(model, plans: list[Plan], head_deltas: torch.Tensor, kinds=KINDS, top_k=TOP_K) -> ScaleRun:
    """head_deltas: [n_layers, n_heads, n_prompts] single-head Δcos (experiments.prompts.PromptRun)
    -- its prompts AFTER the first SCALE_PROMPTS pick each block's top head and the model's
    top-k heads; the interventions are measured on plans[:SCALE_PROMPTS]."""
    layout = layout_of(model)
    nL, nH = layout.n_layers, layout.n_heads
    if any(p.pairs[0].j == 0 for p in plans):
        raise ValueError("the tested pair's second word is the first token: there is no log-prob to read")
    if len(plans) <= SCALE_PROMPTS + 1:
        raise ValueError(f"{len(plans)} prompts: the scales need more than {SCALE_PROMPTS + 1} (the first "
                         f"{SCALE_PROMPTS} to test, the rest to choose the top heads); pass a longer --prompts file")
    effect = head_deltas[:, :, SCALE_PROMPTS:].mean(-1).abs()   # [n_layers, n_heads], selection prompts
    top_heads = effect.argmax(1).tolist()
    order = torch.argsort(effect.flatten(), descending=True, stable=True).tolist()
    top_k = tuple(k for k in top_k if k <= nL * nH)
    top_sites = [(i // nH, i % nH) for i in order[:max(top_k, default=0)]]
    subset = plans[:SCALE_PROMPTS]

    cos, ripple, logprob, kls = {}, {}, {}, {}
    for kind in kinds:
        per = [_batched(model, p, _Rows(nL, lambda stack, L, p=p: _enter(
            stack, model, kind, L, p.token, L, top_heads[L], nH))) for p in subset]
        ripple[kind] = torch.stack([c for c, _, _ in per], -1)                  # [nL, n_blocks, P]
        cos[kind] = torch.stack([ripple[kind][L, L] for L in range(nL)])        # [nL, P]
        logprob[kind] = torch.stack([lp for _, lp, _ in per], -1)
        kls[kind] = torch.stack([k for _, _, k in per], -1)

    top = []
    for p in subset:
        def rows(stack, row, p=p):
            for L, h in top_sites[:top_k[row]]:
                stack.enter_context(ablate(model, L, h, p.token, rows=[row]))
        top.append(_batched(model, p, _Rows(len(top_k), rows)))
    return ScaleRun(tuple(kinds), top_heads, cos, ripple, logprob, kls, top_k, top_sites,
                    torch.stack([c[:, -1] for c, _, _ in top], -1),
                    torch.stack([lp for _, lp, _ in top], -1),
                    torch.stack([k for _, _, k in top], -1))
