"""The suite's command-line options, checked at start-up without loading any model.

Everything that can be checked cheaply is checked here, in every process, before any test
is collected: a bad value stops the run with one line naming it and the fix. What needs the
model's tokenizer or config (is the word in the sentence?) is checked as soon as a study
test is collected (plugin/setup.py), still before any test runs.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments.plan import PlanError, load_plan
from experiments.population import HALVES
from experiments.prompt_set import ABLATIONS, PromptSetError, read_prompt_set
from experiments.question import PAIRS, SENTENCE, SILENCE_WORD, Question, check_word_syntax, parse_pair
from experiments.tokens import WordNotFound
from models.loading import (DTYPES, ModelChoice, ModelNotAvailable, cache_dir, converted_in_cache, default_dtype,
                            resolve)
from plugin import faults

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROMPTS = HALVES["exploration"]
ENGINES = ("fast", "naive")


def pytest_addoption(parser):
    group = parser.getgroup("study", "the head-silencing study")
    group.addoption("--model", default=os.environ.get("STUDY_MODEL", "auto"),
                    help="auto (default; GPT-2 Large if cached, else SmolLM2-135M-Instruct), gpt2, gpt2-medium, "
                         "gpt2-large, gpt2-xl, smollm2-135m-instruct, gemma3-270m, or a local checkpoint folder. "
                         "Env: STUDY_MODEL")
    group.addoption("--device", default=os.environ.get("STUDY_DEVICE", "cpu"),
                    help="torch device for the study model: cpu (default) or cuda (with -n N, worker gwI uses GPU "
                         "I mod the number of GPUs). Env: STUDY_DEVICE")
    group.addoption("--dtype", default=os.environ.get("STUDY_DTYPE"),
                    help=f"the model's dtype: {', '.join(DTYPES)} (default: float32 on cpu, bfloat16 on cuda; "
                         "statistics are float64 whatever it is). Env: STUDY_DTYPE")
    group.addoption("--threads", default=os.environ.get("STUDY_THREADS", "1"),
                    help="torch threads in each process that computes: 1 (default: reports byte-identical "
                         "however the run is spread) or a number, or all (every core; the fastest -n 0, "
                         "float sums may differ from -n N's in the last bit). Env: STUDY_THREADS")
    group.addoption("--device-map", default=None, choices=("auto",),
                    help="auto: spread the model's blocks over every visible GPU (accelerate), for a model one "
                         "GPU cannot hold; needs --device cuda")
    group.addoption("--sentence", default=SENTENCE, help=f"the sentence (default: {SENTENCE!r})")
    group.addoption("--silence-word", default=SILENCE_WORD,
                    help=f"the word whose last token is silenced (default: {SILENCE_WORD}); word#2 for its 2nd occurrence")
    group.addoption("--pair", action="append", default=None, metavar="A:B",
                    help="a word pair to compare, repeatable; the first is the tested pair "
                         f"(default: {' '.join(a + ':' + b for a, b in PAIRS)})")
    group.addoption("--engine", default="fast", choices=ENGINES,
                    help="how every layer x head silencing is computed: fast (default) or naive (one plain "
                         "silenced forward pass per head, the reference)")
    group.addoption("--prompts", default="exploration",
                    help="the sentence population of the across-sentence claims: exploration (default; the "
                         "half the plan was developed with), same-templates (the other half, the same templates "
                         "re-drawn), confirmation (held-out templates: confirmatory runs), or a file with one "
                         "sentence a line ('[template] sentence' to group them), each with the silenced word and "
                         "the tested pair (experiments/population.py)")
    group.addoption("--ablation", default="zero", choices=ABLATIONS,
                    help="what replaces a head in the across-prompt tests: zero (default, the study's silencing), "
                         "mean (its mean output over every position of the prompt set) or resample (its output "
                         "at the silenced token of the next prompt of the set)")
    group.addoption("--sesoi", type=float, default=None,
                    help="override the analysis plan's smallest effect size of interest (cosine units) for an "
                         "exploratory run; the header and summary.json show the overridden plan's hash")
    group.addoption("--max-delta", type=float, default=None,
                    help="override the analysis plan's bound on one head's |change in cosine| (exploratory)")
    group.addoption("--update-golden", action="store_true",
                    help="rewrite tests/golden/*.json from this run instead of comparing with it")
    group.addoption("--results-dir", default=str(ROOT / "results"),
                    help="where results/<model>/<question>/ is written (default: ./results)")


@dataclass(frozen=True)
class Options:
    """The run's options, checked (no model loaded)."""

    choice: ModelChoice
    device: str
    dtype: str                   # one of models.loading.DTYPES
    question: Question
    engine: str
    prompts_path: Path
    prompt_sentences: tuple
    ablation: str
    plan: object                 # experiments.plan.AnalysisPlan, with any --sesoi / --max-delta override
    results_dir: Path
    update_golden: bool
    device_map: str | None = None   # "auto": the blocks spread over every GPU (models/placement.py)
    prompt_templates: tuple = ()    # each sentence's template, the unit of replication (experiments/prompt_set.py)

    @property
    def default_prompts(self) -> bool:
        return self.prompts_path == DEFAULT_PROMPTS


