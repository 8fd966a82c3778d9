"""The study as a library call, without pytest: measurements, tables and every claim's verdict.

    from experiments.run import run_study
    result = run_study("smollm2-135m-instruct")                  # the default question, exploration half
    result.verdicts["test_no_single_head_moves_the_association_beyond_sesoi_across_sentences"].outcome
    result.tables["heads"][0].label, result.tables["heads"][0].category    # UnitStats rows, as heads.csv

It computes the same shards as a pytest run (experiments/shards.py, here each once in this
process) and judges each claim with the same function (experiments/judgments.py) on the same
inputs, so its numbers and outcomes equal a pytest run's (claims/*.py) bit for bit
(tests/study/test_run_study.py compares them). Claims of many items (one per head, block or
sentence) are combined as the report combines them. Verdicts are keyed by the claim's test
name; the regression gate on golden numbers is the test suite's business, not a verdict here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments import judgments, prompt_set
from experiments.analysis import Verdict, detectable, power_rows
from experiments.plan import load_plan
from experiments.population import HALVES
from experiments.question import Question, locate_question
from experiments.scales import KINDS, SKIP_BLOCK, slug
from experiments.shards import Shards
from metrics.statistics import counts


@dataclass
class StudyResult:
    """What run_study found: each claim's verdict (by its test name), the tables the report
    prints (UnitStats and rows, by the report's names), and the measurements themselves."""

    verdicts: dict = field(default_factory=dict)       # claim name -> experiments.analysis.Verdict
    tables: dict = field(default_factory=dict)         # "blocks", "heads", "heads by template", "sentence shares",
                                                       # "power", "controls", "scales", "observations"
    measurements: dict = field(default_factory=dict)   # "study": StudyMeasurement, "prompt deltas" [L, H, P]


def _item(item: str, verdict: Verdict) -> dict:
    """One item of a claim, as the report combines it (the item's id is its pytest parameter id)."""
    return {"item": item, "outcome": verdict.outcome, "detail": verdict.detail, "message": "",
            "named": verdict.named()}


def run_study(model="auto", *, prompts: str | Path = "exploration", question: Question | None = None, plan=None,
              ablation: str = "zero", engine: str = "fast", device: str = "cpu", dtype: str = "float32",
              tokenizer=None) -> StudyResult:
    """Run the study's question on `model` (a name or folder for models.loading, or a loaded
    model with its `tokenizer`) over a prompt set ("exploration", "same-templates",
    "confirmation" or a file) and return its verdicts and tables (see StudyResult)."""
    from models.loading import load, resolve

    if isinstance(model, (str, Path)):
        model, tokenizer = load(resolve(str(model)), device, dtype)
    if tokenizer is None:
        raise ValueError("run_study(model=<a loaded model>) needs tokenizer=<its tokenizer>")
    plan = load_plan() if plan is None else plan
    shards = study_shards(model, tokenizer, prompts=prompts, question=question, plan=plan, ablation=ablation,
                          engine=engine)
    result = StudyResult()
    _study_sentence(shards, plan, result)
    _population(shards, plan, shards.templates, result)
    _scales(shards, plan, result)
    return result


def study_shards(model, tokenizer, *, prompts: str | Path = "exploration", question: Question | None = None,
                 plan=None, ablation: str = "zero", engine: str = "fast", get=None) -> Shards:
    """The study's shards on a loaded model (experiments/shards.py), each computed once in this
    process: `get(name, compute, before=None)` (default: a dict kept by the Shards) is the store."""
    plan = load_plan() if plan is None else plan
    question = Question() if question is None else question
    max_tokens = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    prompt = locate_question(tokenizer, question, max_tokens)
    path = HALVES.get(str(prompts)) or Path(prompts)
    sentences, templates = prompt_set.read_prompt_set(path)
    located = prompt_set.locate_prompts(tokenizer, sentences, question, max_tokens, path)
    if get is None:
        store: dict = {}

        def get(name, compute, before=None):
            if name not in store:
                store[name] = compute()
            return store[name]

    return Shards(lambda: model, prompt=prompt, prompts=located, ablation=ablation, engine=engine, plan=plan,
                  get=get, templates=templates)


def _study_sentence(shards, plan, result) -> None:
    """claims/study_sentence.py and claims/seed_blocks.py."""
    m = shards.study()
    result.measurements["study"] = m
    v = result.verdicts
    v["test_pineapple_pizza_beats_butter_pizza_at_almost_every_block"] = judgments.baseline(m, plan)
    v["test_silencing_one_head_moves_its_token_but_not_the_association_macroscopically"] = judgments.combine_items(
        [_item(f"L{L:02d}-H{h:02d}", judgments.per_head(m, plan, L, h))
         for L in range(m.n_layers) for h in range(m.n_heads)])
    v["test_no_block_heads_shift_the_association_significantly"] = judgments.combine_items(
        [_item(f"L{L:02d}", judgments.per_block(m, plan, L)) for L in range(m.n_layers)])
    deltas = np.array([[float(x) for x in row] for row in m.deltas(m.prompt.tested.label)])
    blocks = judgments.block_rows(deltas, plan)
    result.tables["blocks"] = blocks
    result.tables.setdefault("power", []).extend(power_rows(deltas, "blocks", plan))
    v["test_zero_blocks_significant_after_bonferroni"] = judgments.seed_verdict(blocks)
    v["test_every_block_mean_lies_within_sesoi"] = judgments.block_means(deltas, plan)
    control = judgments.control(deltas, blocks, plan, "blocks", test="significance")
    result.tables.setdefault("controls", []).extend(control.arms)
    v["test_control_the_block_test_sees_a_sesoi_shift_as_predicted"] = judgments.as_verdict(control)


def _population(shards, plan, templates, result) -> None:
    """claims/sentences.py and claims/primary.py."""
    n = len(shards.prompts)
    chunks = {i: shards.prompt_chunk_of(i) for i in range(n)}
    v = result.verdicts
    v["test_every_single_head_ablation_moves_its_token_on_every_prompt"] = judgments.combine_items(
        [_item(f"P{i:02d}", judgments.manipulation_on_prompt(chunks[i], i, plan)) for i in range(n)])
    # the rows the items record travel as plain floats: the claims across shards read those
    deltas = np.stack([np.asarray(chunks[i].deltas[:, :, chunks[i].indices.index(i)].tolist()) for i in range(n)], -1)
    result.measurements["prompt deltas"] = deltas
    m = result.measurements["study"]
    same = [i for i, p in enumerate(shards.prompts) if p.tokens.ids == shards.prompt.tokens.ids]
    if same and shards.ablation == "zero":
        v["test_the_study_sentence_measured_as_a_prompt_equals_the_study"] = judgments.combine_items(
            [_item("", judgments.two_shards_agree(shards.prompt_deltas(same[:1])[:, :, 0],
                                                  m.deltas(m.prompt.tested.label)))])
    keys = judgments.head_keys(m.n_layers, m.n_heads)
    samples, names = judgments.head_samples(deltas, templates)
    heads = judgments.head_rows(samples, keys, plan)
    result.tables.update({"heads": heads, "heads by template": (keys, names, samples)})
    result.tables.setdefault("power", []).extend(power_rows(samples, "heads", plan))
    result.tables["observations"] = {"heads across templates": {
        "beyond SESOI": [r.label for r in heads if r.category == "beyond SESOI"], **counts(heads),
        "templates": len(names), "detectable at the power target": detectable(heads, plan)}}
    v["test_no_single_head_moves_the_association_beyond_sesoi_across_sentences"] = judgments.primary(heads, plan)
    v["test_no_single_head_moves_the_association_macroscopically_across_prompts"] = judgments.macroscopic(
        samples, keys, plan)
    shares = judgments.sentence_shares(deltas, templates, keys, plan)
    result.tables["sentence shares"] = shares
    v["test_no_single_head_moves_the_association_beyond_sesoi_on_many_sentences"] = judgments.sentence_share(
        shares, plan)
    control = judgments.control(samples, heads, plan, "heads")
    result.tables.setdefault("controls", []).extend(control.arms)
    v["test_control_the_head_test_sees_what_the_analysis_predicts"] = judgments.as_verdict(control)


def _scales(shards, plan, result) -> None:
    """claims/scales.py."""
    v = result.verdicts
    parts, moves, rows = [], [], []
    for kind in KINDS:
        for index in range(len(shards.ladder_indices(kind))):
            parts.append(_item(f"{slug(kind)}-P{index:02d}", judgments.nothing_before_block(
                shards.scale_part(kind, index), kind, index)))
        m = shards.scale(kind)
        kind_rows = judgments.scale_rows(m.cos.double().numpy(), plan, f"scale {kind}")
        rows += [{**r.as_row(), "intervention": kind} for r in kind_rows]
        moves.append(_item(slug(kind), judgments.moves_own_block(m, plan)))
        if kind == SKIP_BLOCK:
            v["test_control_skipping_a_block_at_the_token_is_an_effect_at_most_blocks"] = judgments.positive_control(
                kind_rows, plan)
    result.tables["scales"] = rows
    v["test_an_intervention_changes_nothing_before_its_block"] = judgments.combine_items(parts)
    v["test_an_intervention_moves_its_own_block"] = judgments.combine_items(moves)
    v["test_top_k_heads_silenced_together_move_the_last_block"] = judgments.top_k_moved(shards.top_k(), plan)
    if shards.ablation == "zero":
        m = shards.scale(KINDS[0])
        v["test_batched_hooks_agree_with_the_exact_sweep"] = judgments.batched_equals_sweep(
            m, shards.prompt_deltas(shards.ladder_indices(KINDS[0])))
