"""The sentence population (experiments/population.py): seeded, varied, split into two halves
drawn from the exploration templates, and a confirmation set drawn from held-out templates,
all recorded exactly by the committed files, each line naming its template (no model needed)."""
import re

import pytest

from experiments.plan import load_plan
from experiments.population import (HALVES, HELD_OUT_PEOPLE, HELD_OUT_SPREADS, HELD_OUT_TEMPLATES, LABELS, PEOPLE,
                                    SPREADS, TEMPLATES, check, generate, generate_held_out, sets_text, split,
                                    template_of)
from experiments.prompt_set import PromptSetError, read_prompt_set, read_prompts
from experiments.question import SENTENCE

PLAN = load_plan()


def test_the_committed_sets_are_the_plans_recorded_draw():
    """Regenerated from the plan's population and held-out entries, byte for byte: a change of
    the generator or a seed shows up here, in review."""
    for name, text in sets_text(PLAN).items():
        assert HALVES[name].read_text(encoding="utf-8") == text, (
            f"{HALVES[name].name} is not what the plan's seed generates: run python -m experiments.population")


def test_the_halves_split_at_least_200_distinct_sentences_in_two():
    exploration, same = (read_prompts(HALVES[n]) for n in ("exploration", "same-templates"))
    assert len(exploration) == len(same) == PLAN.population_size // 2 >= 100
    assert not set(exploration) & set(same)
    assert len(set(exploration) | set(same)) == PLAN.population_size
    assert exploration[0] == SENTENCE and SENTENCE not in same


def test_every_line_names_the_template_that_generates_it():
    for path in HALVES.values():
        sentences, templates = read_prompt_set(path)
        assert templates == [template_of(s) for s in sentences], path.name


def test_the_confirmation_set_shares_no_template_and_no_filler_with_exploration():
    """Confirmation replicates on structures the plan never saw: every confirmation sentence
    maps to a held-out template, none to an exploration template, and the fillers differ."""
    explored = {t for name in ("exploration", "same-templates") for t in read_prompt_set(HALVES[name])[1]}
    sentences, held_out = read_prompt_set(HALVES["confirmation"])
    assert len(sentences) == PLAN.held_out_templates * PLAN.held_out_per_template
    assert len(set(held_out)) == PLAN.held_out_templates
    assert not explored & set(held_out)
    assert all(LABELS[t] in HELD_OUT_TEMPLATES and LABELS[t] not in TEMPLATES for t in held_out)
    for sentence in sentences:                  # no exploration template matches a held-out sentence
        assert not any(re.search(re.escape(re.split(r"\{\w+\}", t)[0]) + ".*", sentence) and
                       template_of(sentence) == f"E{TEMPLATES.index(t) + 1:02d}" for t in TEMPLATES)
    assert not set(HELD_OUT_SPREADS) & set(SPREADS) and not set(HELD_OUT_PEOPLE) & set(PEOPLE)
    assert sentences[:PLAN.held_out_templates] == [s for s, t in zip(sentences, held_out)][:PLAN.held_out_templates]
    assert held_out[:PLAN.held_out_templates] == [f"H{i:02d}" for i in range(1, PLAN.held_out_templates + 1)]


def test_a_sentence_matches_exactly_one_template():
    with pytest.raises(ValueError, match="matches 0 templates"):
        template_of("Pineapple is not a pizza topping at all")
    assert template_of(SENTENCE) == "E01"


def test_a_file_that_names_templates_on_some_lines_only_is_refused(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("\n".join(["[A] pineapple on pizza"] * 9 + ["pineapple on pizza"]) + "\n")
    with pytest.raises(PromptSetError, match="line 10 .* does not; name it on every line or on none"):
        read_prompt_set(path)
    path.write_text("\n".join(f"pineapple on pizza number {i}" for i in range(10)) + "\n")
    assert read_prompt_set(path)[1] == [f"S{i:03d}" for i in range(1, 11)]     # each sentence its own


def test_the_population_varies_structure_not_only_words():
    """Every template is used; the silenced word sits early, in the middle and late; the dish
    comes before the topping in some sentences; lengths vary."""
    sentences = generate(PLAN.population_size, PLAN.population_seed)
    sentences += generate_held_out(PLAN.held_out_templates, PLAN.held_out_per_template, PLAN.held_out_seed)
    shapes = {re.sub(r"\{\w+\}", "", t) for t in TEMPLATES + HELD_OUT_TEMPLATES}
    assert len(shapes) == len(TEMPLATES) + len(HELD_OUT_TEMPLATES) >= 50
    assert {template_of(s) for s in sentences} == set(LABELS)
    words = [s.split() for s in sentences]
    where = [next(i for i, w in enumerate(ws) if w.strip(",.?:") == "pineapple") / len(ws) for ws in words]
    assert min(where) < 0.2 and max(where) > 0.8
    assert sum(s.index("pizza") < s.index("pineapple") for s in sentences) >= 20
    lengths = [len(ws) for ws in words]
    assert min(lengths) <= 8 and max(lengths) >= 16


def test_the_same_seed_gives_the_same_population_and_another_seed_another():
    assert generate(240, 1) == generate(240, 1) != generate(240, 2)
    assert split(generate(240, 1), 1) == split(generate(240, 1), 1)
    assert generate_held_out(30, 4, 1) == generate_held_out(30, 4, 1) != generate_held_out(30, 4, 2)


@pytest.mark.parametrize("bad", ["pizza only", "pineapple pineapple pizza", "pineapples on pizza"])
def test_a_sentence_without_each_role_word_exactly_once_is_refused(bad):
    with pytest.raises(ValueError, match="exactly once"):
        check(bad)


def test_the_ladder_measures_one_sentence_per_template_and_chooses_heads_on_the_rest():
    from experiments.prompt_set import ladder_sentences

    _, templates = read_prompt_set(HALVES["exploration"])
    control = ladder_sentences(templates, PLAN.scale_test_prompts, control=True)
    observed = ladder_sentences(templates, PLAN.scale_test_prompts, control=False)
    assert [templates[i] for i in control] == list(dict.fromkeys(templates))      # each template once, first seen
    assert observed == control[:PLAN.scale_test_prompts] and len(control) == 30
    plain = [f"S{i:03d}" for i in range(12)]                                      # a file without templates
    assert ladder_sentences(plain, 8, control=True) == list(range(6))             # at most half: the rest selects
