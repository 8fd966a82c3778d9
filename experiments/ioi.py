"""Head patching on indirect-object identification (IOI): does copying one head's output at
the last position from the donor (names swapped) into the recipient move the answer?

    pairs = generate_pairs(tokenizer, n=100, seed=0)          # experiments/ioi_templates.py
    run = run_ioi(model, pairs)                                # IOIRun
    run.clean    [n_pairs]                      logit(IO) - logit(S) at the last position, recipient
    run.donor    [n_pairs]                      the same two tokens' difference on the donor
    run.patched  [n_layers, n_heads, n_pairs]   recipient with head h of block L at the last
                                                position taken from the donor's clean run
    run.change   [n_layers, n_heads, n_pairs]   patched - clean

Two steps, kept apart so that the engine producing the patched states can be swapped:
  1. `per_head_final_states`: the final hidden state (after the final norm) at the last
     position, one per patched (layer, head). engine="naive" is the reference: plain hooked
     forward passes (hooks.ablate with the donor's head output, several (layer, head) as
     batch rows of one pass). engine="fast" is hooks.sweep with the donor's head outputs as
     replacement values (readout="final", positions=[final]), exact to the same bound.
  2. `logit_difference`: the model's LM head on those states, IO's logit minus S's.
Units: logits (nats of unnormalised log-probability); a positive difference prefers IO.
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Sequence

import torch

from hooks import ablate, capture_heads, layout_of, sweep
from experiments.ioi_templates import IOIPair

ENGINES = ("naive", "fast")
# Batch rows of one plain patched forward pass: each row carries one (layer, head) patch.
ROWS_PER_PASS = 32


def _device(model) -> torch.device:
    return next(model.parameters()).device


def as_ids(ids, device=None) -> torch.Tensor:
    """Token ids as a LongTensor [1, seq] (accepts a list/tuple of ints or a [1, seq] tensor)."""
    ids = torch.as_tensor(ids, dtype=torch.long, device=device)
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
        raise ValueError(f"token ids must have shape [1, seq] (one prompt); got {list(ids.shape)}")
    return ids


def _check_pair_ids(recipient_ids: torch.Tensor, donor_ids: torch.Tensor, final: int) -> None:
    if donor_ids.shape != recipient_ids.shape:
        raise ValueError(f"donor_ids has shape {list(donor_ids.shape)} but recipient_ids has "
                         f"{list(recipient_ids.shape)}: the donor must be the same prompt length "
                         "(build pairs with experiments.ioi_templates.make_pair, which checks it)")
    seq = recipient_ids.shape[1]
    if not isinstance(final, int) or not 0 <= final < seq:
        raise ValueError(f"final position {final!r} is out of range for prompts of {seq} tokens: "
                         f"pass a position in 0..{seq - 1} (usually the last, {seq - 1})")


@torch.no_grad()
def final_states(model, input_ids: torch.Tensor, position: int = -1) -> torch.Tensor:
    """The last hidden state (after the final norm) at `position`: [batch, d_model], float32."""
    return model.base_model(input_ids).last_hidden_state[:, position].float()


@torch.no_grad()
def logit_difference(model, states: torch.Tensor, correct_id, other_id) -> torch.Tensor:
    """logit(correct) - logit(other) from final hidden states [..., d_model] -> [...].

    The logits are the model's LM head applied to `states` (what the model computes from its
    last hidden state; a model that caps its logits is refused). correct_id, other_id: ints,
    or LongTensors broadcastable to `[...]`.
    """
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap is not None:
        # Gemma-2-style models squash the LM head's output; reading the head alone would give
        # logits the model never produces.
        raise ValueError(f"this model caps its final logits (final_logit_softcapping={cap}); logit_difference "
                         "reads the LM head alone and would be wrong: use a model without capping")
    head = model.get_output_embeddings()
    states = states.to(head.weight.dtype)

    def logit_of(ids) -> torch.Tensor:
        # Only the two rows of the LM head that are read: the same numbers as the whole
        # head's output at those ids, without computing the other vocabulary's logits.
        ids = torch.as_tensor(ids, device=states.device).expand(states.shape[:-1])
        logit = (states * head.weight[ids]).sum(-1)
        if getattr(head, "bias", None) is not None:
            logit = logit + head.bias[ids]
        return logit.float()

    return logit_of(correct_id) - logit_of(other_id)


@torch.no_grad()
def clean_logit_differences(model, pairs: Sequence[IOIPair]) -> tuple[torch.Tensor, torch.Tensor]:
    """(recipient, donor) logit(IO) - logit(S) at the last position, each [n_pairs].

    Read from the model's own output logits (one forward pass per prompt length). The donor's
    difference uses the RECIPIENT's name tokens, so a model that does IOI gives recipient > 0
    and donor < 0.
    """
    device = _device(model)
    out = torch.empty(2, len(pairs))
    by_length = defaultdict(list)
    for i, pair in enumerate(pairs):
        by_length[len(pair.recipient_ids)].append(i)
    for rows in by_length.values():
        correct = torch.tensor([pairs[i].correct_id for i in rows], device=device)
        other = torch.tensor([pairs[i].other_id for i in rows], device=device)
        for k, side in enumerate(("recipient_ids", "donor_ids")):
            ids = torch.tensor([getattr(pairs[i], side) for i in rows], device=device)
            logits = model(ids, logits_to_keep=1).logits[:, -1].float()
            diff = logits.gather(-1, correct[:, None])[:, 0] - logits.gather(-1, other[:, None])[:, 0]
            out[k, rows] = diff.cpu()
    return out[0], out[1]


@torch.no_grad()
def donor_head_values(model, donor_ids, position: int) -> torch.Tensor:
    """Every head's output on the donor's clean run at `position`: [n_layers, n_heads, head_dim]."""
    donor_ids = as_ids(donor_ids, _device(model))
    with capture_heads(model) as seen:
        model.base_model(donor_ids)
    return torch.stack([heads[0, position] for _, heads in seen])


@torch.no_grad()
def patch_final_states(model, recipient_ids, donor_ids, final: int,
                       patches: Sequence[Sequence[tuple[int, int]]], rows_per_pass: int = ROWS_PER_PASS
                       ) -> torch.Tensor:
    """Final hidden states of the recipient at `final`, one per patch: [len(patches), d_model], float32.

    Patch k is a list of (layer, head): in row k, each of those heads at position `final`
    takes the value it has in the donor's clean run (all of them at once; [] = the clean
    recipient). Plain hooked forward passes of up to `rows_per_pass` rows, one patch per row.
    """
    device = _device(model)
    recipient_ids, donor_ids = as_ids(recipient_ids, device), as_ids(donor_ids, device)
    _check_pair_ids(recipient_ids, donor_ids, final)
    if not isinstance(rows_per_pass, int) or rows_per_pass < 1:
        raise ValueError(f"rows_per_pass={rows_per_pass!r}: pass an int >= 1")
    layout = layout_of(model)
    for patch in patches:
        for L, h in patch:
            layout.check(L, h)
    values = donor_head_values(model, donor_ids, final)
    out = []
    for start in range(0, len(patches), rows_per_pass):
        chunk = patches[start:start + rows_per_pass]
        with ExitStack() as stack:
            for row, patch in enumerate(chunk):
                heads_of = defaultdict(list)
                for L, h in patch:
                    heads_of[L].append(h)
                for L, heads in heads_of.items():
                    stack.enter_context(ablate(model, L, heads, final, value=values[L, heads], rows=[row]))
            out.append(final_states(model, recipient_ids.expand(len(chunk), -1), final))
    if not out:
        return torch.empty(0, model.config.hidden_size)
    return torch.cat(out)


@torch.no_grad()
def per_head_final_states(model, recipient_ids, donor_ids, final: int, *, layers: Sequence[int] | None = None,
                          heads: Sequence[int] | None = None, engine: str = "naive",
                          rows_per_pass: int = ROWS_PER_PASS) -> torch.Tensor:
    """Single-head donor patches at `final`: [len(layers), len(heads), d_model], float32.

    Entry [i, j] is the recipient's final hidden state at `final` when head heads[j] of block
    layers[i] takes its donor value there (None: every layer / head). engine="naive": plain
    hooked forward passes (patch_final_states); engine="fast": hooks.sweep with the donor's
    head outputs as `values`; the two agree to 1e-5 * max(1, max|naive|).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: use one of {ENGINES}")
    layout = layout_of(model)
    layers = list(range(layout.n_layers)) if layers is None else [int(v) for v in layers]
    heads = list(range(layout.n_heads)) if heads is None else [int(v) for v in heads]
    if not layers or not heads:
        raise ValueError("layers=[] or heads=[] selects nothing: pass None (all) or at least one index")
    device = _device(model)
    recipient_ids, donor_ids = as_ids(recipient_ids, device), as_ids(donor_ids, device)
    _check_pair_ids(recipient_ids, donor_ids, final)
    if engine == "fast":
        values = donor_head_values(model, donor_ids, final)
        states = sweep(model, recipient_ids, final, "final", layers=layers, heads=heads, positions=[final],
                       values=values)
        return states[:, :, 0]
    patches = [[(L, h)] for L in layers for h in heads]
    states = patch_final_states(model, recipient_ids, donor_ids, final, patches, rows_per_pass)
    return states.view(len(layers), len(heads), -1)


