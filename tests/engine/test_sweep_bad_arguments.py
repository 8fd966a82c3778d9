"""Bad input to sweep's jobs -- several tokens, donors, padded batches, per-job values --
gets one ValueError that names the bad value and the fix, before any forward pass.
(The single-token arguments are covered in tests/engine/test_sweep_exact.py::test_bad_arguments.)
"""
from __future__ import annotations

import pytest
import torch

from hooks import sweep
from tests.helpers.sweep_cases import padded
from tests.engine.test_sweep_exact import random_ids, tiny_model

RIGHT = padded(torch.randint(1, 100, (3, 6), generator=torch.Generator().manual_seed(0)), [6, 4, 2], [0, 0, 0])
LEFT = padded(torch.randint(1, 100, (3, 6), generator=torch.Generator().manual_seed(0)), [6, 4, 2], [0, 2, 4])
HOLE = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])


@pytest.fixture(scope="module")
def gpt2_tiny():
    return tiny_model("gpt2")


@pytest.mark.parametrize("kwargs, match", [
    # a donor of another length / shape
    (dict(donor_ids=random_ids(8)), r"donor_ids has shape \[1, 8\] but input_ids has \[1, 9\]: a donor must "
                                    r"have the same shape"),
    (dict(donor_ids=[1, 2, 3]), r"donor_ids has shape list but input_ids has \[1, 9\]"),
    (dict(donor_ids=random_ids(9), values=torch.zeros(3, 4, 8)), "values= and donor_ids= both say"),
    (dict(donor_ids=random_ids(9), complement=True), "cannot be combined with complement=True"),
    (dict(values=[[0.0]]), "values=list: pass a float tensor"),
    # token sequences of one prompt
    (dict(token=[4, 2, 4]), r"token positions \[4\] appear more than once in token=\[4, 2, 4\]: pass each"),
    (dict(token=[2, 9]), "token position 9 is out of range for an input of 9 tokens"),
    (dict(token=[-1]), "token position -1 is out of range"),
    (dict(token=[]), r"token=\[\] selects nothing"),
    (dict(token=[2.5]), "token position 2.5 must be an integer"),
    (dict(token=2.5), "token=2.5: pass an integer position, or a sequence of them"),
    (dict(token=True), "token=True: pass an integer position"),
    (dict(token=torch.tensor([[1, 2]])), r"token has shape \[1, 2\]"),
    (dict(token=torch.tensor([1.0, 2.0])), "token position .* must be an integer"),
    (dict(token=[1, 2], values=torch.zeros(3, 3, 4, 8)),
     r"values has shape \[3, 3, 4, 8\]; pass \[3, 4, 8\] .* or \[2, 3, 4, 8\]"),
    # padded batches
    (dict(input_ids=RIGHT[0], attention_mask=RIGHT[1][:, :5], token=[1, 1, 1]),
     r"attention_mask has shape \[3, 5\] but input_ids has \[3, 6\]: pass the mask the tokenizer returned"),
    (dict(input_ids=RIGHT[0], attention_mask=RIGHT[1] * 2, token=[1, 1, 1]),
     r"attention_mask holds \[2\]: pass 1 for a real token and 0 for padding"),
    (dict(input_ids=RIGHT[0], attention_mask=HOLE, token=[1, 1, 1]),
     r"attention_mask row 1 is \[1, 0, 1, 1, 0, 0\]: its real tokens are not one contiguous run"),
    (dict(input_ids=RIGHT[0], attention_mask=torch.tensor([[1] * 6, [0] * 6, [1] * 6]), token=[1, 1, 1]),
     "attention_mask row 1 is all 0"),
    (dict(input_ids=RIGHT[0], attention_mask=RIGHT[1], token=[5, 3, 2]),
     r"token position 2 of prompt 2 is in its padding \(attention_mask is 0 there; its tokens are columns 0..1\)"),
    (dict(input_ids=LEFT[0], attention_mask=LEFT[1], token=[5, 1, 5]),
     r"token position 1 of prompt 1 is in its padding .* columns 2..5\): pass the column of one of its real"),
    (dict(input_ids=RIGHT[0], attention_mask=RIGHT[1], token=[1, 1]),
     r"token has 2 positions but input_ids holds 3 prompts: pass one position per prompt, a LongTensor of "
     r"shape \[3\]"),
    (dict(input_ids=RIGHT[0], attention_mask=RIGHT[1], token=1),
     r"input_ids must have shape \[1, seq\] for one token position; got \[3, 6\] \(3 prompts\): pass token as a "
     r"LongTensor of shape \[3\]"),
    (dict(input_ids=RIGHT[0], attention_mask=RIGHT[1], token=[1, 1, 1], donor_ids=RIGHT[0][:, :5]),
     r"donor_ids has shape \[3, 5\] but input_ids has \[3, 6\]"),
    (dict(input_ids=RIGHT[0], attention_mask=RIGHT[1], token=[1, 1, 1], values=torch.zeros(2, 3, 4, 8)),
     r"values has shape \[2, 3, 4, 8\]"),
    (dict(input_ids=RIGHT[0], attention_mask=RIGHT[1], token=[1, 1, 1], positions=[6]),
     "position 6 is out of range for an input of 6 tokens"),
])
def test_bad_job_arguments_are_named(gpt2_tiny, kwargs, match):
    args = dict(input_ids=random_ids(9), token=4, readout="final")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sweep(gpt2_tiny, **args)


def test_a_repeated_token_is_fine_across_prompts(gpt2_tiny):
    """Duplicates are refused among positions of ONE prompt only: prompts may share a column."""
    ids, mask = RIGHT
    assert sweep(gpt2_tiny, ids, [1, 1, 1], attention_mask=mask).shape == (3, 3, 4, 6, 32)
