"""The scale ladder's shards (experiments/shards.py LADDER_SHARDS): each shard measures its
group of kinds on one test sentence in one computation, and what it hands each kind equals
that kind measured alone on that sentence by the plain pass (to the ladder's bound), on a
tiny random GPT-2 with the shipped prompt set. The shards and their names are what a run's
scheduling and shards.csv show: the four kinds at the token but the positive control's on
each of the 8 test sentences, the positive control's kind on each template's sentence, the
every-token kind on the 8; top-k rides in the positive control's pass on its 8."""
from __future__ import annotations

import pytest

from experiments import scales
from experiments.run import study_shards
from experiments.shards import LADDER_SHARDS, scale_part_name
from models.loading import load, resolve
from tests.engine.test_ladder import assert_ladder_exact, logit_scale, readouts
from tests.helpers.tiny_models import tiny_gpt2_checkpoint


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tiny_gpt2_checkpoint(tmp_path_factory.mktemp("ladder-shards") / "tiny-random-gpt2")
    model, tokenizer = load(resolve(folder), "cpu", "float32")
    computed = []
    store: dict = {}

    def once(name, compute, before=None):
        if name not in store:
            computed.append(name)
            store[name] = compute()
        return store[name]

    return model, study_shards(model, tokenizer, get=once), computed


def test_each_ladder_shard_measures_its_kinds_once_and_each_equals_the_kind_alone(tiny_run):
    model, shards, computed = tiny_run
    selection = shards.selection()
    for kind in scales.KINDS:
        indices = shards.ladder_indices(kind)
        prompts = [shards.prompts[i] for i in indices]
        got = scales.ScaleMeasurement.joined([shards.scale_part(kind, k) for k in range(len(indices))])
        alone = scales.measure_kind(model, prompts, kind, selection, engine="naive")
        assert got.kind == kind
        assert_ladder_exact(readouts(got), readouts(alone), logit_scale(model, prompts), f"shard of {kind}")
    ladder = [name for name in computed if name.startswith("scales-")]
    assert len(ladder) == len(set(ladder)), "a ladder shard was computed twice"
    observed, control = (len(shards.ladder_indices(k)) for k in (scales.KINDS[0], scales.SKIP_BLOCK))
    assert (observed, control) == (8, 30)
    want = {f"scales-at-token-P{i:02d}" for i in range(observed)}
    want |= {f"scales-update-x0-at-token-P{i:02d}" for i in range(control)}
    want |= {f"scales-top-head-at-every-token-P{i:02d}" for i in range(observed)}
    assert set(ladder) == want
    assert {scale_part_name(k, 0) for k in LADDER_SHARDS[0]} == {"scales-at-token-P00"}


def test_top_k_comes_from_the_shards_of_the_kinds_at_the_token(tiny_run):
    """Top-k is measured on its test sentences in the pass of the positive control's shards there
    (the same sentences): no shard of its own, and the same numbers as its own pass (the plain one)."""
    model, shards, computed = tiny_run
    got = shards.top_k()
    alone = scales.measure_top_k(model, shards.test_prompts(), shards.plan.top_k, shards.selection(), engine="naive")
    assert got.ks == alone.ks and got.sites == alone.sites and got.cos.shape == (len(alone.ks), 8)
    top = lambda m: {"ripple": m.cos, "logprob": m.logprob, "kl": m.kl}          # noqa: E731
    assert_ladder_exact(top(got), top(alone), logit_scale(model, shards.test_prompts()), "top-k from the shards")
    assert not [name for name in computed if "top-k" in name]
    assert sorted(k for group in LADDER_SHARDS for k in group) == sorted(scales.KINDS)
