"""The run's figures as PNG bytes (matplotlib, no screen), each with the caption the HTML
page shows under it: what is drawn and what to look at.

    figures(setup, collected) -> {"baseline.png": bytes, ...}
    CAPTIONS["baseline.png"]  -> str
"""
from __future__ import annotations

import io

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.path import Path  # noqa: E402

CAPTIONS = {
    "baseline.png": "Clean model, per block: cosine of each pair at the block's output (the last point after the "
                    "final norm, as the study reads it; the hollow marker is the last block before the final norm). "
                    "The baseline claim: the tested pair above the comparison pair at every block but the first "
                    "and the last.",
    "silencing.png": "Left: per block, the tested pair's cosine with each head silenced at the token (circles) and "
                     "clean (line). Right: the differences; colour = the block's category. Look for blocks whose "
                     "circles sit consistently on one side of the line.",
    "heads.png": "Per (layer, head), the mean change of the tested pair's cosine across the sentence population, "
                 "with its category across templates (each template's mean one sample): * beyond ±SESOI (interval "
                 "entirely outside), = within ±SESOI (TOST), · not shown negligible (significant, neither), "
                 "? undecided. Look for * (heads that matter) and ? (what the data cannot decide).",
    "ioi.png": "IOI head patching: per (layer, head), the mean change of the logit difference logit(IO) - "
               "logit(S) at the last position when that head's output there comes from the donor (names swapped), "
               "with its category across templates: * beyond ±ioi_sesoi, = within (TOST), · not shown "
               "negligible, ? undecided. Negative: the head carried the indirect object.",
    "power.png": "Power curves measured on this run's own noise: share of draws in which a planted effect of "
                 "k x SESOI in a random unit is found significant (solid) and shown beyond ±SESOI by the "
                 "minimum-effect test, the test that would refute 'no unit beyond SESOI' (dash-dot), with the "
                 "closed form's prediction (x); and the family-wise false-positive rate with nothing planted "
                 "(dashed, against alpha).",
    "scales.png": "Interventions of growing scale: per kind, the number of blocks shown beyond ±SESOI "
                  "(left) and the largest |mean change| (right, log scale; top-k read at the last block). Where "
                  "does the effect become visible as the intervention grows?",
    "ripple.png": "Ripple: all heads of block L (row) silenced at the token, mean change read at every block "
                  "(column). Blocks before L are exactly unchanged; look at how far down a change is carried.",
}


def png(fig) -> bytes:
    buf = io.BytesIO()
    # No software/version text in the metadata: the same figure gives the same bytes.
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


COLOR = {"beyond SESOI": "tab:red", "not shown negligible": "tab:orange", "within SESOI": "tab:green",
         "undecided": "tab:gray"}
# Each category's mark in the head grids (* beyond, = within, · not shown negligible, ? undecided,
# as the captions say), (marker, size, line width): one scatter collection per category instead
# of a text per head (720 texts took 0.7 s of a GPT-2 Large-shaped report; a run's end is serial).
EQUALS = Path([(-1, 0.4), (1, 0.4), (-1, -0.4), (1, -0.4)], [Path.MOVETO, Path.LINETO, Path.MOVETO, Path.LINETO])
MARKER = {"beyond SESOI": ("$*$", 36, 0), "not shown negligible": (".", 12, 0), "within SESOI": (EQUALS, 30, 1.0),
          "undecided": ("$?$", 60, 0)}


def baseline(setup, rows) -> bytes:
    n = setup.n_layers
    fig, ax = plt.subplots(figsize=(8, 4))
    for r in sorted(rows, key=lambda r: (r["pair"] != setup.prompt.tested.label, r["pair"])):
        line, = ax.plot(range(n), r["clean"], "o-", ms=4, label=r["pair"])
        ax.plot([n - 1], [r["before_norm"]], "o", mfc="none", ms=9, color=line.get_color())
    ax.set(xlabel="block", ylabel="cosine similarity", title=f"{setup.model_name}: clean model, per block")
    ax.legend()
    return png(fig)


def silencing(setup, scenarios, blocks) -> bytes:
    tested = setup.prompt.tested.label
    rows = [r for r in scenarios if r["pair"] == tested]
    category = {b.layer: b.category for b in blocks}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    left.plot([r["layer"] for r in rows], [r["silenced"] for r in rows], "o", mfc="none", ms=5, alpha=0.6,
              label="one head silenced")
    clean = {r["layer"]: r["clean"] for r in rows}
    left.plot(sorted(clean), [clean[L] for L in sorted(clean)], "k-", lw=1.5, label="clean")
    left.set(xlabel="block", ylabel=f"cosine {tested}", title="silenced (circles) vs clean (line)")
    left.legend()
    right.axhline(0, color="gray", lw=0.8)
    for name, color in COLOR.items():
        picked = [r for r in rows if category.get(r["layer"]) == name]
        if picked:
            right.plot([r["layer"] for r in picked], [r["delta"] for r in picked], "x", color=color, ms=5,
                       label=f"block {name}")
    right.set(xlabel="block", ylabel="silenced - clean", title="differences, by the block's category")
    if category:
        right.legend(fontsize=8)
    fig.suptitle(f"{setup.model_name}: each head silenced at {setup.prompt.tokens.pieces[setup.prompt.token]!r}")
    fig.tight_layout()
    return png(fig)


