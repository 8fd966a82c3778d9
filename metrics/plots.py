"""The study's figures, redrawn as PNG files (matplotlib, no screen needed)."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metrics.report import atomic_write  # noqa: E402


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    # A fixed creation date in the metadata keeps the bytes reproducible.
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def draw_all(folder: Path, setup, clean: dict, scenarios: list, tests_by_pair: dict) -> None:
    pairs = [p.label for p in setup.plan.pairs]
    n = setup.n_layers
    model = setup.choice.name

    if all(len(clean[p]) == n for p in pairs):
        fig, ax = plt.subplots(figsize=(8, 4))
        for pair in pairs:
            ax.plot(range(n), [clean[pair][L] for L in range(n)], "o-", label=pair, ms=4)
        ax.set(xlabel="block", ylabel="cosine similarity", title=f"{model}: clean model, per block")
        ax.legend()
        _save(fig, folder / "baseline.png")

    tested = pairs[0]
    rows = [r for r in scenarios if r["pair"] == tested]
    if not rows:
        return
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
    _save(fig, folder / "silencing.png")
