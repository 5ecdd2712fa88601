"""The Scorer: open once, score many cells."""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from . import _dasnas

# Output fields in the order `dasnas score` writes them; numeric ones become
# float64 columns (None -> NaN), except these.
_INT_FIELDS = {
    "n_units",
    "params",
    "flops",
    "train_steps",
    "index",
    "repeats",
    "singular_repeats",
}
_BOOL_FIELDS = {"singular"}
_TEXT_FIELDS = {"arch", "key", "hash", "scored_as"}
# The run stamp is the scorer's (Scorer.run), the same on every line.
_SKIPPED_FIELDS = {"run"}


def _as_images(data: Any) -> Any:
    """None, a path, or an array: a torch tensor becomes a NumPy array."""
    if data is None or isinstance(data, np.ndarray):
        return data
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    if hasattr(data, "detach") and hasattr(data, "cpu"):  # a torch.Tensor
        return data.detach().cpu().numpy()
    raise TypeError(
        f"data: expected None, 'gaussian', a CIFAR binary file path or a NumPy array "
        f"(B, 3, H, W), got {type(data).__name__}"
    )


def measures() -> list[dict]:
    """Every training-free measure ``Scorer(measures=[...])`` computes:
    dicts with ``name``, ``aliases``, ``summary`` and ``reference`` (the
    implementation it follows); docs/measures.md defines each."""
    return [
        {"name": n, "aliases": list(a), "summary": s, "reference": r}
        for n, a, s, r in _dasnas.measure_list()
    ]


def _measure_names(measures: Iterable[str]) -> list[str]:
    if isinstance(measures, str):
        raise TypeError(
            f"measures must be a list of names, not the string {measures!r} "
            f"(write [{measures!r}])"
        )
    return [str(m) for m in measures]


def _labels(labels: Any) -> list[int] | None:
    """Class indices as a list of ints (a torch tensor, an array or a
    sequence); an error naming what is wrong."""
    if labels is None:
        return None
    if hasattr(labels, "detach"):  # a torch tensor
        labels = labels.detach().cpu().numpy()
    a = np.asarray(labels)
    if a.dtype.kind not in "iu" or a.ndim != 1:
        raise TypeError(
            f"labels: expected a 1-d array of class indices (integers), got dtype {a.dtype} "
            f"and shape {a.shape}"
        )
    if a.size and (a.min() < 0 or a.max() >= 2**31):
        raise ValueError(f"labels: class indices must lie in 0..2**31, got {int(a.min())}..{int(a.max())}")
    return [int(v) for v in a]


