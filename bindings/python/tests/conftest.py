"""Shared helpers: small CPU scorers, a synthetic CIFAR file, the CLI binary."""

import os
import pathlib
import subprocess

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def cli_binary():
    """The `dasnas` binary of this checkout (built by `cargo test --release`)."""
    path = pathlib.Path(os.environ.get("DASNAS_BIN", REPO / "target" / "release" / "dasnas"))
    if not path.exists():
        pytest.fail(f"{path} is missing: build it with `cargo build --release` (or set DASNAS_BIN)")
    return str(path)


def run_cli(*args):
    out = subprocess.run([cli_binary(), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def cifar_file(tmp_path):
    """A CIFAR-10 binary file of 40 records with seeded pixels, and the
    pixels as an (N, 3, 32, 32) uint8 array."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(40, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=40, dtype=np.uint8)
    records = np.concatenate([labels[:, None], pixels.reshape(40, -1)], axis=1)
    path = tmp_path / "cifar.bin"
    path.write_bytes(records.tobytes())
    return path, pixels


def normalise(pixels, dataset="cifar10"):
    mean = {"cifar10": [0.4914, 0.4822, 0.4465]}[dataset]
    std = {"cifar10": [0.2470, 0.2435, 0.2616]}[dataset]
    x = pixels.astype(np.float32) / np.float32(255.0)
    return ((x - np.array(mean, np.float32)[None, :, None, None]) / np.array(std, np.float32)[None, :, None, None]).astype(np.float32)