@dataclass
class IOIRun:
    """Logit differences logit(IO) - logit(S) at the last position, per pair; see the module docstring."""

    pairs: list
    layers: list
    heads: list
    engine: str
    clean: torch.Tensor      # [n_pairs]
    donor: torch.Tensor      # [n_pairs]
    patched: torch.Tensor    # [len(layers), len(heads), n_pairs]

    @property
    def change(self) -> torch.Tensor:
        """patched - clean: [len(layers), len(heads), n_pairs] (negative: the head carried IO)."""
        return self.patched - self.clean


@torch.no_grad()
def run_ioi(model, pairs: Sequence[IOIPair], *, layers: Sequence[int] | None = None,
            heads: Sequence[int] | None = None, engine: str = "naive", rows_per_pass: int = ROWS_PER_PASS,
            progress=None) -> IOIRun:
    """Patch every (layer, head) at the last position of every pair; logit differences of all.

    progress: optional callable(done, total) after each pair.
    """
    if not pairs:
        raise ValueError("pairs=[]: pass at least one IOIPair (experiments.ioi_templates.generate_pairs)")
    layout = layout_of(model)
    layers = list(range(layout.n_layers)) if layers is None else [int(v) for v in layers]
    heads = list(range(layout.n_heads)) if heads is None else [int(v) for v in heads]
    clean, donor = clean_logit_differences(model, pairs)
    patched = torch.empty(len(layers), len(heads), len(pairs))
    for k, pair in enumerate(pairs):
        states = per_head_final_states(model, pair.recipient_ids, pair.donor_ids, pair.final, layers=layers,
                                       heads=heads, engine=engine, rows_per_pass=rows_per_pass)
        patched[:, :, k] = logit_difference(model, states, pair.correct_id, pair.other_id).cpu()
        if progress is not None:
            progress(k + 1, len(pairs))
    return IOIRun(list(pairs), layers, heads, engine, clean, donor, patched)