OPTIONS = pytest.StashKey[Options]()


def _writable(folder: Path, say) -> None:
    """Make `folder` and write a file in it; pytest.UsageError(say(the OSError)) if the disk refuses."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise pytest.UsageError(say(err)) from None


def _cache(choice: ModelChoice) -> None:
    """A bundled model is converted into STUDY_CACHE (models/bundled.py): it must be a folder
    this user can make and write, checked now rather than in the middle of collection."""
    if converted_in_cache(choice):
        _writable(cache_dir(), lambda err: faults.cache_unusable(err, choice))


def _device(device: str) -> str:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise pytest.UsageError(f"--device {device!r}: use cpu or cuda")
    if device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise pytest.UsageError(f"--device {device}: no CUDA device on this machine; use --device cpu")
    return device


def _dtype(dtype: str | None, device: str) -> str:
    if dtype is None or dtype == "":
        return default_dtype(device)
    if dtype not in DTYPES:
        raise pytest.UsageError(f"--dtype {dtype!r}: use one of {', '.join(DTYPES)} (or unset STUDY_DTYPE)")
    return dtype


def _device_map(device_map: str | None, device: str) -> str | None:
    if device_map is not None and not device.startswith("cuda"):
        raise pytest.UsageError(f"--device-map {device_map} spreads a model over GPUs: add --device cuda, "
                                "or leave --device-map out")
    return device_map


def read_options(config) -> Options:
    """Check every option that needs no model; raise pytest.UsageError (one line) if one is bad."""
    get = config.getoption
    try:
        plan = load_plan().with_overrides(sesoi=get("sesoi"), max_delta=get("max_delta"))
        sentence, word = get("sentence"), get("silence_word")
        if not sentence.strip():
            raise WordNotFound("the sentence is empty: pass --sentence with a sentence that contains the words "
                               "to compare")
        pairs = tuple(parse_pair(p) for p in get("pair")) if get("pair") else PAIRS
        check_word_syntax(word, "--silence-word")
        for a, b in pairs:
            check_word_syntax(a, "--pair")
            check_word_syntax(b, "--pair")
        prompts_path = HALVES.get(get("prompts")) or Path(get("prompts")).expanduser().resolve()
        sentences, templates = read_prompt_set(prompts_path)
        choice = resolve(get("model"))
    except (PlanError, WordNotFound, PromptSetError, ModelNotAvailable) as err:
        raise pytest.UsageError(str(err)) from None
    results_dir = Path(get("results_dir")).expanduser()
    _writable(results_dir, lambda err: faults.results_dir_unusable(err, results_dir))
    _cache(choice)
    device = _device(get("device"))
    return Options(choice, device, _dtype(get("dtype"), device), Question(sentence, word, pairs), get("engine"),
                   prompts_path, tuple(sentences), get("ablation"), plan, results_dir, get("update_golden"),
                   _device_map(get("device_map"), device), tuple(templates))


def computes(config) -> bool:
    """Does this process run test items (an xdist worker, or a run without workers)? An xdist
    controller only schedules and reduces: it loads no model and runs no forward pass (it
    takes the study's setup from a worker, plugin/setup.py)."""
    return hasattr(config, "workerinput") or getattr(config.option, "dist", "no") == "no"


def torch_threads(value: str) -> int:
    """--threads: a positive number, or all (this process's cores)."""
    if value == "all":
        return len(os.sched_getaffinity(0))
    if not value.isdigit() or int(value) < 1:
        raise pytest.UsageError(f"--threads {value!r}: use a positive number or all (or unset STUDY_THREADS)")
    return int(value)


# torch's CPU allocator puts every tensor of 2 MB or more on transparent huge pages when this
# is "1" (read at its first allocation; Linux only, where the kernel offers them: "madvise" or
# "always" in /sys/kernel/mm/transparent_hugepage/enabled). A sweep's largest tensors (a padded
# batch's result: 1.2 GB on the GPT-2 Large shape) are written once, and on 4 KB pages each
# 4 KB costs a page fault: on this project's 2-core machine that batch took 3.35 s on 4 KB
# pages, 3.05 s on huge pages (one run each, 2026-12-06). Set it to 0 to keep 4 KB pages.
HUGE_PAGES = "THP_MEM_ALLOC_ENABLE"


def use_huge_pages() -> None:
    """torch's large CPU tensors on huge pages in this process (HUGE_PAGES), unless the
    environment already says either way. Before torch's first allocation, so before any model
    is built: every process of a run calls it in pytest_configure (workers inherit it too)."""
    os.environ.setdefault(HUGE_PAGES, "1")


def pytest_configure(config):
    use_huge_pages()
    threads = torch_threads(config.getoption("threads"))
    if computes(config) and not config.getoption("benchmark_only", False):
        # float32 sums come out in the last bit differently with another number of torch
        # threads. One thread in every process (the default) makes -n 0, -n auto and --tx
        # runs write the same bytes (and xdist workers do not fight over the cores).
        # Benchmarks keep all.
        import torch
        torch.set_num_threads(threads)
    config.stash[OPTIONS] = read_options(config)
