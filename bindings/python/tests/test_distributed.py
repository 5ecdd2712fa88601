"""Whole spaces and many machines: identities, merge, and the Ray engine on a
local two-worker cluster against a single-process run."""

import json

import pytest

import dasnas
import dasnas.distributed as dd
from conftest import run_cli

SMALL = dict(batch=8, seed=3)


def _lines(path):
    """Result lines by arch, without the timing field."""
    out = {}
    for line in open(path, encoding="utf-8"):
        v = json.loads(line)
        v.pop("ms")
        assert v["arch"] not in out, f"{v['arch']} twice"
        out[v["arch"]] = v
    return out


def test_identities_and_unique():
    first = dasnas.spaces.by_index([0])[0]
    ident = dasnas.spaces.identity("nb201", first)
    assert ident["index"] == 0
    assert ident["key"] == "(0)@avg_pool_3x3+(0)@avg_pool_3x3+(0)@nor_conv_1x1+(0)@nor_conv_1x1"
    cells = dasnas.spaces.all_cells("nb201")
    assert dasnas.spaces.identity("nb201", cells[1234])["index"] == 1234
    assert len(dasnas.spaces.unique("nb201", cells)) == 7093
    with pytest.raises(ValueError, match="out of range"):
        dasnas.spaces.by_index([15625])
    with pytest.raises(ValueError, match="no official cell index"):
        dasnas.spaces.by_index([0], space="nb101")


def test_scorer_lines_are_the_binarys(tmp_path):
    cells = dasnas.spaces.by_index(range(6))
    s = dasnas.Scorer("nb201", device="cpu", threads=1, **SMALL)
    out = tmp_path / "py.jsonl"
    s.score_many(cells, out=out)
    (tmp_path / "cells.txt").write_text("".join(c + "\n" for c in cells))
    cli = tmp_path / "cli.jsonl"
    run_cli("score", "--archs", str(tmp_path / "cells.txt"), "--device", "cpu", "--batch", "8",
            "--seed", "3", "--out", str(cli))
    assert _lines(out) == _lines(cli)
    first = next(iter(_lines(out).values()))
    assert first["index"] == 0 and first["run"]["seed"] == 3


def test_merge_joins_shards_and_refuses_other_runs(tmp_path):
    cells = dasnas.spaces.by_index(range(9))
    (tmp_path / "cells.txt").write_text("".join(c + "\n" for c in cells))
    shards = []
    for k in range(3):
        p = tmp_path / f"shard{k}.jsonl"
        run_cli("score", "--archs", str(tmp_path / "cells.txt"), "--shard", f"{k}/3", "--device",
                "cpu", "--batch", "8", "--out", str(p))
        shards.append(p)
    report = dasnas.merge(shards[:2], tmp_path / "m.jsonl", expect=tmp_path / "cells.txt")
    assert report["cells"] == 6 and len(report["missing"]) == 3
    report = dasnas.merge(shards, tmp_path / "m.jsonl", expect=tmp_path / "cells.txt")
    assert report["missing"] == [] and report["cells"] == 9
    other = tmp_path / "other.jsonl"
    run_cli("score", "--arch", cells[0], "--device", "cpu", "--batch", "8", "--seed", "1",
            "--out", str(other))
    with pytest.raises(ValueError, match="seed 1, not 0"):
        dasnas.merge([shards[0], other], tmp_path / "m.jsonl")


def test_ray_cluster_output_equals_a_single_process(tmp_path):
    ray = pytest.importorskip("ray", reason="dasnas.distributed needs ray (pip install ray)")
    cells = dasnas.spaces.by_index(range(24))
    single = tmp_path / "single.jsonl"
    dasnas.Scorer("nb201", device="cpu", threads=1, **SMALL).score_many(cells, out=single)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "ray.jsonl"
        # A run that stopped early: the first 5 cells are already there.
        with open(single, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as g:
            g.writelines(f.readlines()[:5])
        r = dd.score("nb201", cells, out=out, cpu_actors=2, cpus_per_actor=1, chunk=4, **SMALL)
        assert r["skipped"] == 5 and r["scored"] == 19 and len(r["actors"]) == 2
        assert _lines(out) == _lines(single)
        # Run again: nothing left to do.
        again = dd.score("nb201", cells, out=out, cpu_actors=1, **SMALL)
        assert again["scored"] == 0
        # Another seed cannot resume this file.
        with pytest.raises(ValueError, match="seed 3, not 4"):
            dd.score("nb201", cells, out=out, cpu_actors=1, batch=8, seed=4)
    finally:
        ray.shutdown()
