"""The mutation list (tests/mutants.toml) cannot rot: every mutant's original text is in its
file exactly once, its replacement really changes the file, and it belongs to a layer whose
quick tests exist. (Running the gate itself takes minutes: ./run mutants.)"""
from pathlib import Path

import pytest

from tests.helpers.mutation import ENGINE, FROZEN_TEST, ROOT, SUBSETS, VERDICT, VERDICT_FILES, load, mutated, subset_of

MUTANTS = load()


def test_the_list_is_long_enough_and_every_subset_file_exists():
    assert all(m.why.strip() for m in MUTANTS)
    for subset in SUBSETS:
        assert all((ROOT / f).is_file() for f in subset.files), [f for f in subset.files if not (ROOT / f).is_file()]
    engine = [m for m in MUTANTS if subset_of(m) is ENGINE]
    verdict = [m for m in MUTANTS if subset_of(m) is VERDICT]
    assert len(engine) >= 24 and all(m.file.startswith("hooks/") for m in engine)
    assert len(verdict) >= 25 and len(engine) + len(verdict) == len(MUTANTS)
    # every file of the decision code is mutated at least once
    assert {m.file for m in verdict} == set(VERDICT_FILES)


def test_the_frozen_plan_test_the_verdict_subset_deselects_exists():
    """The plan's digest covers the decision code, so the frozen-plan test fails on any mutant
    of it; if it were renamed, the deselect would miss it and it would "kill" every mutant."""
    path, name = FROZEN_TEST.split("::")
    assert f"def {name}(" in (ROOT / path).read_text()
    assert path in VERDICT.files and FROZEN_TEST in VERDICT.options


def test_a_file_of_no_layer_is_refused():
    from tests.helpers.mutation import BrokenList, Mutant

    with pytest.raises(BrokenList, match="in no layer"):
        subset_of(Mutant("x", "models/loading.py", "a", "b", "why"))


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_each_mutants_original_occurs_exactly_once_in_its_file(mutant):
    text = (Path(ROOT) / mutant.file).read_text()
    assert text.count(mutant.original) == 1, f"{mutant.original!r} occurs {text.count(mutant.original)} times"
    assert mutated(text, mutant) != text
    assert "\n" not in mutant.original + mutant.replacement          # one line
    compile(mutated(text, mutant), mutant.file, "exec")     # a mutant is a bug, not a syntax error
