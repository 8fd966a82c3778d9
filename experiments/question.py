"""What a run asks, and where its words are in one tokenized sentence.

    question = Question()                          # the seed's sentence, word and pairs
    prompt = locate_question(tokenizer, question)  # token positions, checked
    prompt.token, prompt.pairs[0].i, prompt.pairs[0].j

A word is represented by its LAST token (experiments/tokens.py); every failure is a
WordNotFound whose message names the word and what to do.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

from experiments.tokens import Tokens, WordNotFound, locate, tokenize

SENTENCE = "Peanut butter and pineapple taste great on pizza"
SILENCE_WORD = "pineapple"
PAIRS = (("pineapple", "pizza"), ("butter", "pizza"))


@dataclass(frozen=True)
class Question:
    """Which sentence, which word to silence, which word pairs to compare.

    The first pair is the tested one (its change is what the claims judge); the second,
    if any, is the baseline's comparison pair.
    """

    sentence: str = SENTENCE
    silence_word: str = SILENCE_WORD
    pairs: tuple[tuple[str, str], ...] = PAIRS

    def digest(self, *extra) -> str:
        """A short stable hash of the question and of whatever else defines the results
        (prompt sentences, ablation, the plan's digest): the results folder's suffix."""
        text = json.dumps([asdict(self), *extra], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def slug(self) -> str:
        """A readable folder name: the silenced word and the start of the sentence."""
        def words(text, limit):
            out = ""
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                if out and len(out) + 1 + len(word) > limit:
                    break
                out = f"{out}-{word}" if out else word[:limit]
            return out
        return f"{words(self.silence_word, 20)}-in-{words(self.sentence, 32)}"


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    i: int   # token index of a
    j: int   # token index of b

    @property
    def label(self) -> str:
        return f"{self.a}-{self.b}"


@dataclass(frozen=True)
class Prompt:
    """A question located in one tokenized sentence: token positions, checked."""

    question: Question
    tokens: Tokens
    token: int               # the position that is silenced
    pairs: tuple[Pair, ...]

    @property
    def tested(self) -> Pair:
        return self.pairs[0]


def parse_pair(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(":")]
    if len(parts) != 2 or not all(parts):
        raise WordNotFound(f"--pair {text!r} must look like word:word (e.g. pineapple:pizza)")
    return parts[0], parts[1]


def check_word_syntax(word: str, option: str) -> None:
    """Cheap checks that need no tokenizer: `word#N` numbers occurrences from 1."""
    match = re.fullmatch(r"(.*?)#(\d+)", word.strip())
    if match and int(match.group(2)) < 1:
        raise WordNotFound(f"{option} {word!r}: occurrences are numbered from 1; use "
                           f"{match.group(1)}#1 for the first")


def locate_question(tokenizer, question: Question, max_tokens: int | None = None) -> Prompt:
    """Locate every word of the question in its tokenized sentence (clear errors if not)."""
    tokens = tokenize(tokenizer, question.sentence, max_tokens)
    token = locate(tokens, question.silence_word)
    if not question.pairs:
        raise WordNotFound("no word pairs to compare: pass --pair a:b at least once")
    pairs = []
    for a, b in question.pairs:
        i, j = locate(tokens, a), locate(tokens, b)
        if i == j:
            raise WordNotFound(f"--pair {a}:{b} names the same token twice; pick two different words")
        pairs.append(Pair(a, b, i, j))
    return Prompt(question, tokens, token, tuple(pairs))


def synthetic_prompt(ids: list[int], token: int, pairs: list[tuple[int, int]]) -> Prompt:
    """A Prompt over raw token ids (tiny random models have no tokenizer): words are named
    by their positions, e.g. pair (4, 8) is labelled "t4-t8"."""
    pieces = [f"t{i}" for i in range(len(ids))]
    tokens = Tokens(" ".join(pieces), list(ids), pieces, [(0, 0)] * len(ids))
    question = Question(tokens.sentence, pieces[token], tuple((pieces[i], pieces[j]) for i, j in pairs))
    return Prompt(question, tokens, token, tuple(Pair(pieces[i], pieces[j], i, j) for i, j in pairs))
