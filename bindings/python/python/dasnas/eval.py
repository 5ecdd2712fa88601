"""Ranking statistics, the crate's own (ties handled as SciPy does)."""

from __future__ import annotations

import numpy as np

from . import _dasnas


def _pairs(x, y, nan_policy: str):
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x has {x.size} values and y {y.size}; they must pair up")
    bad = np.isnan(x) | np.isnan(y)
    if bad.any():
        if nan_policy == "omit":
            x, y = x[~bad], y[~bad]
        elif nan_policy == "raise":
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"NaN at index {first} ({int(bad.sum())} in all); pass nan_policy='omit' to "
                "leave those pairs out"
            )
        else:
            raise ValueError(f"nan_policy {nan_policy!r}: expected 'raise' or 'omit'")
    return x.tolist(), y.tolist()


def kendall_tau(x, y, nan_policy: str = "raise") -> float:
    """Kendall's tau-b of two paired sequences (NaN when undefined, e.g. a
    constant side). ``nan_policy='omit'`` drops pairs with a NaN."""
    return _dasnas.kendall_tau(*_pairs(x, y, nan_policy))


def spearman(x, y, nan_policy: str = "raise") -> float:
    """Spearman's rho (average ranks for ties) of two paired sequences."""
    return _dasnas.spearman(*_pairs(x, y, nan_policy))
