"""The regression gate on the study's numbers: this run's numbers on its model equal the
checked-in golden ones (claims/golden/<model>.json), within report.golden.TOLERANCE.
`--update-golden` rewrites the file on purpose; review its diff like code."""
import pytest

from experiments.analysis import Verdict
from experiments.question import Question
from metrics import outcomes
from plugin import faults
from plugin.protocol import ITEMS_COMBINED, claim, decide
from report import golden
from report.files import NotWritten
from report.results import versions

REPORT_ORDER = 60        # where the report lists this file's claims (plugin/protocol.py)


@pytest.mark.xdist_group("golden")        # reads every prompt chunk: scheduled after them
@claim(unit="the run's numbers", rule=ITEMS_COMBINED, data="study sentence")
def test_study_numbers_match_golden(shards, study_setup, pytestconfig, conclude):
    """Regression gate: the study's numbers on this model equal the checked-in golden ones."""
    s = study_setup
    if s.options.question != Question():
        pytest.skip("golden numbers exist for the study's own sentence, word and pairs only")
    if s.options.dtype != "float32":
        pytest.skip(f"golden numbers are float32 ones; a {s.options.dtype} run differs from them by "
                    "round-off far above the gate's tolerance (hooks/precision.py)")
    path = golden.numbers_path(s.model_name)
    head_means, not_measured = None, ("head_means_across_prompts",)
    if s.options.default_prompts and s.options.ablation == "zero" and s.prompts:
        head_means, not_measured = shards.prompt_deltas(range(len(s.prompts))).mean(-1), ()
    if not path.is_file() and (not_measured or not pytestconfig.getoption("update_golden")):
        pytest.skip(f"no golden file for {s.model_name}; a run on the exploration half makes one with --update-golden")
    try:
        problems = golden.gate(path, golden.numbers(shards.study(), head_means), versions(),
                               update=pytestconfig.getoption("update_golden"), not_measured=not_measured)
    except NotWritten as err:          # a full disk, a read-only checkout: one line, the old file kept
        raise faults.EnvironmentFault(faults.golden_not_written(err)) from None
    decide(conclude, Verdict(outcomes.REFUTED if problems else outcomes.HELD, "\n".join(problems[:40]), (), ()),
           s.plan.fail_on)
