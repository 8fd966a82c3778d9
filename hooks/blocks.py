"""Private helpers of the fast sweep: run PARTS of a model's own blocks.

Nothing here re-implements attention, a norm or an MLP: every computation calls the
model's own submodules, found by the names in the family's `Architecture` row.

    clean_run(model, layout, input_ids, cache)      one clean forward of a batch, plus what the sweep reuses
    tail(model, layout, run, layer, heads, sites)   block `layer`'s output at sites (prompt, token), per edited head
    Resumer(model, layout, run, row, token).block(k, x)   block k on positions token.. of one prompt, many rows at once
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from hooks.architectures import Layout, get_attribute
from hooks.padding import position_ids, spans


@dataclass
class CleanRun:
    """What one clean forward pass of a batch [B, seq] leaves behind for the sweep to reuse."""

    hidden: tuple        # hidden_states of the clean pass, each [B, seq, d]
    block_in: list       # block L's input, [B, seq, d] (hidden[L] for every L)
    block_out: list      # block L's output before any final norm, [B, seq, d]
    heads_in: list       # input of block L's output projection (the heads), [B, seq, width]
    cache: object        # the clean pass's keys/values of every layer and position (a DynamicCache), or None
    spans: list          # per prompt (start, end): its real tokens are columns start..end-1
    position_ids: torch.Tensor   # [B, seq]: each column's position within its own prompt
    packed: bool = False  # the pass ran the real tokens packed into one row (clean_run(packed=True))
    # A packed pass only: (prompt, hidden_states of a copy of that prompt packed FIRST in the same
    # row, [1, its length, d] each). Nothing comes before that copy, so it is the prompt's pass
    # alone; its copy among the others is packed last: the padding check compares the two.
    reference: tuple | None = None


def full_cache():
    """An empty DynamicCache whose layers keep every position (no sliding-window trimming)."""
    from transformers import DynamicCache

    return DynamicCache()


def _first_tensor(args, kwargs, name="hidden_states"):
    return args[0] if args else kwargs[name]


def _as_tensor(out):
    return out[0] if isinstance(out, tuple) else out


def packing(mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(the flat columns (row * seq + column) of a padded batch's real tokens as they are packed
    into one row, the prompt the padding check compares): first a copy of that prompt (the
    first of the shortest, the most padded), then every prompt, longest first and that prompt
    last. The copy in front sees nothing before it, so it is the prompt's pass alone; the one
    at the end sees every other prompt if the pass lets prompts see each other (no packing)."""
    batch, seq = mask.shape
    prompt_spans = spans(mask)
    order = sorted(range(batch), key=lambda r: (prompt_spans[r][0] - prompt_spans[r][1], -r))
    checked = order[-1]
    flat = [r * seq + c for r in [checked] + order for c in range(*prompt_spans[r])]
    return torch.tensor(flat, device=mask.device), checked


def _unpack(x: torch.Tensor, flat: torch.Tensor, padding: torch.Tensor, batch: int, seq: int) -> torch.Tensor:
    """[1, n_real, ...] of a packed pass -> [batch, seq, ...] (padding columns: zeros, never read)."""
    out = x.new_empty(batch * seq, *x.shape[2:])
    out[flat] = x[0]
    out[padding] = 0
    return out.view(batch, seq, *x.shape[2:])


