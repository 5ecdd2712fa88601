#!/usr/bin/env python3
"""The ranking table of docs/results.md: Kendall τ-b and Spearman ρ of
every measure of `dasnas score --measures ...` files against ground truth,
through `dasnas eval --json` (nulls ranked lowest, as `eval` does by
default), one column pair per benchmark.

    python3 scripts/measures_ranking.py --bin target/release/dasnas \\
        NAME=SCORES.jsonl[+MORE.jsonl...]:TRUTH.csv:KEY:TARGET [...]

Several score files of the same cells (joined by `arch`) give one column.
Where the files hold the three AZ-NAS components, the row `az_nas` is
AZ-NAS's own aggregate over the scored cells (cvlab-yonsei/AZ-NAS,
NB201/tss_general.ipynb): Σ over expressivity, progressivity, trainability
and FLOPs of ln(rank / m), ascending ranks over the m cells with ties
averaged, a null (the official −∞) ranked lowest.

Prints a Markdown table: one row per measure, τ / ρ per benchmark.
"""

import argparse
import json
import math
import os
import subprocess
import tempfile

ORDER = [
    "wot", "d", "das", "ln_n_units", "swap", "params", "flops", "l2_norm", "grad_norm",
    "snip", "plain", "fisher", "jacov", "epe_nas", "zico", "synflow", "meco", "meco_opt",
    "zen", "az_expressivity", "az_progressivity", "az_trainability", "az_nas",
]
AZ = ["az_expressivity", "az_progressivity", "az_trainability", "flops"]


def evaluate(binary, scores, truth, key, target):
    out = subprocess.run(
        [binary, "eval", "--scores", scores, "--truth", truth, "--key", key,
         "--target", target, "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    report = json.loads(out)
    return report["joined"], {f["field"]: f for f in report["fields"]}


def average_ranks(values):
    """Ascending ranks 1..m, ties averaged; None (−∞) lowest."""
    keyed = sorted(range(len(values)),
                   key=lambda i: -math.inf if values[i] is None else values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(keyed):
        j = i
        vi = values[keyed[i]]
        while j + 1 < len(keyed) and values[keyed[j + 1]] == vi:
            j += 1
        for k in range(i, j + 1):
            ranks[keyed[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def az_nas_file(paths):
    """A score file with AZ-NAS's aggregate `az_nas` per cell, or None
    where the files lack a component."""
    cells = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    d = json.loads(line)
                    cells.setdefault(d["arch"], {}).update(d)
    lines = list(cells.values())
    if not lines or any(c not in lines[0] for c in AZ):
        return None
    m = len(lines)
    agg = [0.0] * m
    for c in AZ:
        for i, r in enumerate(average_ranks([d.get(c) for d in lines])):
            agg[i] += math.log(r / m)
    fd, out = tempfile.mkstemp(suffix=".jsonl")
    with os.fdopen(fd, "w") as f:
        for d, v in zip(lines, agg):
            f.write(json.dumps({"arch": d["arch"], "key": d.get("key"), "index": d.get("index"),
                                "run": d.get("run"), "az_nas": v}) + "\n")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/dasnas")
    ap.add_argument("benchmarks", nargs="+", metavar="NAME=SCORES:TRUTH:KEY:TARGET")
    a = ap.parse_args()
    columns = []
    for spec in a.benchmarks:
        name, rest = spec.split("=", 1)
        scores, truth, key, target = rest.split(":")
        paths = scores.split("+")
        fields, n = {}, None
        extra = az_nas_file(paths)
        for path in paths + ([extra] if extra else []):
            joined, f = evaluate(a.bin, path, truth, key, target)
            n = joined if n is None else n
            for k, v in f.items():
                fields.setdefault(k, v)
        if extra:
            os.unlink(extra)
        columns.append((f"{name} (N={n})", fields))
    print("| measure | " + " | ".join(c for c, _ in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for m in ORDER:
        cells = []
        for _, fields in columns:
            f = fields.get(m)
            cells.append("—" if f is None else f"{f['kendall_tau_b']:.3f} / {f['spearman_rho']:.3f}")
        if any(c != "—" for c in cells):
            print(f"| `{m}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
