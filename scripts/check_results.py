#!/usr/bin/env python3
"""Re-scores the first cells of every committed result file with a dasnas
binary and checks that every score is reproduced bit for bit (the same JSON
number). Run it after a refactor that must not change results:

    scripts/check_results.py --bin target/release/dasnas --lines 40

Each file's settings come from its lines' run stamp (space, options, seed,
batch, scoring images) or, for files older than stamps, from its name
(`nb201_sample1000_gaussian_b128_seed0`, `darts_500_c3l1_..._b16_r32_...`);
the scoring images are `gaussian` or the CIFAR-10 file of ../shared/data.
Exits 1 on the first difference, naming the file, the cell and the field.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "cifar10_test1000_q75.bin")
# Fields that are scores (and the network's own measures); timings are not.
SKIP = {"ms", "train_ms", "run", "arch", "key", "hash", "index", "scored_as"}


def settings(path, first):
    """The `dasnas score` flags that made the lines of `path`."""
    name = os.path.basename(path)
    stamp = first.get("run")
    flags = []
    space = stamp["space"] if stamp else re.match(r"(nb201|nb101|darts)", name).group(1)
    flags += ["--space", space]
    if stamp:
        if stamp["options"]:
            for opt in stamp["options"].split(","):
                flags += ["--space-option", opt]
        flags += ["--seed", str(stamp["seed"]), "--batch", str(stamp["batch"])]
        if stamp.get("repeats"):
            flags += ["--repeats", str(stamp["repeats"])]
    else:
        m = re.search(r"_c(\d+)l(\d+)_", name)
        if m:
            flags += ["--init-channels", m.group(1), "--layers", m.group(2)]
        if "count-graph" in name:
            flags += ["--count", "graph"]
        flags += ["--batch", re.search(r"_b(\d+)_", name).group(1)]
        m = re.search(r"_r(\d+)_", name)
        if m:
            flags += ["--repeats", m.group(1)]
        flags += ["--seed", re.search(r"seed(\d+)", name).group(1)]
    gaussian = "gaussian" in name or (stamp and "cifar" not in name and "q75" not in name)
    flags += ["--data", "gaussian" if gaussian else DATA]
    alphas = sorted(float(k[4:]) for k in first if k.startswith("das@"))
    if alphas:
        flags += ["--extra-alphas", ",".join(repr(a) for a in alphas)]
    if "swap" in first:
        flags += ["--swap"]
    return flags


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "dasnas"))
    ap.add_argument("--lines", type=int, default=40, help="cells re-scored per file")
    ap.add_argument(
        "--against",
        metavar="BIN",
        help="compare with this other dasnas binary's scores of the same cells instead of the "
        "file's (for files an older build made on another machine)",
    )
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    files = args.files or [
        os.path.join(dirpath, f)
        for dirpath, _, names in os.walk(os.path.join(ROOT, "results"))
        for f in sorted(names)
        if f.endswith(".jsonl") and "train" not in f and not f.startswith("k")
        and "conv_agreement" not in f
    ]
    if not os.path.exists(DATA):
        print(f"SKIPPED: {DATA} is absent", file=sys.stderr)
        return 0
    failed = 0
    for path in sorted(files):
        why = check(path, args)
        name = os.path.relpath(path, ROOT)
        if why.startswith("ok"):
            print(f"{name}: {why}")
        else:
            failed += 1
            print(f"{name}: DIFFERS: {why}")
    return 1 if failed else 0


def check(path, args):
    """`ok …` when the first cells of `path` are reproduced, else why not."""
    if True:
        with open(path) as f:
            lines = [json.loads(l) for l, _ in zip(f, range(args.lines))]
        if not lines:
            return "ok: empty"
        flags = settings(path, lines[0])
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as cells:
            cells.write("".join(l["arch"] + "\n" for l in lines))

        def score(binary):
            out = subprocess.run(
                [binary, "score", "--device", "cpu", "--archs", cells.name, *flags],
                capture_output=True, text=True,
            )
            if out.returncode != 0:
                raise RuntimeError(f"{binary} failed: {out.stderr.strip()}")
            return [json.loads(l) for l in out.stdout.splitlines()]

        try:
            got = score(args.bin)
            if args.against:
                lines = score(args.against)
        except RuntimeError as e:
            return str(e)
        finally:
            os.unlink(cells.name)
        compared = 0
        for want, have in zip(lines, got):
            assert want["arch"] == have["arch"], (want["arch"], have["arch"])
            for k, v in want.items():
                if k in SKIP or k.endswith("_std") and "repeats" not in have:
                    continue
                if k not in have:
                    return f"{want['arch'][:60]}: field {k} is gone"
                if json.dumps(have[k]) != json.dumps(v):
                    return f"{want['arch'][:60]}: {k} {have[k]!r}, was {v!r}"
                compared += 1
        return f"ok: {len(got)} cells, {compared} values equal bit for bit"


if __name__ == "__main__":
    sys.exit(main())
