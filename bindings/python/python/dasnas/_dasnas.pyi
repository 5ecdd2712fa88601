"""Type stubs of the native module ``dasnas._dasnas`` (private: use the
``dasnas`` package's API, which wraps it)."""

from typing import Any

import numpy as np

__version__: str

class DeviceError(RuntimeError):
    """A GPU that cannot be used or that failed."""

class InternalError(RuntimeError):
    """A bug in dasnas (a Rust panic caught before it reached Python)."""

class _Scorer:
    def __init__(
        self,
        space: str,
        device: str,
        batch: int | None,
        seed: int,
        alpha: float,
        threads: int | None,
        lanes: int,
        space_options: dict[str, str],
        data: str | np.ndarray | None,
        dataset: str,
        training: dict[str, Any] | None,
    ) -> None: ...
    @property
    def device(self) -> str: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def space(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def alpha(self) -> float: ...
    @property
    def notice(self) -> str | None: ...
    @property
    def block_size(self) -> int: ...
    def check(self, archs: list[str]) -> list[str]: ...
    def score_block(self, archs: list[str], extra_alphas: list[float]) -> list[dict[str, Any]]: ...

def space_names() -> list[str]: ...
def space_options_of(space: str) -> list[tuple[str, str, str]]: ...
def parse_arch(space: str, arch: str) -> str: ...
def sample_archs(space: str, n: int, seed: int) -> list[str]: ...
def enumerate_archs(space: str) -> list[str]: ...
def kendall_tau(x: list[float], y: list[float]) -> float: ...
def spearman(x: list[float], y: list[float]) -> float: ...
def fit_rules(
    d: list[float | None], ln_n_units: list[float], truth: list[float], batch: int, folds: int, seed: int
) -> dict[str, Any]: ...
def fit_files(scores: str, truth: str, key: str, target: str, folds: int, seed: int) -> dict[str, Any]: ...
def run_search(
    scorer: _Scorer | None,
    space: str,
    space_options: dict[str, str],
    seed: int,
    n: int,
    runs: int,
    metric: str,
    strategy: str,
    population: int,
    tournament: int,
    scores: str | None,
    truth: str | None,
    key: str,
    target: str,
) -> dict[str, Any]: ...
