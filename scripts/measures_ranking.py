#!/usr/bin/env python3
"""The ranking table of docs/measures.md: Kendall τ-b and Spearman ρ of
every measure of `dasnas score --measures all` files against ground truth,
through `dasnas eval --json` (nulls ranked lowest, as `eval` does by
default), one column pair per benchmark.

    python3 scripts/measures_ranking.py --bin target/release/dasnas \\
        NAME=SCORES.jsonl:TRUTH.csv:KEY:TARGET [...]

Prints a Markdown table: one row per measure, τ / ρ per benchmark.
"""

import argparse
import json
import subprocess

ORDER = [
    "wot", "d", "das", "ln_n_units", "swap", "params", "flops", "l2_norm", "grad_norm",
    "snip", "plain", "fisher", "jacov", "epe_nas", "zico", "synflow",
]


def evaluate(binary, scores, truth, key, target):
    out = subprocess.run(
        [binary, "eval", "--scores", scores, "--truth", truth, "--key", key,
         "--target", target, "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    report = json.loads(out)
    return report["joined"], {f["field"]: f for f in report["fields"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/dasnas")
    ap.add_argument("benchmarks", nargs="+", metavar="NAME=SCORES:TRUTH:KEY:TARGET")
    a = ap.parse_args()
    columns = []
    for spec in a.benchmarks:
        name, rest = spec.split("=", 1)
        scores, truth, key, target = rest.split(":")
        n, fields = evaluate(a.bin, scores, truth, key, target)
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
