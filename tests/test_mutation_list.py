"""The mutation list (tests/mutants.toml) cannot rot: every mutant's original text is in its
file exactly once, and its replacement really changes the file. (Running the gate itself takes
minutes: ./run mutants.)"""
from pathlib import Path

import pytest

from tests.mutation import ROOT, SUBSET, load, mutated

MUTANTS = load()


def test_the_list_is_long_enough_and_every_subset_file_exists():
    assert len(MUTANTS) >= 24
    assert all((ROOT / f).is_file() for f in SUBSET), [f for f in SUBSET if not (ROOT / f).is_file()]
    assert all(m.file.startswith("hooks/") and m.why.strip() for m in MUTANTS)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_each_mutants_original_occurs_exactly_once_in_its_file(mutant):
    text = (Path(ROOT) / mutant.file).read_text()
    assert text.count(mutant.original) == 1, f"{mutant.original!r} occurs {text.count(mutant.original)} times"
    assert mutated(text, mutant) != text
    compile(mutated(text, mutant), mutant.file, "exec")     # a mutant is a bug, not a syntax error
