#!/usr/bin/env python3
"""Side-by-side timings of the Python package (run with the Python that has
the `dasnas` wheel installed, e.g. target/pyenv/bin/python):

1. overhead: `dasnas score --archs FILE` (the binary) against
   `Scorer.score_many` on the same cells, alternating, ROUNDS times each;
   both wall times include opening the scorer (Gaussian batch, CPU).
2. with --torch-python PY: the NASLib-style adapter (`ZeroCost.query`, one
   graph at a time, images from a dataloader's first batch) against
   scripts/torch_reference.py (the PyTorch formulation of NASWOT: build the
   net, hooks on every ReLU, one forward, slogdet) on the same cells, run by
   PY (a Python with torch); the first cell of each is a warm-up.

    python scripts/python_bench.py [--cells 200] [--rounds 2] [--batch 128]
        [--threads 2] [--torch-python PY] [--torch-cells 40]
"""

import argparse
import json
import pathlib
import re
import subprocess
import tempfile
import time

import numpy as np

import dasnas
from dasnas.adapters import naslib

REPO = pathlib.Path(__file__).resolve().parents[1]
OPS = {name: i for i, name in enumerate(naslib.NB201_OPS)}


def op_indices(arch):
    """NASLib's op indices of an NB201 string (edges 0-1, 0-2, 0-3, 1-2, 1-3, 2-3)."""
    t = [tok.split("~")[0] for group in arch.split("+") for tok in group.strip("|").split("|")]
    return tuple(OPS[t[i]] for i in (0, 1, 3, 2, 4, 5))


class Graph:
    def __init__(self, h):
        self.h = h

    def get_hash(self):
        return self.h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torch-python")
    ap.add_argument("--torch-cells", type=int, default=40)
    a = ap.parse_args()
    binary = REPO / "target" / "release" / "dasnas"
    cells = dasnas.spaces.sample("nb201", a.cells, seed=a.seed)
    tmp = pathlib.Path(tempfile.mkdtemp())
    archs = tmp / "archs.txt"
    archs.write_text("\n".join(cells) + "\n")
    common = ["--batch", str(a.batch), "--threads", str(a.threads), "--seed", str(a.seed), "--device", "cpu"]
    report = {"cells": a.cells, "batch": a.batch, "threads": a.threads, "rounds": []}
    for r in range(a.rounds):
        t = time.perf_counter()
        out = subprocess.run([str(binary), "score", "--archs", str(archs), *common],
                             capture_output=True, text=True, check=True).stdout
        cli_s = time.perf_counter() - t
        t = time.perf_counter()
        s = dasnas.Scorer("nb201", device="cpu", batch=a.batch, threads=a.threads, seed=a.seed)
        cols = s.score_many(cells)
        py_s = time.perf_counter() - t
        cli_wot = [json.loads(l)["wot"] for l in out.splitlines()]
        same = all((x is None and np.isnan(y)) or x == y for x, y in zip(cli_wot, cols["wot"]))
        row = {"cli_s": round(cli_s, 2), "python_s": round(py_s, 2),
               "python_over_cli": round(py_s / cli_s, 4), "same_scores": same}
        report["rounds"].append(row)
        print(f"round {r + 1}: dasnas score {cli_s:.2f} s ({a.cells / cli_s:.2f} cells/s), "
              f"score_many {py_s:.2f} s ({a.cells / py_s:.2f} cells/s), ratio {py_s / cli_s:.4f}, "
              f"same scores: {same}", flush=True)
    if a.torch_python:
        few = cells[: a.torch_cells + 1]
        (tmp / "few.txt").write_text("\n".join(few) + "\n")
        x = np.random.default_rng(a.seed).standard_normal((a.batch, 3, 32, 32)).astype(np.float32)
        loader = [(x, np.zeros(a.batch, np.int64))]
        for r in range(a.rounds):
            zc = naslib.ZeroCost("nwot", device="cpu", threads=a.threads, seed=a.seed)
            zc.query(Graph(op_indices(few[0])), loader)  # warm-up, as the reference does
            t = time.perf_counter()
            for c in few[1:]:
                zc.query(Graph(op_indices(c)), loader)
            ad_s = time.perf_counter() - t
            out = subprocess.run([a.torch_python, str(REPO / "scripts" / "torch_reference.py"), str(tmp / "few.txt"),
                                  "--batch", str(a.batch), "--threads", str(a.threads)],
                                 capture_output=True, text=True, check=True).stdout
            m = re.search(r"(\d+) cells in ([\d.]+) s", out.splitlines()[-1])
            torch_s = float(m.group(2))
            n = len(few) - 1
            row = {"adapter_cells_s": round(n / ad_s, 3), "torch_cells_s": round(n / torch_s, 3),
                   "ratio": round(torch_s / ad_s, 2), "torch": out.splitlines()[-1]}
            report.setdefault("naslib_vs_torch", []).append(row)
            print(f"round {r + 1}: NASLib-style adapter {n / ad_s:.2f} cells/s, PyTorch reference "
                  f"{n / torch_s:.2f} cells/s, {torch_s / ad_s:.2f}x ({out.splitlines()[-1]})", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
