"""Across the prompt set (--prompts): every single-head ablation on every prompt, one item per
prompt, computed a chunk of prompts at a time (a shard, experiments/prompts.py). Each item
ships its prompt's differences to the controller, where the per-head claims across prompts
are judged (tests/across_shards.py)."""
import numpy as np
import pytest

from experiments.manipulation import moved, threshold

pytestmark = pytest.mark.study


def test_every_single_head_ablation_moves_its_token_on_every_prompt(shards, prompt_index, setup, record):
    """Manipulation check across the sentence population: ablating any head at the token moves
    that token's vector beyond round-off (plan: manipulation_factor), on every sentence
    (wherever the ablation gives the head another value, beyond round-off too)."""
    c = shards.prompt_chunk_of(prompt_index)
    k = c.indices.index(prompt_index)
    record("prompt", {"index": prompt_index, "clean": c.clean[:, k].tolist(), "deltas": c.deltas[:, :, k].tolist(),
                      "replaced": int(moved(c.value_change[:, :, k], setup.plan).sum())})
    replaced, acted = moved(c.value_change[:, :, k], setup.plan), moved(c.token_change[:, :, k], setup.plan)
    still = [f"L{L:02d}-H{h:02d}" for L, h in np.argwhere(replaced & ~acted)]
    assert not still, (f"{c.ablation} ablation did not move the token of sentence {prompt_index} beyond "
                       f"{threshold(setup.plan):.0e} (relative): {still[:10]}")


@pytest.mark.xdist_group("late")          # reads two shards: scheduled after both were computed
def test_the_study_sentence_measured_as_a_prompt_equals_the_study(shards, setup):
    """Two shards, one number: where a prompt of the set is the study sentence, its single-head
    differences (swept in a padded batch) equal the study's (swept alone) to 1e-6, the
    engine's bound for cosines."""
    same = [i for i, p in enumerate(setup.prompts) if p.tokens.ids == setup.prompt.tokens.ids]
    if not same or setup.options.ablation != "zero":
        pytest.skip("the study sentence is not in the prompt set (or the ablation is not zero)")
    diff = np.abs(shards.prompt_deltas(same[:1])[:, :, 0] - shards.study().deltas(setup.prompt.tested.label)).max()
    assert diff <= 1e-6, f"the prompt shard and the study shard disagree by {diff:.2e}"
