"""The NASWOT scripts: scores of a list of cells as the NumPy array their
``score_networks.py`` saves (``np.save``), NB201 index order when the
cells are given in that order.

Until the official NB201 index <-> string mapping is built in, the order
comes from a table that has it: :func:`nb201_archs_by_index` reads the
``arch_index`` and ``arch_str`` columns of a CSV (NAS-Bench-201's or
NATS-Bench's metadata exported as CSV).
"""

from __future__ import annotations

import csv
import os
from typing import Any, Iterable

import numpy as np

from .._scorer import Scorer


def nb201_archs_by_index(
    csv_path: str | os.PathLike, index: str = "arch_index", arch: str = "arch_str"
) -> list[str]:
    """The architecture strings of a CSV ordered by its index column; the
    indices must be 0..N-1, each once."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or index not in rows[0] or arch not in rows[0]:
        raise ValueError(f"{os.fspath(csv_path)}: needs columns {index!r} and {arch!r}")
    by_index = {int(r[index]): r[arch] for r in rows}
    if sorted(by_index) != list(range(len(rows))):
        raise ValueError(f"{os.fspath(csv_path)}: {index} is not 0..{len(rows) - 1}, each once")
    return [by_index[i] for i in range(len(rows))]


def score_networks(
    scorer: Scorer,
    archs: Iterable[str],
    *,
    save: str | os.PathLike | None = None,
    progress: Any = False,
) -> np.ndarray:
    """NASWOT scores of ``archs`` in the given order, float64, ``-inf`` for a
    singular cell (what ``np.linalg.slogdet`` gives the scripts for ln 0);
    saved with ``np.save`` when ``save`` is given."""
    cols = scorer.score_many(list(archs), progress=progress)
    if "wot" not in cols:  # no cells
        return np.empty(0, dtype=np.float64)
    scores = np.where(cols["singular"], -np.inf, cols["wot"]).astype(np.float64)
    if save is not None:
        np.save(save, scores)
    return scores
