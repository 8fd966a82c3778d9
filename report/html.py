"""report.html: one self-contained page a reviewer reads (no external file or network).

It opens with the question, the model and its provenance, then one line per claim (held /
refuted / not established, or error when the tool failed, with its detail and the kind of
its data), then every figure with a caption
saying what to look at, then the result tables as HTML tables. Deterministic: the same
files give the same bytes.
"""
from __future__ import annotations

import base64
import csv
import html
import io

from report.plots import CAPTIONS

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:.5em 0} td,th{border:1px solid #ccc;padding:3px 7px}
th{background:#f3f3f3;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
.held{background:#e3f4e3} .refuted{background:#f8d7d7} .not-established{background:#fff3cd} .not-run{background:#eee}
.error{background:#d9d2e9;font-weight:600}
figure{margin:1.2em 0} figcaption{font-size:13px;color:#444;max-width:900px} img{max-width:100%}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2em 1em} dt{font-weight:600}
"""
SECTIONS = [  # (CSV, heading, what the table is), in reading order
    ("heads.csv", "Per head, across the sentence population (primary)",
     "Each head's change of the tested pair's cosine, one sample per template (the mean over its sentences: the "
     "template is the unit of replication), Bonferroni over all heads (level = alpha / m). ci_low/ci_high: the "
     "(1 - level) interval (significant: excludes 0; beyond SESOI: entirely outside ±SESOI); eq_low/eq_high: the "
     "(1 - 2 level) interval (within SESOI: inside ±SESOI, TOST, which decides). power: the t-test's chance to "
     "find a SESOI shift (observed SD); tost_power: TOST's chance to show a zero shift within ±SESOI, SD at its "
     "upper confidence bound (shown beside the decision, never overruling it)."),
    ("heads_by_template.csv", "Per head and template",
     "The samples heads.csv tests: each head's mean change over the sentences of each template."),
    ("sentence_shares.csv", "Per head, the share of sentences moved beyond SESOI",
     "Per template, the share of its sentences on which silencing the head moves the association beyond "
     "±SESOI; tested across templates against the plan's sentence_share (TOST, minimum-effect test)."),
    ("blocks.csv", "Per block, study sentence (replication of the seed)",
     "Each block's heads silenced one at a time on the seed's sentence, the heads' differences as the sample: "
     "the seed's one-sample t-test, Bonferroni over blocks. The block's mean itself has no sampling error: "
     "the claim on it compares it with ±SESOI directly."),
    ("controls.csv", "Planted-effect controls",
     "Effects planted into units drawn by category (stratum), on their sign-flipped real residuals, and the "
     "unit's decision re-run at the family's level: how often it came out as the arm requires (realized) "
     "beside the closed form's rate (predicted), and the draws on which the claim's outcome broke its rule "
     "(violations). The control fails when an arm misses its tolerance, either side, or any draw broke the rule."),
    ("power.csv", "Power and false-positive rates",
     "Effects of k x SESOI planted into random units of this run's own noise (sign-flipped residuals). "
     "difference: flagged = significant; equivalence: flagged = shown within ±SESOI (TOST); beyond: flagged = "
     "shown beyond ±SESOI (the minimum-effect test, which refutes 'no unit beyond SESOI'). predicted: the "
     "closed form of the same rate."),
    ("baseline.csv", "Baseline", "Clean cosines per block; the last block also before the final norm."),
    ("scales.csv", "Interventions of growing scale", "Per block, on one test sentence per template; Bonferroni "
                                                     "over blocks."),
    ("top_k.csv", "Top-k heads silenced together", "Cosine read at the last block."),
    ("ripple.csv", "Ripple", "All heads of a block silenced at the token, read at every block."),
    ("claims.csv", "Claims (table)", "Every claim with the kind of its data, its outcome (held / refuted / not "
                                     "established; error when the tool failed), its items and the units it names."),
    ("shards.csv", "Shards", "Work units of the run and how often each was computed."),
    ("scenarios.csv", "Every scenario", "One row per (pair, layer, head)."),
]
SHOWN_ROWS = 60        # longer tables are folded after this many rows


def _cell(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return f"<td>{html.escape(value)}</td>"
    shown = value if value.lstrip("-").isdigit() else f"{number:.4g}"
    return f"<td class='num'>{html.escape(shown)}</td>"


def html_table(data: bytes) -> str:
    rows = list(csv.reader(io.StringIO(data.decode())))
    head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in rows[0]) + "</tr>"
    body = ["<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows[1:]]
    if len(body) <= SHOWN_ROWS:
        return f"<table>{head}{''.join(body)}</table>"
    return (f"<table>{head}{''.join(body[:SHOWN_ROWS])}</table><details><summary>all {len(body)} rows</summary>"
            f"<table>{head}{''.join(body)}</table></details>")


def document(*, headline: str, question: str, facts: dict, claims: list[dict], figures: list,
             sections: list) -> bytes:
    """The page: headline, question, facts (model, provenance, plan), one line per claim,
    figures [(file name, png bytes)] with their captions, tables [(file name, heading, intro,
    csv bytes)]."""
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(headline)}</title>"
           f"<style>{STYLE}</style></head><body>",
           f"<h1 id='headline'>{html.escape(headline)}</h1>",
           f"<p class='question'>{html.escape(question)}</p><dl class='facts'>",
           *(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts.items()),
           "</dl><h2 id='claims'>Claims</h2><table><tr><th>outcome</th><th>claim</th><th>data</th><th>detail</th>"
           "<th>items held / refuted / not established / error / not run</th></tr>"]
    for c in claims:
        shown = c["outcome"] + (" (the tool failed: not a result)" if c["outcome"] == "error" else "")
        out.append(f"<tr class='{c['outcome'].replace(' ', '-')}'><td>{html.escape(shown)}</td>"
                   f"<td>{html.escape(c['statement'] or c['test'])}<br><small>{html.escape(c['test'])}</small></td>"
                   f"<td>{html.escape(c.get('data', ''))}</td><td>{html.escape(c['detail'])}</td>"
                   f"<td class='num'>{c['held']} / {c['refuted']} / {c['not_established']} / {c['errors']} / "
                   f"{c['not_run']}</td></tr>")
    out.append("</table><h2>Figures</h2>")
    for name, data in figures:
        encoded = base64.b64encode(data).decode()
        out.append(f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{encoded}'>"
                   f"<figcaption><b>{html.escape(name)}</b>: {html.escape(CAPTIONS.get(name, ''))}</figcaption>"
                   "</figure>")
    for name, heading, intro, data in sections:
        out.append(f"<h2>{html.escape(heading)} <small>({name})</small></h2><p>{html.escape(intro)}</p>"
                   + html_table(data))
    out.append("</body></html>\n")
    return "\n".join(out).encode()


def facts_of(setup, extra: dict) -> dict:
    """What ran: the model exactly, where its weights came from, why, the plan; then `extra`."""
    from models.loading import provenance

    o = setup.options
    made = provenance(o.choice)
    return {"model": made["description"], "weights": made["source"], "why this model": o.choice.reason,
            **{k: v for k, v in made.items() if k.endswith("sha256") or k == "revision"},
            **extra, "engine": o.engine,
            "analysis plan": f"analysis_plan.toml sha256 {o.plan.digest}"
                             + (f" (overridden: {dict(o.plan.overrides)})" if o.plan.overrides else "")}


def headline_of(model: str, claims: list[dict], kind=None) -> str:
    """"<kind> run, <model>: h of n claims held, r refuted, u not established[, e errors (not a result)]"."""
    found = {o: sum(c["outcome"] == o for c in claims) for o in ("held", "refuted", "not established", "error")}
    prefix = f"{kind.kind.capitalize()} run, " if kind is not None else ""
    return (f"{prefix}{model}: {found['held']} of {len(claims)} claims held, {found['refuted']} refuted, "
            f"{found['not established']} not established"
            + (f", {found['error']} ERROR (the tool failed: not a result)" if found["error"] else ""))


def page(setup, collected, claims: list[dict], files: dict[str, bytes]) -> bytes:
    """The study question's page."""
    o, p = setup.options, setup.prompt
    question = (f"Silence head h of block L at the token {p.tokens.pieces[p.token]!r} of “{o.question.sentence}”, "
                f"for every one of the {setup.n_layers} x {setup.n_heads} (L, h), and test whether cosine"
                f"({p.tested.a}, {p.tested.b}) at block L's output moves.")
    facts = facts_of(setup, {"run kind": f"{setup.kind.kind}: {setup.kind.why}",
                             "tokens": " | ".join(p.tokens.pieces), "silenced token index": p.token,
                             "sentences": f"{len(setup.prompts)} ({setup.prompt_set_name}: {o.prompts_path.name}), "
                                          f"ablation {o.ablation}" if setup.prompts else "not used"})
    figures = [(name, files[name]) for name in sorted(n for n in files if n.endswith(".png"))]
    sections = [(name, heading, intro, files[name]) for name, heading, intro in SECTIONS if name in files]
    return document(headline=headline_of(setup.model_name, claims, setup.kind), question=question, facts=facts,
                    claims=claims, figures=figures, sections=sections)
