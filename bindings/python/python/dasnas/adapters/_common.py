"""What the adapters share: images from a data loader, a small cache of
scorers keyed by space and batch, NASLib's value for singular cells."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np

from .._scorer import Scorer, _as_images

# NASLib maps a singular kernel matrix (ln det = -inf) to this value.
SINGULAR = -1e8

METRICS = {"nwot": "wot", "wot": "wot", "d": "d", "n_units": "n_units", "das": "das"}


def first_images(dataloader: Any) -> np.ndarray:
    """The images of a data loader's first batch (``(inputs, targets)`` or
    inputs alone; torch tensors or NumPy arrays) as a NumPy array."""
    return first_batch(dataloader)[0]


def first_batch(dataloader: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The images of a data loader's first batch as :func:`first_images`
    reads them, and its targets (class indices) when it has them."""
    batch = next(iter(dataloader))
    targets = None
    if isinstance(batch, (tuple, list)):
        if len(batch) > 1 and batch[1] is not None:
            targets = batch[1]
            if hasattr(targets, "detach"):
                targets = targets.detach().cpu().numpy()
            targets = np.asarray(targets).reshape(-1)
        batch = batch[0]
    images = _as_images(batch)
    if not isinstance(images, np.ndarray):
        raise TypeError(
            f"the dataloader's batches hold {type(batch).__name__}, expected images as a "
            "tensor or array (B, 3, H, W)"
        )
    if images.ndim != 4 or images.shape[0] < 2:
        raise ValueError(
            f"the dataloader's first batch has shape {images.shape}: scoring needs at least "
            "2 images (B, 3, H, W)"
        )
    return np.ascontiguousarray(images), targets


class ScorerCache:
    """Scorers by (space, images): a tool that queries cell after cell with
    the same batch reuses one scorer (kernels compiled once)."""

    def __init__(self, size: int = 4, **scorer_options: Any) -> None:
        self._size = size
        self._options = scorer_options
        self._scorers: OrderedDict[tuple, Scorer] = OrderedDict()

    def get(self, space: str, images: np.ndarray | None, labels: np.ndarray | None = None) -> Scorer:
        digest = None
        if images is not None:
            h = hashlib.blake2b(digest_size=16)
            h.update(str((images.dtype.str, images.shape)).encode())
            h.update(images.tobytes())
            if labels is not None:
                h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
            digest = h.hexdigest()
        key = (space, digest)
        if key in self._scorers:
            self._scorers.move_to_end(key)
            return self._scorers[key]
        opts = dict(self._options)
        if images is not None:
            opts["data"] = images
            if labels is not None:
                opts["labels"] = labels
        scorer = Scorer(space, **opts)
        self._scorers[key] = scorer
        while len(self._scorers) > self._size:
            self._scorers.popitem(last=False)
        return scorer


def value(result: dict, metric: str) -> float:
    """``metric`` of a scored cell (a score of :data:`METRICS` or a
    measure's name), ``SINGULAR`` where it is undefined."""
    v = result[METRICS.get(metric, metric)]
    return SINGULAR if v is None else float(v)
