"""Bad input gets one clear line at start-up (not a torch traceback, not a wrong answer).

Each case runs pytest as a user would, in a subprocess, and reads what it prints.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pytest(*args, env=None, quiet=True, offline=True):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    full_env.pop("PYTEST_XDIST_WORKER", None)
    if not offline:
        full_env.pop("HF_HUB_OFFLINE")
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-m", "study", "-p", "no:xdist",
                           *(["-q"] if quiet else []), "claims/study_sentence.py", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("bert")
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, vocab_size=50)).save_pretrained(folder)
    return folder


# name: (pytest options, the line the user must see); {empty}, {broken}, {bert} are folders.
CASES = {
    "word not in sentence": (["--silence-word", "mango"], "the word 'mango' is not in the sentence"),
    "word occurs twice": (["--sentence", "pizza with pineapple beats pizza", "--pair", "pineapple:pizza"],
                          "the word 'pizza' occurs 2 times in the sentence; say which one with pizza#1"),
    "occurrence out of range": (["--pair", "pineapple:pizza#3"], "occurs 1 time(s); use pizza#1"),
    "part of a word": (["--silence-word", "pine"], "the word 'pine' is not in the sentence"),
    "empty sentence": (["--sentence", ""], "the sentence is empty"),
    "blank sentence": (["--sentence", "   "], "the sentence is empty"),
    "pair without colon": (["--pair", "pineapple"], "--pair 'pineapple' must look like word:word"),
    "pair of one token": (["--pair", "pizza:pizza"], "names the same token twice"),
    "unknown model name": (["--model", "gpt5"], "--model 'gpt5' is neither a known name nor a readable folder"),
    "folder without checkpoint": (["--model", "{empty}"], "the folder has no config.json"),
    "unreadable checkpoint": (["--model", "{broken}"], "could not read the config"),
    "unsupported architecture": (["--model", "{bert}"], "unsupported architecture 'bert'"),
    "gpt2-large without weights or network": (["--model", "gpt2-large"],
                                              "weights are not in the local Hugging Face cache"),
    "cuda without a gpu": (["--device", "cuda"], "no CUDA device on this machine"),
    "unknown device": (["--device", "tpu"], "--device 'tpu': use cpu or cuda"),
    "unknown dtype": (["--dtype", "float64"], "--dtype 'float64': use one of float32, bfloat16, float16"),
    "unknown dtype from STUDY_DTYPE": ([], "--dtype 'half': use one of float32, bfloat16, float16 (or unset STUDY_DTYPE)"),
    "zero threads": (["--threads", "0"], "--threads '0': use a positive number or all"),
    "threads not a number": (["--threads", "many"], "--threads 'many': use a positive number or all"),
    "device map on the cpu": (["--device-map", "auto"], "--device-map auto spreads a model over GPUs: add --device cuda"),
    "empty model name": (["--model", ""], "--model is empty"),
    "blank word": (["--silence-word", "  "], "the word is empty"),
    "empty pair": (["--pair", ":"], "--pair ':' must look like word:word"),
    "pair of three": (["--pair", "a:b:c"], "--pair 'a:b:c' must look like word:word"),
    "negative bound": (["--max-delta", "-0.1"], "--max-delta: max_abs_delta_per_head = -0.1 must be"),
    "sentence past the context": (["--sentence", "pineapple pizza " * 5000, "--pair", "pineapple#1:pizza#1",
                                   "--silence-word", "pineapple#1"], "more than this model's context of 8192"),
    "unicode word not there": (["--silence-word", "ananas🍍"], "the word 'ananas🍍' is not in the sentence"),
    "prompt file missing": (["--prompts", "{prompts_missing}"], "prompts_missing.txt: no such file"),
    "prompt file empty": (["--prompts", "{prompts_empty}"], "prompts_empty.txt: is empty (no sentence in it)"),
    "prompt file /dev/null": (["--prompts", "/dev/null"], "--prompts /dev/null: is empty (no sentence in it)"),
    "prompt file too short": (["--prompts", "{prompts_short}"], "3 sentence(s); the across-prompt tests need at least 10"),
    "prompt file not text": (["--prompts", "{prompts_binary}"], "cannot read it as UTF-8 text"),
    "prompt line lacking a word": (["--prompts", "{prompts_lacking}"],
                                   "sentence 11 ('Pineapple is odd'): the word 'pineapple' is not in the sentence"),
    "non-positive sesoi": (["--sesoi", "0"], "--sesoi: sesoi = 0.0 must be a finite cosine difference"),
    "infinite sesoi": (["--sesoi", "inf"], "--sesoi: sesoi = inf must be a finite cosine difference"),
    "occurrence zero": (["--silence-word", "pineapple#0"], "occurrences are numbered from 1; use pineapple#1"),
    "occurrence zero in a pair": (["--pair", "pineapple:pizza#0"], "occurrences are numbered from 1; use pizza#1"),
    "unwritable results folder": (["--results-dir", "{a_file}/results"],
                                  "results cannot be created (a file stands on its path); pass a folder you can"),
    "STUDY_CACHE that cannot be created": (["--model", "smollm2-135m-instruct"],
                                           "STUDY_CACHE /proc/nocache cannot be created (no such file or directory): "
                                           "smollm2-135m-instruct is converted and loaded from there; set STUDY_CACHE"),
    "STUDY_CACHE under a file": (["--model", "smollm2-135m-instruct"],
                                 "a-file/cache cannot be created (a file stands on its path)"),
    "hub model offline, no HF_HUB_OFFLINE": (["--model", "gpt2"], "the model hub cannot be reached from this machine"),
}

# Inputs that are odd but valid: the run starts, and the header shows what was chosen.
ACCEPTED = {
    "unicode sentence": (["--sentence", "Peanut 🥜 butter and pineapple 🍍 taste great on pizza 🍕"],
                         "silenced token: ' pineapple'"),
    "first word without leading space": (["--sentence", "pineapple and butter taste great on pizza"],
                                         "silenced token: 'apple' (index 1, last token of 'pineapple')"),
    "second occurrence chosen": (["--sentence", "pizza with pineapple beats pizza", "--pair", "pineapple:pizza#2"],
                                 "pineapple-pizza#2 (3, 5)"),
    "multi-word phrase": (["--pair", "pineapple:Peanut butter"], "pineapple-Peanut butter (4, 2)"),
    "model from the environment": ([], "model: smollm2-135m-instruct"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_clear_line(case, tmp_path, bert_folder):
    if case == "cuda without a gpu":
        import torch
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("a results folder cannot live under a file, whoever runs the test")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{ this is not json")
    good = "\n".join(["# a comment", ""] + [f"Peanut butter and pineapple number {i} on pizza" for i in range(10)])
    (tmp_path / "prompts_empty.txt").write_text("# only comments\n\n")
    (tmp_path / "prompts_short.txt").write_text("\n".join(good.splitlines()[:5]))
    (tmp_path / "prompts_binary.txt").write_bytes(b"\xff\xfe\x00pizza\x9c")
    (tmp_path / "prompts_lacking.txt").write_text(good + "\nPineapple is odd\n")
    folders = {"empty": tmp_path / "empty", "broken": tmp_path / "broken", "bert": bert_folder,
               "a_file": tmp_path / "a-file",
               **{name: tmp_path / f"{name}.txt" for name in
                  ("prompts_missing", "prompts_empty", "prompts_short", "prompts_binary", "prompts_lacking")}}
    args, message = CASES[case]
    args = [a.format(**folders) for a in args]
    env = {"HF_HOME": str(tmp_path / "hf")} if "gpt2" in case or "hub" in case else None
    if "STUDY_DTYPE" in case:
        env = {"STUDY_DTYPE": "half"}
    if "STUDY_CACHE" in case:           # /proc takes no new folder, whoever runs the test
        env = {"STUDY_CACHE": "/proc/nocache" if "created" in case else str(tmp_path / "a-file" / "cache")}
    code, out = _pytest(*args, env=env, offline="HF_HUB_OFFLINE" not in case)
    assert code != 0, f"pytest accepted {args}:\n{out[-2000:]}"
    assert message in out, f"expected {message!r} in:\n{out[-2000:]}"
    assert "Traceback" not in out, out[-3000:]
    assert "Retry" not in out, f"the hub client retried before the error:\n{out[-2000:]}"
    error_lines = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(error_lines) == 1, out[-2000:]


@pytest.mark.parametrize("case", ACCEPTED)
def test_odd_but_valid_input_is_accepted_and_shown(case):
    args, shown = ACCEPTED[case]
    env = {"STUDY_MODEL": "smollm2-135m-instruct"} if "environment" in case else None
    code, out = _pytest(*args, env=env, quiet=False)
    assert code == 0, out[-3000:]
    assert shown in out, f"expected {shown!r} in the header:\n{out[:3000]}"
