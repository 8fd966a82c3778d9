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
