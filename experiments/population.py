"""The population of sentences a claim about "the association across sentences" is about.

    sentences = generate(240, seed=20261201)                 # list[str], seeded, unique
    exploration, same_templates = split(sentences, seed=20261201)
    held_out = generate_held_out(30, 4, seed=20261205)       # other templates, other fillers
    template_of(sentence)                                    # "E07" / "H12": the sentence's template

Every sentence holds the study's three roles: a spread (peanut butter, honey, hummus, ...),
the topping (` pineapple`, the silenced word, exactly once) and the dish (` pizza`, the
tested pair's other word, exactly once), in one of many structures: the roles in either
order, in main and subordinate clauses, questions, lists, short and long sentences, the
silenced token near the start, in the middle or at the end. The words are lowercase and
whole, so every tokenizer finds them (experiments/tokens.py).

Sentences of one template share its structure: the template, not the sentence, is the unit of
replication (analysis plan: replication_unit), so every line of a set names its template
("[E07] sentence", experiments/prompt_set.py). Three sets, written to tests/data/:

    exploration       half of 240 sentences from the 30 exploration templates (E01-E30); the
                      plan was developed with it; it starts with the seed's own sentence
    same-templates    the other half: the same templates re-drawn (a re-draw, not a replication)
    confirmation      held-out: 30 other templates (H01-H30) with fillers of their own, generated
                      and committed before any run on them (plan: held_out_*)

`write_sets` writes them; tests/verdicts/test_population.py regenerates them from the plan and
compares, so the committed files are the recorded draw. Nothing here needs torch.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

from experiments.question import SENTENCE

DATA = Path(__file__).resolve().parents[1] / "claims" / "data"
# The named prompt sets (--prompts NAME): the two halves of the population and the held-out set.
HALVES = {"exploration": DATA / "sentences_exploration.txt", "same-templates": DATA / "sentences_same_templates.txt",
          "confirmation": DATA / "sentences_confirmation.txt"}

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

# The held-out templates and fillers: no template and no filler of the lists above (the study's
# two role words excepted), so a confirmatory run replicates on structures the plan never saw.
HELD_OUT_SPREADS = ("tahini", "apple butter", "sunflower butter", "fig jam", "blue cheese", "bacon jam", "lemon curd",
                    "goat cheese", "guacamole", "sour cream", "barbecue sauce", "feta", "chilli oil", "caramel",
                    "miso paste", "teriyaki sauce")
HELD_OUT_PEOPLE = ("my cousin", "the baker", "our landlord", "my roommates", "the coach", "a tourist", "my uncle",
                   "the interns", "my grandmother", "the cashier", "half of my office", "our neighbour's son")
HELD_OUT_WHEN = ("last weekend", "on Tuesday", "two days ago", "over the winter", "before the concert", "at midnight",
                 "on her birthday", "during the storm")
HELD_OUT_TASTE = ("fine", "weird", "brilliant", "bland", "perfect", "dreadful", "better than expected", "fantastic")
HELD_OUT_RESULT = ("legendary", "controversial", "surprising", "famous", "divisive", "perfect")
HELD_OUT_THEN = ("the cheese turns brown", "the slices vanish", "the kitchen smells sweet", "my dog begs for more",
                 "the neighbours ask for the recipe", "the crust burns")
HELD_OUT_TEMPLATES = (
    "According to {who}, a pizza with pineapple needs {spread}",
    "{Who} once claimed that pineapple belongs on pizza only with {spread}",
    "Every pizza at the fair {when} had pineapple and {spread} on it",
    "Mixing {spread} with pineapple on a pizza sounds {taste} to me",
    "The menu lists a pizza with pineapple, {spread} and olives",
    "Could {spread} save a pizza ruined by pineapple?",
    "Before baking the pizza, {who} hid {spread} under the pineapple",
    "Hardly anyone orders pizza with pineapple and {spread}",
    "{Who} wrote a review praising the pineapple and {spread} pizza",
    "On the last day of the trip we found a pizza with {spread} and pineapple",
    "Our class voted on pizza toppings, and pineapple with {spread} lost",
    "The new pizza of the month pairs smoked pineapple with {spread}",
    "Each time {who} came over, we baked a pizza with pineapple and {spread}",
    "I asked for pineapple on my pizza, but they added {spread} too",
    "Is it still pizza if you cover it in pineapple and {spread}?",
    "The delivery driver dropped the pizza, and the pineapple and {spread} slid off",
    "{Who} dared me to eat a slice of pizza piled with pineapple and {spread}",
    "With enough {spread}, even pineapple tastes {taste} on a pizza",
    "Frozen pizza with canned pineapple and {spread} was all we had {when}",
    "My sister hates pineapple but loves {spread} on her pizza",
    "People argue about pineapple online, yet {spread} on pizza gets no attention",
    "The judges tasted a pizza layered with {spread} and caramelised pineapple",
    "Cold pizza with pineapple and {spread} makes a {result} breakfast",
    "The photo shows {who} with a pizza topped with {spread} and pineapple",
    "Nobody expected the pineapple and {spread} pizza to sell out {when}",
    "Whenever we order pizza with pineapple and {spread}, {then}",
    "Only {who} would put {spread} and pineapple on the same pizza",
    "The smell of {spread} and warm pineapple filled the pizza shop",
    "After one bite of the pineapple pizza with {spread}, {who} asked for more",
    "A thin pizza crust cannot hold much pineapple or {spread}",
)


def _fill(template: str, rng: random.Random, held_out: bool = False) -> str:
    spreads, people, when, taste, result, then = (
        (HELD_OUT_SPREADS, HELD_OUT_PEOPLE, HELD_OUT_WHEN, HELD_OUT_TASTE, HELD_OUT_RESULT, HELD_OUT_THEN) if held_out
        else (SPREADS, PEOPLE, WHEN, TASTE, RESULT, THEN))
    spread, who = rng.choice(spreads), rng.choice(people)
    return template.format(spread=spread, Spread=spread[0].upper() + spread[1:], who=who,
                           Who=who[0].upper() + who[1:], when=rng.choice(when), taste=rng.choice(taste),
                           result=rng.choice(result), then=rng.choice(then))


def _pattern(template: str) -> re.Pattern:
    """A template as a regular expression: its fixed text literally, each slot any text."""
    parts = re.split(r"\{\w+\}", template)
    return re.compile("^" + "(.+?)".join(re.escape(p) for p in parts) + "$")


# Template labels: E01..E30 (exploration templates), H01..H30 (held-out templates).
LABELS = {**{f"E{i + 1:02d}": t for i, t in enumerate(TEMPLATES)},
          **{f"H{i + 1:02d}": t for i, t in enumerate(HELD_OUT_TEMPLATES)}}
_PATTERNS = {label: _pattern(t) for label, t in LABELS.items()}


def template_of(sentence: str) -> str:
    """The label of the one template that generates `sentence` (ValueError for none or several)."""
    found = [label for label, pattern in _PATTERNS.items() if pattern.match(sentence)]
    if len(found) != 1:
        raise ValueError(f"{sentence!r} matches {len(found)} templates ({found}); every sentence of the "
                         "population comes from exactly one")
    return found[0]


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


def generate_held_out(templates: int, per_template: int, seed: int) -> list[str]:
    """`per_template` distinct sentences from each of the first `templates` held-out templates,
    drawn with `seed`, in rounds: the first `templates` lines hold one sentence of each."""
    if templates > len(HELD_OUT_TEMPLATES):
        raise ValueError(f"{templates} held-out templates asked for, {len(HELD_OUT_TEMPLATES)} written")
    rng = random.Random(seed)
    rounds, seen = [], set()
    for _ in range(per_template):
        row = []
        for template in HELD_OUT_TEMPLATES[:templates]:
            for _ in range(200):
                sentence = _fill(template, rng, held_out=True)
                if sentence not in seen:
                    break
            else:
                raise ValueError(f"template {template!r} has too few fillings for {per_template} distinct sentences")
            check(sentence)
            seen.add(sentence)
            row.append(sentence)
        rounds.append(row)
    return [s for row in rounds for s in row]


HEADER = """# {title}: {count} sentences from {templates} templates, each line "[template] sentence".
# Generated by experiments/population.py from analysis_plan.toml ({source}).
# tests/verdicts/test_population.py regenerates it and compares, so this file is the recorded draw: do not edit it by hand.
# {use}
"""
USES = {"exploration": "Exploratory: the default --prompts of ./run study; the plan was developed with it.",
        "same-templates": "Exploratory: --prompts same-templates. The exploration templates re-drawn: a re-draw, "
                          "not a replication.",
        "confirmation": "Confirmatory: --prompts confirmation. Held-out templates and fillers, committed before any "
                        "run on them; nothing may be chosen by looking at it."}
TITLES = {"exploration": "The exploration half of the study's sentence population",
          "same-templates": "The same-templates half of the study's sentence population (formerly 'confirmation')",
          "confirmation": "The confirmation set: held-out templates"}


def labelled(sentences: list[str]) -> str:
    return "\n".join(f"[{template_of(s)}] {s}" for s in sentences) + "\n"


def sets_text(plan) -> dict[str, str]:
    """{set name: the file's text} for the plan's population and held-out set."""
    exploration, same = split(generate(plan.population_size, plan.population_seed), plan.population_seed)
    held_out = generate_held_out(plan.held_out_templates, plan.held_out_per_template, plan.held_out_seed)
    source = {"exploration": f"population_size {plan.population_size}, population_seed {plan.population_seed}",
              "confirmation": f"held_out_templates {plan.held_out_templates}, held_out_per_template "
                              f"{plan.held_out_per_template}, held_out_seed {plan.held_out_seed}"}
    source["same-templates"] = source["exploration"]
    out = {}
    for name, part in (("exploration", exploration), ("same-templates", same), ("confirmation", held_out)):
        out[name] = HEADER.format(title=TITLES[name], count=len(part), templates=len({template_of(s) for s in part}),
                                  source=source[name], use=USES[name]) + labelled(part)
    return out


def write_sets(plan) -> None:
    for name, text in sets_text(plan).items():
        HALVES[name].write_text(text, encoding="utf-8")


if __name__ == "__main__":        # python -m experiments.population: rewrite the three files
    from experiments.plan import load_plan

    write_sets(load_plan())
    print("wrote", *HALVES.values())
