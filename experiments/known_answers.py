"""Known-answer models: a real model with planted effects of known size, to show that every
claim of the suite can fail, and fails where the effect was planted.

    planted = plant_head(model, layer=7, head=3, scale=12.0)     # head 3 of block 7, output x12
    effect = silencing_effect(model, prompts, 7, 3)              # [n_prompts], the plain hooked pass
    head = calibrate_head(model, prompts, 7, 3, low=0.013, high=0.019)   # scale found, effect measured
    save_known_answer(model, tokenizer, folder, record)          # a checkpoint `--model folder` runs

Planting scales head h of block L's slice of the attention output projection's INPUT (its
weight columns h*head_dim:(h+1)*head_dim; GPT-2's Conv1D keeps them as rows): the head's
contribution to the residual stream at every position is multiplied by `scale`. Silencing
that head at the token then removes `scale` times its contribution, so the size of what
silencing does is set by `scale`. The size is never assumed: it is measured with the plain
hooked forward pass (hooks.ablate on the real modules), on the sentences the claims test,
and recorded beside the checkpoint (known_answer.json) with the (L, h) drawn and the seed.

Which heads are planted is drawn with a fixed seed (`draw_heads`); a head whose effect
cannot be brought into the wanted range within the scales tried is passed over for the next
draw (the attempts are recorded too).
"""
from __future__ import annotations

import json
import random
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from experiments.prompt_chunks import padded
from experiments.question import Prompt
from hooks import ablate, layout_of
from metrics.similarity import cosine

SEED = 20261202          # draws the planted heads; recorded in every known_answer.json
SCALES = tuple(2.0 ** k for k in range(0, 11))   # 1 .. 1024, tried on both signs
STEPS = 30               # bisection steps between two scales of the ladder


def out_proj_columns(model, layer: int, head: int) -> torch.Tensor:
    """A view of the weights that carry head `head` of block `layer` into the residual stream."""
    layout = layout_of(model)
    layout.check(layer, head)
    proj = layout.out_proj(model, layer)
    hd = layout.head_dim
    if hasattr(proj, "in_features"):              # nn.Linear: weight [out, in]
        return proj.weight.data[:, head * hd:(head + 1) * hd]
    return proj.weight.data[head * hd:(head + 1) * hd, :]     # GPT-2's Conv1D: weight [in, out]


@dataclass
class PlantedHead:
    """One head whose output was scaled, and what silencing it does (measured, not assumed)."""

    layer: int
    head: int
    scale: float
    effect_mean: float = float("nan")      # mean over the sentences of (silenced - clean) at block L
    effect_sd: float = float("nan")
    effect_study: float = float("nan")     # the same on the study sentence (the first of the exploration half)
    sentences: int = 0
    tries: list = field(default_factory=list)   # [(layer, head)] drawn before it and passed over

    @property
    def label(self) -> str:
        return f"L{self.layer:02d}-H{self.head:02d}"


def plant_head(model, layer: int, head: int, scale: float) -> None:
    """Scale head `head` of block `layer`'s output (its out-projection weight columns), in place."""
    out_proj_columns(model, layer, head).mul_(scale)


@torch.no_grad()
def silencing_effect(model, prompts: list[Prompt], layer: int, head: int, batch: int = 40) -> np.ndarray:
    """[len(prompts)]: cosine(tested pair) at block `layer`'s output with head `head` silenced at
    each prompt's token, minus clean, by the plain hooked forward pass (hooks.ablate on the
    real modules; prompts right-padded in batches, each row silenced at its own token)."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        ids, mask, tokens = padded(chunk, device)
        clean = block_output(model, ids, mask, layer)
        rows_at: dict[int, list[int]] = {}
        for b, t in enumerate(tokens.tolist()):
            rows_at.setdefault(t, []).append(b)
        with _each(model, layer, head, rows_at):
            silenced = block_output(model, ids, mask, layer)
        for b, p in enumerate(chunk):
            i, j = p.tested.i, p.tested.j
            out.append(float(cosine(silenced[b].float(), i, j) - cosine(clean[b].float(), i, j)))
    return np.array(out)


class _Stop(Exception):
    """Raised by a forward hook once block L's output is in hand: later blocks need not run."""


