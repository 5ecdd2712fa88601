"""NASLib: a zero-cost predictor with NASLib's ``ZeroCost`` surface.

NASLib's graphs expose ``get_hash()``; its encodings, converted exactly:

* NAS-Bench-201: a 6-tuple of op indices over the edges (0->1, 0->2, 0->3,
  1->2, 1->3, 2->3), ops 0 ``skip_connect``, 1 ``none``, 2 ``nor_conv_3x3``,
  3 ``nor_conv_1x1``, 4 ``avg_pool_3x3``.
* NAS-Bench-101: the flattened V x V adjacency matrix followed by V op
  codes over ``[input, output, maxpool3x3, conv1x1-bn-relu,
  conv3x3-bn-relu]`` (V = 7 in NASLib).
* NAS-Bench-301 (DARTS) compact form: ``(normal, reduce)``, each 8 pairs
  ``(input, op)`` (two per node, nodes in order) with ops over
  ``[max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5,
  dil_conv_3x3, dil_conv_5x5]``, concat ``[2, 3, 4, 5]``.

>>> from dasnas.adapters.naslib import ZeroCost
>>> zc = ZeroCost(method_type="nwot", device="cpu")
>>> score = zc.query(graph, dataloader=train_loader)   # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from .._scorer import measures as _measures
from ._common import METRICS, ScorerCache, first_batch, value

NB201_OPS = ["skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3"]
NB101_OPS = ["input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu"]
NB301_OPS = [
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]


def _op(table: Sequence[str], code: Any, what: str) -> str:
    i = int(code)
    if not 0 <= i < len(table):
        raise ValueError(f"{what}: op code {code} is not in 0..{len(table) - 1}")
    return table[i]


def nb201_from_op_indices(ops: Sequence[int]) -> str:
    """NASLib's NB201 op indices (6, edge order 0->1, 0->2, 0->3, 1->2,
    1->3, 2->3) as an NB201 string."""
    if len(ops) != 6:
        raise ValueError(f"NB201 op indices: {len(ops)} values, expected 6")
    t = [_op(NB201_OPS, o, "NB201 op indices") for o in ops]
    return f"|{t[0]}~0|+|{t[1]}~0|{t[3]}~1|+|{t[2]}~0|{t[4]}~1|{t[5]}~2|"


def nb101_from_tuple(tup: Sequence[int]) -> str:
    """NASLib's NB101 hash (flattened V x V matrix, then V op codes) as an
    NB101 string ``<matrix digits>/<labels>``."""
    n = len(tup)
    v = int(round((math.sqrt(1 + 4 * n) - 1) / 2))
    if v * v + v != n or v < 2:
        raise ValueError(f"NB101 tuple: {n} values is not V*V + V for a vertex count V")
    cells = [int(x) for x in tup[: v * v]]
    if any(c not in (0, 1) for c in cells):
        raise ValueError("NB101 tuple: the adjacency matrix must hold 0s and 1s")
    ops = [_op(NB101_OPS, o, "NB101 tuple") for o in tup[v * v :]]
    return "".join(str(c) for c in cells) + "/" + "|".join(ops)


def darts_from_compact(compact: Sequence[Sequence[Sequence[int]]]) -> str:
    """NASLib's NB301 compact form ``(normal, reduce)`` as a DARTS genotype string."""
    if len(compact) != 2:
        raise ValueError(f"NB301 compact: {len(compact)} cells, expected (normal, reduce)")
    cells = []
    for name, cell in zip(("normal", "reduce"), compact):
        if len(cell) != 8:
            raise ValueError(f"NB301 compact {name} cell: {len(cell)} pairs, expected 8")
        pairs = ", ".join(
            f"('{_op(NB301_OPS, op, f'NB301 compact {name} cell')}', {int(inp)})"
            for inp, op in cell
        )
        cells.append(f"[{pairs}]")
    return (
        f"Genotype(normal={cells[0]}, normal_concat=[2, 3, 4, 5], "
        f"reduce={cells[1]}, reduce_concat=[2, 3, 4, 5])"
    )


def arch_from_hash(h: Any, space: str | None = None) -> tuple[str, str]:
    """``(space, arch string)`` of a NASLib ``get_hash()``; the space is
    told by the hash's form unless given."""
    if space is None:
        if len(h) == 2 and all(isinstance(c, (tuple, list)) for c in h):
            space = "darts"
        elif len(h) == 6:
            space = "nb201"
        else:
            space = "nb101"
    if space == "nb201":
        return space, nb201_from_op_indices(h)
    if space == "nb101":
        return space, nb101_from_tuple(h)
    if space == "darts":
        return space, darts_from_compact(h)
    raise ValueError(f"unknown space {space!r} (expected nb201, nb101 or darts)")


class ZeroCost:
    """A NASLib-style zero-cost predictor scored by dasnas.

    ``method_type``: ``"nwot"`` (NASWOT's score, ln det K_H), ``"d"``,
    ``"n_units"``, ``"das"``, or any training-free measure by its name or
    NASLib's (``"synflow"``, ``"snip"``, ``"jacov"``, ``"zen"``, ...;
    :func:`dasnas.measures` lists them; NASLib's ``grasp`` is not
    computed). ``query`` takes the images and the targets of the
    dataloader's first batch (without a dataloader: seeded Gaussian images
    of ``batch``, and labels drawn from the seed) and returns the score; a
    singular cell (two inputs with equal activation codes), or a measure
    that is not a number, scores ``-1e8``, as NASLib maps them.
    ``space`` forces the space (default: told by the hash). Other keywords
    go to :class:`dasnas.Scorer` (``device``, ``seed``, ``threads``, ...).
    """

    def __init__(self, method_type: str = "nwot", *, space: str | None = None, **scorer_options: Any):
        known = {m["name"]: m["name"] for m in _measures()}
        for m in _measures():
            for alias in m["aliases"]:
                known[alias] = m["name"]
        if method_type in METRICS:
            self.method_type = method_type
        elif method_type in known:
            self.method_type = known[method_type]
            scorer_options = dict(scorer_options, measures=[self.method_type])
        else:
            raise ValueError(
                f"method_type {method_type!r}: expected one of nwot, d, n_units, das or a "
                f"measure ({', '.join(sorted(known))})"
            )
        self.space = space
        self._scorers = ScorerCache(**scorer_options)

    def query(self, graph: Any, dataloader: Any = None, info: Any = None) -> float:
        """The score of NASLib graph ``graph`` (anything with ``get_hash()``)."""
        space, arch = arch_from_hash(graph.get_hash(), self.space)
        images, labels = (None, None) if dataloader is None else first_batch(dataloader)
        if self.method_type in METRICS:
            labels = None  # the scores read no labels
        return value(self._scorers.get(space, images, labels).score(arch), self.method_type)
