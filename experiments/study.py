"""The study: clean cosines per block, and their change under every single-head silencing.

    question = Question()                       # the study's sentence, word and pairs
    run = run_study(model, tokenizer, question) # one clean pass + one sweep
    run.clean_cosine(pair)     -> [n_blocks]
    run.deltas(pair)           -> [n_layers, n_heads]   silenced - clean at block L's output

Everything a test or a report needs is computed here once per pytest worker.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hooks import layout_of, silence, sweep
from metrics.similarity import block_outputs, cosine
from experiments.tokens import Tokens, WordNotFound, locate, tokenize

SENTENCE = "Peanut butter and pineapple taste great on pizza"
SILENCE_WORD = "pineapple"
PAIRS = (("pineapple", "pizza"), ("butter", "pizza"))
MAX_DELTA = 0.1


@dataclass(frozen=True)
class Question:
    """What a run asks: which sentence, which word to silence, which word pairs to compare.

    The first pair is the tested one (its change is what the t-tests judge); the second,
    if any, is the baseline's comparison pair.
    """

    sentence: str = SENTENCE
    silence_word: str = SILENCE_WORD
    pairs: tuple[tuple[str, str], ...] = PAIRS


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    i: int   # token index of a
    j: int   # token index of b

    @property
    def label(self) -> str:
        return f"{self.a}-{self.b}"


@dataclass(frozen=True)
class Plan:
    """A question resolved against one tokenizer: token positions, checked."""

    question: Question
    tokens: Tokens
    token: int             # position that is silenced
    pairs: tuple[Pair, ...]


def parse_pair(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(":")]
    if len(parts) != 2 or not all(parts):
        raise WordNotFound(f"--pair {text!r} must look like word:word (e.g. pineapple:pizza)")
    return parts[0], parts[1]


def plan(tokenizer, question: Question, max_tokens: int | None = None) -> Plan:
    """Locate every word of the question in the tokenized sentence (clear errors if not)."""
    tokens = tokenize(tokenizer, question.sentence, max_tokens)
    token = locate(tokens, question.silence_word)
    if not question.pairs:
        raise WordNotFound("no word pairs to compare: pass --pair a:b at least once")
    pairs = []
    for a, b in question.pairs:
        i, j = locate(tokens, a), locate(tokens, b)
        if i == j:
            raise WordNotFound(f"--pair {a}:{b} names the same token twice; pick two different words")
        pairs.append(Pair(a, b, i, j))
    return Plan(question, tokens, token, tuple(pairs))


@dataclass
class StudyRun:
    """Hidden states of the clean model and of every single-head silencing (block readout).

    clean:    [n_blocks, seq, d_model]            block L's output is clean[L]
    silenced: [n_layers, n_heads, seq, d_model]   block L's output with head h silenced
    whole_block: [n_layers, seq, d_model]         block L's output, all its heads silenced
    all_but_one: [n_layers, n_heads, seq, d_model] all heads of block L but h silenced
    """

    plan: Plan
    clean: torch.Tensor
    silenced: torch.Tensor
    whole_block: torch.Tensor
    all_but_one: torch.Tensor
    engine: str
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_layers(self) -> int:
        return self.silenced.shape[0]

    @property
    def n_heads(self) -> int:
        return self.silenced.shape[1]

    def clean_cosine(self, pair: Pair) -> torch.Tensor:
        return cosine(self.clean, pair.i, pair.j)

    def silenced_cosine(self, pair: Pair) -> torch.Tensor:
        return cosine(self.silenced, pair.i, pair.j)

    def deltas(self, pair: Pair) -> torch.Tensor:
        """[n_layers, n_heads]: cosine with head h of block L silenced, minus clean, at block L."""
        return self.silenced_cosine(pair) - self.clean_cosine(pair)[:, None]

    def whole_block_deltas(self, pair: Pair) -> torch.Tensor:
        return cosine(self.whole_block, pair.i, pair.j) - self.clean_cosine(pair)

    def all_but_one_deltas(self, pair: Pair) -> torch.Tensor:
        return cosine(self.all_but_one, pair.i, pair.j) - self.clean_cosine(pair)[:, None]


@torch.no_grad()
def _whole_blocks(model, input_ids, token, n_layers, n_heads):
    """[n_layers, seq, d]: block L's output with every head of block L silenced at the token
    (a macroscopic positive control; one plain silenced forward pass per block)."""
    out = []
    for L in range(n_layers):
        with silence(model, sites=[(L, g, token) for g in range(n_heads)]):
            out.append(model(input_ids, output_hidden_states=True).hidden_states[L + 1][0])
    return torch.stack(out).float()


@torch.no_grad()
def run_study(model, plan_: Plan, engine: str = "fast", controls: bool = True) -> StudyRun:
    """One clean pass, the sweep of every single-head silencing, and (optionally) the
    macroscopic controls; tensors are returned on the CPU."""
    layout = layout_of(model)
    device = next(model.parameters()).device
    input_ids = torch.tensor([plan_.tokens.ids], device=device)
    clean = block_outputs(model(input_ids, output_hidden_states=True).hidden_states)
    silenced = sweep(model, input_ids, plan_.token, "block", engine=engine)
    whole = leave_one_in = torch.empty(0)
    if controls:
        whole = _whole_blocks(model, input_ids, plan_.token, layout.n_layers, layout.n_heads)
        leave_one_in = sweep(model, input_ids, plan_.token, "block", engine=engine, complement=True)
    return StudyRun(plan_, clean.cpu(), silenced.cpu(), whole.cpu(), leave_one_in.cpu(), engine)


def synthetic_plan(ids: list[int], token: int, pairs: list[tuple[int, int]]) -> Plan:
    """A Plan over raw token ids (tiny random models have no tokenizer): words are named
    by their positions, e.g. pair (4, 8) is labelled "t4-t8"."""
    pieces = [f"t{i}" for i in range(len(ids))]
    tokens = Tokens(" ".join(pieces), list(ids), pieces, [(0, 0)] * len(ids))
    question = Question(tokens.sentence, pieces[token], tuple((pieces[i], pieces[j]) for i, j in pairs))
    return Plan(question, tokens, token, tuple(Pair(pieces[i], pieces[j], i, j) for i, j in pairs))
