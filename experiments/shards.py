"""The work units (shards) of a run: what each computes, and which other shards it needs.

    units = Shards(load_model, prompt=..., prompts=..., ablation="zero", engine="fast",
                   plan=plan, get=store.get)
    units.study()                  StudyMeasurement of the study sentence
    units.prompt_chunk(indices)    PromptChunk: every single-head ablation on a few prompts
    units.scale_part(kind, i)      ScaleMeasurement: one intervention of the scale ladder, test sentence i
                                   (its shard measures the kinds of its LADDER_SHARDS group at once)
    units.scale(kind)              the same on every test sentence (joined from the parts)
    units.top_k()                  TopKMeasurement: the top-k heads silenced together (measured in the
                                   ladder's shards of the positive control's kind, one per test sentence)
    units.ioi_chunk(indices)       IOIChunk: every head patched from the donor, some IOI pairs
    units.compute(name, function)  a claim file's own shard: function(model)

`get(name, compute)` (plugin/store.py) computes each shard once per run, whichever pytest
worker asks first, and hands every later caller the stored result; `load_model` is only
called when a shard must really be computed. Dependencies: the scale ladder needs the
prompt chunks of the selection prompts (every sentence the ladder does not measure, which
is one per template: experiments/prompt_set.ladder_sentences); mean ablation needs the
head means of the whole set. Everything else depends on nothing but the model.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from experiments import ioi, prompt_chunks, prompt_set, scales
from experiments.study import measure_study

# The ladder's kinds that one shard measures together on a test sentence (one resumed pass
# for the kinds at the token, scales.measure_kinds): the four kinds at the token but the
# positive control's; the positive control's kind alone (it is measured on every template's
# sentence, 30, the others on 8; and five kinds in one pass made a GPT-2 Large-shaped run's
# largest shard 6.3% of its work, above the 1/16 that lets 16 workers share it); the
# every-token kind alone (it edits every column, so it cannot share the others' window).
LADDER_SHARDS = (tuple(k for k in scales.KINDS if k not in (scales.SKIP_BLOCK, scales.EVERY_TOKEN)),
                 (scales.SKIP_BLOCK,), (scales.EVERY_TOKEN,))


# The kind whose shards also measure the top-k rows (scales.measure_kinds's ks) on the test
# sentences: the positive control's, whose sentences (one per template) begin with top-k's and
# whose shards are the ladder's smallest (its kind alone), so the largest shard does not grow.
TOP_K_WITH = scales.SKIP_BLOCK


def ladder_shard(kind: str) -> tuple[str, ...]:
    """The kinds measured in one shard with `kind` (LADDER_SHARDS)."""
    return next(group for group in LADDER_SHARDS if kind in group)


def scale_part_name(kind: str, index: int) -> str:
    """The shard (and xdist group) that measures one ladder kind on one test sentence, with the
    other kinds of its LADDER_SHARDS group."""
    group = ladder_shard(kind)
    return f"scales-{'at-token' if len(group) > 1 else scales.slug(kind)}-P{index:02d}"


class Shards:
    """The shards of one run (one question on one model); see the module docstring."""

    def __init__(self, load_model: Callable, *, prompt, prompts, ablation: str, engine: str, plan,
                 get: Callable, ioi_pairs=(), templates=()):
        self._load_model = load_model
        self.prompt, self.prompts, self.ioi_pairs = prompt, list(prompts), list(ioi_pairs)
        self.templates = list(templates) or [f"S{i:03d}" for i in range(1, len(self.prompts) + 1)]
        self.ablation, self.engine, self.plan = ablation, engine, plan
        self.get = get

    @property
    def model(self):
        return self._load_model()

    def _get(self, name: str, compute: Callable):
        """The store's shard `name`; the model is loaded before the shard's time starts."""
        return self.get(name, compute, before=self._load_model)

    def compute(self, name: str, function: Callable):
        """A shard of a claim file's own (README, "Your own claim"): function(model), computed
        once per run, whichever worker asks first; `name` must be unique to it."""
        return self._get(name, lambda: function(self.model))

    def study(self):
        return self._get("study", lambda: measure_study(self.model, self.prompt, self.engine))

    def chunks(self) -> list[tuple[int, ...]]:
        return prompt_set.chunks(len(self.prompts))

    def prompt_chunk(self, indices) -> prompt_chunks.PromptChunk:
        indices = tuple(indices)
        return self._get(f"prompts-{prompt_set.chunk_label(indices)}", lambda: prompt_chunks.measure_chunk(
            self.model, self.prompts, indices, self.ablation, self.engine, means=self.head_means()))

    def prompt_chunk_of(self, index: int) -> prompt_chunks.PromptChunk:
        """The chunk that holds prompt `index`."""
        return self.prompt_chunk(next(c for c in self.chunks() if index in c))

    def head_means(self) -> torch.Tensor | None:
        """Mean ablation's values, a shard of their own (every chunk needs the whole set's)."""
        if self.ablation != "mean":
            return None
        return self._get("head-means", lambda: prompt_chunks.head_means(self.model, self.prompts))

    def prompt_deltas(self, indices) -> np.ndarray:
        """[n_layers, n_heads, len(indices)] single-head deltas of the given prompts, from their chunks."""
        wanted = set(indices)
        parts = [(i, self.prompt_chunk(c).deltas[:, :, k]) for c in self.chunks()
                 if wanted & set(c) for k, i in enumerate(c) if i in wanted]
        return np.stack([d for _, d in sorted(parts, key=lambda x: x[0])], -1)

    def ladder_indices(self, kind: str) -> list[int]:
        """The sentences `kind` is measured on: one per template (the positive control: every
        template; the other kinds: the first scale_test_prompts), experiments/prompt_set.py."""
        return prompt_set.ladder_sentences(self.templates, self.plan.scale_test_prompts, kind == scales.SKIP_BLOCK)

    def test_prompts(self, kind: str | None = None) -> list:
        """The prompts `kind` is measured on (default: the observations', also top-k's)."""
        return [self.prompts[i] for i in self.ladder_indices(kind or scales.KINDS[0])]

    def selection(self) -> scales.Selection:
        """Heads chosen on the prompts no kind is measured on (never on the ones they are tested on)."""
        tested = set(self.ladder_indices(scales.SKIP_BLOCK))
        return scales.select_heads(self.prompt_deltas([i for i in range(len(self.prompts)) if i not in tested]))

    def scale_part(self, kind: str, index: int) -> scales.ScaleMeasurement:
        """One kind of the ladder on its test sentence `index`, from the shard that measures the
        kinds of its LADDER_SHARDS group on that sentence (n_layers rows per kind in one batched
        pass, resumed per row unless the run's engine is "naive"): the ladder, the heaviest work
        of a run, spreads over workers by sentence."""
        return self._ladder_shard(kind, index)[kind]

    def _ladder_shard(self, kind: str, index: int) -> dict:
        """The shard of `kind`'s LADDER_SHARDS group on its test sentence `index`: {kind:
        ScaleMeasurement}; TOP_K_WITH's shard on a sentence top-k is measured on also measures
        the top-k rows there, in its pass (scales.TOP_K)."""
        kinds = [k for k in ladder_shard(kind) if index < len(self.ladder_indices(k))]
        sentence = self.ladder_indices(kind)[index]
        if any(self.ladder_indices(k)[index] != sentence for k in kinds):
            raise AssertionError(f"ladder kinds {kinds} disagree on their test sentence {index}")
        top_k = TOP_K_WITH in kinds and index < len(self.ladder_indices(scales.KINDS[0]))
        if top_k and self.ladder_indices(scales.KINDS[0])[index] != sentence:
            raise AssertionError(f"top-k's test sentence {index} is not {TOP_K_WITH}'s")
        ks = self.plan.top_k if top_k else None
        return self._get(scale_part_name(kind, index), lambda: scales.measure_kinds(
            self.model, [self.prompts[sentence]], kinds, self.selection(), self.engine, ks))

    def scale(self, kind: str) -> scales.ScaleMeasurement:
        """One kind of the ladder on every one of its test sentences, joined from its parts."""
        return scales.ScaleMeasurement.joined([self.scale_part(kind, i) for i in range(len(self.ladder_indices(kind)))])

    def top_k(self) -> scales.TopKMeasurement:
        """The top-k heads silenced together on every test sentence, from the ladder's shards of
        TOP_K_WITH on those sentences (measured in their pass)."""
        parts = [self._ladder_shard(TOP_K_WITH, i)[scales.TOP_K] for i in range(len(self.test_prompts()))]
        return scales.TopKMeasurement.joined(parts) if parts else scales.TopKMeasurement.empty(0)

    def ioi_chunks(self) -> list[tuple[int, ...]]:
        return prompt_set.chunks(len(self.ioi_pairs), ioi.IOI_CHUNK)

    def ioi_chunk(self, indices) -> ioi.IOIChunk:
        indices = tuple(indices)
        return self._get(f"ioi-{ioi.chunk_label(indices)}",
                        lambda: ioi.measure_chunk(self.model, self.ioi_pairs, indices, self.engine))
