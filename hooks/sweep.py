"""`sweep`: every single-head intervention of a model at one token, as one tensor.

    states = sweep(model, input_ids, token=4)          # [n_layers, n_heads, seq, d_model]
    states[L, h]  ==  hidden_states[L + 1] of a forward pass inside silence(model, L, h, 4)

`token` may also be several positions of one prompt (a leading axis, one entry per
position), or one position per prompt of a padded batch (a leading axis, one entry per
prompt); `values=` / `donor_ids=` put given vectors or a donor prompt's head outputs in
place of the zeros. Each entry of that leading axis is a JOB (prompt row, token column).

engine="naive" is the reference: each prompt cut out of its batch alone, one plain hooked
forward pass per (job, layer, head). engine="fast" gives the same numbers (to float32
rounding) from far less work, because editing head h of block L at token t changes
nothing before block L's output projection, and nothing at positions < t anywhere:

- One clean forward pass of the whole batch (padded prompts numbered from 0 each, so each
  row is its prompt's own clean pass; for readout="block", which needs no cache, the real
  tokens only, packed into one row: hooks/blocks.clean_run(packed=True)).
- readout="block": per block L only the part of block L after its output projection, at
  each job's token, for all jobs and heads at once (hooks/blocks.tail; with every head
  swept, the projection of each edited row costs only its head's rows of the weight).
  Every other position of hidden_states[L+1] is the clean one.
- readout="final": the block-L rows of "block" are block L's output at positions t..
  (t edited, the rest clean); per job they then run through blocks L+1.. at that prompt's
  positions t.. only, reusing its clean keys/values of positions < t
  (hooks/blocks.Resumer; sliding-window layers too: the mask of each layer's kind limits
  what a query sees). Rows of all requested layers travel together ("wavefront"):
  block k runs once on the rows of every layer < k, so each block's weights are used in
  one large batch, not one per (L, h).

Each fast computation carries one clean row beside the edited ones; if that row does not
reproduce the clean pass (a family whose block the Architecture row describes wrongly),
the fast engine warns and falls back to the naive one. A padded batch is also checked
against its most padded prompt run alone (for readout="block", a copy of it packed in front
of the others in the same pass, hooks/blocks.packing; else: a warning, and each prompt is
swept alone).
"""
from __future__ import annotations

import dataclasses
import numbers
import warnings
from dataclasses import dataclass
from typing import Sequence

import torch

from hooks import allocation
from hooks.ablate import ablate
from hooks.architectures import get_attribute, layout_of
from hooks.blocks import Resumer, clean_run, tail, why_not_resumable
from hooks.padding import check_mask, check_token, spans
from hooks.precision import within_bound
from hooks.silence import silence
from hooks.values import head_values, plain_clean_pass

READOUTS = ("block", "final")
ENGINES = ("fast", "naive")


@dataclass(frozen=True)
class Request:
    """One checked sweep: what to compute, for which (prompt row, token column) jobs."""

    input_ids: torch.Tensor          # [B, S]
    mask: torch.Tensor               # bool [B, S]: True at real tokens
    spans: list                      # per prompt (start, end): its real tokens are columns start..end-1
    jobs: list                       # (row, token column), one per entry of the result's leading axis
    readout: str
    layers: list
    heads: list
    positions: list                  # columns of input_ids to return
    complement: bool
    values: torch.Tensor | None      # [n_jobs, n_layers, n_heads, head_dim]; None: zeros (or the donor's)
    donor_ids: torch.Tensor | None   # [B, S]: each job's values come from its clean run at (row, token)

    @property
    def padded(self) -> bool:
        return not bool(self.mask.all())


def _is_int(v) -> bool:
    """An int, a numpy integer or a 0-d integer tensor (not a bool)."""
    if isinstance(v, torch.Tensor):
        return v.ndim == 0 and not v.is_floating_point() and v.dtype != torch.bool
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _as_int(v, what: str) -> int:
    if not _is_int(v):
        raise ValueError(f"{what} {v!r} must be an integer")
    return int(v)


