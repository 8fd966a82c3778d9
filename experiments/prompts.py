"""The prompt set: many variants of the study sentence, and every single-head ablation
measured on each of them (paired: each prompt is its own clean control).

    sentences = read_prompts(Path("tests/data/prompts.txt"))        # list[str], checked
    plans = plan_prompts(tokenizer, sentences, question, max_tokens)  # one Plan per prompt
    run = run_prompts(model, plans, ablation="zero")                  # PromptRun
    run.deltas  -> [n_layers, n_heads, n_prompts]   cosine(pair) silenced - clean, at block L

File format: one sentence a line, UTF-8; blank lines and lines starting with # are
ignored. Every sentence must contain the silenced word and both words of the tested pair
exactly once (as `experiments.tokens.locate` finds them), or start-up stops naming the line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from hooks import capture_heads, layout_of, sweep
from metrics.similarity import block_outputs, cosine
from experiments.study import Plan, Question, plan
from experiments.tokens import WordNotFound

ABLATIONS = ("zero", "mean")
# experiments/scales.py tests its interventions on the first 8 prompts and picks its "top" heads
# on the others: it needs at least 2 more than 8.
MIN_PROMPTS = 10


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


def plan_prompts(tokenizer, sentences: list[str], question: Question, max_tokens: int | None = None,
                 path: Path | str = "the prompt file") -> list[Plan]:
    """One Plan per sentence for the question's silenced word and TESTED pair only (the
    comparison pair is the single-sentence baseline's business). Errors name the line."""
    tested = question.pairs[:1]
    plans = []
    for n, sentence in enumerate(sentences, 1):
        try:
            plans.append(plan(tokenizer, Question(sentence, question.silence_word, tested), max_tokens))
        except WordNotFound as err:
            raise PromptSetError(f"--prompts {path}, sentence {n} ({sentence!r}): {err}; fix or remove "
                                 "that line") from None
    return plans


@dataclass
class PromptRun:
    """Every single-head ablation on every prompt, cosine of the tested pair at block L.

    clean:  [n_layers, n_prompts]            clean cosine at block L's output
    deltas: [n_layers, n_heads, n_prompts]   ablated - clean, head h of block L at the token
    """

    plans: list
    ablation: str
    clean: torch.Tensor
    deltas: torch.Tensor

    @property
    def n_prompts(self) -> int:
        return self.deltas.shape[2]


@torch.no_grad()
def head_means(model, plans: list[Plan]) -> torch.Tensor:
    """[n_layers, n_heads, head_dim]: each head's output averaged over every position of
    every prompt (the value mean ablation puts in its place; units of the head outputs)."""
    layout = layout_of(model)
    device = next(model.parameters()).device
    total = torch.zeros(layout.n_layers, layout.n_heads, layout.head_dim)
    count = 0
    for p in plans:
        with capture_heads(model) as seen:
            model(torch.tensor([p.tokens.ids], device=device))
        for L, heads in seen:
            total[L] += heads[0].sum(0).cpu()
        count += len(p.tokens.ids)
    return total / count


@torch.no_grad()
def run_prompts(model, plans: list[Plan], ablation: str = "zero", engine: str = "fast") -> PromptRun:
    """Per prompt: one clean pass and the sweep of every single-head ablation (block readout)."""
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation={ablation!r}: use one of {ABLATIONS}")
    values = head_means(model, plans) if ablation == "mean" else None
    device = next(model.parameters()).device
    clean, deltas = [], []
    for p in plans:
        pair = p.pairs[0]
        ids = torch.tensor([p.tokens.ids], device=device)
        c = cosine(block_outputs(model(ids, output_hidden_states=True).hidden_states), pair.i, pair.j).cpu()
        s = cosine(sweep(model, ids, p.token, "block", engine=engine, values=values).cpu(), pair.i, pair.j)
        clean.append(c)
        deltas.append(s - c[:, None])
    return PromptRun(plans, ablation, torch.stack(clean, -1), torch.stack(deltas, -1))
