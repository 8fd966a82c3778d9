"""The sentence population (experiments/population.py): seeded, varied, split into two halves
that the committed files record exactly (no model needed)."""
import re

import pytest

from experiments.plan import load_plan
from experiments.population import HALVES, TEMPLATES, check, generate, halves_text, split
from experiments.prompt_set import read_prompts
from experiments.question import SENTENCE

PLAN = load_plan()


def test_the_committed_halves_are_the_plans_recorded_split():
    """Regenerated from the plan's population_size and population_seed, byte for byte: a
    change of the generator or the seed shows up here, in review."""
    for name, text in halves_text(PLAN.population_size, PLAN.population_seed).items():
        assert HALVES[name].read_text(encoding="utf-8") == text, (
            f"{HALVES[name].name} is not what the plan's seed generates: run python -m experiments.population")


def test_the_halves_split_at_least_200_distinct_sentences_in_two():
    exploration, confirmation = (read_prompts(HALVES[n]) for n in ("exploration", "confirmation"))
    assert len(exploration) == len(confirmation) == PLAN.population_size // 2 >= 100
    assert not set(exploration) & set(confirmation)
    assert len(set(exploration) | set(confirmation)) == PLAN.population_size
    assert exploration[0] == SENTENCE and SENTENCE not in confirmation


def test_the_population_varies_structure_not_only_words():
    """Every template is used; the silenced word sits early, in the middle and late; the dish
    comes before the topping in some sentences; lengths vary."""
    sentences = generate(PLAN.population_size, PLAN.population_seed)
    shapes = {re.sub(r"\{\w+\}", "", t) for t in TEMPLATES}
    assert len(shapes) == len(TEMPLATES) >= 25
    words = [s.split() for s in sentences]
    where = [next(i for i, w in enumerate(ws) if w.strip(",.?") == "pineapple") / len(ws) for ws in words]
    assert min(where) < 0.2 and max(where) > 0.8
    assert sum(s.index("pizza") < s.index("pineapple") for s in sentences) >= 20
    lengths = [len(ws) for ws in words]
    assert min(lengths) <= 8 and max(lengths) >= 16


def test_the_same_seed_gives_the_same_population_and_another_seed_another():
    assert generate(240, 1) == generate(240, 1) != generate(240, 2)
    assert split(generate(240, 1), 1) == split(generate(240, 1), 1)


@pytest.mark.parametrize("bad", ["pizza only", "pineapple pineapple pizza", "pineapples on pizza"])
def test_a_sentence_without_each_role_word_exactly_once_is_refused(bad):
    with pytest.raises(ValueError, match="exactly once"):
        check(bad)
