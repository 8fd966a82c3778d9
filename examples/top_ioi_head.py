"""Your own claim, in one file: silencing the IOI head L23-H03 at the last token moves
logit(IO) - logit(S) beyond ±effect across the IOI templates.

    ./run study --claims examples/top_ioi_head.py      # or: pytest -m claim -n auto examples/top_ioi_head.py

Its numbers are in its own plan, top_ioi_head.plan.toml (the study's analysis_plan.toml is
untouched; the report prints this plan's sha256), and the run writes
results/<model>/top-ioi-head-<hash>/ (claims.csv, summary.json, report.html).
"""
import numpy as np
import torch

from experiments.analysis import Verdict, cluster_means, share_verdict, unit_table
from experiments.ioi import final_states, logit_difference
from experiments.manipulation import moved
from experiments.plan import load_claim_plan
from hooks import ablate
from metrics import outcomes
from plugin.protocol import ITEMS_COMBINED, SHARE_BEYOND, claim, decide

PLAN = load_claim_plan(__file__)            # top_ioi_head.plan.toml
REPORT = "top-ioi-head"                     # results/<model>/top-ioi-head-<hash>/


@torch.no_grad()
def silencing_effect(model, pairs) -> np.ndarray:
    """[pairs, 2]: the change of logit(IO) - logit(S) at the last token when head PLAN.head of
    block PLAN.layer is silenced there (hooks.ablate, the plain hooked pass), and the clean value."""
    out = []
    for pair in pairs:
        ids = torch.tensor([pair.recipient_ids], device=next(model.parameters()).device)
        clean = logit_difference(model, final_states(model, ids), pair.correct_id, pair.other_id)
        with ablate(model, PLAN.layer, PLAN.head, len(pair.recipient_ids) - 1):
            silenced = logit_difference(model, final_states(model, ids), pair.correct_id, pair.other_id)
        out.append((float(silenced - clean), float(clean)))
    return np.array(out)


@claim(unit="IOI pair", rule=ITEMS_COMBINED, plan=PLAN, report=REPORT)
def test_the_head_is_silenced_on_every_pair(shards, ioi_chunk, study_setup, record, conclude):
    """Manipulation check: silencing the head at the last token changes every pair's logit
    difference beyond round-off (the hook acted)."""
    pairs = [study_setup.ioi_pairs[i] for i in ioi_chunk]
    found = shards.compute(f"{REPORT}-{ioi_chunk[0]:03d}", lambda model: silencing_effect(model, pairs))
    for i, pair, (change, clean) in zip(ioi_chunk, pairs, found):
        record(REPORT, {"index": i, "template": pair.template, "change": change})
    still = [i for i, (change, clean) in zip(ioi_chunk, found) if not moved(abs(change) / max(1.0, abs(clean)), PLAN)]
    verdict = Verdict(outcomes.REFUTED if still else outcomes.HELD,
                      f"pairs whose logit difference did not move: {still}" if still else "", (), ())
    decide(conclude, verdict, PLAN.fail_on)


@claim(unit="IOI template", rule=SHARE_BEYOND, plan=PLAN, report=REPORT,
       reads=REPORT, after=test_the_head_is_silenced_on_every_pair)
def test_silencing_the_top_ioi_head_moves_the_logit_difference(run):
    """Silencing head L23-H03 at the last token moves logit(IO) - logit(S) beyond ±effect
    (minimum-effect test on the IOI templates' means)."""
    rows = sorted(run.rows[REPORT], key=lambda r: r["index"])
    means, _ = cluster_means([[r["change"] for r in rows]], [r["template"] for r in rows])
    head = unit_table(means, [(PLAN.layer, PLAN.head)], PLAN, sesoi=PLAN.effect, label="the head")
    decide(run, share_verdict(head, PLAN, share=0.0, bound=PLAN.effect, what="heads"), PLAN.fail_on)
