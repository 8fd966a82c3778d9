"""The study's figures, redrawn as PNG files (matplotlib, no screen needed)."""
from __future__ import annotations

import io
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402



def _png(fig) -> bytes:
    buf = io.BytesIO()
    # No software/version text in the metadata: the same figure gives the same bytes.
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def draw_all(setup, clean: dict, scenarios: list, tests_by_pair: dict) -> dict[str, bytes]:
    """The study's figures as {file name: PNG bytes}."""
    files = {}
    pairs = [p.label for p in setup.plan.pairs]
    n = setup.n_layers
    model = setup.choice.name

    if all(len(clean[p]) == n for p in pairs):
        fig, ax = plt.subplots(figsize=(8, 4))
        for pair in pairs:
            ax.plot(range(n), [clean[pair][L] for L in range(n)], "o-", label=pair, ms=4)
        ax.set(xlabel="block", ylabel="cosine similarity", title=f"{model}: clean model, per block")
        ax.legend()
        files["baseline.png"] = _png(fig)

    tested = pairs[0]
    rows = [r for r in scenarios if r["pair"] == tested]
    if not rows:
        return files
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    left.plot([r["layer"] for r in rows], [r["silenced"] for r in rows], "o", mfc="none", ms=5, alpha=0.6,
              label="one head silenced")
    if len(clean[tested]) == n:
        left.plot(range(n), [clean[tested][L] for L in range(n)], "k-", lw=1.5, label="clean")
    left.set(xlabel="block", ylabel=f"cosine {tested}", title="silenced (circles) vs clean (line)")
    left.legend()
    tests = {t.layer: t for t in tests_by_pair.get(tested, [])}
    sig = [r for r in rows if tests.get(r["layer"]) and tests[r["layer"]].significant]
    non = [r for r in rows if not (tests.get(r["layer"]) and tests[r["layer"]].significant)]
    right.axhline(0, color="gray", lw=0.8)
    right.plot([r["layer"] for r in non], [r["delta"] for r in non], "rx", ms=5, label="block not significant")
    if sig:
        right.plot([r["layer"] for r in sig], [r["delta"] for r in sig], "^", color="tab:green", ms=6,
                   label="block significant")
    right.set(xlabel="block", ylabel="silenced - clean", title="differences (Bonferroni per block)")
    right.legend()
    fig.suptitle(f"{model}: silencing each head at {setup.plan.tokens.pieces[setup.plan.token]!r}")
    fig.tight_layout()
    files["silencing.png"] = _png(fig)
    return files


CATEGORY_MARK = {"effect": "*", "negligible effect": "·", "equivalent": "=", "undecided": "?"}


def draw_beyond(model: str, heads: list, scales: list, top_k: list, ripple: list, n_layers: int,
                n_heads: int, sesoi: float) -> dict[str, bytes]:
    """heads.png (layer x head mean Δ across prompts, marked by category), ripple.png
    (block x block mean Δ) and scales.png (per intervention: blocks with an effect, and the
    largest |mean Δ|). Each only when its rows are there."""
    import numpy as np

    files = {}
    if len(heads) == n_layers * n_heads:
        grid = np.zeros((n_layers, n_heads))
        for r in heads:
            grid[r["layer"], r["head"]] = r["mean"]
        lim = max(abs(grid).max(), sesoi)
        fig, ax = plt.subplots(figsize=(2 + 0.6 * n_heads, 1 + 0.3 * n_layers))
        im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        for r in heads:
            ax.text(r["head"], r["layer"], CATEGORY_MARK[r["category"]], ha="center", va="center", fontsize=8)
        ax.set(xlabel="head", ylabel="block", xticks=range(n_heads), yticks=range(n_layers),
               title=f"{model}: mean Δcos across prompts\n* effect  · significant but within ±{sesoi}  "
                     "= equivalent  ? undecided")
        fig.colorbar(im, ax=ax, label="mean Δ cosine")
        fig.tight_layout()
        files["heads.png"] = _png(fig)
    if ripple:
        kind = ripple[0]["intervention"]
        grid = np.zeros((n_layers, n_layers))
        for r in ripple:
            grid[r["layer"], r["read_at"]] = r["mean_delta"]
        lim = abs(grid).max() or 1.0
        fig, ax = plt.subplots(figsize=(7, 6))
        im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set(xlabel="read at block", ylabel="intervened block", title=f"{model}: ripple of '{kind}' (mean Δcos)")
        fig.colorbar(im, ax=ax, label="mean Δ cosine")
        fig.tight_layout()
        files["ripple.png"] = _png(fig)
    if scales:
        kinds = list(dict.fromkeys(r["intervention"] for r in scales))
        effect = [sum(r["category"] == "effect" for r in scales if r["intervention"] == k) for k in kinds]
        largest = [max(abs(r["mean"]) for r in scales if r["intervention"] == k) for k in kinds]
        labels, x = kinds + [f"top-{r['k']} heads" for r in top_k], range(len(kinds) + len(top_k))
        fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.5))
        a.bar(range(len(kinds)), effect, color="tab:blue", label="blocks with an effect (of %d)" % n_layers)
        a.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right")
        a.set(ylabel="blocks", title="per-block interventions: blocks with an effect beyond ±SESOI")
        b.semilogy(x, largest + [abs(r["mean"]) for r in top_k], "o-")
        b.axhline(sesoi, color="gray", ls="--", label=f"SESOI {sesoi}")
        b.set_xticks(list(x), labels, rotation=30, ha="right")
        b.set(ylabel="|mean Δ cosine| (largest block / top-k at last block)", title="size of the change")
        b.legend()
        fig.suptitle(f"{model}: where the effect appears as the intervention grows")
        fig.tight_layout()
        files["scales.png"] = _png(fig)
    return files
