"""Scoring a whole space or a long cell list on a Ray cluster.

One actor per GPU holds a :class:`dasnas.Scorer` (so each process compiles
its kernels once and keeps its device busy with ``lanes`` cells in flight),
and CPU actors take ``cpus_per_actor`` cores each (``threads`` of the
scorer). Chunks of arch strings go through a Ray ``ActorPool``; every line
that comes back is appended to one JSON Lines file and flushed, exactly the
line ``dasnas score`` writes for the cell (run stamp included), so the file
can be resumed, merged with shards scored by the command line, and read by
``dasnas eval`` / ``dasnas search``. A run that stops (a killed driver, a
lost node) is resumed by running it again with the same ``out``.

>>> import ray, dasnas.distributed as dd                       # doctest: +SKIP
>>> ray.init(address="auto")                                    # doctest: +SKIP
>>> dd.score("nb101", "all", out="nb101.jsonl", batch=128)      # doctest: +SKIP

Ray is not a dependency of dasnas: ``pip install ray`` on every node.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Iterable

from . import _dasnas, spaces


def _ray():
    try:
        import ray  # noqa: PLC0415
        from ray.util import ActorPool  # noqa: PLC0415
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise ImportError(
            "dasnas.distributed needs Ray: pip install ray (on every node)"
        ) from e
    return ray, ActorPool


class _ScorerActor:
    """A Ray actor holding one scorer (made remote in :func:`score`)."""

    def __init__(self, space: str, kwargs: dict):
        from dasnas import Scorer  # noqa: PLC0415 - imported in the worker

        self.scorer = Scorer(space, **kwargs)

    def run(self) -> str:
        return self.scorer._native.run

    def device(self) -> str:
        return self.scorer.device

    def block_size(self) -> int:
        return self.scorer._native.block_size

    def score(self, archs: list[str]) -> list[str]:
        return self.scorer._native.score_lines(archs, self.scorer.extra_alphas)


def cells(space: str, archs: str | Iterable[str] = "all", *, unique: bool = False,
          shard: tuple[int, int] | None = None) -> list[str]:
    """The canonical cell list a run scores: ``"all"`` (the space's
    enumeration) or the given strings, one per class with ``unique``, then
    shard ``(k, n)`` of it (positions k, k+n, ...), as ``dasnas score``
    selects them."""
    if isinstance(archs, str):
        if archs != "all":
            raise ValueError(f'archs must be "all" or a list of arch strings, not {archs!r}')
        listed = spaces.all_cells(space)
    else:
        listed = [spaces.parse(space, a) for a in archs]
    if unique:
        listed = spaces.unique(space, listed)
    if shard is not None:
        k, n = shard
        if not (isinstance(k, int) and isinstance(n, int) and 0 <= k < n):
            raise ValueError(f"shard {shard!r}: expected (k, n) with 0 <= k < n")
        listed = listed[k::n]
    return listed


def score(
    space: str,
    archs: str | Iterable[str] = "all",
    *,
    out: str | os.PathLike,
    unique: bool = False,
    shard: tuple[int, int] | None = None,
    gpus: int | None = None,
    cpu_actors: int | None = None,
    cpus_per_actor: int = 1,
    chunk: int | None = None,
    resume: bool = True,
    progress: bool | Callable[[int, int], None] = False,
    **scorer_kwargs: Any,
) -> dict:
    """Scores ``archs`` of ``space`` on the Ray cluster ``ray.init`` joined
    and appends their lines to ``out``.

    Parameters
    ----------
    archs : ``"all"`` or iterable of str
        The cells (see :func:`cells`, with ``unique`` and ``shard``).
    out : path
        JSON Lines file; lines arrive in completion order, each flushed.
    gpus : int, optional
        GPU actors, one GPU each (default: every GPU of the cluster).
    cpu_actors : int, optional
        CPU actors of ``cpus_per_actor`` cores each (default: none when
        there are GPU actors, else as many as the cluster's CPUs allow).
    chunk : int, optional
        Cells per task (default: 4 x the scorer's block size, at least 8,
        so a GPU actor keeps its lanes full and results stream back often).
    resume : bool
        Skip the cells already in ``out`` (its run stamps must match this
        run's, else ``ValueError``); False appends regardless.
    progress : bool or callable
        True prints a line to stderr per chunk; a callable gets
        ``(done, total)``.
    **scorer_kwargs
        Passed to every actor's :class:`dasnas.Scorer` (``batch``, ``data``,
        ``seed``, ``alpha``, ``train_steps``, space options, ...). ``data``
        must be a path every node can read (or ``"gaussian"``); ``device``
        and ``threads`` are set per actor.

    Returns a dict: ``cells`` (listed), ``skipped`` (already in ``out``),
    ``scored``, ``seconds``, ``cells_per_s``, ``actors`` (their devices).
    """
    ray, ActorPool = _ray()
    if not ray.is_initialized():
        ray.init()
    for k in ("device", "threads"):
        if k in scorer_kwargs:
            raise ValueError(f"{k} is set per actor by dasnas.distributed; leave it out")
    if cpus_per_actor < 1:
        raise ValueError(f"cpus_per_actor must be at least 1, not {cpus_per_actor}")
    listed = cells(space, archs, unique=unique, shard=shard)

    resources = ray.cluster_resources()
    n_gpus = int(resources.get("GPU", 0)) if gpus is None else int(gpus)
    if cpu_actors is None:
        cpu_actors = 0 if n_gpus > 0 else max(1, int(resources.get("CPU", 1)) // cpus_per_actor)
    if n_gpus + cpu_actors < 1:
        raise ValueError("no actors: give gpus or cpu_actors at least 1")

    remote = ray.remote(_ScorerActor)
    actors = [
        remote.options(num_gpus=1, num_cpus=1).remote(
            space, dict(scorer_kwargs, device="cuda", threads=1)
        )
        for _ in range(n_gpus)
    ] + [
        remote.options(num_cpus=cpus_per_actor).remote(
            space, dict(scorer_kwargs, device="cpu", threads=cpus_per_actor)
        )
        for _ in range(cpu_actors)
    ]
    stamps = ray.get([a.run.remote() for a in actors])
    if len(set(stamps)) != 1:
        raise ValueError(
            "the actors' run stamps differ (different images or options on different "
            f"nodes?): {sorted(set(stamps))}"
        )
    devices = ray.get([a.device.remote() for a in actors])
    blocks = ray.get([a.block_size.remote() for a in actors])

    done = set(_dasnas.resume_file(os.fspath(out), stamps[0])) if resume else set()
    todo = [a for a in listed if a not in done]
    if chunk is None:
        chunk = max(8, 4 * max(blocks))
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, not {chunk}")
    chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]

    t0 = time.perf_counter()
    scored = 0
    with open(out, "a", encoding="utf-8") as sink:
        pool = ActorPool(actors)
        for lines in pool.map_unordered(lambda a, c: a.score.remote(c), chunks):
            sink.write("".join(line + "\n" for line in lines))
            sink.flush()
            scored += len(lines)
            if callable(progress):
                progress(scored, len(todo))
            elif progress:
                print(f"dasnas.distributed: {scored}/{len(todo)} cells", file=sys.stderr)
    seconds = time.perf_counter() - t0
    for a in actors:
        ray.kill(a)
    return {
        "cells": len(listed),
        "skipped": len(listed) - len(todo),
        "scored": scored,
        "seconds": seconds,
        "cells_per_s": scored / seconds if seconds > 0 else float("nan"),
        "actors": devices,
    }