IOI_CHUNK = 10            # pairs per shard of a run (experiments/shards.py)


def chunk_label(indices) -> str:
    return f"I{indices[0]:03d}-I{indices[-1]:03d}"


@dataclass(frozen=True)
class IOIChunk:
    """Some pairs of the run, measured (logit differences, logits; numpy arrays).

    clean, donor [k]; patched [n_layers, n_heads, k]; nothing / everything [k]: the logit
    difference with no head patched, and with every head of every block patched at the last
    position (the method's two fixed points: the recipient's, and the donor's).
    """

    indices: tuple
    clean: object
    donor: object
    patched: object
    nothing: object
    everything: object


@torch.no_grad()
def measure_chunk(model, pairs: Sequence[IOIPair], indices, engine: str = "fast") -> IOIChunk:
    """run_ioi on the chunk's pairs, plus the two fixed points of the method per pair."""
    chosen = [pairs[i] for i in indices]
    run = run_ioi(model, chosen, engine=engine)
    layout = layout_of(model)
    every = [(L, h) for L in range(layout.n_layers) for h in range(layout.n_heads)]
    ends = []
    for pair in chosen:
        states = patch_final_states(model, pair.recipient_ids, pair.donor_ids, pair.final, [[], every])
        ends.append(logit_difference(model, states, pair.correct_id, pair.other_id).cpu())
    ends = torch.stack(ends)
    return IOIChunk(tuple(indices), run.clean.double().numpy(), run.donor.double().numpy(),
                    run.patched.double().numpy(), ends[:, 0].double().numpy(), ends[:, 1].double().numpy())
