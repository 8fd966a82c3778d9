"""The population of sentences a claim about "the association across sentences" is about.

    sentences = generate(240, seed=20261201)                 # list[str], seeded, unique
    exploration, confirmation = split(sentences, seed=20261201)

Every sentence holds the study's three roles: a spread (peanut butter, honey, hummus, ...),
the topping (` pineapple`, the silenced word, exactly once) and the dish (` pizza`, the
tested pair's other word, exactly once), in one of many structures: the roles in either
order, in main and subordinate clauses, questions, lists, short and long sentences, the
silenced token near the start, in the middle or at the end. The words are lowercase and
whole, so every tokenizer finds them (experiments/tokens.py).

The two halves are written to tests/data/sentences_exploration.txt and
sentences_confirmation.txt (`write_halves`); tests/test_population.py regenerates them from
the plan's population_size and population_seed and compares, so the committed split is the
recorded one. The exploration half starts with the seed's own sentence.
Nothing here needs torch.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

from experiments.question import SENTENCE

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
HALVES = {"exploration": DATA / "sentences_exploration.txt", "confirmation": DATA / "sentences_confirmation.txt"}

SPREADS = ("peanut butter", "almond butter", "cashew butter", "cream cheese", "honey", "jam", "chocolate spread",
           "hazelnut spread", "maple syrup", "mustard", "hummus", "marmalade", "garlic butter", "pesto", "ricotta",
           "mayonnaise")
PEOPLE = ("my brother", "the chef", "our neighbours", "my friends", "the kids", "a food critic", "my aunt",
          "the students", "my grandfather", "the waiter", "everyone at the party", "our teacher")
WHEN = ("last night", "yesterday", "on Friday", "last summer", "this morning", "after the game", "at lunch",
        "during the holidays")
TASTE = ("great", "awful", "strange", "wonderful", "odd", "delicious", "terrible", "surprisingly good")
RESULT = ("special", "memorable", "strange", "unforgettable", "confusing", "popular")
THEN = ("the crust gets soggy", "the kids eat every slice", "people start arguing", "it tastes sweet",
        "nobody complains", "the oven smokes")

# {spread} {Spread} {who} {Who} {when} {taste} {result} {then}: filled from the lists above.
# Each template holds " pineapple" and " pizza" exactly once, lowercase, as whole words.
TEMPLATES = (
    "{Spread} and pineapple taste {taste} on pizza",
    "{Spread} and pineapple taste {taste} on pizza, according to {who}",
    "On a pizza, {spread} and pineapple taste {taste}",
    "The pizza {who} ordered {when} came with {spread} and pineapple",
    "Would you ever put {spread} and pineapple on a pizza?",
    "Nobody I know puts pineapple and {spread} on pizza",
    "If you add pineapple to a pizza with {spread}, {then}",
    "{Who} said that pineapple with {spread} ruins a good pizza",
    "A pizza with pineapple and {spread} is what {who} wanted {when}",
    "Although {who} laughed, {spread} and pineapple made the pizza {taste}",
    "We ate pineapple {when}, and later a pizza with {spread}",
    "The best pizza in town has {spread}, pineapple and a thin crust",
    "{Who} put {spread} on the pizza before adding the pineapple",
    "Is pineapple with {spread} on pizza a good idea?",
    "After the game, {who} shared a pizza topped with pineapple and {spread}",
    "There was pineapple, {spread} and cheese on the pizza",
    "I never thought {spread} and pineapple could work on a pizza until {who} made one",
    "Grilled pineapple and {spread} turned an ordinary pizza into something {result}",
    "{Who} refused to eat pizza if there was pineapple or {spread} on it",
    "The recipe calls for {spread}, fresh pineapple and a large pizza base",
    "Sweet pineapple and salty {spread} meet on this pizza",
    "Why did {who} order a pizza with pineapple and {spread}?",
    "In the end, the pizza with {spread} and pineapple won the contest",
    "She cut the pineapple, opened the {spread} and heated the pizza",
    "A little pineapple and some {spread} can change a pizza completely",
    "{Spread} on pizza is odd, but pineapple on it is odder",
    "My favourite pizza, which {who} invented, combines {spread} with pineapple",
    "The pineapple was fresh and the {spread} was homemade, but the pizza was burnt",
    "Last Friday {who} baked a pizza with pineapple and {spread}",
    "When {who} tasted the pizza, the pineapple and {spread} seemed {taste}",
)
WORDS = ("pineapple", "pizza")


def _fill(template: str, rng: random.Random) -> str:
    spread, who = rng.choice(SPREADS), rng.choice(PEOPLE)
    return template.format(spread=spread, Spread=spread[0].upper() + spread[1:], who=who,
                           Who=who[0].upper() + who[1:], when=rng.choice(WHEN), taste=rng.choice(TASTE),
                           result=rng.choice(RESULT), then=rng.choice(THEN))


def check(sentence: str) -> None:
    """A ValueError unless the sentence holds each role word exactly once, as a whole word."""
    for word in WORDS:
        found = len(re.findall(rf"(?<!\w){word}(?!\w)", sentence))
        if found != 1:
            raise ValueError(f"{sentence!r} holds {word!r} {found} times; every sentence needs it exactly once")


def generate(n: int, seed: int) -> list[str]:
    """`n` distinct sentences, the seed's own sentence first, the rest drawn with `seed`
    (template by template in turn, so every structure is about equally common)."""
    rng = random.Random(seed)
    out, seen = [SENTENCE], {SENTENCE}
    order = list(TEMPLATES)
    while len(out) < n:
        rng.shuffle(order)
        for template in order:
            for _ in range(50):                     # a few tries for an unseen filling
                sentence = _fill(template, rng)
                if sentence not in seen:
                    break
            else:
                continue
            check(sentence)
            out.append(sentence)
            seen.add(sentence)
            if len(out) == n:
                break
    return out


def split(sentences: list[str], seed: int) -> tuple[list[str], list[str]]:
    """(exploration, confirmation): halves drawn with `seed`; the seed's own sentence, if
    present, leads the exploration half (it is the study's, and was explored)."""
    rest = [s for s in sentences if s != SENTENCE]
    rng = random.Random(seed + 1)
    rng.shuffle(rest)
    half = len(sentences) // 2
    first = [SENTENCE] if SENTENCE in sentences else []
    exploration = first + rest[:half - len(first)]
    return exploration, rest[half - len(first):]


HEADER = """# The {half} half of the study's sentence population: {count} sentences.
# Generated by experiments/population.py (population_size {size}, population_seed {seed} of
# analysis_plan.toml) and split by the same seed; tests/test_population.py regenerates it and
# compares, so this file is the recorded split. Do not edit it by hand.
# {use}
"""
USES = {"exploration": "Exploratory: the default --prompts of ./run study; the plan was developed with it.",
        "confirmation": "Confirmatory: --prompts confirmation. Nothing may be chosen by looking at it."}


def halves_text(size: int, seed: int) -> dict[str, str]:
    """{half name: the file's text} for the plan's population."""
    exploration, confirmation = split(generate(size, seed), seed)
    return {name: HEADER.format(half=name, count=len(part), size=size, seed=seed, use=USES[name])
            + "\n".join(part) + "\n" for name, part in (("exploration", exploration), ("confirmation", confirmation))}


def write_halves(size: int, seed: int) -> None:
    for name, text in halves_text(size, seed).items():
        HALVES[name].write_text(text, encoding="utf-8")


if __name__ == "__main__":        # python -m experiments.population: rewrite the two files
    from experiments.plan import load_plan

    plan = load_plan()
    write_halves(plan.population_size, plan.population_seed)
    print("wrote", *HALVES.values())
