"""The study's claims: hypotheses fixed before the data, as pytest files the plugin collects
(pyproject.toml: testpaths, python_files), decided by the rules of metrics/outcomes.py.

    study_sentence.py  the seed's replication on its own sentence: the baseline, each head, each
                       block; across the blocks, the seed's verdict, the blocks' means and the control
    population.py      each sentence of the population: every head's ablation measured; across them,
                       the PRIMARY claims (each head across the templates) and their control
    scales.py          interventions of growing scale, and the positive control
    golden_gate.py     the regression gate on the study's numbers
    ioi.py             the IOI head-patching study's method, on the real model

Every claim is declared the same way (plugin/protocol.py `claim`): a statement (its
docstring), its unit, its rule, its plan entries, what its data are; it measures through the
run's shards (experiments/shards.py: each computed once per run), judges with
experiments/judgments.py, and ends with `decide(...)`. A researcher's own claim is one more
file like these (README, "Your own claim"; examples/top_ioi_head.py).
"""
