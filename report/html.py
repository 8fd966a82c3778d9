"""One self-contained HTML page of a run: every table (CSV) and every figure (PNG, inlined
as base64), no external file or network needed. Deterministic: same files, same bytes."""
from __future__ import annotations

import base64
import csv
import html
import io

INTRO = {
    "blocks.csv": "Per block (study sentence): the original t-test, Holm/BH beside Bonferroni, 95% CI, "
                  "Cohen's d, sign-flip permutation p, TOST and the category.",
    "heads.csv": "Per (layer, head) across the prompt set: paired over prompts, corrected over all heads.",
    "scales.csv": "Interventions of growing scale, per block, across the first 8 prompts.",
    "top_k.csv": "The top-k heads silenced together; cosine at the last block.",
    "ripple.csv": "Ripple: all heads of block `layer` silenced at the token, read at block `read_at`.",
}


def page(title: str, summary_lines: list[str], files: dict[str, bytes]) -> bytes:
    """files: {name: bytes} of the run (CSV and PNG; others ignored) -> the HTML page as UTF-8 bytes."""
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
           "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
           "details{margin:1em 0}img{max-width:100%}</style></head><body>",
           f"<h1>{html.escape(title)}</h1><pre>{html.escape(chr(10).join(summary_lines))}</pre>"]
    for name in sorted(n for n in files if n.endswith(".png")):
        data = base64.b64encode(files[name]).decode()
        out.append(f"<h2>{html.escape(name)}</h2><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
    for name in sorted(n for n in files if n.endswith(".csv")):
        rows = list(csv.reader(io.StringIO(files[name].decode())))
        out.append(f"<details><summary><b>{html.escape(name)}</b> ({len(rows) - 1} rows) "
                   f"{html.escape(INTRO.get(name, ''))}</summary><table>")
        for i, row in enumerate(rows):
            cell = "th" if i == 0 else "td"
            out.append("<tr>" + "".join(f"<{cell}>{html.escape(v)}</{cell}>" for v in row) + "</tr>")
        out.append("</table></details>")
    out.append("</body></html>\n")
    return "\n".join(out).encode()
