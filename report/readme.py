"""The README's result tables, rendered from the golden verdicts that the runs themselves wrote
(claims/golden/verdicts/<model>-<prompt set>.json, by `--update-golden`): no outcome or number
in them is typed by hand, and tests/study/test_readme.py fails when the README and the files differ.

    python -m report.readme      # rewrite README.md's marked tables from claims/golden/verdicts/

A table sits between two marker lines naming its verdicts file:

    <!-- verdicts smollm2-135m-instruct-exploration -->
    ...
    <!-- end verdicts -->
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from report.golden import VERDICTS

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- verdicts (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- end verdicts -->)", re.S)


def render(verdicts: dict) -> str:
    """A markdown table: one row per claim, its outcome in bold, what the run showed."""
    found = {o: sum(v == o for v in verdicts["claims"].values())
             for o in ("held", "refuted", "not established", "error", "not run")}
    lines = [f"*{verdicts['run'].capitalize()} run, {verdicts['model']}, {verdicts['sentences']} sentences "
             f"from {verdicts.get('templates')} templates ({verdicts['prompt_set']}), plan sha256 "
             f"{verdicts['plan_sha256'][:12]}: {found['held']} held, {found['refuted']} refuted, "
             f"{found['not established']} not established"
             + (f", {found['error']} error (not a result)" if found["error"] else "")
             + (f", {found['not run']} not run" if found["not run"] else "") + ".*", "",
             "| claim | data | outcome | what the run showed |", "|---|---|---|---|"]
    for test in verdicts.get("order", verdicts["claims"]):
        outcome = verdicts["claims"][test]
        shown = verdicts["shown"][test]
        statement = shown["statement"] or test.split("::")[-1]
        data = verdicts.get("data", {}).get(test, "")
        lines.append(f"| {_cell(statement)} | {data} | **{outcome}** | {_cell(shown['detail'])} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def blocks(text: str) -> dict[str, str]:
    """{verdicts name: the table now in the README}."""
    return {m["name"]: m["body"] for m in BLOCK.finditer(text)}


def expected(name: str) -> str:
    path = VERDICTS / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"README.md names verdicts {name!r} but {path} does not exist: "
                                f"run the study with --update-golden, or fix the marker")
    return render(json.loads(path.read_text()))


def rewrite(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + "\n" + expected(m["name"]) + "\n" + m.group(4), text)


def main() -> int:
    text = README.read_text()
    new = rewrite(text)
    README.write_text(new)
    print(f"README.md: {len(blocks(new))} verdict tables {'rewritten' if new != text else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
