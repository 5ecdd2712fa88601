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
    """Every cell of ``space`` where the space is small enough to list
    (NB201: its 15,625 cells); ``ValueError`` otherwise."""
    return _dasnas.enumerate_archs(space)
