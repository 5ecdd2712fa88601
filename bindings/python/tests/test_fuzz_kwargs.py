"""Random keyword arguments for the Python API, each case run in its own
interpreter under a memory and time limit: every case must end with a
result or a clean exception (ValueError, TypeError, OSError and its
subclasses, dasnas.DeviceError), never an interpreter crash, a runaway, a
Rust panic (dasnas.InternalError) or another exception type."""

import json
import os
import random
import subprocess
import sys

import pytest

# Values that have broken command-line tools before: huge, negative,
# non-finite, empty, unicode, wrong types.
NASTY = [
    0, 1, 2, -1, 3, 10**8, 10**20, 2**64, -(2**63), 1.5, float("nan"), float("inf"),
    -float("inf"), "", "ü", "\x00", "x" * 10_000, None, True, [], {}, "gaussian", "1e3",
]

KEYWORDS = {
    "space": ["nb201", "nb101", "darts", "", "NB201", "ü", None, 3],
    "device": ["cpu", "auto", "cuda:99", "", "tpu", None, 1],
    "batch": NASTY,
    "data": ["gaussian", "/nonexistent.bin", "", None, 3, "ü"],
    "dataset": ["cifar10", "cifar100", "", "imagenet", None],
    "seed": NASTY,
    "alpha": NASTY,
    "threads": NASTY,
    "lanes": NASTY,
    "train_steps": NASTY,
    "train_batch": NASTY,
    "lr": NASTY,
    "momentum": NASTY,
    "wd": NASTY,
    "train_records": [(0, 1), (5, 2), (0, 10**12), (-1, 3), "0:1", None],
    "extra_alphas": [[0.5], [float("nan")], ["x"], [], None, 3],
    "repeats": NASTY,
    "conv": ["exact", "fast", "", "quick", None],
    "cells_in_flight": NASTY,
    "init_channels": NASTY,
    "layers": NASTY,
    "stem_channels": NASTY,
    "count": ["functional", "graph", "", "ü", 3, None],
}

CELLS = {
    "nb201": "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
}

CASE = r"""
import json, resource, sys, warnings
warnings.simplefilter("ignore")
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
import dasnas
kwargs = json.loads(sys.argv[1], object_hook=None)
kwargs = {k: (tuple(v) if k == "train_records" and isinstance(v, list) else v)
          for k, v in kwargs.items()}
for k, v in list(kwargs.items()):
    if v == "__nan__": kwargs[k] = float("nan")
    if v == "__inf__": kwargs[k] = float("inf")
    if v == "__-inf__": kwargs[k] = -float("inf")
cell = sys.argv[2]
allowed = (ValueError, TypeError, OSError, OverflowError, dasnas.DeviceError)
try:
    s = dasnas.Scorer(**kwargs)
    if cell:
        s.score(cell)
    print("RESULT ok")
except dasnas.InternalError as e:
    print("RESULT internal", e)
except allowed as e:
    msg = str(e)
    print("RESULT clean" if msg and "\n" not in msg.strip() else "RESULT messy", type(e).__name__, msg[:300])
except Exception as e:
    print("RESULT other", type(e).__name__, str(e)[:300])
"""


def encode(v):
    """JSON for a value, with the non-finite floats as markers."""
    if isinstance(v, float) and v != v:
        return "__nan__"
    if v == float("inf"):
        return "__inf__"
    if v == -float("inf"):
        return "__-inf__"
    if isinstance(v, list):
        return [encode(x) for x in v]
    if isinstance(v, tuple):
        return [encode(x) for x in v]
    return v


@pytest.mark.parametrize("case", range(40))
def test_random_keywords_end_cleanly(case, tmp_path):
    rng = random.Random(1000 + case)
    kwargs = {"device": "cpu", "batch": 4}
    for key in rng.sample(sorted(KEYWORDS), rng.randint(1, 4)):
        kwargs[key] = rng.choice(KEYWORDS[key])
    cell = CELLS.get(kwargs.get("space", "nb201"), "") if isinstance(kwargs.get("space", "nb201"), str) else ""
    env = dict(os.environ, DASNAS_CACHE=str(tmp_path))
    try:
        p = subprocess.run(
            [sys.executable, "-c", CASE, json.dumps({k: encode(v) for k, v in kwargs.items()}), cell],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{kwargs}: still running after 120 s")
    out = [l for l in p.stdout.splitlines() if l.startswith("RESULT")]
    assert p.returncode == 0 and out, (
        f"{kwargs}: exit {p.returncode}\nstdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}"
    )
    verdict = out[-1].split()[1]
    assert verdict in ("ok", "clean"), f"{kwargs}: {out[-1]}"
