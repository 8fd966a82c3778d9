"""`resumed_pass`: one batched hooked forward pass of copies of one prompt, each row with its
own interventions, that re-runs only what those interventions can change.

    def install(stack, r, row, offset):            # row r's hooks, on batch row `row`
        stack.enter_context(ablate(model, r, 3, 4 - offset, rows=[row]))     # head 3 of block r at token 4

    states = resumed_pass(model, ids, token=4, starts=[0, 1, 2], install=install)
    # == model.base_model(ids.expand(4, -1), output_hidden_states=True).hidden_states with
    #    install(stack, r, r, 0) entered for each row r < 3, the last row clean

engine="naive" is exactly that plain pass. engine="fast" gives the same numbers (to the
engine's bound, hooks/precision.py) from less work, on a promise of the caller: row r's
interventions change nothing before block starts[r], and (token not None) nothing at
positions < token. Then row r is clean before block starts[r], and every position < token
is clean in every row, so no row runs there:

- One clean forward pass of the prompt alone (hooks/blocks.clean_run), which keeps every
  block's input and every layer's keys and values.
- A wavefront over columns token.. (every column if token is None), as the sweep's readout
  "final" (hooks/blocks.Resumer: the clean keys/values of the columns before, each layer's
  own mask kind and rotary table): block k runs once, on the rows with starts[r] <= k; row r
  enters at block starts[r] with that block's clean input, and its hooks fire there and
  later.

A clean probe row enters with the first rows and runs every block after; it is the clean
row returned, and a row is a copy of it before its start block, so its difference from the
clean row there is exactly 0 by construction (a caller that wants that invariant tested
lets a row start at block 0). If the probe does not reproduce the clean pass to the bound,
or the model cannot be re-entered mid-sequence (hooks/blocks.why_not_resumable), the fast
engine warns (RuntimeWarning, with the reason) and runs the naive pass.
"""
from __future__ import annotations

import warnings
from contextlib import ExitStack
from typing import Callable, Sequence

import torch

from hooks.architectures import get_attribute, layout_of
from hooks.blocks import Resumer, clean_run, why_not_resumable
from hooks.precision import within_bound

ENGINES = ("fast", "naive")


def _check(layout, input_ids, token, starts, engine) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: use one of {ENGINES}")
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2 or input_ids.shape[0] != 1:
        shape = list(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids has shape {shape}: pass ONE prompt, a LongTensor [1, seq] (its copies are "
                         "the batch)")
    seq = input_ids.shape[1]
    if token is not None and not (isinstance(token, int) and 0 <= token < seq):
        raise ValueError(f"token={token!r}: pass a position in 0..{seq - 1}, or None when the interventions may "
                         "change any position")
    bad = [s for s in starts if not (isinstance(s, int) and 0 <= s < layout.n_layers)]
    if bad:
        raise ValueError(f"starts={list(starts)}: pass one block in 0..{layout.n_layers - 1} per edited row, "
                         f"not {bad}")


def resumed_pass(model: torch.nn.Module, input_ids: torch.Tensor, token: int | None, starts: Sequence[int],
                 install: Callable, engine: str = "fast") -> tuple[torch.Tensor, ...]:
    """hidden_states of ONE forward pass of len(starts) + 1 copies of input_ids [1, seq]: a
    tuple of n_layers + 1 tensors [len(starts) + 1, seq, d] (the embeddings, every block's
    output, the last after the final norm, as transformers lists them); row r < len(starts)
    carries row r's interventions, the last row is clean.

    install(stack, r, row, offset) enters row r's interventions (context managers such as
    hooks.ablate / hooks.scale_block) into the ExitStack, on batch row `row` (their rows=[row])
    and with every position shifted by `offset` (a hook's token t becomes t - offset: the
    hooks see columns offset.. only). naive: row == r, offset == 0.

    starts[r]: the first block whose computation row r's interventions change. token: the
    first position they change (None: any position may change; then only blocks are skipped).
    """
    layout = layout_of(model)
    starts = list(starts)
    _check(layout, input_ids, token, starts, engine)
    if engine == "fast" and starts:
        why = why_not_resumable(model, layout)
        states = None if why else _fast(model, layout, input_ids, token, starts, install)
        if states is not None:
            return states
        why = why or "the clean probe row of the resumed blocks does not reproduce the clean pass"
        warnings.warn(f"resumed_pass(engine='fast'): {why}; using the plain hooked pass", RuntimeWarning,
                      stacklevel=2)
    return _naive(model, input_ids, starts, install)


@torch.no_grad()
def _naive(model, input_ids, starts, install) -> tuple[torch.Tensor, ...]:
    """The plain hooked pass of every row at every block and position: the reference."""
    with ExitStack() as stack:
        for r in range(len(starts)):
            install(stack, r, r, 0)
        out = model.base_model(input_ids.expand(len(starts) + 1, -1), output_hidden_states=True)
    return tuple(out.hidden_states)


@torch.no_grad()
def _fast(model, layout, input_ids, token, starts, install) -> tuple[torch.Tensor, ...] | None:
    """The wavefront (module docstring); None if its clean probe row misses the clean pass."""
    n, rows = layout.n_layers, len(starts)
    run = clean_run(model, layout, input_ids, cache=True)
    offset = 0 if token is None else token
    resumer = Resumer(model, layout, run, 0, offset)
    # Batch rows in the order the rows enter; batch row 0 is the clean probe.
    order = sorted(range(rows), key=lambda r: starts[r])
    batch_row = {r: i + 1 for i, r in enumerate(order)}
    first = min(starts)
    outs = {}                                             # block k -> its output [1 + rows entered, W, d]
    with ExitStack() as stack:
        for r in range(rows):
            install(stack, r, batch_row[r], offset)
        x = resumer.window(run.block_in[first])           # the probe
        for k in range(first, n):
            entering = starts.count(k)
            if entering:
                x = torch.cat([x, resumer.window(run.block_in[k]).expand(entering, -1, -1)])
            x = resumer.block(k, x)
            outs[k] = x
    outs[n - 1] = get_attribute(model, layout.arch.final_norm)(outs[n - 1])   # hidden_states[n] is normed
    dtype = run.hidden[0].dtype
    if not all(within_bound(outs[k][0], resumer.window(run.hidden[k + 1])[0], dtype) for k in outs):
        return None

    states = [run.hidden[0].expand(rows + 1, -1, -1)]
    for k in range(n):
        state = run.hidden[k + 1].expand(rows + 1, -1, -1).clone()
        if k in outs:
            # Each row's own batch row once it has entered, the probe's before (and for the clean row).
            picked = torch.tensor([batch_row[r] if starts[r] <= k else 0 for r in range(rows)] + [0],
                                  device=state.device)
            state[:, offset:] = outs[k][picked]
        states.append(state)
    return tuple(states)