def _jobs(token, batch: int, seq: int, prompt_spans: list) -> tuple[list, bool]:
    """`token` as jobs [(row, column)], and whether the result loses its leading axis."""
    if _is_int(token):
        if batch != 1:
            raise ValueError(f"input_ids must have shape [1, seq] for one token position; got [{batch}, {seq}] "
                             f"({batch} prompts): pass token as a LongTensor of shape [{batch}], one position "
                             "per prompt")
        jobs, squeeze = [(0, _as_int(token, "token position"))], True
    else:
        if isinstance(token, torch.Tensor) and token.ndim != 1:
            raise ValueError(f"token has shape {list(token.shape)}: pass an int, a sequence of positions of one "
                             f"prompt, or a LongTensor [{batch}] with one position per prompt")
        try:
            items = list(token)
        except TypeError:
            raise ValueError(f"token={token!r}: pass an integer position, or a sequence of them") from None
        tokens = [_as_int(t, "token position") for t in items]
        if not tokens:
            raise ValueError("token=[] selects nothing: pass a position or at least one in a sequence")
        if batch == 1:
            twice = sorted({t for t in tokens if tokens.count(t) > 1})
            if twice:
                raise ValueError(f"token positions {twice} appear more than once in token={tokens}: "
                                 "pass each position once")
            jobs = [(0, t) for t in tokens]
        elif len(tokens) != batch:
            raise ValueError(f"token has {len(tokens)} positions but input_ids holds {batch} prompts: "
                             f"pass one position per prompt, a LongTensor of shape [{batch}]")
        else:
            jobs = list(enumerate(tokens))
        squeeze = False
    for b, t in jobs:
        check_token(b, t, prompt_spans[b], seq)
    return jobs, squeeze


