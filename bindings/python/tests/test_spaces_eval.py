import json
import math

import numpy as np
import pytest

import dasnas
from conftest import CELL, REPO, run_cli


def test_sample_is_the_command_lines_sample():
    lines = run_cli("score", "--space", "nb201", "--sample", "3", "--seed", "4", "--batch", "4", "--device", "cpu")
    assert dasnas.spaces.sample("nb201", 3, seed=4) == [json.loads(l)["arch"] for l in lines.splitlines()]


def test_parse_validate_and_list():
    assert dasnas.spaces.parse("nb201", "  " + CELL + " ") == CELL
    assert dasnas.spaces.is_valid("nb201", CELL)
    assert not dasnas.spaces.is_valid("nb201", CELL.replace("skip", "skyp"))
    with pytest.raises(ValueError, match=r"at byte \d+"):
        dasnas.spaces.parse("nb201", "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~3|")
    cells = dasnas.spaces.all_cells("nb201")
    assert len(cells) == 15625 and len(set(cells)) == 15625
    with pytest.raises(ValueError):
        dasnas.spaces.all_cells("darts")
    assert {k for k, _, _ in dasnas.spaces.options("darts")} >= {"init_channels", "layers"}
    assert [k for k, _, _ in dasnas.spaces.options("nb201")] == ["count"]


def test_rank_statistics_on_known_cases():
    assert dasnas.eval.kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert dasnas.eval.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # tau-b with ties: x = (1, 2, 2, 3), y = (1, 3, 2, 4): C = 5, D = 0,
    # one tie in x: 5 / sqrt(5 * 6).
    assert dasnas.eval.kendall_tau([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(5 / math.sqrt(30))
    # Spearman: ranks of (10, 20, 30, 40, 50) vs (2, 1, 4, 3, 5): 1 - 6*4/(5*24) = 0.8.
    assert dasnas.eval.spearman([10, 20, 30, 40, 50], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert math.isnan(dasnas.eval.spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="NaN at index 1"):
        dasnas.eval.kendall_tau([1, float("nan"), 3], [1, 2, 3])
    assert dasnas.eval.kendall_tau([1, float("nan"), 3, 4], [1, 2, 3, 4], nan_policy="omit") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="pair up"):
        dasnas.eval.spearman([1, 2], [1, 2, 3])


def test_fit_on_columns_and_files(tmp_path):
    cells = dasnas.spaces.sample("nb201", 30, seed=2)
    s = dasnas.Scorer("nb201", device="cpu", batch=8)
    cols = s.score_many(cells)
    # A made-up target that N_A predicts, so the report has something to rank.
    truth = cols["ln_n_units"] + 0.01 * np.arange(30)
    r = dasnas.fit(cols, truth, batch=s.batch_size, folds=3)
    assert r["folds"] == 3 and r["rows"] == 30 and r["chosen"] in {"linear", "units", "ranksum"}
    assert {f["family"] for f in r["families"]} >= {"linear", "units", "ranksum"}
    with pytest.raises(ValueError, match="batch"):
        dasnas.fit(cols, truth)
    scores = tmp_path / "s.jsonl"
    s.score_many(cells, out=scores)
    csv = tmp_path / "truth.csv"
    csv.write_text("arch_str,acc\n" + "".join(f"{a},{t}\n" for a, t in zip(cells, truth)))
    r2 = dasnas.fit(scores, csv, target="acc", folds=3)
    assert r2["chosen_rule"] == r["chosen_rule"]


def test_search_from_a_cache_and_on_the_fly(tmp_path):
    s = dasnas.Scorer("nb201", device="cpu", batch=8)
    cache = tmp_path / "cache.jsonl"
    s.score_many(dasnas.spaces.sample("nb201", 12, seed=5), out=cache)
    r = dasnas.search(n=4, runs=3, scores=cache)
    assert r["runs"] == 3 and len(r["results"]) == 3 and r["scored"] == 0
    cached = {json.loads(l)["arch"] for l in cache.read_text().splitlines()}
    assert all(x["chosen"] in cached for x in r["results"])
    r = dasnas.search(s, n=3, runs=1)
    assert r["scored"] == 3 and dasnas.spaces.is_valid("nb201", r["results"][0]["chosen"])
    with pytest.raises(ValueError, match="Scorer"):
        dasnas.search(n=3)
