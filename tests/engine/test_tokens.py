"""Locating words in the study sentence, with the real GPT-2 tokenizer (offline)."""
import pytest

from experiments.question import SENTENCE
from experiments.tokens import WordNotFound, locate, tokenize
from tests.helpers.tiny_models import gpt2_tokenizer


@pytest.fixture(scope="module")
def tokens():
    return tokenize(gpt2_tokenizer(), SENTENCE)


def test_gpt2_splits_the_study_sentence_as_the_study_says(tokens):
    assert tokens.ids == [6435, 20651, 9215, 290, 45540, 6938, 1049, 319, 14256]
    assert tokens.pieces == ["Pe", "anut", " butter", " and", " pineapple", " taste", " great", " on", " pizza"]


@pytest.mark.parametrize("word, index", [("butter", 2), ("Peanut butter", 2), ("pineapple", 4), ("pizza", 8),
                                         ("Peanut", 1), ("pizza#1", 8)])
def test_a_word_is_represented_by_its_last_token(tokens, word, index):
    assert locate(tokens, word) == index


def test_a_split_word_uses_its_last_piece():
    toks = tokenize(gpt2_tokenizer(), "pineapple on pizza")  # no leading space: pine|apple
    assert toks.pieces[:2] == ["pine", "apple"]
    assert locate(toks, "pineapple") == 1


@pytest.mark.parametrize("word, message", [
    ("mango", "the word 'mango' is not in the sentence"),
    ("Pineapple", "the word 'Pineapple' is not in the sentence"),   # case-sensitive
    ("pine", "is not in the sentence"),                               # not a whole word
    ("", "the word is empty"),
    ("pizza#2", "occurs 1 time(s); use pizza#1"),
])
def test_words_that_are_not_there_are_named(tokens, word, message):
    with pytest.raises(WordNotFound, match=message.replace("(", r"\(").replace(")", r"\)")):
        locate(tokens, word)


def test_a_repeated_word_needs_its_occurrence():
    toks = tokenize(gpt2_tokenizer(), "pizza with pineapple beats pizza")
    with pytest.raises(WordNotFound, match="occurs 2 times"):
        locate(toks, "pizza")
    assert toks.pieces[:2] == ["p", "izza"] and locate(toks, "pizza#1") == 1
    assert locate(toks, "pizza#2") == len(toks) - 1
