"""NNI: its NAS-Bench-201 and NAS-Bench-101 sample dicts, scored by dasnas.

* NB201 (NNI's ``nasbench201`` benchmark): keys ``0_1, 0_2, 1_2, 0_3,
  1_3, 2_3`` (edge ``src_dst``), ops ``none, skip_connect, conv_1x1,
  conv_3x3, avg_pool_3x3``.
* NB101 (NNI's ``nasbench101``): ``op1 .. op{V-2}`` (``conv3x3-bn-relu``,
  ``conv1x1-bn-relu``, ``maxpool3x3``) and ``input1 .. input{V-1}``, the
  list of vertices feeding vertex k (vertex V-1 is the output); ``num_nodes``
  (V) when present, else told by the largest ``inputK``.

Keys may carry a model-space prefix (``cell/op1``, ``cell.input1``); it is
dropped.

>>> from dasnas.adapters.nni_adapter import NniEvaluator
>>> evaluate = NniEvaluator("nb201", device="cpu")
>>> evaluate({"0_1": "conv_3x3", "0_2": "conv_3x3", "1_2": "avg_pool_3x3",
...           "0_3": "skip_connect", "1_3": "conv_3x3", "2_3": "skip_connect"})  # doctest: +SKIP
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ._common import METRICS, ScorerCache, value

NB201_EDGES = ["0_1", "0_2", "1_2", "0_3", "1_3", "2_3"]
NB201_OPS = {
    "none": "none",
    "skip_connect": "skip_connect",
    "conv_1x1": "nor_conv_1x1",
    "conv_3x3": "nor_conv_3x3",
    "avg_pool_3x3": "avg_pool_3x3",
}
NB101_OPS = {"conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"}


def _plain(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The sample with model-space prefixes dropped from its keys."""
    return {re.split(r"[/.]", str(k))[-1]: v for k, v in sample.items()}


def nb201_arch(sample: Mapping[str, Any]) -> str:
    """NNI's NB201 sample dict as an NB201 string."""
    s = _plain(sample)
    ops = []
    for edge in NB201_EDGES:
        if edge not in s:
            raise ValueError(f"NNI NB201 sample: no key {edge!r} (keys: {sorted(s)})")
        op = s[edge]
        if op not in NB201_OPS:
            raise ValueError(
                f"NNI NB201 sample: {edge}={op!r} is not one of {sorted(NB201_OPS)}"
            )
        ops.append(NB201_OPS[op])
    a, b, c, d, e, f = ops
    return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"


def nb101_arch(sample: Mapping[str, Any]) -> str:
    """NNI's NB101 sample dict as an NB101 string ``<matrix>/<labels>``."""
    s = _plain(sample)
    inputs = {int(k[5:]): v for k, v in s.items() if re.fullmatch(r"input\d+", k)}
    if not inputs:
        raise ValueError(f"NNI NB101 sample: no inputK keys (keys: {sorted(s)})")
    v = int(s["num_nodes"]) if "num_nodes" in s else max(inputs) + 1
    if not 2 <= v <= 7:
        raise ValueError(f"NNI NB101 sample: {v} vertices, expected 2 to 7")
    matrix = [[0] * v for _ in range(v)]
    for k in range(1, v):
        if k not in inputs:
            raise ValueError(f"NNI NB101 sample: vertex {k} has no input{k}")
        feeds = inputs[k]
        feeds = [feeds] if isinstance(feeds, int) else list(feeds)
        for j in feeds:
            if not 0 <= int(j) < k:
                raise ValueError(f"NNI NB101 sample: input{k} holds {j}, expected 0..{k - 1}")
            matrix[int(j)][k] = 1
    labels = ["input"]
    for k in range(1, v - 1):
        op = s.get(f"op{k}")
        if op not in NB101_OPS:
            raise ValueError(f"NNI NB101 sample: op{k}={op!r} is not one of {sorted(NB101_OPS)}")
        labels.append(op)
    labels.append("output")
    return "".join(str(x) for row in matrix for x in row) + "/" + "|".join(labels)


class NniEvaluator:
    """A callable scoring NNI sample dicts: ``evaluate(sample) -> float``.

    ``space``: ``"nb201"`` or ``"nb101"``; ``metric``: ``wot`` (NASWOT),
    ``d``, ``n_units`` or ``das``; a singular cell scores ``-1e8``. Other
    keywords go to :class:`dasnas.Scorer` (``device``, ``data``, ``batch``,
    ``seed``, ...); one scorer serves every call.
    """

    def __init__(self, space: str = "nb201", metric: str = "wot", **scorer_options: Any):
        if space not in ("nb201", "nb101"):
            raise ValueError(f"space {space!r}: NNI samples are converted for nb201 and nb101")
        if metric not in METRICS:
            raise ValueError(f"metric {metric!r}: expected one of wot, d, n_units, das")
        self.space = space
        self.metric = metric
        self._scorers = ScorerCache(size=1, **scorer_options)

    def arch(self, sample: Mapping[str, Any]) -> str:
        """The dasnas architecture string of ``sample``."""
        return nb201_arch(sample) if self.space == "nb201" else nb101_arch(sample)

    def __call__(self, sample: Mapping[str, Any]) -> float:
        return value(self._scorers.get(self.space, None).score(self.arch(sample)), self.metric)
