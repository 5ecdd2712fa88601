"""Scores 20 sampled NAS-Bench-201 cells from Python, keeps the best by WOT
and writes every cell's line to a JSON Lines file.

    pip install ./bindings/python
    python examples/02_score_many.py [OUT.jsonl]
"""

import sys

import numpy as np

import dasnas

out = sys.argv[1] if len(sys.argv) > 1 else "scores.jsonl"
scorer = dasnas.Scorer("nb201", device="cpu", batch=32, seed=0)
cells = dasnas.spaces.sample("nb201", 20, seed=0)
cols = scorer.score_many(cells, out=out)  # NumPy columns; lines appended to `out`
best = int(np.nanargmax(cols["wot"]))
print(f"scored {len(cells)} cells on {scorer.device}; lines in {out}")
print(f"best by WOT: {cols['arch'][best]}  (WOT {cols['wot'][best]:.1f}, N_A {cols['n_units'][best]})")
