"""Wiring: options, the model fixture (once per worker), parametrization over every
layer x head, and the report that the controller assembles from all workers' results.

Where numbers come from: hooks/ changes the model, experiments/ measure with metrics/; tests/ record what
they measured as `user_properties`, which pytest-xdist ships to the controller; the
controller writes results/<model>/ from them (report/results.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from hooks.architectures import ARCHITECTURES
from models.loading import SMOLLM2, ModelChoice, ModelNotAvailable, load, read_config, resolve
from experiments.prompts import ABLATIONS, PromptSetError, plan_prompts, read_prompts, run_prompts
from metrics.statistics import DEFAULT_SESOI
from experiments.study import MAX_DELTA, PAIRS, SENTENCE, SILENCE_WORD, Plan, Question, parse_pair, plan, run_study
from experiments.tokens import WordNotFound

ROOT = Path(__file__).resolve().parent
PROMPTS = ROOT / "tests" / "data" / "prompts.txt"
RECORD_KINDS = ("scenario", "baseline", "block", "control", "head", "scale", "top_k", "ripple", "head_output")


def pytest_addoption(parser):
    group = parser.getgroup("study", "the head-silencing study")
    group.addoption("--model", default=os.environ.get("STUDY_MODEL", "auto"),
                    help="auto (default; GPT-2 Large if cached, else SmolLM2-135M-Instruct), gpt2, gpt2-medium, "
                         "gpt2-large, gpt2-xl, smollm2-135m-instruct, or a local checkpoint folder. Env: STUDY_MODEL")
    group.addoption("--device", default=os.environ.get("STUDY_DEVICE", "cpu"),
                    help="torch device for the study model: cpu (default) or cuda. Env: STUDY_DEVICE")
    group.addoption("--sentence", default=SENTENCE, help=f"the sentence (default: {SENTENCE!r})")
    group.addoption("--silence-word", default=SILENCE_WORD,
                    help=f"the word whose last token is silenced (default: {SILENCE_WORD}); word#2 for its 2nd occurrence")
    group.addoption("--pair", action="append", default=None, metavar="A:B",
                    help="a word pair to compare, repeatable; the first is the tested pair "
                         f"(default: {' '.join(a + ':' + b for a, b in PAIRS)})")
    group.addoption("--engine", default="fast", choices=("fast", "naive"),
                    help="how the sweep of all layer x head silencings is computed: fast (default) "
                         "or naive (one plain silenced forward pass per head, the reference)")
    group.addoption("--max-delta", type=float, default=MAX_DELTA,
                    help=f"largest |change| in the tested pair's cosine one head may cause (default {MAX_DELTA})")
    group.addoption("--prompts", default=str(PROMPTS),
                    help="prompt set for the across-prompt tests: one sentence a line, each with the silenced "
                         "word and the tested pair (default: tests/data/prompts.txt, 24 variants)")
    group.addoption("--sesoi", type=float, default=DEFAULT_SESOI,
                    help=f"smallest effect size of interest, in cosine units: the equivalence (TOST) band is "
                         f"±SESOI (default {DEFAULT_SESOI}; see README 'Beyond the original study')")
    group.addoption("--ablation", default="zero", choices=ABLATIONS,
                    help="what replaces a head in the across-prompt single-head tests: zero (default, the "
                         "study's silencing) or mean (its mean output over every position of the prompt set)")
    group.addoption("--update-golden", action="store_true",
                    help="rewrite tests/golden/*.json from this run instead of comparing with it")
    group.addoption("--results-dir", default=str(ROOT / "results"),
                    help="where results/<model>/ is written (default: ./results)")


@dataclass(frozen=True)
class Setup:
    """Everything resolved at start-up, before any weights are loaded."""

    choice: ModelChoice
    n_layers: int
    n_heads: int
    plan: Plan
    device: str
    engine: str
    max_delta: float
    prompts: tuple = ()         # one Plan per sentence of the prompt set (tested pair only)
    prompts_path: str = ""
    sesoi: float = DEFAULT_SESOI
    ablation: str = "zero"
    prompts_problem: str = ""   # why the across-prompt tests are skipped, if they are


SETUP = pytest.StashKey[Setup]()


def _make_setup(config) -> Setup:
    from transformers import AutoTokenizer

    choice = resolve(config.getoption("model"))
    model_config = read_config(choice)
    if model_config.model_type not in ARCHITECTURES:
        raise ModelNotAvailable(
            f"--model {choice.name}: unsupported architecture {model_config.model_type!r}; "
            f"supported families are {', '.join(sorted(ARCHITECTURES))} (add a row to hooks/architectures.py)")
    tokenizer = AutoTokenizer.from_pretrained(choice.source, local_files_only=True)
    pairs = tuple(parse_pair(p) for p in config.getoption("pair")) if config.getoption("pair") else PAIRS
    question = Question(config.getoption("sentence"), config.getoption("silence_word"), pairs)
    max_tokens = getattr(model_config, "max_position_embeddings", None) or getattr(model_config, "n_positions", None)
    device = config.getoption("device")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise pytest.UsageError(f"--device {device!r}: use cpu or cuda")
    if device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise pytest.UsageError(f"--device {device}: no CUDA device on this machine; use --device cpu")
    if not config.getoption("max_delta") > 0:
        raise pytest.UsageError(f"--max-delta {config.getoption('max_delta')} must be > 0 (a bound on |change in cosine|)")
    if not config.getoption("sesoi") > 0:
        raise pytest.UsageError(f"--sesoi {config.getoption('sesoi')} must be > 0 (the equivalence band ±SESOI, "
                                f"in cosine units; default {DEFAULT_SESOI})")
    main_plan = plan(tokenizer, question, max_tokens)
    prompts_path = config.getoption("prompts")
    prompts_problem = ""
    try:
        prompts = plan_prompts(tokenizer, read_prompts(Path(prompts_path)), question, max_tokens, prompts_path)
    except PromptSetError as err:
        if prompts_path != str(PROMPTS):
            raise
        # The shipped set fits the study's question; a run that asks another (--sentence,
        # --silence-word, --pair) without its own --prompts keeps the single-sentence tests
        # and skips the across-prompt ones, saying why.
        prompts, prompts_problem = [], f"the default prompt set does not fit this question ({err}); pass --prompts"
    return Setup(choice, model_config.num_hidden_layers, model_config.num_attention_heads,
                 main_plan, device, config.getoption("engine"), config.getoption("max_delta"),
                 tuple(prompts), prompts_path, config.getoption("sesoi"), config.getoption("ablation"),
                 prompts_problem)


def pytest_configure(config):
    if not config.getoption("benchmark_only", False):
        # float32 sums come out in the last bit differently with another number of torch
        # threads. One thread in every process makes -n 0, -n auto and --tx runs write the
        # same bytes (and xdist workers do not fight over the cores). Benchmarks keep all.
        import torch
        torch.set_num_threads(1)
    try:
        config.stash[SETUP] = _make_setup(config)
    except (ModelNotAvailable, WordNotFound, PromptSetError) as err:
        raise pytest.UsageError(str(err)) from None
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        config.pluginmanager.register(StudyReport(config), "study-report")


def pytest_report_header(config):
    s = config.stash[SETUP]
    pieces = "|".join(s.plan.tokens.pieces)
    return [
        f"model: {s.choice.name} ({s.choice.source}), {s.n_layers} blocks x {s.n_heads} heads, "
        f"device {s.device}, engine {s.engine}",
        f"why this model: {s.choice.reason}",
        f"sentence: {s.plan.question.sentence!r} -> {pieces}",
        f"silenced token: {s.plan.tokens.pieces[s.plan.token]!r} (index {s.plan.token}, last token of "
        f"{s.plan.question.silence_word!r}); pairs: "
        + ", ".join(f"{p.label} ({p.i}, {p.j})" for p in s.plan.pairs),
        (f"prompt set: {len(s.prompts)} sentences from {s.prompts_path}; ablation {s.ablation}; "
         f"SESOI ±{s.sesoi} (cosine)") if s.prompts else f"prompt set: not used: {s.prompts_problem}",
    ]


def pytest_generate_tests(metafunc):
    setup = metafunc.config.stash[SETUP]
    if "site" in metafunc.fixturenames:
        sites = [(L, h) for L in range(setup.n_layers) for h in range(setup.n_heads)]
        metafunc.parametrize("site", sites, ids=[f"L{L:02d}-H{h:02d}" for L, h in sites])
    if "block" in metafunc.fixturenames:
        metafunc.parametrize("block", range(setup.n_layers), ids=[f"L{L:02d}" for L in range(setup.n_layers)])


@pytest.fixture(scope="session")
def setup(pytestconfig) -> Setup:
    return pytestconfig.stash[SETUP]


@pytest.fixture(scope="session")
def study_model(setup):
    """(model, tokenizer) of the study, loaded once per worker."""
    return load(setup.choice, setup.device)


@pytest.fixture(scope="session")
def study(setup, study_model):
    """The StudyRun: one clean pass and every single-head silencing, once per worker."""
    model, _ = study_model
    return run_study(model, setup.plan, setup.engine)


@pytest.fixture(scope="session")
def prompt_run(setup, study_model):
    """PromptRun: every single-head ablation on every prompt of the set, once per worker."""
    if not setup.prompts:
        pytest.skip(setup.prompts_problem)
    model, _ = study_model
    return run_prompts(model, list(setup.prompts), setup.ablation, setup.engine)


@pytest.fixture(scope="session")
def scale_run(setup, study_model, prompt_run):
    """ScaleRun: the interventions of growing scale (experiments/scales.py), once per worker."""
    from experiments.scales import run_scales

    model, _ = study_model
    return run_scales(model, list(setup.prompts), prompt_run.deltas)


@pytest.fixture(scope="session")
def smollm2_study_input(setup, request):
    """(SmolLM2-135M-Instruct, the study sentence's ids [1, 9]) whatever --model says: the real
    model every machine has offline, for exactness tests and benchmarks."""
    smollm2 = resolve(SMOLLM2)
    if setup.choice.source == smollm2.source and setup.device == "cpu":
        model, tokenizer = request.getfixturevalue("study_model")   # already loaded: reuse it
    else:
        model, tokenizer = load(smollm2)
    return model, tokenizer(SENTENCE, return_tensors="pt").input_ids


@pytest.fixture
def record(request):
    """record(kind, row): ship a measured row to the controller's report."""
    def _record(kind: str, row: dict) -> None:
        assert kind in RECORD_KINDS, kind
        request.node.user_properties.append((kind, row))
    return _record


class StudyReport:
    """Controller-side plugin: gathers every worker's recorded rows, writes the report."""

    def __init__(self, config):
        self.config = config
        self.records: list[tuple[str, dict]] = []
        self.report = None
        self.interrupted = False
        self.failed: list[str] = []

    def pytest_runtest_logreport(self, report):
        if report.when == "call":
            self.records.extend((k, row) for k, row in report.user_properties if k in RECORD_KINDS)
        if report.failed and "study" in report.keywords:
            self.failed.append(report.nodeid)

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo):
        # Said here, before pytest formats the interrupt (which can itself fail when the
        # signal lands inside torch's C code), so the user always reads it.
        self.interrupted = True
        if self.records:
            folder = Path(self.config.getoption("results_dir")) / self.config.stash[SETUP].choice.name
            print(f"\nrun interrupted: report not written; {folder} keeps the previous complete "
                  "report, if any", flush=True)

    def pytest_sessionfinish(self, session, exitstatus):
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self.interrupted = True
        elif self.records and not self.interrupted:
            from report.results import write_report

            self.report = write_report(Path(self.config.getoption("results_dir")),
                                       self.config.stash[SETUP], self.records, self.failed)

    def pytest_terminal_summary(self, terminalreporter):
        if self.report is not None:
            terminalreporter.section("study verdict")
            for line in self.report.summary_lines():
                terminalreporter.write_line(line)