@torch.no_grad()
def clean_run(model, layout: Layout, input_ids: torch.Tensor, cache: bool,
              attention_mask: torch.Tensor | None = None, packed: bool = False) -> CleanRun:
    """One clean forward pass with hooks that record block inputs/outputs and the heads.

    attention_mask: bool [B, seq] of a padded batch (hooks/padding.check_mask), or None (no
    padding). With padding, each prompt is numbered from 0 as if it were alone.

    packed=True (a padded batch without cache): the real tokens only, packed into ONE row
    [1, n_real], each prompt's positions counting from 0 and no attention mask, which
    transformers' masks read as packed sequences (a new prompt wherever the position does not
    go up by one), each attending to itself only. No FLOPs go to padding; what is recorded is
    put back in the batch's columns (padding columns zero). In front of them rides a copy of
    the most padded prompt (`packing`), numbered from 0 as it would be alone, whose
    hidden_states are kept as `reference`: the padding check's prompt alone, without a
    forward pass of its own.
    """
    batch, seq = input_ids.shape
    blocks = layout.blocks(model)
    n = layout.n_layers
    block_in, block_out, heads_in = [None] * n, [None] * n, [None] * n
    handles = []
    try:
        for L in range(n):
            def pre(module, args, kwargs, L=L):
                block_in[L] = _first_tensor(args, kwargs).detach()

            def post(module, args, kwargs, out, L=L):
                block_out[L] = _as_tensor(out).detach()

            def proj_pre(module, args, L=L):
                heads_in[L] = args[0].detach()

            handles.append(blocks[L].register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(blocks[L].register_forward_hook(post, with_kwargs=True))
            handles.append(layout.out_proj(model, L).register_forward_pre_hook(proj_pre))
        base = get_attribute(model, layout.arch.blocks.rsplit(".", 1)[0])   # the model without its LM head
        if attention_mask is None:
            mask = torch.ones(input_ids.shape, dtype=torch.bool, device=input_ids.device)
            positions, padded = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids), {}
        else:
            mask, positions = attention_mask, position_ids(attention_mask)
            padded = dict(attention_mask=mask.long(), position_ids=positions)
        prompt_spans = spans(mask)
        flat, checked = packing(mask) if packed and attention_mask is not None and not cache else (None, None)
        if flat is not None:
            front = prompt_spans[checked][1] - prompt_spans[checked][0]     # columns of the copy in front
            # The copy in front is numbered 0.. as a prompt alone is, whatever position_ids says.
            alone = torch.arange(front, device=positions.device)
            numbered = torch.cat([alone, positions.reshape(-1)[flat[front:]]])
            input_ids, padded = input_ids.reshape(1, -1)[:, flat], dict(position_ids=numbered[None])
        # A DynamicCache built without the config keeps every position of every layer: the
        # one the model would build drops all but the last window of a sliding layer's
        # keys, and the Resumer needs those of positions < token.
        kv = full_cache() if cache else None
        out = base(input_ids, output_hidden_states=True, use_cache=cache, cache=kv, **padded)
    finally:
        for handle in handles:
            handle.remove()
    hidden, reference = tuple(out.hidden_states), None
    if flat is not None:
        reference = (checked, tuple(x[:, :front] for x in hidden))
        padding = (~mask).flatten().nonzero().flatten()
        hidden, block_in, block_out, heads_in = ([_unpack(x[:, front:], flat[front:], padding, batch, seq) for x in kind]
                                                 for kind in (hidden, block_in, block_out, heads_in))
        hidden = tuple(hidden)
    return CleanRun(hidden, block_in, block_out, heads_in, kv, prompt_spans, positions, packed=flat is not None,
                    reference=reference)


def _norm_or_identity(block, name):
    """The block's module at `name` (an optional norm of a family's row), or the identity when the
    family has none."""
    return get_attribute(block, name) if name else (lambda x: x)


