"""The IOI head-patching study on the run's model (`./run ioi`, `pytest -m ioi`): every head
of every block, at the last position, takes its output from the donor prompt (the names
swapped); the logit difference logit(IO) - logit(S) is read at the last position.

What the model does (which heads carry the indirect object) is reported, not asserted:
results/<model>/ioi-<hash>/ (per-head tests across the templates, corrected over all heads,
at the plan's ioi_sesoi; a layer x head heatmap). What is claimed here is the method, on the
real model: its two fixed points hold exactly.
"""
from experiments import judgments
from plugin.protocol import ITEMS_COMBINED, claim, decide

REPORT_ORDER = 70        # where the report lists this file's claims (plugin/protocol.py)


@claim(unit="chunk of IOI pairs", rule=ITEMS_COMBINED, report="ioi")
def test_patching_no_head_gives_the_recipient_and_every_head_the_donor(shards, ioi_chunk, study_setup, record,
                                                                       conclude):
    """The method's fixed points on the real model: patching nothing reproduces the recipient's
    logit difference, patching every head of every block at the last position the donor's."""
    c = shards.ioi_chunk(ioi_chunk)
    for k, i in enumerate(c.indices):
        pair = study_setup.ioi_pairs[i]
        record("ioi-pair", {"index": i, "template": pair.template, "io": pair.io, "s": pair.s,
                            "clean": float(c.clean[k]), "donor": float(c.donor[k]),
                            "change": (c.patched[:, :, k] - c.clean[k]).tolist()})
    decide(conclude, judgments.ioi_fixed_points(c), study_setup.plan.fail_on)
