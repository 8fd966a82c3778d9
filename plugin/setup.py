"""What a run needs from the model before any study test runs, resolved only when needed.

`setup_of(config)` reads the model's config (layers x heads, for one test per layer x head)
and its tokenizer (where the words are), and checks the question and the prompt set
against them. It runs the first time a study test is collected, never for a run that
collects none (`pytest tests/verdicts/test_statistics.py` touches no model), and its answer is kept
for the rest of the session. A failure is a SetupError whose message is the one line the
user sees (plugin/collection.py turns it into pytest's usage error).
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments.plan import run_kind
from experiments.population import HALVES
from experiments.prompt_set import PromptSetError, locate_prompts
from experiments.ioi_templates import generate_pairs
from experiments.question import Prompt, locate_question
from experiments.tokens import WordNotFound
from models.loading import ModelNotAvailable, converted_in_cache, known_answer_of, read_config, read_tokenizer
from plugin import faults
from plugin.options import OPTIONS, Options, computes
from plugin.store import STORE


class SetupError(Exception):
    """The run cannot start: the message names the bad value and the fix."""


@dataclass(frozen=True)
class Setup:
    """The options, plus what the model's config and tokenizer say about them."""

    options: Options
    n_layers: int
    n_heads: int
    prompt: Prompt                # the study sentence, located
    prompts: tuple                # the prompt set, located (empty: see prompts_problem)
    prompts_problem: str          # why the across-prompt tests are skipped, if they are
    ioi_pairs: tuple = ()         # IOI prompt pairs for this tokenizer (empty: see ioi_problem)
    ioi_problem: str = ""

    @property
    def plan(self):
        return self.options.plan

    @property
    def model_name(self) -> str:
        return self.options.choice.name

    @property
    def prompt_set_name(self) -> str | None:
        """"exploration" / "same-templates" / "confirmation" (the study's sets), a user file's name, or None."""
        if not self.prompts:
            return None
        return next((name for name, path in HALVES.items() if path == self.options.prompts_path),
                    self.options.prompts_path.name)

    @property
    def templates(self) -> tuple:
        """Each prompt's template (the unit of replication), in the prompts' order."""
        return tuple(self.options.prompt_templates) if self.prompts else ()

    @property
    def kind(self):
        """Exploratory, confirmatory or known-answer (experiments.plan.RunKind), for the headline."""
        return run_kind(self.plan, self.model_name, self.prompt_set_name,
                        known_answer=known_answer_of(self.options.choice) is not None)

    def claim_kind(self, data: str = "population"):
        """The kind of a claim's data: data "population" (the sentence set) or "study sentence"
        (never confirmatory for a model explored before the plan)."""
        return run_kind(self.plan, self.model_name, self.prompt_set_name,
                        known_answer=known_answer_of(self.options.choice) is not None,
                        data="sentence" if data == "study sentence" else "population")

    def question_digest(self) -> str:
        o = self.options
        sentences = [f"[{t}] {s}" for t, s in zip(o.prompt_templates, o.prompt_sentences)] if self.prompts else []
        return o.question.digest(sentences, o.ablation, o.plan.digest)

    def ioi_digest(self) -> str:
        """A short hash of what defines the IOI results: the pairs and the plan."""
        text = json.dumps([[q.recipient for q in self.ioi_pairs], self.plan.digest])
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def ioi_folder(self) -> Path:
        """results/<model>/ioi-<hash>: the IOI study is a question of its own."""
        return self.options.results_dir / self.model_name / f"ioi-{self.ioi_digest()}"

    @property
    def results_folder(self) -> Path:
        """results/<model>/<question>-<hash>: two questions never share a folder."""
        o = self.options
        return o.results_dir / self.model_name / f"{o.question.slug()}-{self.question_digest()}"

    def header_lines(self) -> list[str]:
        o, p = self.options, self.prompt
        pieces = "|".join(p.tokens.pieces)
        return [
            f"model: {o.choice.name} ({o.choice.source}), {self.n_layers} blocks x {self.n_heads} heads, "
            f"device {o.device}" + (" (blocks spread over every GPU)" if o.device_map else "")
            + f", dtype {o.dtype}, engine {o.engine}",
            f"why this model: {o.choice.reason}",
            f"sentence: {o.question.sentence!r} -> {pieces}",
            f"silenced token: {p.tokens.pieces[p.token]!r} (index {p.token}, last token of "
            f"{o.question.silence_word!r}); pairs: " + ", ".join(f"{q.label} ({q.i}, {q.j})" for q in p.pairs),
            (f"prompt set: {len(self.prompts)} sentences from {o.prompts_path} ({self.prompt_set_name}), "
             f"{len(set(self.templates))} templates; ablation {o.ablation}"
             if self.prompts else f"prompt set: not used: {self.prompts_problem}"),
            f"results: {self.results_folder}",
            f"run kind: {self.kind.kind} ({self.kind.why})",
        ]

    def ioi_header_lines(self) -> list[str]:
        if not self.ioi_pairs:
            return [f"IOI: not run: {self.ioi_problem}"]
        return [f"IOI: {len(self.ioi_pairs)} prompt pairs (seed {self.plan.ioi_seed}), e.g. "
                f"{self.ioi_pairs[0].recipient!r} -> {self.ioi_pairs[0].io!r}; results: {self.ioi_folder}"]


