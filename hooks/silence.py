"""`silence`: zero one (or several) attention heads at one token position.

    with silence(model, layer=5, head=3, token=4):
        out = model(input_ids)

A forward pre-hook on block `layer`'s attention output projection zeroes columns
head*head_dim:(head+1)*head_dim of its input at sequence position `token`, for every
batch row and every forward pass inside the `with`. Nothing else is touched. Leaving the
`with` removes the hooks, also when the forward pass raises.
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import ExitStack, contextmanager
from typing import Iterable, Iterator, NamedTuple

import torch

# Silencing is ablation with zeros: hooks/ablate.py owns the one forward pre-hook (pre_hooks),
# and this module only builds on it.
from hooks.ablate import ablate, check_position
from hooks.architectures import layout_of


class Site(NamedTuple):
    """One place to silence: head `head` of block `layer` at sequence position `token`."""

    layer: int
    head: int
    token: int

    @property
    def label(self) -> str:
        return f"L{self.layer:02d}-H{self.head:02d}-T{self.token}"


def as_sites(layer=None, head=None, token=None, sites: Iterable | None = None) -> list[Site]:
    """Normalise the two call forms of `silence` into a list of Sites."""
    single = (layer, head, token)
    if sites is None:
        if any(v is None for v in single):
            raise TypeError("silence() needs layer, head and token, or sites=[(layer, head, token), ...]")
        return [Site(layer, head, token)]
    if any(v is not None for v in single):
        raise TypeError("pass either layer/head/token or sites=..., not both")
    out = []
    for s in sites:
        if len(s) != 3:
            raise ValueError(f"site {s!r} must be a (layer, head, token) triple")
        out.append(Site(*s))
    if not out:
        raise ValueError("sites=[] silences nothing: pass at least one (layer, head, token)")
    return out


@contextmanager
def silence(model: torch.nn.Module, layer: int | None = None, head: int | None = None,
            token: int | None = None, *, sites: Iterable | None = None) -> Iterator[list[Site]]:
    """Zero head `head` of block `layer` at position `token` (or every site in `sites`).

    Works for any batch size; every batch row is silenced at the same sites. Raises a
    ValueError naming the bad value for a layer or head that does not exist (at once)
    or a token past the end of the input (at the forward pass).
    """
    layout = layout_of(model)
    site_list = as_sites(layer, head, token, sites)
    heads_at: dict[tuple[int, int], list[int]] = defaultdict(list)
    for site in site_list:
        layout.check(site.layer, site.head)
        if not isinstance(site.token, int) or site.token < 0:
            raise ValueError(f"token position {site.token!r} must be an int >= 0")
        heads_at[site.layer, site.token].append(site.head)
    # Pre-hooks on the same projection chain, so several (layer, token) groups compose.
    with ExitStack() as stack:
        for (L, t), heads in heads_at.items():
            stack.enter_context(ablate(model, L, heads, t))
        yield site_list