def _request(layout, input_ids, *, token, readout, engine, layers, heads, positions, complement, values,
             donor_ids, attention_mask) -> tuple[Request, bool]:
    if readout not in READOUTS:
        raise ValueError(f"readout={readout!r}: use one of {READOUTS}")
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: use one of {ENGINES}")
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2:
        shape = list(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must have shape [1, seq] (one prompt) or [batch, seq] (a padded batch, with "
                         f"attention_mask); got {shape}")
    batch, seq = input_ids.shape
    mask = check_mask(input_ids, attention_mask)
    prompt_spans = spans(mask)
    jobs, squeeze = _jobs(token, batch, seq, prompt_spans)
    layers = list(range(layout.n_layers)) if layers is None else [int(v) for v in layers]
    heads = list(range(layout.n_heads)) if heads is None else [int(v) for v in heads]
    positions = list(range(seq)) if positions is None else [int(v) for v in positions]
    for name, chosen in (("layers", layers), ("heads", heads), ("positions", positions)):
        if not chosen:
            raise ValueError(f"{name}=[] selects nothing: pass None (all) or at least one index")
    for L in layers:
        layout.check(L, 0)
    for h in heads:
        layout.check(0, h)
    for p in positions:
        if not 0 <= p < seq:
            raise ValueError(f"position {p} is out of range for an input of {seq} tokens")
    if complement and layout.n_heads < 2:
        raise ValueError("complement=True silences all heads but one; this model has 1 head per block")
    if values is not None and donor_ids is not None:
        raise ValueError("values= and donor_ids= both say what replaces a head: pass one of them")
    if complement and (values is not None or donor_ids is not None):
        raise ValueError("values= / donor_ids= replace single heads; they cannot be combined with complement=True")
    if values is not None:
        if not isinstance(values, torch.Tensor) or not values.is_floating_point():
            raise ValueError(f"values={type(values).__name__}: pass a float tensor (see hooks.values)")
        per_head = (layout.n_layers, layout.n_heads, layout.head_dim)
        if tuple(values.shape) == per_head:
            values = values.expand(len(jobs), *per_head)
        elif tuple(values.shape) != (len(jobs), *per_head):
            raise ValueError(f"values has shape {list(values.shape)}; pass {list(per_head)} (one head_dim vector per "
                             f"layer and head) or {[len(jobs), *per_head]} (one such set per token position/prompt)")
        values = values.to(input_ids.device)
    if donor_ids is not None:
        if not isinstance(donor_ids, torch.Tensor) or tuple(donor_ids.shape) != tuple(input_ids.shape):
            shape = list(donor_ids.shape) if isinstance(donor_ids, torch.Tensor) else type(donor_ids).__name__
            raise ValueError(f"donor_ids has shape {shape} but input_ids has {list(input_ids.shape)}: a donor must "
                             "have the same shape, token for token (pad donor and prompt to one length; they "
                             "share attention_mask)")
        donor_ids = donor_ids.to(input_ids.device)
    request = Request(input_ids, mask, prompt_spans, jobs, readout, layers, heads, positions, complement,
                      values, donor_ids)
    return request, squeeze


def _job_values(model, req: Request) -> torch.Tensor | None:
    """[n_jobs, n_layers, n_heads, head_dim] that replace the heads (None: zeros)."""
    if req.donor_ids is None:
        return req.values
    donor = head_values(model, req.donor_ids, req.mask if req.padded else None)
    rows, tokens = zip(*req.jobs)
    return donor[list(rows), list(tokens)]


def _empty(model, req: Request) -> torch.Tensor:
    """The result, NaN everywhere (padding columns stay NaN): [n_jobs, layers, heads, positions, d]."""
    d = model.config.hidden_size
    shape = (len(req.jobs), len(req.layers), len(req.heads), len(req.positions), d)
    return allocation.empty(shape, device=req.input_ids.device).fill_(float("nan"))


def _each_prompt_alone(model, layout, req: Request, engine) -> torch.Tensor:
    """Run `engine(model, layout, request)` on each prompt cut out of the batch (no padding,
    columns renumbered from 0); the result's columns in a prompt's padding stay NaN."""
    out = _empty(model, req)
    for b in sorted({row for row, _ in req.jobs}):
        start, end = req.spans[b]
        picked = [j for j, (row, _) in enumerate(req.jobs) if row == b]
        cols = [i for i, p in enumerate(req.positions) if start <= p < end]
        if not cols:
            continue                      # every requested column is padding in this prompt
        alone = dataclasses.replace(
            req, input_ids=req.input_ids[b:b + 1, start:end], mask=req.mask[b:b + 1, start:end],
            spans=[(0, end - start)], jobs=[(0, req.jobs[j][1] - start) for j in picked],
            positions=[req.positions[i] - start for i in cols],
            values=None if req.values is None else req.values[picked],
            donor_ids=None if req.donor_ids is None else req.donor_ids[b:b + 1, start:end])
        got = engine(model, layout, alone)
        for k, j in enumerate(picked):
            out[j][:, :, cols] = got[k]
    return out


def _sites(layout, L, h, token, complement):
    """The sites of entry [L, h]: head h alone, or every head of block L but h."""
    if complement:
        return [(L, g, token) for g in range(layout.n_heads) if g != h]
    return [(L, h, token)]


@torch.no_grad()
def _naive(model, layout, req: Request) -> torch.Tensor:
    """The reference: per job, the prompt alone, one plain hooked forward pass per (layer, head)."""
    if req.input_ids.shape[0] != 1 or req.padded:
        return _each_prompt_alone(model, layout, req, _naive)
    values = _job_values(model, req)
    rows = []
    for j, (_, t) in enumerate(req.jobs):
        for L in req.layers:
            for h in req.heads:
                if values is not None:
                    edit = ablate(model, L, h, t, value=values[j, L, h])
                else:
                    edit = silence(model, sites=_sites(layout, L, h, t, req.complement))
                with edit:
                    states = model(req.input_ids, output_hidden_states=True).hidden_states
                picked = states[L + 1] if req.readout == "block" else states[-1]
                rows.append(picked[0, req.positions])
    out = torch.stack(rows).float()
    return out.view(len(req.jobs), len(req.layers), len(req.heads), len(req.positions), -1)


# Rows x positions that the "final" wavefront pushes through a block at once; more rows
# than this are split into groups of layers (each group re-reads the later blocks'
# weights once). 4096 keeps the largest intermediate (GPT-2 Large's MLP, 4 x 1280 wide)
# near 100 MB.
MAX_TOKENS = 4096


def _close(fast: torch.Tensor, clean: torch.Tensor) -> bool:
    """The sweep's exactness bound (hooks/precision.py) in the dtype the model ran in."""
    return within_bound(fast, clean, clean.dtype)


def _fallback(why: str) -> None:
    warnings.warn(f"sweep(engine='fast'): {why}; using the naive engine for it", RuntimeWarning, stacklevel=3)


@torch.no_grad()
def _padding_is_invisible(model, layout, req: Request, run) -> bool:
    """Does the padded clean pass give the most padded prompt's own clean pass (its columns)?

    The probe rows below only compare the engine with the padded pass; this checks the
    padded pass itself (position ids, masks) against a prompt run alone: a packed pass
    carries that prompt's pass alone (its copy packed first, clean_run's `reference`), a
    padded one pays one forward pass of one prompt.
    """
    if run.reference is not None:
        b, alone = run.reference
    else:
        b, alone = min(range(len(req.spans)), key=lambda r: req.spans[r][1] - req.spans[r][0]), None
    start, end = req.spans[b]
    if alone is None:
        base = get_attribute(model, layout.arch.blocks.rsplit(".", 1)[0])
        alone = base(req.input_ids[b:b + 1, start:end], output_hidden_states=True, use_cache=False).hidden_states
    return all(_close(batched[b, start:end], own[0]) for batched, own in zip(run.hidden, alone))


@torch.no_grad()
def _fast(model, layout, req: Request, keep: dict | None = None) -> torch.Tensor:
    """The fast engine (module docstring); keep["run"] gets its clean pass where the sweep is
    measured against it (after the padding check), for sweep_and_clean."""
    if req.readout == "final" and (why := why_not_resumable(model, layout)):
        _fallback(why)
        return _naive(model, layout, req)
    # "block" needs no cache, so a padded batch's clean pass runs its real tokens packed into one
    # row (no FLOPs on padding; checked against the most padded prompt alone just below).
    run = clean_run(model, layout, req.input_ids, cache=req.readout == "final",
                    attention_mask=req.mask if req.padded else None, packed=req.readout == "block")
    if req.padded and not _padding_is_invisible(model, layout, req, run):
        _fallback("the padded batch does not reproduce its most padded prompt run alone (position ids?); "
                  "sweeping each prompt alone instead")
        return _each_prompt_alone(model, layout, req, _fast)
    if keep is not None:
        keep["run"] = run

    values = _job_values(model, req)
    device = run.hidden[0].device
    rows, tokens = (torch.tensor(v, device=device) for v in zip(*req.jobs))
    edited_outputs, unreproduced = {}, []
    for L in sorted(set(req.layers)):
        edited, probe = tail(model, layout, run, L, req.heads, (rows, tokens), req.complement,
                             values=None if values is None else values[:, L])
        if not _close(probe, run.block_out[L][rows[0], tokens[0]]):
            unreproduced.append(L)
        edited_outputs[L] = edited                  # [n_jobs, len(heads), d]

    pos = torch.tensor(req.positions, device=device)
    if req.readout == "block":
        return _block_readout(model, layout, req, run, edited_outputs, unreproduced, pos)
    out = _empty(model, req)
    if unreproduced:
        _fallback(f"the re-run tail of block(s) {unreproduced} does not reproduce the clean pass")
        return _naive(model, layout, req)
    if not _final_readout(model, layout, req, run, edited_outputs, out, pos):
        _fallback("the re-run blocks do not reproduce the clean pass")
        return _naive(model, layout, req)
    return out


def _block_readout(model, layout, req, run, edited_outputs, unreproduced, pos) -> torch.Tensor:
    """out[j, i] = hidden_states[L+1] of job j's prompt, its token edited, L = layers[i].

    Every head's entry is the clean pass but at the token, so the result (the largest tensor
    of a sweep: 1.2 GB for 24 prompts of 14 columns on the GPT-2 Large shape) is written once,
    from the clean states with NaN in each prompt's padding, then the token columns."""
    n = layout.n_layers
    final_norm = get_attribute(model, layout.arch.final_norm)
    device = pos.device
    rows = torch.tensor([b for b, _ in req.jobs], device=device)
    starts, ends = (torch.tensor(v, device=device)[rows] for v in zip(*req.spans))
    padding = (pos < starts[:, None]) | (pos >= ends[:, None])                       # [n_jobs, positions]
    clean = torch.stack([run.hidden[L + 1][rows][:, pos] for L in req.layers], 1).float()
    clean.masked_fill_(padding[:, None, :, None], float("nan"))                      # [n_jobs, layers, positions, d]
    out = allocation.empty((*clean.shape[:2], len(req.heads), *clean.shape[2:]), device=device)
    out.copy_(clean[:, :, None].expand_as(out))
    done = []
    for i, L in enumerate(req.layers):
        if L in unreproduced:
            _fallback(f"the re-run tail of block {L} does not reproduce the clean pass")
            out[:, i] = _naive(model, layout, dataclasses.replace(req, layers=[L]))[:, 0]
        else:
            done.append(i)
    if not done:
        return out
    # hidden_states[n] is normed: the last block's rows go through the final norm.
    layers = [req.layers[i] for i in done]
    at_t = torch.stack([edited_outputs[L] if L + 1 < n else final_norm(edited_outputs[L]) for L in layers], 1)
    # One write of every token column: job j's token is column c of the result (each such c).
    tokens = torch.tensor([t for _, t in req.jobs], device=device)
    j, c = (pos[None, :] == tokens[:, None]).nonzero(as_tuple=True)
    out[j[:, None], torch.tensor(done, device=device)[None, :], :, c[:, None]] = at_t[j].float()
    return out


def _final_readout(model, layout, req, run, edited_outputs, out, pos) -> bool:
    """Fill out[j, i] = the final hidden states of job j's prompt with L = layers[i] edited
    at its token; False if a clean probe row does not reproduce the clean pass."""
    n = layout.n_layers
    final_norm = get_attribute(model, layout.arch.final_norm)
    rows_of = {L: [i for i, v in enumerate(req.layers) if v == L] for L in edited_outputs}
    for j, (b, t) in enumerate(req.jobs):
        start, end = req.spans[b]
        before, after = (pos >= start) & (pos < t), (pos >= t) & (pos < end)
        out[j][:, :, before] = run.hidden[-1][b, pos[before]].float()
        resumer = Resumer(model, layout, run, b, t)
        job_outputs = {L: rows[j] for L, rows in edited_outputs.items()}
        for group in _groups(sorted(edited_outputs), len(req.heads), end - t):
            final = _wavefront(resumer, final_norm, run, job_outputs, group, n)
            if final is None:
                return False
            for (L, lo, hi), y in final:
                for i in rows_of[L]:
                    out[j, i, lo:hi][:, after] = y[:, pos[after] - t].float()
    return True


def _groups(layers: list[int], n_heads: int, q: int):
    """Split the (layer, heads lo:hi) rows into groups of at most MAX_TOKENS // q rows."""
    per_group = max(2, MAX_TOKENS // q) - 1        # one row of every group is the clean probe
    group, size = [], 0
    for L in layers:
        for lo in range(0, n_heads, per_group):
            hi = min(n_heads, lo + per_group)
            if size + hi - lo > per_group:
                yield group
                group, size = [], 0
            group.append((L, lo, hi))
            size += hi - lo
    if group:
        yield group


def _wavefront(resumer, final_norm, run, edited_outputs, group, n):
    """Run one group's rows from their block to the final norm; None if the probe fails.

    edited_outputs[L]: [len(heads), d], block L's edited output at the resumer's token.
    """
    first = group[0][0]
    # Row 0 is a clean probe that enters with the group's first rows.
    x = resumer.window(run.block_out[first])
    entering = {}
    for L, lo, hi in group:
        entering.setdefault(L, []).append((lo, hi))
    spans = []                                   # ((L, lo, hi), row range in x)
    for k in range(first, n):
        for lo, hi in entering.get(k, ()):
            rows = resumer.window(run.block_out[k]).expand(hi - lo, -1, -1).clone()
            rows[:, 0] = edited_outputs[k][lo:hi]         # block k's output: only position t changed
            spans.append(((k, lo, hi), (x.shape[0], x.shape[0] + hi - lo)))
            x = torch.cat([x, rows])
        if k + 1 < n:
            x = resumer.block(k + 1, x)
    y = final_norm(x)
    if not _close(y[0], resumer.window(run.hidden[-1])[0]):
        return None
    return [(key, y[a:b]) for key, (a, b) in spans]


def sweep(model: torch.nn.Module, input_ids: torch.Tensor, token: int | Sequence[int] | torch.Tensor,
          readout: str = "block", *, layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
          positions: Sequence[int] | None = None, engine: str = "fast", complement: bool = False,
          values: torch.Tensor | None = None, donor_ids: torch.Tensor | None = None,
          attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """All single-head interventions at `token`: float32 [len(layers), len(heads), len(positions), d_model].

    readout="block": entry [i, j] is block layers[i]'s output (hidden_states[L+1]) when head
    heads[j] of that block is silenced at `token`; readout="final": the last entry of
    hidden_states (after the final norm) of that same silenced forward pass.

    token: an int (one prompt, input_ids [1, seq]); a sequence of positions of that one
    prompt (the result gains a leading axis, entry k for token[k]); or, for a batch
    input_ids [B, seq] (B > 1), a LongTensor [B] with one position per prompt (leading axis
    of B, entry b = prompt b swept at token[b] alone). No position may appear twice.

    attention_mask [B, seq] (1 = real token, 0 = padding, left or right): each prompt is
    swept exactly as if it were alone (position ids counted from its first real token).
    token, positions and the result's position axis are COLUMNS of input_ids (as in the
    model's hidden_states for the padded batch); result columns in a prompt's padding are
    NaN. `token` must not be a padding column.

    engine="fast" (default) and engine="naive" agree to float32 rounding (max|diff| <=
    1e-5 * max(1, max|naive|) per entry [..., i, j]), for every family in
    hooks/architectures.py, sliding-window layers included. The fast engine uses the naive
    one, always with a RuntimeWarning that says why, where it cannot be exact:
    readout="final" on a model whose blocks cannot be re-entered mid-sequence (bidirectional
    attention, an attention kind other than full or sliding-window), and wherever its clean
    check row fails to reproduce the clean pass.

    complement=True silences every head of the block EXCEPT heads[j] instead (a
    macroscopic intervention the study uses as a positive control).

    values [n_layers, n_heads, head_dim] (or [len(token), n_layers, n_heads, head_dim], one
    set per entry of the leading axis; float, units of the head outputs): head h of block L
    is REPLACED by values[..., L, h] at the token instead of zeroed (mean and resample
    ablation; see hooks.values).

    donor_ids [B, seq], the same shape as input_ids (and the same attention_mask): head h of
    block L at the token takes its value from the donor's clean run at the same column
    (activation patching).

    values= and donor_ids= are not combinable with each other or with complement=True.
    """
    return _sweep(model, input_ids, token, readout, None, engine=engine, layers=layers, heads=heads,
                  positions=positions, complement=complement, values=values, donor_ids=donor_ids,
                  attention_mask=attention_mask)[0]


def _sweep(model, input_ids, token, readout, keep: dict | None, **options) -> tuple[torch.Tensor, Request]:
    """(sweep(), its checked request); keep (a dict, or None) gets the fast engine's clean pass
    under "run" where the sweep is measured against it."""
    layout = layout_of(model)
    req, squeeze = _request(layout, input_ids, token=token, readout=readout, **options)
    out = _naive(model, layout, req) if options["engine"] == "naive" else _fast(model, layout, req, keep)
    return (out[0] if squeeze else out), req


@dataclass(frozen=True)
class CleanPass:
    """The clean forward pass of a sweep's input_ids (padding columns NaN), float32:

    hidden: hidden_states, n_layers + 1 tensors [B, S, d] (the embeddings, every block's
            output, the last after the final norm);
    heads:  [B, S, n_layers, n_heads, head_dim], every head's output (hooks.head_values);
    from_sweep: True where these are the fast engine's own clean pass (no extra forward pass),
            False where one plain forward pass of the batch computed them (engine="naive", or
            a fast sweep that had to run each prompt alone)."""

    hidden: tuple
    heads: torch.Tensor
    from_sweep: bool


def _clean_from_run(layout, req: Request, run) -> CleanPass:
    padding = ~req.mask
    hidden = tuple(h.float().masked_fill(padding[..., None], float("nan")) for h in run.hidden)
    heads = torch.stack(run.heads_in, 2).float().view(*req.mask.shape, layout.n_layers, layout.n_heads,
                                                       layout.head_dim)
    return CleanPass(hidden, heads.masked_fill(padding[..., None, None, None], float("nan")), True)


def sweep_and_clean(model: torch.nn.Module, input_ids: torch.Tensor, token, readout: str = "block", *,
                    layers=None, heads=None, positions=None, engine: str = "fast", complement: bool = False,
                    values=None, donor_ids=None, attention_mask=None) -> tuple[torch.Tensor, CleanPass]:
    """`sweep(...)` (the same arguments and result) and the clean pass it is measured against
    (CleanPass): what a caller needs to read each silencing as a change from clean, without a
    second forward pass.

    The fast engine hands over its own clean pass (for a padded batch with readout="block",
    the packed one that its padding check compared with a prompt run alone); it equals the
    plain padded forward pass to the sweep's bound. Elsewhere one plain forward pass of the
    batch computes it."""
    keep: dict = {}
    out, req = _sweep(model, input_ids, token, readout, keep, engine=engine, layers=layers, heads=heads,
                      positions=positions, complement=complement, values=values, donor_ids=donor_ids,
                      attention_mask=attention_mask)
    if "run" in keep:
        return out, _clean_from_run(layout_of(model), req, keep["run"])
    return out, CleanPass(*plain_clean_pass(model, req.input_ids, req.mask), from_sweep=False)
