"""Rule fitting and search over the crate's code (``dasnas fit``, ``dasnas search``)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _dasnas
from ._scorer import Scorer, _option_value


def fit(
    scores: Any,
    truth: Any,
    *,
    batch: int | None = None,
    folds: int = 5,
    seed: int = 0,
    key: str = "arch_str",
    target: str = "cifar10_test_acc",
) -> dict:
    """Chooses the DAS combination rule of D and N_A by k-fold
    cross-validated Kendall tau, as ``dasnas fit`` does; returns its report
    (per family: held-out tau per fold, mean and std, the paired difference
    to WOT, the rule refitted on all rows).

    ``scores`` is either the columns :meth:`Scorer.score_many` returns (a
    dict or DataFrame with ``d`` and ``ln_n_units``; then ``truth`` is the
    target per row and ``batch`` the scoring batch size B), or the path of a
    ``dasnas score`` JSON Lines file (then ``truth`` is a CSV path, joined on
    ``key``, its ``target`` column).
    """
    if isinstance(scores, (str, os.PathLike)):
        return _dasnas.fit_files(
            os.fspath(scores), os.fspath(truth), key, target, folds, seed
        )
    if batch is None:
        raise ValueError("fit on columns needs batch=B, the scoring batch size")
    d = np.asarray(scores["d"], dtype=np.float64)
    ln_na = np.asarray(scores["ln_n_units"], dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    d_list = [None if np.isnan(v) else float(v) for v in d]
    return _dasnas.fit_rules(d_list, ln_na.tolist(), truth.tolist(), int(batch), folds, seed)


def search(
    scorer: Scorer | None = None,
    *,
    n: int,
    runs: int = 1,
    metric: str = "wot",
    strategy: str = "random",
    population: int = 20,
    tournament: int = 5,
    scores: str | os.PathLike | None = None,
    truth: str | os.PathLike | None = None,
    key: str = "arch_str",
    target: str = "cifar10_test_acc",
    space: str = "nb201",
    seed: int = 0,
    **space_options: Any,
) -> dict:
    """NASWOT's search, as ``dasnas search`` runs it: each of ``runs`` runs
    evaluates ``n`` cells and keeps the best by ``metric`` (``wot``, ``d``,
    ``n_units``, ``das@A``, ``linear:A``, ``units:A``, ``ranksum:B``);
    ``strategy="evolution"`` is a regularised evolution (``population``,
    ``tournament``). Cells are scored by ``scorer`` (its space, options and
    seed are used), or, for random search, drawn from the ``scores`` cache
    (a ``dasnas score`` JSON Lines file). With ``truth`` (a CSV) the report
    gives the chosen cells' ``target`` mean and std, an oracle and a random
    pick. Returns the report as a dict."""
    native = None if scorer is None else scorer._native
    options = {k: _option_value(k, v) for k, v in space_options.items()}
    return _dasnas.run_search(
        native,
        space,
        options,
        seed,
        n,
        runs,
        metric,
        strategy,
        population,
        tournament,
        None if scores is None else os.fspath(scores),
        None if truth is None else os.fspath(truth),
        key,
        target,
    )