def _option_value(key: str, value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise TypeError(f"space option {key}={value!r}: expected a number or a string")
    return str(value)


class Scorer:
    """Scores cells of one search space on one device with one scoring batch.

    Parameters
    ----------
    space : {"nb201", "nb101", "darts"}
        The search space (architecture strings as ``dasnas score`` takes them).
    device : str
        ``"auto"`` (the first GPU when one works, else the CPU with a
        ``RuntimeWarning`` saying why), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``
        (fails with :class:`dasnas.DeviceError` when that GPU cannot be used).
    batch : int or None
        Images in the scoring batch B. ``None``: 128, or every image of an
        array given as ``data`` (a smaller ``batch`` takes its first images).
    data : None, "gaussian", path or array
        ``None``/``"gaussian"``: B seeded N(0, 1) images. A path: a CIFAR
        binary file (its first B images, normalised with ``dataset``'s mean
        and std). An array ``(B, 3, H, W)`` as a DataLoader yields it (a
        ``torch.Tensor`` is accepted too): float32 (already normalised, used
        as is), float16 (widened), or uint8 (normalised with ``dataset``'s
        constants); C-contiguous; H and W the space's image size (32).
    dataset : {"cifar10", "cifar100"}
        Normalisation constants (and label bytes) of CIFAR files and uint8 arrays.
    seed : int
        Seed of the weights (and of Gaussian images). Same seed, same scores,
        on any device thread count.
    alpha : float
        DAS's alpha: ``das = D + alpha * B * ln N_A`` (1 is WOT).
    threads : int or None
        CPU worker threads of this scorer (None: all cores).
    lanes : int
        Cells in flight on a GPU.
    train_steps : int
        Fast training: SGD steps per cell before it is scored (0: untrained).
        Needs labelled images: ``train_data`` or a CIFAR file as ``data``.
    train_data, train_records, train_batch, lr, lr_schedule, momentum, nesterov, wd, augment
        The fast-training options of ``dasnas score --train-steps``
        (``train_records=(start, end)``; by default a CIFAR ``data`` file's
        records after the scoring batch).
    extra_alphas : iterable of float
        Adds a ``das@A`` field for each A.
    swap : bool
        Also count SWAP (distinct per-unit sign patterns over the batch,
        Peng et al. 2024) from the same pass, as ``swap``.
    swap_mu, swap_sigma : float, optional
        With ``swap``: also ``swap_reg = swap * exp(-(P - mu)**2 / sigma)``,
        P the parameter count in thousands (SWAP's code). Every line also
        carries ``params`` and ``flops`` (conv and linear multiply-adds).
    repeats : int
        Average every score over the weight seeds ``seed`` ... ``seed +
        repeats - 1`` (``dasnas score --repeats``): fields hold the means,
        ``<field>_std`` the standard deviations, ``singular_repeats`` the
        repeats with a singular K_H.
    conv : {"exact", "fast"}
        CPU conv algorithm (``dasnas score --conv``): ``"exact"`` (direct
        convolution, the reference) or ``"fast"`` (Winograd F(4x4, 3x3) for
        3x3 stride-1 convs of 32 to 256 channels; equal up to rounding). A
        GPU runs exact convs either way (with a warning).
    cells_in_flight : int or None
        CPU cells scored at once, each on ``threads / cells_in_flight``
        threads (None: one per 8 threads, at least 1). Scores do not
        depend on it.
    measures : iterable of str or None
        Training-free measures to compute beside the scores, by name (or
        ``["all"]``; :func:`dasnas.measures` lists them, docs/measures.md
        defines them): each becomes a key of the result (a column of
        ``score_many``). Gradient measures use ``labels`` with an array of
        images, the labels of a CIFAR ``data`` file, else labels drawn from
        the weight seed.
    labels : array of int or None
        With an array as ``data``: one class index per image (as a
        DataLoader yields its targets), read by the measures' losses; with
        ``batch``, the first ``batch`` of them.
    **space_options
        Options of the space's network, e.g. ``init_channels=16, layers=8``
        for DARTS or ``init="naswot"`` for NB101.
    """

    def __init__(
        self,
        space: str = "nb201",
        device: str = "auto",
        batch: int | None = None,
        data: Any = None,
        dataset: str = "cifar10",
        seed: int = 0,
        alpha: float = 1.0,
        threads: int | None = None,
        lanes: int = 4,
        train_steps: int = 0,
        *,
        train_data: str | os.PathLike | None = None,
        train_records: tuple[int, int] | None = None,
        train_batch: int = 64,
        lr: float = 0.1,
        lr_schedule: str = "cosine",
        momentum: float = 0.9,
        nesterov: bool = False,
        wd: float = 5e-4,
        augment: bool = False,
        extra_alphas: Iterable[float] = (),
        swap: bool = False,
        swap_mu: float | None = None,
        swap_sigma: float | None = None,
        repeats: int = 1,
        conv: str = "exact",
        cells_in_flight: int | None = None,
        measures: Iterable[str] | None = None,
        labels: Any = None,
        **space_options: Any,
    ) -> None:
        if (swap_mu is None) != (swap_sigma is None):
            raise ValueError("swap_mu and swap_sigma go together")
        if swap_mu is not None and not swap:
            raise ValueError("swap_mu and swap_sigma need swap=True")
        swap_reg = None if swap_mu is None else (float(swap_mu), float(swap_sigma))
        data = _as_images(data)
        if isinstance(data, str) and data == "gaussian":
            data = None
        training = None
        if train_steps:
            training = {
                "steps": int(train_steps),
                "data": None if train_data is None else os.fspath(train_data),
                "records": None if train_records is None else tuple(train_records),
                "batch": int(train_batch),
                "lr": float(lr),
                "lr_schedule": str(lr_schedule),
                "momentum": float(momentum),
                "nesterov": bool(nesterov),
                "wd": float(wd),
                "augment": bool(augment),
            }
        options = {k: _option_value(k, v) for k, v in space_options.items()}
        self._native = _dasnas._Scorer(
            space, device, batch, seed, float(alpha), threads, lanes, options, data,
            dataset, training, bool(swap), swap_reg, int(repeats), str(conv),
            None if cells_in_flight is None else int(cells_in_flight),
            None if measures is None else _measure_names(measures),
            _labels(labels),
        )
        self.extra_alphas = [float(a) for a in extra_alphas]
        self.train_steps = int(train_steps)
        if self._native.notice:
            warnings.warn(f"dasnas: {self._native.notice}", RuntimeWarning, stacklevel=2)

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"cuda:N (name)"``: where cells are scored."""
        return self._native.device

    @property
    def batch_size(self) -> int:
        """Images in the scoring batch (B)."""
        return self._native.batch_size

    @property
    def space(self) -> str:
        """The search space's name."""
        return self._native.space

    @property
    def seed(self) -> int:
        """The seed of the weights."""
        return self._native.seed

    @property
    def run(self) -> dict:
        """The run stamp every result line carries as ``run``: space,
        options, seed, batch size, a digest of the scoring images, alpha and
        the fast training. ``dasnas merge`` and resuming refuse to mix lines
        of different stamps."""
        return json.loads(self._native.run)

    @property
    def alpha(self) -> float:
        """DAS's alpha."""
        return self._native.alpha

    def __repr__(self) -> str:
        return (
            f"dasnas.Scorer(space={self.space!r}, device={self.device!r}, "
            f"batch={self.batch_size}, seed={self.seed})"
        )

    def check(self, archs: Iterable[str]) -> list[str]:
        """The canonical strings of ``archs``; ``ValueError`` naming the first
        bad one (its index and the byte where it goes wrong)."""
        return self._native.check(list(archs))

    def reference_inputs(self, arch: str, repeat: int = 0) -> tuple:
        """What a reference formulation (PyTorch, say) needs to compute the
        measures of ``arch`` on exactly this scorer's network.

        Returns ``(network, weights, images, labels)``: the network as a dict
        (nodes in topological order with their ops, inputs, parameters and
        shapes; docs/measures.md), its initial weights (weight seed
        ``seed + repeat``) as a dict of float32 arrays in the crate's
        layouts, the scoring batch ``(B, H, W, C)`` float32 and the labels
        (uint32) the losses use.
        """
        network, weights, images, labels = self._native.reference_inputs(str(arch), int(repeat))
        return json.loads(network), weights, images, labels

    def measure_inputs(self, arch: str, family: str, repeat: int = 0) -> tuple:
        """What a measure that draws its own weights and inputs uses on
        ``arch``, for a reference formulation to compute it on the same
        values. ``family`` is ``"az_nas"`` (Kaiming-normal weights, the
        Gaussian ``input`` and the Rademacher ``seed<k>`` at each block),
        ``"zen"`` (N(0, 1) weights, ``input`` and ``noise``) or
        ``"meco_opt"`` (the scorer's weights, ``channels.<node name>``: the
        channels sampled at each feature map).

        Returns ``(weights, tensors)``: dicts of float32 arrays, weights in
        the crate's layouts (as :meth:`reference_inputs`), tensors NHWC.
        """
        return self._native.measure_inputs(str(arch), str(family), int(repeat))

    def score(self, arch: str) -> dict:
        """Scores one cell: a dict with the fields of a ``dasnas score`` line
        (``arch``, ``wot``, ``d``, ``n_units``, ``ln_n_units``, ``das``,
        ``singular``, ``ms``, ...). A singular cell has ``singular=True`` and
        ``None`` for ``wot``, ``d``, ``das``."""
        return self._native.score_one(arch, self.extra_alphas)

    def score_many(
        self,
        archs: Iterable[str],
        *,
        progress: bool | Callable[[int, int], None] = False,
        as_frame: bool = False,
        out: str | os.PathLike | None = None,
    ):
        """Scores ``archs`` in order, in blocks that keep the device busy,
        with the GIL released.

        Returns a dict of NumPy columns (``arch`` as an object array, scores
        as float64 with NaN for singular cells, ``n_units`` int64,
        ``singular`` bool), or a pandas DataFrame with ``as_frame=True``.

        ``progress``: True draws a progress bar (tqdm when installed, else a
        line on stderr); a callable gets ``(done, total)`` after each block.
        ``out``: a JSON Lines file each block is appended to and flushed,
        as ``dasnas score --out`` writes it, so an interrupted run keeps
        every finished cell. Ctrl-C stops between blocks (one cell on the
        CPU): the ``KeyboardInterrupt`` carries the finished cells' columns
        as its ``partial`` attribute.
        """
        archs = self.check(archs)
        total = len(archs)
        report = _progress(progress, total)
        rows: list[dict] = []
        # The columns are this scorer's line fields, whatever the cells.
        fields = self._native.line_fields(self.extra_alphas)
        path = os.fspath(out) if out is not None else None
        if path is not None:
            self._native.check_out(path)
        try:
            block = max(1, self._native.block_size)
            for start in range(0, total, block):
                part = self._native.score_block(
                    archs[start : start + block], self.extra_alphas, path
                )
                rows.extend(part)
                report(len(rows))
        except KeyboardInterrupt as e:
            e.partial = _columns(rows, as_frame, fields)
            raise
        finally:
            report(None)
        return _columns(rows, as_frame, fields)


def _progress(progress, total: int) -> Callable[[int | None], None]:
    """A function taking the cells done so far (None: finished)."""
    if callable(progress):
        return lambda done: None if done is None else progress(done, total)
    if not progress:
        return lambda done: None
    try:
        from tqdm.auto import tqdm  # type: ignore

        bar = tqdm(total=total, unit="cell")
        last = [0]

        def tick(done):
            if done is None:
                bar.close()
            else:
                bar.update(done - last[0])
                last[0] = done

        return tick
    except ImportError:

        def line(done):
            if done is None:
                sys.stderr.write("\n")
            else:
                sys.stderr.write(f"\rdasnas: {done}/{total} cells")
            sys.stderr.flush()

        return line


def _columns(rows: list[Mapping[str, Any]], as_frame: bool, line_fields: list[str]):
    """Per-cell dicts as NumPy columns (or a DataFrame): one column per
    field of the scorer's lines (``line_fields``), so an empty list of cells
    gives the same columns, empty."""
    fields: list[str] = [f for f in line_fields if f not in _SKIPPED_FIELDS]
    for r in rows:
        for k in r:
            if k not in fields and k not in _SKIPPED_FIELDS:
                fields.append(k)
    cols: dict[str, np.ndarray] = {}
    for f in fields:
        vals = [r.get(f) for r in rows]
        if f in _TEXT_FIELDS:
            arr = np.empty(len(vals), dtype=object)
            arr[:] = vals
        elif f in _BOOL_FIELDS:
            arr = np.array([bool(v) for v in vals], dtype=bool)
        elif f in _INT_FIELDS:
            arr = np.array([-1 if v is None else v for v in vals], dtype=np.int64)
        else:
            arr = np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
        cols[f] = arr
    if as_frame:
        try:
            import pandas as pd  # type: ignore
        except ImportError as e:
            raise ImportError("as_frame=True needs pandas (pip install pandas)") from e
        return pd.DataFrame(cols)
    return cols
