#!/usr/bin/env python3
"""Side-by-side timing of the training-free measures: dasnas against the
PyTorch reference (scripts/torch_measures.py, float32, the official
implementations' semantics), on the same cells, weights, images and
labels, on this machine's CPU, in one run.

For each measure: dasnas's milliseconds per cell for that measure alone
(a scorer asked for it, minus the same scorer asked for nothing: the
scoring pass every line carries is not counted), and the reference's
(each measure on its own copy of the network, one at a time, as the
field computes them). Then the whole set: dasnas with every measure at
once (one cross-entropy pass shared by grad_norm, snip, plain and
fisher) against the sum of the reference's. The measures that draw their
own weights and inputs (meco_opt's channels, zen, the AZ-NAS components)
run in the reference on what dasnas drew (`Scorer.measure_inputs`, fetched
outside the timing).

    python3 scripts/measures_speed.py [--space nb201] [--cells 10]
        [--batch 64] [--threads 2] [--seed 0] [SPACE_OPTION=VALUE ...]

Prints a Markdown table and one JSON line.
"""

import argparse
import importlib.util
import json
import pathlib
import time

import dasnas
import torch

# Each row: its label and the dasnas measures it stands for (AZ-NAS's three
# components come from one computation in both implementations).
ROWS = [
    ("l2_norm", ["l2_norm"]), ("grad_norm", ["grad_norm"]), ("snip", ["snip"]),
    ("plain", ["plain"]), ("fisher", ["fisher"]), ("jacov", ["jacov"]), ("zico", ["zico"]),
    ("meco", ["meco"]), ("meco_opt", ["meco_opt"]), ("zen", ["zen"]),
    ("az_nas", ["az_expressivity", "az_progressivity", "az_trainability"]),
]
MEASURES = [m for _, ms in ROWS for m in ms]


def reference(tm, scorer, arch, label, network, weights, images, labels):
    """One reference computation of row `label` on a fresh network."""
    if label == "meco_opt":
        _, t = scorer.measure_inputs(arch, "meco_opt")
        channels = {k[len("channels."):]: v for k, v in t.items()}
        t0 = time.perf_counter()
        tm.meco(tm.GraphNet(network, weights), images, channels=channels)
        return time.perf_counter() - t0
    if label == "zen":
        w, t = scorer.measure_inputs(arch, "zen")
        t0 = time.perf_counter()
        tm.zen(tm.GraphNet(network, w), t["input"], t["noise"])
        return time.perf_counter() - t0
    if label == "az_nas":
        w, t = scorer.measure_inputs(arch, "az_nas")
        seeds = {int(k[len("seed"):]): v for k, v in t.items() if k.startswith("seed")}
        t0 = time.perf_counter()
        tm.az_nas(tm.GraphNet(network, w), t["input"], seeds)
        return time.perf_counter() - t0
    net = tm.GraphNet(network, weights)
    t0 = time.perf_counter()
    tm.compute(net, images, labels, [label])
    return time.perf_counter() - t0


def reference_module():
    path = pathlib.Path(__file__).resolve().parent / "torch_measures.py"
    spec = importlib.util.spec_from_file_location("torch_measures", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def dasnas_ms(space, archs, measures, batch, threads, seed, options):
    """Milliseconds per cell scoring `archs` (after one warm-up cell)."""
    s = dasnas.Scorer(space, device="cpu", batch=batch, threads=threads, seed=seed,
                      measures=measures, **options)
    s.score(archs[0])
    t0 = time.perf_counter()
    for a in archs[1:]:
        s.score(a)
    return 1e3 * (time.perf_counter() - t0) / (len(archs) - 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="nb201")
    ap.add_argument("--cells", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("options", nargs="*", help="space options KEY=VALUE")
    a = ap.parse_args()
    options = dict(o.split("=", 1) for o in a.options)
    torch.set_num_threads(a.threads)
    tm = reference_module()
    archs = dasnas.spaces.sample(a.space, a.cells + 1, seed=a.seed)

    base = dasnas_ms(a.space, archs, None, a.batch, a.threads, a.seed, options)
    ours = {label: dasnas_ms(a.space, archs, ms, a.batch, a.threads, a.seed, options) - base
            for label, ms in ROWS}
    ours_all = dasnas_ms(a.space, archs, MEASURES, a.batch, a.threads, a.seed, options) - base

    scorer = dasnas.Scorer(a.space, device="cpu", batch=a.batch, seed=a.seed, **options)
    ref = {label: 0.0 for label, _ in ROWS}
    for i, arch in enumerate(archs):
        network, weights, images, labels = scorer.reference_inputs(arch)
        for label, _ in ROWS:
            t = reference(tm, scorer, arch, label, network, weights, images, labels)
            if i > 0:  # the first cell warms up
                ref[label] += t
    ref = {m: 1e3 * t / a.cells for m, t in ref.items()}
    ref_all = sum(ref.values())

    print(f"{a.space} {options or ''}, batch {a.batch}, {a.cells} cells, {a.threads} threads; "
          f"dasnas scoring pass alone {base:.1f} ms/cell (not counted below)")
    print("| measure | dasnas ms/cell | PyTorch reference ms/cell | ratio |")
    print("|---|---|---|---|")
    for m, _ in ROWS:
        if ours[m] < 0.05:  # within the timing noise of the scoring pass
            print(f"| `{m}` | < 0.05 | {ref[m]:.1f} | — |")
        else:
            print(f"| `{m}` | {ours[m]:.1f} | {ref[m]:.1f} | {ref[m] / ours[m]:.1f}× |")
    print(f"| all of them | {ours_all:.1f} (at once) | {ref_all:.1f} (one at a time) | "
          f"{ref_all / max(ours_all, 1e-9):.1f}× |")
    print(json.dumps({"space": a.space, "options": options, "batch": a.batch,
                      "cells": a.cells, "threads": a.threads, "scoring_ms": base,
                      "dasnas_ms": ours, "dasnas_all_ms": ours_all,
                      "reference_ms": ref, "reference_all_ms": ref_all}))


if __name__ == "__main__":
    main()