def block_output(model, ids: torch.Tensor, mask: torch.Tensor, layer: int) -> torch.Tensor:
    """hidden_states[layer + 1] of a plain forward pass, [B, seq, d]: block `layer`'s output
    (the last block's after the final norm, as the study reads it). Blocks after `layer` are
    not run: a forward hook on block `layer` keeps its output and stops the pass (the hook
    is removed however the pass ends)."""
    layout = layout_of(model)
    if layer == layout.n_layers - 1:
        return model.base_model(ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
    seen = {}

    def keep(module, args, out):
        seen["out"] = out[0] if isinstance(out, tuple) else out
        raise _Stop

    handle = layout.blocks(model)[layer].register_forward_hook(keep)
    try:
        model.base_model(ids, attention_mask=mask)
    except _Stop:
        pass
    finally:
        handle.remove()
    return seen["out"]


def _each(model, layer, head, rows_at):
    """One ablate per silenced position, each on the rows whose token sits there."""
    stack = ExitStack()
    for token, rows in rows_at.items():
        stack.enter_context(ablate(model, layer, head, token, rows=rows))
    return stack


def _measure(model, prompts, planted: PlantedHead) -> PlantedHead:
    effect = silencing_effect(model, prompts, planted.layer, planted.head)
    planted.effect_mean = float(effect.mean())
    planted.effect_sd = float(effect.std(ddof=1)) if len(effect) > 1 else float("nan")
    planted.effect_study, planted.sentences = float(effect[0]), len(effect)
    return planted


def calibrate_head(model, prompts: list[Prompt], layer: int, head: int, *, low: float, high: float,
                   direction: float | None = None) -> PlantedHead | None:
    """Scale head (layer, head) so that its mean silencing effect over `prompts` lies in
    [low, high] in size (direction None) or, times `direction` (+1 or -1), in sign too; return
    it measured, or None (weights restored) when no scale in +-SCALES reaches the range. The
    model is changed in place."""
    columns = out_proj_columns(model, layer, head)
    original = columns.clone()

    def size(scale: float) -> float:
        columns.copy_(original * scale)
        mean = float(silencing_effect(model, prompts, layer, head).mean())
        return abs(mean) if direction is None else direction * mean

    target = (low + high) / 2
    for sign in (1.0, -1.0):
        below = 0.0                           # scale 0: silencing a silent head does nothing
        for scale in SCALES:
            found = size(sign * scale)
            if low <= found <= high:
                return _measure(model, prompts, PlantedHead(layer, head, sign * scale))
            if found > high:                  # bracketed: bisect between the last two scales
                a, b = below, scale
                for _ in range(STEPS):
                    mid = (a + b) / 2
                    found = size(sign * mid)
                    if low <= found <= high:
                        return _measure(model, prompts, PlantedHead(layer, head, sign * mid))
                    a, b = (mid, b) if found < target else (a, mid)
                break                         # the effect is not monotone here: try the other sign
            below = scale
    columns.copy_(original)
    return None


def draw_heads(n_layers: int, n_heads: int, seed: int = SEED, exclude=()) -> list[tuple[int, int]]:
    """Every (layer, head) in an order drawn with `seed`, those in `exclude` left out."""
    excluded = set(exclude)
    heads = [(L, h) for L in range(n_layers) for h in range(n_heads) if (L, h) not in excluded]
    random.Random(seed).shuffle(heads)
    return heads


def plant_drawn_head(model, prompts, *, low: float, high: float, seed: int = SEED, exclude=()) -> PlantedHead:
    """The first head in the seeded draw that can be calibrated into [low, high]."""
    layout = layout_of(model)
    tried = []
    for layer, head in draw_heads(layout.n_layers, layout.n_heads, seed, exclude):
        planted = calibrate_head(model, prompts, layer, head, low=low, high=high)
        if planted is not None:
            planted.tries = tried
            return planted
        tried.append((layer, head))
    raise RuntimeError(f"no head could be planted with an effect in [{low}, {high}]")


def plant_block(model, prompt: Prompt, layer: int, *, low: float, high: float, direction: float = -1.0,
                steps: int = 2000) -> list[PlantedHead]:
    """Scale every head of block `layer` so that silencing each, on `prompt`, moves the tested
    cosine by direction x [low, high]: a block whose heads all act alike, which the seed's
    per-block t-test must see. A head's effect depends on the other heads' scales, so the
    nine scales are fitted together: gradient descent (Adam) on the plain hooked pass (one
    batch: the clean row and one row per silenced head), then written into the weights and
    every head's effect measured again by the plain hooked pass."""
    from hooks.ablate import pre_hooks

    layout = layout_of(model)
    n, hd = layout.n_heads, layout.head_dim
    device = next(model.parameters()).device
    ids = torch.tensor([prompt.tokens.ids], device=device).expand(n + 1, -1)
    i, j, target = prompt.tested.i, prompt.tested.j, (low + high) / 2
    scale = torch.full((n,), 4.0, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([scale], lr=0.3)

    def scaled(x):
        return (x.view(*x.shape[:2], n, hd) * scale[:, None]).reshape(x.shape)

    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            for _step in range(steps):
                with ExitStack() as stack:
                    for h in range(n):
                        stack.enter_context(ablate(model, layer, h, prompt.token, rows=[h + 1]))
                    stack.enter_context(pre_hooks(model, layout, {layer: scaled}))
                    out = block_output(model, ids, torch.ones_like(ids), layer).float()
                cos = cosine(out, i, j)
                delta = direction * (cos[1:] - cos[0])
                if bool(((delta >= low) & (delta <= high)).all()):
                    break
                optimizer.zero_grad()
                # the heads outside the range pull toward its middle; those inside are left be
                outside = (delta < low) | (delta > high)
                ((delta - target) ** 2 * outside).sum().backward()
                optimizer.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    with torch.no_grad():
        for h in range(n):
            plant_head(model, layer, h, float(scale[h]))
    planted = [_measure(model, [prompt], PlantedHead(layer, h, float(scale[h]))) for h in range(n)]
    missed = [p.label for p in planted if not low <= direction * p.effect_study <= high]
    if missed:
        raise RuntimeError(f"block {layer}: heads {missed} did not reach {direction} x [{low}, {high}]")
    return planted


def silence_head(model, layer: int, head: int) -> PlantedHead:
    """A head whose output is zero everywhere (scale 0): silencing it does nothing, so the
    manipulation check must fail for it."""
    plant_head(model, layer, head, 0.0)
    return PlantedHead(layer, head, 0.0)


def save_known_answer(model, tokenizer, folder: Path, record: dict) -> Path:
    """Write a checkpoint `--model folder` runs, with known_answer.json (what was planted, measured)."""
    import copy

    from transformers import AutoModelForCausalLM

    from models.loading import KNOWN_ANSWER_FILE

    folder = Path(folder)
    # A model converted from a GGUF file keeps its quantization_config, and save_pretrained
    # refuses it: copy the (float32) weights into a fresh model of the same config without it.
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(model.state_dict())
    fresh.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / KNOWN_ANSWER_FILE).write_text(json.dumps(record, indent=1, default=_plain) + "\n")
    return folder


def _plain(value):
    return asdict(value) if isinstance(value, PlantedHead) else str(value)


# The two known-answer models of tests/study/test_known_answers.py, built from the real model on the
# sentences its claims test (the exploration half; the first is the study sentence).
# Sizes are in the plan's units, so the models follow the plan:
#   "macroscopic"  one head moving the association by 2-4x the per-head bound across sentences,
#                  and one silent head (scale 0): a planted null (silencing it changes nothing,
#                  exactly) on which the manipulation check must fail
#   "sesoi"        one block whose heads each move it by -(2-4) x SESOI on the study sentence,
#                  one head in a later block moving it by 2.5-3.5x SESOI across sentences (a scaled
#                  head's effect varies across templates: 1.3-1.9x was not shown beyond on template
#                  means, whose n is 30, not 120), and
#                  one after that moving it by 0.9-1.1x SESOI: an effect the data cannot place
#                  on either side of the bound
KINDS = ("macroscopic", "sesoi")
CALIBRATION_SENTENCES = 24      # the macroscopic head is calibrated on these, then measured on all


def make_known_answer(kind: str, model, prompts: list[Prompt], plan, seed: int = SEED) -> dict:
    """Plant `kind`'s effects into `model` (in place) and return what known_answer.json records."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: use one of {KINDS}")
    layout = layout_of(model)
    record = {"kind": kind, "seed": seed, "sentences": len(prompts), "plants": {}}
    if kind == "macroscopic":
        bound = plan.max_abs_delta_per_head
        head = plant_drawn_head(model, prompts[:CALIBRATION_SENTENCES], low=2 * bound, high=4 * bound, seed=seed)
        record["plants"]["head beyond the per-head bound"] = _measure(model, prompts, head)
        drawn = draw_heads(layout.n_layers, layout.n_heads, seed + 1)
        silent = next((L, h) for L, h in drawn if L != head.layer)
        record["plants"]["silent head"] = _measure(model, prompts, silence_head(model, *silent))   # 0, measured
    else:
        # The block first, the head after it: what silencing a head does at its own block's
        # output depends only on the blocks up to it, so a head planted in a later block leaves
        # the block's effects as they were measured, and is itself calibrated on the final model.
        drawn = draw_heads(layout.n_layers - 1, layout.n_heads, seed + 1)     # not the last block
        block = drawn[0][0]
        record["plants"]["block"] = plant_block(model, prompts[0], block, low=2 * plan.sesoi, high=4 * plan.sesoi)
        earlier = [(L, h) for L in range(block + 1) for h in range(layout.n_heads)]
        head = plant_drawn_head(model, prompts, low=2.5 * plan.sesoi, high=3.5 * plan.sesoi, seed=seed,
                                exclude=earlier)
        record["plants"]["head beyond SESOI"] = head
        # Later still, so that it leaves the heads above as they were measured.
        earlier = [(L, h) for L in range(max(block, head.layer) + 1) for h in range(layout.n_heads)]
        record["plants"]["head near SESOI"] = plant_drawn_head(model, prompts, low=0.9 * plan.sesoi,
                                                               high=1.1 * plan.sesoi, seed=seed + 2, exclude=earlier)
    return record
