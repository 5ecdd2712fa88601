#!/usr/bin/env python3
"""Ranking quality of score files against a truth table, as one markdown
table: Kendall tau-b and Spearman rho of every score field (from `dasnas
eval --json`, nulls ranked lowest), and of baseline columns of the truth
table itself (e.g. NASLib's synflow/snip/jacov in the NB101 file).

  scripts/ranking_table.py --truth T.csv --key arch --target acc \
      --scores "label=scores.jsonl" [--scores ...] [--baselines synflow,snip]

Needs the `dasnas` binary (DASNAS_BIN, default target/release/dasnas).
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = {"ms", "train_ms", "train_steps", "index", "repeats", "singular_repeats"}


def evaluate(binary, scores, truth, key, target):
    out = subprocess.run(
        [binary, "eval", "--scores", scores, "--truth", truth, "--key", key, "--target", target,
         "--json"],
        capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"dasnas eval failed on {scores}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--truth", required=True)
    ap.add_argument("--key", default="arch")
    ap.add_argument("--target", required=True)
    ap.add_argument("--scores", action="append", default=[], metavar="LABEL=FILE")
    ap.add_argument("--baselines", default="", help="truth columns to rank as scores")
    ap.add_argument("--fields", default="", help="score fields to show (default: all)")
    a = ap.parse_args()
    binary = os.environ.get("DASNAS_BIN", os.path.join(ROOT, "target", "release", "dasnas"))
    wanted = [f for f in a.fields.split(",") if f]
    print("| scores | field | N | Kendall τ | Spearman ρ |")
    print("|---|---|---|---|---|")
    for spec in a.scores:
        label, _, path = spec.rpartition("=")
        report = evaluate(binary, path, a.truth, a.key, a.target)
        for f in report["fields"]:
            name = f["field"]
            if name in SKIP or name.endswith("_std") or (wanted and name not in wanted):
                continue
            print(f"| {label} | {name} | {f['n']} | {f['kendall_tau_b']:.3f} | "
                  f"{f['spearman_rho']:.3f} |")
    cols = [c for c in a.baselines.split(",") if c]
    if cols:
        with open(a.truth, newline="") as fh, tempfile.NamedTemporaryFile(
                "w", suffix=".jsonl", delete=False) as tmp:
            for row in csv.DictReader(fh):
                line = {"arch": row[a.key]}
                for c in cols:
                    line[c] = float(row[c]) if row[c] not in ("", "nan") else None
                tmp.write(json.dumps(line) + "\n")
        try:
            report = evaluate(binary, tmp.name, a.truth, a.key, a.target)
        finally:
            os.unlink(tmp.name)
        for f in report["fields"]:
            print(f"| truth table | {f['field']} | {f['n']} | {f['kendall_tau_b']:.3f} | "
                  f"{f['spearman_rho']:.3f} |")


if __name__ == "__main__":
    main()
