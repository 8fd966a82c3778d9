"""Find a word's token in a sentence.

A word that the tokenizer splits into several tokens is represented by its LAST token:
in a causal model that is the only one that has seen the whole word ("Peanut butter" ->
` butter`, index 2 in GPT-2). A word is matched as a whole word, case-sensitively.
`word#2` picks its second occurrence; a word that occurs more than once without `#N`
is an error rather than a silent guess.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


class WordNotFound(ValueError):
    """The word is not in the sentence, or is ambiguous; the message says what to do."""


@dataclass(frozen=True)
class Tokens:
    """A tokenized sentence: ids [1, seq] and the text of each token."""

    sentence: str
    ids: list[int]
    pieces: list[str]
    offsets: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.ids)


def tokenize(tokenizer, sentence: str, max_tokens: int | None = None) -> Tokens:
    if not sentence or not sentence.strip():
        raise WordNotFound("the sentence is empty: pass --sentence with a sentence that contains the words to compare")
    enc = tokenizer(sentence, return_offsets_mapping=True, add_special_tokens=True)
    ids = list(enc["input_ids"])
    if max_tokens is not None and len(ids) > max_tokens:
        raise WordNotFound(
            f"the sentence has {len(ids)} tokens, more than this model's context of {max_tokens}: "
            "pass a shorter --sentence")
    pieces = [sentence[a:b] if b > a else tokenizer.convert_ids_to_tokens(i)
              for i, (a, b) in zip(ids, enc["offset_mapping"])]
    return Tokens(sentence, ids, pieces, [tuple(o) for o in enc["offset_mapping"]])


def _parse(word: str) -> tuple[str, int | None]:
    match = re.fullmatch(r"(.+?)#(\d+)", word.strip())
    if match:
        return match.group(1), int(match.group(2))
    return word.strip(), None


def locate(tokens: Tokens, word: str) -> int:
    """Index of the LAST token of `word` (or `word#N`, its N-th occurrence) in `tokens`."""
    text, occurrence = _parse(word)
    if not text:
        raise WordNotFound("the word is empty: name a word of the sentence")
    spans = [m.span() for m in re.finditer(rf"(?<!\w){re.escape(text)}(?!\w)", tokens.sentence)]
    words = ", ".join(repr(w) for w in dict.fromkeys(re.findall(r"\w+", tokens.sentence)))
    if not spans:
        raise WordNotFound(f"the word {text!r} is not in the sentence {tokens.sentence!r}; "
                           f"its words are: {words}")
    if occurrence is None and len(spans) > 1:
        raise WordNotFound(f"the word {text!r} occurs {len(spans)} times in the sentence; "
                           f"say which one with {text}#1 .. {text}#{len(spans)}")
    index = (occurrence or 1) - 1
    if not 0 <= index < len(spans):
        raise WordNotFound(f"{word!r}: the word {text!r} occurs {len(spans)} time(s); "
                           f"use {text}#1 .. {text}#{len(spans)}")
    start, end = spans[index]
    covering = [i for i, (a, b) in enumerate(tokens.offsets) if b > a and a < end and b > start]
    last = covering[-1]
    a, b = tokens.offsets[last]
    if b > end:
        # The token runs past the word ("pine" in "pineapples"): it is not the word's own token.
        raise WordNotFound(f"the word {text!r} ends inside the token {tokens.pieces[last]!r}, "
                           "so no token represents exactly this word; choose a whole word")
    return last
