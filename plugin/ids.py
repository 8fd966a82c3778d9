"""Test ids as this suite names them: the same under -n 0, -n 2 and --tx."""


def base_nodeid(nodeid: str) -> str:
    """A node id without xdist's "@group" suffix."""
    head, sep, tail = nodeid.rpartition("@")
    return head if sep and "/" not in tail and "::" not in tail else nodeid


def test_of(nodeid: str) -> str:
    """A test's id without its parameters and xdist group: tests/test_x.py::test_y."""
    return base_nodeid(nodeid).split("[")[0]


def statement(doc: str | None) -> str:
    """A test's claim in words: the first paragraph of its docstring, on one line."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())
