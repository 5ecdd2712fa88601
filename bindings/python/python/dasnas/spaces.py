"""Search spaces: names, options, parsing, sampling and listing cells.

Architecture strings are the ones ``dasnas score`` takes: NB201
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, NB101 ``<49 adjacency digits>/<labels
joined by |>``, DARTS ``Genotype(normal=[...], normal_concat=[...], ...)``.
"""

from __future__ import annotations

from . import _dasnas


def names() -> list[str]:
    """The registered spaces: ``["nb201", "nb101", "darts"]``."""
    return _dasnas.space_names()


def options(space: str) -> list[tuple[str, str, str]]:
    """``(key, default, help)`` of every network option ``space`` takes
    (the ``**space_options`` of :class:`dasnas.Scorer`)."""
    return _dasnas.space_options_of(space)


def parse(space: str, arch: str) -> str:
    """The canonical string of ``arch``; ``ValueError`` saying what is wrong
    and at which byte (the command line's message)."""
    return _dasnas.parse_arch(space, arch)


def is_valid(space: str, arch: str) -> bool:
    """Whether ``arch`` is a valid cell of ``space``."""
    try:
        parse(space, arch)
        return True
    except ValueError:
        return False


def sample(space: str, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct cells of ``space`` drawn with ``seed`` (the cells of
    ``dasnas score --sample n --seed seed``)."""
    return _dasnas.sample_archs(space, n, seed)


def all_cells(space: str) -> list[str]:
    """Every cell of ``space`` where the space is small enough to list:
    NB201's 15,625 cells in official index order; NB101's 423,624 unique
    specs (one per module hash, built once into the on-disk cache of
    ``dasnas enumerate``); ``ValueError`` for DARTS."""
    return _dasnas.enumerate_archs(space)


def identity(space: str, arch: str) -> dict:
    """How ``arch`` is known outside dasnas: ``key`` (NB201's NATS-Bench
    ``unique_str``, NB101's module hash, DARTS's canonical genotype),
    ``index`` (NB201's official index, else None) and ``score_key`` (equal
    for cells whose scores are equal in distribution)."""
    key, index, score_key = _dasnas.identities(space, [arch])[0]
    return {"key": key, "index": index, "score_key": score_key}


def unique(space: str, archs: list[str]) -> list[str]:
    """The first cell of each class of equal scores in ``archs``, in order
    (NB201: 7,093 of the 15,625 cells; NATS-Bench's 6,466 classes split
    where N_A differs)."""
    return _dasnas.unique_archs(space, list(archs))


def by_index(indices: list[int], space: str = "nb201") -> list[str]:
    """The cells of official ``indices`` (NB201's ``arch_index``)."""
    return _dasnas.archs_by_index(space, [int(i) for i in indices])
