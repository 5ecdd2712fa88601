"""Result files: joining the JSON Lines files of shards (``dasnas merge``)."""

from __future__ import annotations

import os

from . import _dasnas


def merge(
    inputs: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    expect: str | os.PathLike | None = None,
    tolerance: float = 1e-6,
) -> dict:
    """Joins result files (shards of one run) into ``out``, as ``dasnas
    merge`` does: every cell once; lines of one cell must agree within
    relative ``tolerance`` and every line must carry the same run stamp
    (else ``ValueError`` naming both lines, and ``out`` is left as it was);
    unfinished last lines are skipped. With ``expect`` (a file of arch
    strings, e.g. from ``dasnas enumerate``) the report's ``missing`` lists
    the cells no input has. Returns the report as a dict."""
    return _dasnas.merge_files(
        [os.fspath(p) for p in inputs],
        os.fspath(out),
        None if expect is None else os.fspath(expect),
        float(tolerance),
    )
