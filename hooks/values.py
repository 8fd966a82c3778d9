"""What replaces a head when it is not zeroed: values read from clean runs of prompts.

    hv    = head_values(model, ids, mask)              # [B, S, n_layers, n_heads, head_dim]
    means = mean_values(model, ids, mask)              # [n_layers, n_heads, head_dim]
    other = resample_values(model, ids, token, mask)   # [B, n_layers, n_heads, head_dim]

    sweep(model, ids, token, values=means, attention_mask=mask)   # mean ablation
    sweep(model, ids, token, values=other, attention_mask=mask)   # resample ablation

A head's value is its slice of the input of its block's attention output projection
(what `silence` zeroes), in float32, in the units of the head outputs. Every value comes
from a clean forward pass of the given prompts, padded batches numbered as if each prompt
were alone (hooks/padding.py).
"""
from __future__ import annotations

from typing import Sequence

import torch

from hooks.ablate import capture_heads
from hooks.architectures import layout_of
from hooks.padding import check_mask, check_token, position_ids, spans


def _check_ids(input_ids: torch.Tensor) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2:
        shape = list(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must be a LongTensor of shape [batch, seq]; got {shape}")


@torch.no_grad()
def head_values(model: torch.nn.Module, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Every head's clean output at every position: float32 [B, S, n_layers, n_heads, head_dim].

    One forward pass of the batch (position ids from the mask); padding columns are NaN.
    """
    return plain_clean_pass(model, input_ids, attention_mask)[1]


@torch.no_grad()
def plain_clean_pass(model: torch.nn.Module, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor | None = None) -> tuple[tuple, torch.Tensor]:
    """(hidden_states as float32 [B, S, d] tensors, every head's output [B, S, n_layers, n_heads,
    head_dim]) of one plain forward pass of the batch, position ids from the mask (each prompt
    numbered as if alone), padding columns NaN."""
    _check_ids(input_ids)
    layout = layout_of(model)
    mask = check_mask(input_ids, attention_mask)
    kwargs = {} if mask.all() else dict(attention_mask=mask.long(), position_ids=position_ids(mask))
    with capture_heads(model) as seen:
        states = model(input_ids, output_hidden_states=True, **kwargs).hidden_states
    assert [L for L, _ in seen] == list(range(layout.n_layers)), "one capture per block expected"
    values = torch.stack([heads for _, heads in seen], dim=2)
    values[~mask] = float("nan")
    return tuple(h.float().masked_fill(~mask[..., None], float("nan")) for h in states), values


def _tokens(token, batch: int) -> list[int]:
    token = torch.as_tensor(token)
    if token.ndim != 1 or len(token) != batch or token.is_floating_point():
        raise ValueError(f"token has shape {list(token.shape)}: pass one integer position per prompt, "
                         f"a LongTensor of shape [{batch}]")
    return [int(t) for t in token]


@torch.no_grad()
def mean_values(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token: torch.Tensor | Sequence[int] | None = None) -> torch.Tensor:
    """Each head's mean clean output over a reference set: float32 [n_layers, n_heads, head_dim].

    token=None: averaged over EVERY real (non-padding) position of every prompt, each
    position weighing the same (a long prompt weighs more). token [B]: averaged over prompt
    b's position token[b] only, one value per prompt (the head's mean at the corresponding
    token, e.g. the silenced word of each prompt).
    """
    values = head_values(model, input_ids, attention_mask)
    mask = check_mask(input_ids, attention_mask)
    if token is None:
        return values[mask].mean(0)
    tokens = _tokens(token, input_ids.shape[0])
    for b, (t, span) in enumerate(zip(tokens, spans(mask))):
        check_token(b, t, span, input_ids.shape[1])
    return values[torch.arange(len(tokens)), torch.tensor(tokens)].mean(0)


def derangement(n: int, seed: int = 0) -> list[int]:
    """A seeded random permutation of 0..n-1 that moves every index (n >= 2)."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=generator).tolist()
        if all(i != j for i, j in enumerate(order)):
            return order


@torch.no_grad()
def resample_values(model: torch.nn.Module, input_ids: torch.Tensor, token: torch.Tensor | Sequence[int],
                    attention_mask: torch.Tensor | None = None, *, sources: Sequence[int] | None = None,
                    seed: int = 0) -> torch.Tensor:
    """For resample ablation: float32 [B, n_layers, n_heads, head_dim]; row b holds every head's
    clean output in ANOTHER prompt of the set, sources[b], at that prompt's token[sources[b]]
    (the corresponding token: e.g. the same word's position in a different sentence).

    sources: which prompt each prompt takes its values from (default: derangement(B, seed),
    a seeded random permutation in which no prompt keeps its own values).
    Pass the result as sweep(..., values=) with the same input_ids, token and mask.
    """
    _check_ids(input_ids)
    batch = input_ids.shape[0]
    if batch < 2:
        raise ValueError(f"resample ablation needs at least 2 prompts (got {batch}): pass a batch of prompts")
    tokens = _tokens(token, batch)
    if sources is None:
        sources = derangement(batch, seed)
    sources = [int(s) for s in sources]
    if len(sources) != batch or not all(0 <= s < batch for s in sources):
        raise ValueError(f"sources={sources}: pass one prompt index in 0..{batch - 1} per prompt ({batch} in all)")
    same = [b for b, s in enumerate(sources) if s == b]
    if same:
        raise ValueError(f"sources[{same[0]}] = {same[0]}: a prompt cannot take its values from itself "
                         "(that is no ablation); pick another prompt, or leave sources=None")
    mask = check_mask(input_ids, attention_mask)
    for b, (t, span) in enumerate(zip(tokens, spans(mask))):
        check_token(b, t, span, input_ids.shape[1])
    values = head_values(model, input_ids, attention_mask)
    return values[torch.tensor(sources), torch.tensor(tokens)[sources]]
