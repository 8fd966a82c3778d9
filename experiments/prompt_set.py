"""The prompt set: the sentences of the population (or a user's file), read, located, chunked.
Nothing here needs torch (the plugin checks a prompt file at start-up, before any model).

    sentences = read_prompts(path)                                  # list[str], checked
    sentences, templates = read_prompt_set(path)                    # ... and each one's template
    prompts = locate_prompts(tokenizer, sentences, question, ...)   # one Prompt per sentence
    chunks(len(prompts))                                            # shards of a run

The study's own population: experiments/population.py (HALVES, the two committed files).

File format: one sentence a line, UTF-8; blank lines and lines starting with # are
ignored. Every sentence must contain the silenced word and both words of the tested pair
exactly once (as `experiments.tokens.locate` finds them), or start-up stops naming the line.
A line may start with its template in brackets, "[E07] sentence": sentences of one template
are one unit of replication (analysis plan: replication_unit). Either every line names its
template or none does; then each sentence is its own.
"""
from __future__ import annotations

import re
from pathlib import Path

from experiments.question import Prompt, Question, locate_question
from experiments.tokens import WordNotFound

ABLATIONS = ("zero", "mean", "resample")
MIN_PROMPTS = 10          # the scales need a test part and a selection part (analysis plan)
CHUNK_SIZE = 8            # prompts per shard: small enough to spread, large enough to amortise (README, "Shards")


class PromptSetError(ValueError):
    """The prompt file is missing, empty or has a line the study cannot use; says which and why."""


TEMPLATE = re.compile(r"^\[([\w.-]+)\]\s+(.*)$")


def read_prompts(path: Path) -> list[str]:
    """The sentences of a prompt file (see the module docstring), in file order."""
    return read_prompt_set(path)[0]


def read_prompt_set(path: Path) -> tuple[list[str], list[str]]:
    """(sentences, each sentence's template) of a prompt file, in file order."""
    path = Path(path)
    if not path.exists():
        raise PromptSetError(f"--prompts {path}: no such file; pass a text file with one sentence a line "
                             "(e.g. claims/data/sentences_exploration.txt)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PromptSetError(f"--prompts {path}: cannot read it as UTF-8 text ({err.__class__.__name__}); "
                             "pass a UTF-8 text file with one sentence a line") from None
    lines = [line.strip() for line in text.splitlines()]
    lines = [s for s in lines if s and not s.startswith("#")]
    found = [TEMPLATE.match(line) for line in lines]
    if any(found) and not all(found):
        n = next(i for i, f in enumerate(found, 1) if not f)
        raise PromptSetError(f"--prompts {path}: some lines name their template ([T1] sentence) and line {n} of the "
                             f"sentences ({lines[n - 1]!r}) does not; name it on every line or on none")
    sentences = [f.group(2).strip() for f in found] if all(found) and found else lines
    templates = [f.group(1) for f in found] if all(found) and found else [f"S{i:03d}" for i in range(1, len(lines) + 1)]
    if not sentences:
        raise PromptSetError(f"--prompts {path}: is empty (no sentence in it); pass a text file with one sentence "
                             f"a line, at least {MIN_PROMPTS} (e.g. claims/data/sentences_exploration.txt)")
    if len(sentences) < MIN_PROMPTS:
        raise PromptSetError(f"--prompts {path}: {len(sentences)} sentence(s); the across-prompt tests need at "
                             f"least {MIN_PROMPTS} (one sentence a line, # for comments)")
    return sentences, templates


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


def ladder_sentences(templates, observed: int, control: bool) -> list[int]:
    """Indices of the sentences the scale ladder measures: the first sentence of each template,
    in order of first appearance (one sample per unit of replication), at most half of the set
    so that the rest can choose the ladder's heads; all of them for the positive control,
    the first `observed` for the other kinds (analysis plan: scale_test_prompts)."""
    seen, firsts = set(), []
    for i, template in enumerate(templates):
        if template not in seen:
            seen.add(template)
            firsts.append(i)
    firsts = firsts[:len(templates) // 2]
    return firsts if control else firsts[:observed]
