"""Faults a run can meet on disk, each answered by one line that names the file and the fix
(no traceback into json or pathlib): a corrupted golden file; a prompt file that is empty,
also when it is not a regular file (`--prompts /dev/null`)."""
from pathlib import Path

import pytest

from experiments.prompt_set import PromptSetError, read_prompts
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