SETUP = pytest.StashKey[object]()      # a Setup, or the SetupError that resolving it raised
_RESOLVING = threading.Lock()          # one resolution per process, also with the background thread


def _resolve(options: Options) -> Setup:
    from hooks.architectures import ARCHITECTURES

    choice = options.choice
    try:
        config = read_config(choice)
        if config.model_type not in ARCHITECTURES:
            raise SetupError(
                f"--model {choice.name}: unsupported architecture {config.model_type!r}; supported families "
                f"are {', '.join(sorted(ARCHITECTURES))} (add a row to hooks/architectures.py)")
        tokenizer = read_tokenizer(choice)
        max_tokens = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        prompt = locate_question(tokenizer, options.question, max_tokens)
    except (ModelNotAvailable, WordNotFound) as err:
        raise SetupError(str(err)) from None
    except OSError as err:             # converting a bundled model: the cache refused it (models/loading.prepare)
        if not converted_in_cache(choice):
            raise
        raise SetupError(faults.cache_unusable(err, choice)) from None
    try:
        prompts = locate_prompts(tokenizer, list(options.prompt_sentences), options.question, max_tokens,
                                 options.prompts_path)
        problem = ""
    except PromptSetError as err:
        if not options.default_prompts:
            raise SetupError(str(err)) from None
        # The shipped set fits the study's question; a run that asks another (--sentence,
        # --silence-word, --pair) without its own --prompts keeps the single-sentence tests
        # and skips the across-prompt ones, saying why.
        prompts, problem = [], f"the default prompt set does not fit this question ({err}); pass --prompts"
    try:
        pairs, ioi_problem = generate_pairs(tokenizer, n=options.plan.ioi_pairs, seed=options.plan.ioi_seed), ""
    except ValueError as err:            # e.g. too few single-token names for this tokenizer
        pairs, ioi_problem = [], f"no IOI pairs for this tokenizer ({err})"
    return Setup(options, config.num_hidden_layers, config.num_attention_heads, prompt, tuple(prompts), problem,
                 tuple(pairs), ioi_problem)


def setup_of(config) -> Setup:
    """The run's Setup, resolved on first use and kept; raises SetupError (again) if it failed.

    An xdist worker shares the Setup it resolved (plugin/store.py), and the controller takes
    one shared for its own options instead of resolving its own: reading the config and the
    tokenizer imports transformers and torch, about 3 s of CPU that a 2-core machine's workers
    need. Where none was shared (a worker on another host, one whose setup failed), it resolves."""
    with _RESOLVING:
        if SETUP not in config.stash:
            config.stash[SETUP] = _shared_by_a_worker(config) or _resolved(config)
    found = config.stash[SETUP]
    if isinstance(found, SetupError):
        raise found
    return found


SHARED = "setup"        # the name a worker shares its Setup under, in the run's store


def _resolved(config) -> Setup | SetupError:
    try:
        found = _resolve(config.stash[OPTIONS])
    except SetupError as err:
        return err
    store = config.stash.get(STORE, None)
    if hasattr(config, "workerinput") and store is not None:
        store.share(SHARED, found)
    return found


def _shared_by_a_worker(config) -> Setup | None:
    """On an xdist controller: the Setup a worker of this host shared for the same options."""
    store = config.stash.get(STORE, None)
    if computes(config) or store is None:
        return None
    found = store.shared(SHARED)
    return found if isinstance(found, Setup) and found.options == config.stash[OPTIONS] else None


def resolve_in_background(config, then=lambda: None) -> None:
    """Start resolving the setup in a thread, then call `then` there (an xdist controller
    needs the setup only for the claims across shards and the report, after the workers ran:
    reading the tokenizer, and importing what the reduce will use, need not hold them up).
    setup_of waits for it."""
    def resolve():
        try:
            setup_of(config)
            then()
        except Exception:
            # A SetupError is kept in the stash: setup_of raises it when asked. Anything else (an
            # import cut short by Ctrl-C or SIGTERM in the main thread) is raised again there, by
            # setup_of resolving anew, if the run still asks: the thread has nothing to add.
            pass
    threading.Thread(target=resolve, name="study-setup", daemon=True).start()
