"""The README's result tables are what the runs wrote (claims/golden/verdicts/), not typed in."""
from report import readme


def test_every_result_table_in_the_readme_is_rendered_from_its_golden_verdicts():
    text = readme.README.read_text()
    tables = readme.blocks(text)
    assert tables, "README.md has no <!-- verdicts ... --> tables"
    stale = [name for name, body in tables.items() if body.strip() != readme.expected(name).strip()]
    assert not stale, f"README tables differ from claims/golden/verdicts/{stale}: run python -m report.readme"


def test_a_table_is_rendered_with_every_outcome_and_escapes_cells():
    verdicts = {"run": "exploratory", "model": "m", "sentences": 3, "templates": 2, "prompt_set": "exploration",
                "plan_sha256": "ab" * 32,
                "claims": {"t::a": "held", "t::b": "refuted", "t::c": "not established", "t::d": "error"},
                "data": {"t::a": "exploratory", "t::b": "confirmatory"},
                "shown": {"t::a": {"statement": "x | y", "detail": ""},
                          "t::b": {"statement": "", "detail": "L01-H05 -0.04"},
                          "t::c": {"statement": "s", "detail": "d"}, "t::d": {"statement": "e", "detail": "boom"}}}
    out = readme.render(verdicts)
    assert "1 held, 1 refuted, 1 not established, 1 error (not a result)" in out
    assert "Exploratory run, m, 3 sentences from 2 templates (exploration)" in out
    assert "| x \\| y | exploratory | **held** |" in out and "| b | confirmatory | **refuted** | L01-H05 -0.04 |" in out
    text = "a\n<!-- verdicts nope -->\nold\n<!-- end verdicts -->\n"
    assert readme.blocks(text) == {"nope": "old\n"}
