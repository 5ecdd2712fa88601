"""The Python examples of README.md and docs/*.md run as written.

Every fenced ``python`` block whose info string does not contain ``no-run``
is a test. The blocks of one page run in order, in one namespace, with one
fresh temporary folder as the working directory (the contract of
docs/testing.md). ``DASNAS_DATA`` is set to the data folder (``$DASNAS_DATA``
when it names a folder, else ``../shared/data`` beside the repository); a
block that uses it is skipped, saying why, when there is none. A block after
a failed one on the same page is skipped (it would fail for that reason).
"""

import os
import pathlib
import re

import pytest

from conftest import REPO

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def _data_dir():
    env = os.environ.get("DASNAS_DATA")
    if env and pathlib.Path(env).is_dir():
        return pathlib.Path(env)
    d = REPO.parent / "shared" / "data"
    return d.resolve() if d.is_dir() else None


DATA = _data_dir()


def _pages():
    docs = sorted((REPO / "docs").glob("*.md"))
    return [REPO / "README.md", *docs]


def _blocks(text, page):
    """``(info, line, code)`` of every fenced block; ``line`` is the opening
    fence's (1-based)."""
    out = []
    open_ = None
    for i, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if open_ is None:
            if m and not (m.group(2)[0] == "`" and "`" in m.group(3)):
                open_ = (m.group(2), len(m.group(1)), m.group(3).strip(), i, [])
            continue
        fence, indent, info, start, lines = open_
        if (
            m
            and m.group(2)[0] == fence[0]
            and len(m.group(2)) >= len(fence)
            and not m.group(3).strip()
        ):
            out.append((info, start, "".join(l + "\n" for l in lines)))
            open_ = None
        else:
            lead = len(line) - len(line.lstrip(" "))
            lines.append(line[min(lead, indent):])
    if open_ is not None:
        raise AssertionError(f"{page}: the code block opened at line {open_[3]} is never closed")
    return out


def _examples():
    found = []
    for page in _pages():
        rel = page.relative_to(REPO).as_posix()
        for info, line, code in _blocks(page.read_text(encoding="utf-8"), rel):
            words = re.split(r"[\s,]+", info.strip())
            if words[0] == "python" and "no-run" not in info:
                found.append((rel, line, code))
    return found


EXAMPLES = _examples()


@pytest.fixture(scope="module")
def page_state(tmp_path_factory):
    """Per page: its namespace, its working folder, the line of a failed block."""
    states = {}

    def get(page):
        if page not in states:
            folder = tmp_path_factory.mktemp(re.sub(r"[^A-Za-z0-9]+", "-", page))
            states[page] = {"ns": {"__name__": "__docs__"}, "dir": folder, "failed": None}
        return states[page]

    return get


def test_there_are_python_examples():
    assert EXAMPLES, "no python block found in README.md or docs/*.md"


@pytest.mark.parametrize(
    "page,line,code", EXAMPLES, ids=[f"{p}:{n}" for p, n, _ in EXAMPLES]
)
def test_example(page, line, code, page_state, monkeypatch):
    state = page_state(page)
    if state["failed"] is not None:
        pytest.skip(f"an earlier python block of {page} (line {state['failed']}) failed")
    if "DASNAS_DATA" in code and DATA is None:
        pytest.skip(
            f"{page} block at line {line} uses DASNAS_DATA, and there is no data folder "
            "(../shared/data is absent)"
        )
    monkeypatch.chdir(state["dir"])
    if DATA is not None:
        monkeypatch.setenv("DASNAS_DATA", str(DATA))
    else:
        monkeypatch.delenv("DASNAS_DATA", raising=False)
    # Leading newlines make tracebacks give the page's own line numbers.
    source = "\n" * line + code
    try:
        exec(compile(source, str(REPO / page), "exec"), state["ns"])
    except BaseException:
        state["failed"] = line
        raise
