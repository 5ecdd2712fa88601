#!/usr/bin/env python3
"""The Python package on a GPU (run by gpu-bundle/run.sh, with the wheel
unpacked on PYTHONPATH): the same wheel as on a CPU machine, CUDA loaded at
run time. Scores sampled NB201 cells with device="cuda" and device="cpu"
from a NumPy batch and from Gaussian images, and checks that they agree:
n_units and singular exactly, WOT to a relative 1e-9 (the GPU's
deterministic f64 sums round differently from the CPU's only in the last
bits). Exits non-zero on any disagreement or error; prints one line per
check and a JSON summary.

    python3 python_gpu_smoke.py [--cells 40] [--batch 128] [--device cuda]
"""

import argparse
import json
import sys
import time

import numpy as np

import dasnas


def compare(name, a, b, tol):
    bad = []
    for i, arch in enumerate(a["arch"]):
        if a["n_units"][i] != b["n_units"][i] or a["singular"][i] != b["singular"][i]:
            bad.append(f"{arch}: n_units/singular {a['n_units'][i]}/{a['singular'][i]} vs {b['n_units'][i]}/{b['singular'][i]}")
        elif not a["singular"][i]:
            rel = abs(a["wot"][i] - b["wot"][i]) / max(1.0, abs(b["wot"][i]))
            if rel > tol:
                bad.append(f"{arch}: wot {a['wot'][i]!r} vs {b['wot'][i]!r} (relative {rel:.2e})")
    print(f"{name}: {len(a['arch'])} cells, {len(bad)} disagreeing", flush=True)
    for line in bad[:10]:
        print("  " + line)
    return not bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=40)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    cells = dasnas.spaces.sample("nb201", a.cells, seed=0)
    x = np.random.default_rng(0).standard_normal((a.batch, 3, 32, 32)).astype(np.float32)
    ok = True
    summary = {"version": dasnas.__version__, "cells": a.cells, "batch": a.batch}
    for label, data in [("gaussian", None), ("numpy", x)]:
        t = time.perf_counter()
        gpu = dasnas.Scorer("nb201", device=a.device, batch=a.batch, data=data)
        g = gpu.score_many(cells)
        gpu_s = time.perf_counter() - t
        t = time.perf_counter()
        c = dasnas.Scorer("nb201", device="cpu", batch=a.batch, data=data).score_many(cells)
        cpu_s = time.perf_counter() - t
        summary[label] = {"device": gpu.device, "device_s": round(gpu_s, 2), "cpu_s": round(cpu_s, 2)}
        print(f"{label}: {gpu.device} {gpu_s:.2f} s (open + {a.cells} cells), cpu {cpu_s:.2f} s", flush=True)
        ok &= compare(f"{label} {gpu.device} vs cpu", g, c, 1e-9)
    try:
        dasnas.Scorer("nb201", device="cuda:99", batch=4)
        print("cuda:99 opened: expected a DeviceError")
        ok = False
    except dasnas.DeviceError as e:
        print(f"cuda:99: DeviceError as expected ({e})")
    summary["ok"] = bool(ok)
    print(json.dumps(summary))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