def head_grid(units, n_layers: int, n_heads: int, sesoi: float, title: str, unit: str) -> bytes:
    """Layer x head heatmap of each head's mean change, marked with its category."""
    grid = np.zeros((n_layers, n_heads))
    for u in units:
        grid[u.layer, u.head] = u.mean
    lim = max(np.abs(grid).max(), sesoi)
    fig, ax = plt.subplots(figsize=(2 + 0.45 * n_heads, 1 + 0.28 * n_layers))
    im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for category, (marker, size, width) in MARKER.items():
        picked = [u for u in units if u.category == category]
        if picked:
            ax.scatter([u.head for u in picked], [u.layer for u in picked], marker=marker, s=size, c="k",
                       linewidths=width)
    ax.set(xlabel="head", ylabel="block", title=title)
    fig.colorbar(im, ax=ax, label=f"mean change ({unit})")
    fig.tight_layout()
    return png(fig)


def power(rates) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4))
    families = list(dict.fromkeys(r.family for r in rates if r.test == "difference"))
    for family in families:
        rows = [r for r in rates if r.family == family and r.test == "difference"]
        planted = [r for r in rows if r.k > 0]
        line, = ax.plot([r.k for r in planted], [r.planted_flagged for r in planted], "o-", label=f"{family}: found")
        beyond = [r for r in rates if r.family == family and r.test == "beyond" and r.k > 0]
        if beyond:
            ax.plot([r.k for r in beyond], [r.planted_flagged for r in beyond], "s-.", color=line.get_color(),
                    label=f"{family}: shown beyond SESOI")
            ax.plot([r.k for r in beyond], [r.predicted for r in beyond], "x", color=line.get_color())
        null = [r for r in rows if r.k == 0]
        if null:
            ax.axhline(null[0].any_null_flagged, ls="--", color=line.get_color(),
                       label=f"{family}: false positives (any unit, nothing planted)")
    ax.set(xlabel="planted effect (x SESOI)", ylabel="share of draws", ylim=(-0.02, 1.02),
           title="power and false-positive rate on this run's noise")
    ax.legend(fontsize=8)
    return png(fig)


def scales(setup, rows, top_k) -> bytes:
    kinds = list(dict.fromkeys(r["intervention"] for r in sorted(rows, key=lambda r: r["order"])))
    effect = [sum(r["category"] == "beyond SESOI" for r in rows if r["intervention"] == k) for k in kinds]
    largest = [max(abs(r["mean"]) for r in rows if r["intervention"] == k) for k in kinds]
    labels = kinds + [f"top-{r['k']} heads" for r in top_k]
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.5))
    a.bar(range(len(kinds)), effect, color="tab:blue")
    a.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right")
    a.set(ylabel=f"blocks beyond SESOI (of {setup.n_layers})", title="per-block interventions")
    x = range(len(labels))
    b.semilogy(x, largest + [max(abs(r["mean"]), 1e-9) for r in top_k], "o-")
    b.axhline(setup.plan.sesoi, color="gray", ls="--", label=f"SESOI {setup.plan.sesoi}")
    b.set_xticks(list(x), labels, rotation=30, ha="right")
    b.set(ylabel="|mean Δ cosine|", title="size of the change")
    b.legend()
    fig.suptitle(f"{setup.model_name}: where the effect appears as the intervention grows")
    fig.tight_layout()
    return png(fig)


def ripple(setup, rows) -> bytes:
    n = setup.n_layers
    grid = np.zeros((n, n))
    for r in rows:
        grid[r["layer"], r["read_at"]] = r["mean_delta"]
    lim = np.abs(grid).max() or 1.0
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set(xlabel="read at block", ylabel="silenced block (all heads, at the token)",
           title=f"{setup.model_name}: ripple (mean Δcos)")
    fig.colorbar(im, ax=ax, label="mean Δ cosine")
    fig.tight_layout()
    return png(fig)


def figures(setup, collected) -> dict[str, bytes]:
    """Every figure whose data the run has."""
    rows, kept = collected.rows, collected.kept
    # Rows arrive in the order workers finished: sort them, or the same run draws other bytes.
    scenarios = sorted(rows["scenario"], key=lambda r: (r["pair"], r["layer"], r["head"]))
    out = {}
    if rows["baseline"]:
        out["baseline.png"] = baseline(setup, rows["baseline"])
    if rows["scenario"]:
        out["silencing.png"] = silencing(setup, scenarios, kept.get("blocks", []))
    if kept.get("heads"):
        out["heads.png"] = head_grid(kept["heads"], setup.n_layers, setup.n_heads, setup.plan.sesoi,
                                     f"{setup.model_name}: mean Δcos across sentences", "cosine")
    if kept.get("power"):
        out["power.png"] = power(kept["power"])
    if rows["scale"]:
        out["scales.png"] = scales(setup, sorted(rows["scale"], key=lambda r: (r["order"], r["layer"])),
                                   sorted(rows["top_k"], key=lambda r: r["k"]))
    if rows["ripple"]:
        out["ripple.png"] = ripple(setup, rows["ripple"])
    return out
