"""The prompt set: many variants of the study sentence, every single-head ablation measured
on each (paired: each prompt is its own clean control), in chunks that are shards of a run.

    sentences = read_prompts(Path("tests/data/prompts.txt"))          # list[str], checked
    prompts = locate_prompts(tokenizer, sentences, question, ...)     # one Prompt per sentence
    chunk = measure_chunk(model, prompts, [0, 1, 2, 3], "zero")       # PromptChunk
    chunk.deltas                                                      # [n_layers, n_heads, 4]

File format: one sentence a line, UTF-8; blank lines and lines starting with # are
ignored. Every sentence must contain the silenced word and both words of the tested pair
exactly once (as `experiments.tokens.locate` finds them), or start-up stops naming the line.

Ablations (what replaces head h of block L at the silenced token):
    zero      zeros (the seed's silencing)
    mean      the head's output averaged over EVERY position of EVERY prompt of the set
    resample  the head's output at the silenced token of the NEXT prompt of the set
              (prompt p takes it from prompt p + 1, the last from the first)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from experiments.question import Prompt, Question, locate_question
from experiments.tokens import WordNotFound
from hooks import capture_heads, layout_of, sweep
from metrics.similarity import block_outputs, cosine

ABLATIONS = ("zero", "mean", "resample")
MIN_PROMPTS = 10          # the scales need a test part and a selection part (analysis plan)
CHUNK_SIZE = 4            # prompts per shard: small enough to spread, large enough to amortise


class PromptSetError(ValueError):
    """The prompt file is missing, empty or has a line the study cannot use; says which and why."""


def read_prompts(path: Path) -> list[str]:
    """The sentences of a prompt file (see the module docstring), in file order."""
    path = Path(path)
    if not path.is_file():
        raise PromptSetError(f"--prompts {path}: no such file; pass a text file with one sentence a line "
                             "(e.g. tests/data/prompts.txt)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PromptSetError(f"--prompts {path}: cannot read it as UTF-8 text ({err.__class__.__name__}); "
                             "pass a UTF-8 text file with one sentence a line") from None
    sentences = [line.strip() for line in text.splitlines()]
    sentences = [s for s in sentences if s and not s.startswith("#")]
    if len(sentences) < MIN_PROMPTS:
        raise PromptSetError(f"--prompts {path}: {len(sentences)} sentence(s); the across-prompt tests need at "
                             f"least {MIN_PROMPTS} (one sentence a line, # for comments)")
    return sentences


def locate_prompts(tokenizer, sentences: list[str], question: Question, max_tokens: int | None = None,
                   path: Path | str = "the prompt file") -> list[Prompt]:
    """One Prompt per sentence for the question's silenced word and TESTED pair only (the
    comparison pair is the single-sentence baseline's business). Errors name the line."""
    tested = question.pairs[:1]
    prompts = []
    for n, sentence in enumerate(sentences, 1):
        try:
            prompts.append(locate_question(tokenizer, Question(sentence, question.silence_word, tested), max_tokens))
        except WordNotFound as err:
            raise PromptSetError(f"--prompts {path}, sentence {n} ({sentence!r}): {err}; fix or remove "
                                 "that line") from None
    return prompts


def chunks(n_prompts: int, size: int = CHUNK_SIZE) -> list[tuple[int, ...]]:
    """Prompt indices in consecutive chunks of `size` (the last may be shorter)."""
    return [tuple(range(lo, min(lo + size, n_prompts))) for lo in range(0, n_prompts, size)]


def chunk_label(indices) -> str:
    return f"P{indices[0]:02d}-P{indices[-1]:02d}"


@dataclass(frozen=True)
class PromptChunk:
    """Every single-head ablation on some prompts of the set (tested pair, block readout).

    clean:   [n_layers, len(indices)]            clean cosine at block L's output
    deltas:  [n_layers, n_heads, len(indices)]   ablated - clean, head h of block L at the token
    token_changed: [n_layers, n_heads, len(indices)] bool: the token's vector moved
    """

    indices: tuple
    ablation: str
    clean: np.ndarray
    deltas: np.ndarray
    token_changed: np.ndarray


@torch.no_grad()
def head_means(model, prompts: list[Prompt]) -> torch.Tensor:
    """[n_layers, n_heads, head_dim]: each head's output averaged over every position of
    every prompt (what mean ablation puts in its place; units of the head outputs)."""
    layout = layout_of(model)
    device = next(model.parameters()).device
    total = torch.zeros(layout.n_layers, layout.n_heads, layout.head_dim)
    count = 0
    for p in prompts:
        with capture_heads(model) as seen:
            model(torch.tensor([p.tokens.ids], device=device))
        for L, heads in seen:
            total[L] += heads[0].sum(0).cpu()
        count += len(p.tokens.ids)
    return total / count


@torch.no_grad()
def heads_at_token(model, prompt: Prompt) -> torch.Tensor:
    """[n_layers, n_heads, head_dim]: every head's output at the prompt's silenced token
    (what resample ablation gives to the previous prompt of the set)."""
    device = next(model.parameters()).device
    with capture_heads(model) as seen:
        model(torch.tensor([prompt.tokens.ids], device=device))
    return torch.stack([heads[0, prompt.token].cpu() for _, heads in seen])


def donor_of(index: int, n_prompts: int) -> int:
    """The prompt whose heads replace prompt `index`'s under resample ablation."""
    return (index + 1) % n_prompts


@torch.no_grad()
def measure_chunk(model, prompts: list[Prompt], indices, ablation: str = "zero", engine: str = "fast",
                  means: torch.Tensor | None = None) -> PromptChunk:
    """Per prompt of the chunk: one clean pass and the sweep of every single-head ablation
    (block readout). `means` [n_layers, n_heads, head_dim] is required for mean ablation."""
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation={ablation!r}: use one of {ABLATIONS}")
    if ablation == "mean" and means is None:
        raise ValueError("mean ablation needs the set's head means (experiments.prompts.head_means)")
    device = next(model.parameters()).device
    clean, deltas, changed = [], [], []
    for i in indices:
        p = prompts[i]
        values = {"zero": None, "mean": means,
                  "resample": heads_at_token(model, prompts[donor_of(i, len(prompts))]) if ablation == "resample"
                  else None}[ablation]
        ids = torch.tensor([p.tokens.ids], device=device)
        states = block_outputs(model(ids, output_hidden_states=True).hidden_states)
        pair = p.tested
        c = cosine(states, pair.i, pair.j).cpu().double()
        swept = sweep(model, ids, p.token, "block", engine=engine,
                      values=None if values is None else values.to(device))
        s = cosine(swept, pair.i, pair.j).cpu().double()
        clean.append(c.numpy())
        deltas.append((s - c[:, None]).numpy())
        changed.append((swept[:, :, p.token] != states[:, None, p.token]).any(-1).cpu().numpy())
    return PromptChunk(tuple(indices), ablation, np.stack(clean, -1), np.stack(deltas, -1), np.stack(changed, -1))