@torch.no_grad()
def tail(model, layout: Layout, run: CleanRun, layer: int, heads: list[int], sites: tuple,
         complement: bool = False, values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Block `layer`'s output at each site, with each of `heads` silenced there
    (complement=True: every head of the block BUT that one silenced; values [n_sites,
    n_heads, head_dim]: head h at site i replaced by values[i, h] instead of zeros).

    sites: (rows, tokens), two LongTensors [n_sites]: prompt rows[i] at column tokens[i].
    Returns ([n_sites, len(heads), d]: per site one row per head, [d]: a CLEAN row of site 0,
    nothing edited, that the caller compares with the clean pass to check that this family's
    row in ARCHITECTURES describes its block correctly).

    Why this is exact: silencing head h of block L at token t changes nothing before the
    output projection of block L, and after it only position t (the rest of the block is
    position-wise). So block L's silenced output at t is the clean residual input at t
    plus the re-run of out_proj -> (norm) -> residual -> MLP on the edited head vector
    (a parallel block's MLP reads the unchanged block input: its output is the clean one).
    """
    arch, hd = layout.arch, layout.head_dim
    block = layout.blocks(model)[layer]
    rows, tokens = sites
    # [n_sites, len(heads) + 1, width]: the sites are the batch, their edited copies the "sequence"
    # (everything after the output projection is position-wise, so rows never mix).
    heads_in_site = run.heads_in[layer][rows, tokens][:, None].expand(-1, len(heads) + 1, -1).clone()
    for i, h in enumerate(heads):
        if complement:
            kept = heads_in_site[:, i, h * hd:(h + 1) * hd].clone()
            heads_in_site[:, i] = 0
            heads_in_site[:, i, h * hd:(h + 1) * hd] = kept
        else:
            heads_in_site[:, i, h * hd:(h + 1) * hd] = 0 if values is None else values[:, h].to(heads_in_site.dtype)
    x = run.block_in[layer][rows, tokens][:, None]          # [n_sites, 1, d]: the block's clean input
    # A norm right after the projection (Gemma-2/3, OLMo-2) rescales the projection's round-off
    # as it rescales the projection: there it is computed whole.
    projected = _project(layout.out_proj(model, layer), heads_in_site, run.heads_in[layer][rows, tokens], heads, hd,
                         whole=complement or bool(arch.attn_out_norm))
    attn = _norm_or_identity(block, arch.attn_out_norm)(_rows(projected, len(heads)))
    mid = _rows(x, len(heads)) + attn
    # Parallel blocks feed the MLP the block input, the same for every edited copy: once per site.
    mlp = _as_tensor(get_attribute(block, arch.mlp)(_norm_or_identity(block, arch.mlp_norm)(x if layout.parallel else mid)))
    if layout.parallel:
        mlp = _rows(mlp, len(heads))
    out = (mid + _norm_or_identity(block, arch.mlp_out_norm)(mlp))[0]
    return out[:-1].view(len(rows), len(heads), -1), out[-1]


def _rows(per_site: torch.Tensor, n_edited: int) -> torch.Tensor:
    """[n_sites, n_edited + 1 (or 1: the same for every copy), d] -> [1, n_sites * n_edited + 1, d]:
    every site's edited copies, then ONE clean row, site 0's. Every site's clean row would check
    the same computation, so the others are dropped before the MLP (24 prompts of a padded
    batch, 20 heads: 481 rows through it, not 504)."""
    n_sites, _, d = per_site.shape
    edited = per_site.expand(-1, n_edited + 1, -1)[:, :n_edited].reshape(1, n_sites * n_edited, d)
    return torch.cat([edited, per_site[:1, -1:]], 1)


def _input_major_weight(proj) -> torch.Tensor | None:
    """The output projection's weight as [width, d] (heads_in @ it + bias == proj(heads_in)),
    or None when the module is not a plain nn.Linear or GPT-2's Conv1D."""
    from transformers.pytorch_utils import Conv1D

    if type(proj) is torch.nn.Linear:
        return proj.weight.T                     # nn.Linear stores [out, in]
    if type(proj) is Conv1D:
        return proj.weight                       # Conv1D stores [in, out]
    return None


def _project(proj, heads_in_site, clean, heads, hd, whole: bool) -> torch.Tensor:
    """proj(heads_in_site) for tail's rows [n_sites, len(heads) + 1, width], whose row i < len(heads)
    differs from the clean heads `clean` [n_sites, width] in head heads[i]'s columns only (the
    last row: not at all).

    The projection is linear, so with every head swept once in order (the sweep's default), the
    clean projection is the sum of each head's columns times its rows of the weight, and row i's
    is that plus the change in head i's columns times the same rows: one pass over the weight,
    head_dim x d multiply-adds per edited row instead of width x d (1/20 on the GPT-2 Large
    shape). The clean projection computed so is tail's clean probe row, which the caller checks
    against the clean pass (a weight read the wrong way round fails it). Else, or whole=True
    (complement=True edits every head but one), the projection of every row, whole.
    """
    weight = _input_major_weight(proj)
    n_sites, width = clean.shape
    n_heads = width // hd
    if whole or weight is None or list(heads) != list(range(n_heads)):
        return proj(heads_in_site)
    by_head = clean.view(n_sites, n_heads, hd).transpose(0, 1)                    # [n_heads, n_sites, hd]
    edited = torch.stack([heads_in_site[:, h, h * hd:(h + 1) * hd] for h in heads])
    products = torch.bmm(torch.cat([by_head, edited - by_head], 1), weight.unflatten(0, (n_heads, hd)))
    base = products[:, :n_sites].sum(0) + (0 if proj.bias is None else proj.bias)   # [n_sites, d]
    return torch.cat([base[:, None] + products[:, n_sites:].transpose(0, 1), base[:, None]], 1)


def mask_builders() -> dict:
    """transformers' own mask function for each attention kind a layer can have."""
    from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask

    return {"full_attention": create_causal_mask, "sliding_attention": create_sliding_window_causal_mask}


def why_not_resumable(model, layout: Layout) -> str:
    """'' when Resumer can re-enter every block of `model` mid-sequence, else the reason."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "an encoder-decoder model cannot be resumed block by block"
    if getattr(config, "use_bidirectional_attention", False) or not getattr(config, "is_causal", True):
        return ("this model's attention is bidirectional, so positions before the silenced token "
                "change too and cannot be reused")
    known = mask_builders()
    for k, kind in enumerate(layout.kinds):
        if kind not in known:
            return f"layer {k} has attention kind {kind!r}, which the resumer cannot re-enter (it knows {sorted(known)})"
    return ""


class Resumer:
    """Run the model's own blocks on columns token..end-1 of one prompt (row) of the clean
    batch only, for a batch of rows (edited copies of that prompt).

    Positions < token are identical in the clean and in every silenced pass (nothing
    flows backwards), so their keys/values from the clean pass's cache serve every row:
    each block call gets a fresh cache whose layer k holds the clean keys/values of the
    prompt's columns start..token-1 (broadcast over the rows; padding columns are left out,
    so the prompt is resumed exactly as if it were alone; ALL of them, also in a
    sliding-window layer: the mask, not the cache, limits what a query sees), the mask
    transformers builds for that layer's attention kind (full or sliding window, in the
    format the model's attention implementation wants) and, for rotary families, the
    model's rotary embedding at the prompt's own positions of columns token.. (Gemma-3:
    the one for that layer's kind). Check first with why_not_resumable.
    """

    def __init__(self, model, layout: Layout, run: CleanRun, row: int, token: int):
        self.model, self.layout, self.run = model, layout, run
        self.blocks = layout.blocks(model)
        self.row, self.token = row, token
        self.start, self.end = run.spans[row]
        self.positions = run.position_ids[row:row + 1, token:self.end]
        builders = mask_builders()
        self.masks = [builders[kind] for kind in layout.kinds]
        self.rotary = {}                   # attention kind -> (cos, sin) at the positions resumed
        if layout.arch.rotary:
            rotary = get_attribute(model, layout.arch.rotary)
            x = self.window(run.hidden[0])
            for kind in set(layout.kinds):
                self.rotary[kind] = rotary(x, self.positions, *([kind] if layout.arch.rotary_per_kind else []))

    def window(self, x: torch.Tensor) -> torch.Tensor:
        """The columns this resumer runs, of a clean [B, seq, ...] tensor: [1, end - token, ...]."""
        return x[self.row:self.row + 1, self.token:self.end]

    @torch.no_grad()
    def block(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """x: [rows, end - token, d], the input of block k at columns token.. -> its output."""
        rows = x.shape[0]
        cache = full_cache()
        if self.token > self.start:
            clean = self.run.cache.layers[k]
            keys, values = (c[self.row:self.row + 1, :, self.start:self.token] for c in (clean.keys, clean.values))
            cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), k)
        mask = self.masks[k](config=self.model.config, inputs_embeds=x, attention_mask=None,
                             cache=cache, position_ids=self.positions, layer_idx=k)
        kwargs = {"attention_mask": mask, self.layout.arch.cache_kwarg: cache, "position_ids": self.positions}
        if self.rotary:
            kwargs["position_embeddings"] = self.rotary[self.layout.kinds[k]]
        return _as_tensor(self.blocks[k](x, **kwargs))
