"""Padded batches of prompts: which columns of each row are real tokens, and their positions.

A batch `input_ids[B, S]` with `attention_mask[B, S]` (1 = real token, 0 = padding, as a
tokenizer returns it) holds prompt b in the columns start_b..end_b-1 of row b, padded on
the left (start_b > 0) or on the right (end_b < S). Hugging Face numbers positions by
COLUMN unless it is given `position_ids`, so a left-padded prompt would be run as if its
first token stood at position start_b -- a different forward pass from the prompt alone
(wrong absolute position embedding in GPT-2, wrong rotary angles in Llama).
`position_ids(mask)` numbers each prompt's real tokens 0, 1, 2, ... as if it were alone.
"""
from __future__ import annotations

import torch


def check_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The mask as bool [B, S] (all True for None), or a ValueError naming what is wrong.

    Each row must hold at least one real token, and its real tokens must be one contiguous
    run of columns (padding on the left, on the right, or none).
    """
    if attention_mask is None:
        return torch.ones(input_ids.shape, dtype=torch.bool, device=input_ids.device)
    mask = torch.as_tensor(attention_mask, device=input_ids.device)
    if tuple(mask.shape) != tuple(input_ids.shape):
        raise ValueError(f"attention_mask has shape {list(mask.shape)} but input_ids has {list(input_ids.shape)}: "
                         "pass the mask the tokenizer returned with these input_ids (one 0/1 per token)")
    odd = mask[(mask != 0) & (mask != 1)]
    if odd.numel():
        raise ValueError(f"attention_mask holds {odd.unique()[:5].tolist()}: pass 1 for a real token and 0 for "
                         "padding, nothing else")
    mask = mask.bool()
    for b, row in enumerate(mask):
        real = row.nonzero().flatten()
        if not real.numel():
            raise ValueError(f"attention_mask row {b} is all 0: every prompt needs at least one real token")
        if real[-1] - real[0] + 1 != real.numel():
            raise ValueError(f"attention_mask row {b} is {row.long().tolist()}: its real tokens are not one "
                             "contiguous run; pad on the left or on the right only")
    return mask


def spans(mask: torch.Tensor) -> list[tuple[int, int]]:
    """Per row of a checked bool mask [B, S]: (start, end), its real tokens are columns start..end-1."""
    out = []
    for row in mask:
        real = row.nonzero().flatten()
        out.append((int(real[0]), int(real[-1]) + 1))
    return out


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """LongTensor [B, S]: each real token's position within its own prompt (0 at its first
    token); padding columns get a valid but meaningless position (0 or the last one)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def check_token(b: int, t: int, span: tuple[int, int], seq: int) -> None:
    """Raise a ValueError unless column `t` holds a real token of prompt (row) `b`."""
    if not 0 <= t < seq:
        raise ValueError(f"token position {t} is out of range for an input of {seq} tokens: "
                         f"pass a position in 0..{seq - 1}")
    start, end = span
    if not start <= t < end:
        raise ValueError(f"token position {t} of prompt {b} is in its padding (attention_mask is 0 there; its "
                         f"tokens are columns {start}..{end - 1}): pass the column of one of its real tokens")
