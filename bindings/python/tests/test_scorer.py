import json
import threading
import time
import warnings

import numpy as np
import pytest

import dasnas
from conftest import CELL, normalise, run_cli

OTHER = "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|none~0|skip_connect~1|none~2|"


def cpu(**kw):
    kw.setdefault("batch", 16)
    return dasnas.Scorer("nb201", device="cpu", **kw)


def test_score_equals_the_command_line():
    line = json.loads(run_cli("score", "--arch", CELL, "--batch", "16", "--device", "cpu", "--seed", "3"))
    got = cpu(seed=3).score(CELL)
    for k in ("arch", "wot", "d", "n_units", "ln_n_units", "das", "singular"):
        assert got[k] == line[k], k


def test_score_many_equals_the_command_line_on_sampled_cells(tmp_path):
    cells = dasnas.spaces.sample("nb201", 6, seed=1)
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(cells))
    lines = [json.loads(l) for l in run_cli("score", "--archs", str(archs), "--batch", "16", "--device", "cpu").splitlines()]
    cols = cpu().score_many(cells)
    assert list(cols["arch"]) == [l["arch"] for l in lines]
    for k in ("wot", "d", "das", "ln_n_units"):
        want = np.array([np.nan if l[k] is None else l[k] for l in lines])
        np.testing.assert_array_equal(cols[k], want)
    np.testing.assert_array_equal(cols["n_units"], [l["n_units"] for l in lines])
    assert cols["n_units"].dtype == np.int64 and cols["singular"].dtype == bool


def test_same_seed_same_scores_on_any_thread_count():
    a = cpu(threads=1).score(CELL)
    b = cpu(threads=2).score(CELL)
    assert a["wot"] == b["wot"] and a["n_units"] == b["n_units"]
    assert cpu(seed=1).score(CELL)["wot"] != a["wot"]


def test_a_file_and_its_pixels_as_arrays_score_the_same(cifar_file):
    path, pixels = cifar_file
    by_file = cpu(data=path).score(CELL)
    by_u8 = cpu(data=pixels[:16]).score(CELL)
    by_f32 = cpu(data=normalise(pixels[:16])).score(CELL)
    assert by_file["wot"] == by_u8["wot"] == by_f32["wot"]
    # batch takes the first images of a longer array; without it, all of them.
    assert cpu(data=pixels).score(CELL)["wot"] == by_u8["wot"]
    every = dasnas.Scorer("nb201", device="cpu", data=pixels)
    assert every.batch_size == 40 and every.score(CELL)["wot"] != by_u8["wot"]
    with pytest.raises(ValueError, match="larger than the 40 images"):
        cpu(data=pixels, batch=41)


def test_float16_is_widened():
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float16)
    a = dasnas.Scorer("nb201", device="cpu", data=x).score(CELL)
    b = dasnas.Scorer("nb201", device="cpu", data=x.astype(np.float32)).score(CELL)
    assert a["wot"] == b["wot"]


class FakeTensor:
    """Stands in for a torch.Tensor (detach / cpu / numpy)."""

    def __init__(self, a):
        self.a = a

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.a


def test_torch_like_tensors_are_taken():
    x = np.random.default_rng(1).standard_normal((8, 3, 32, 32)).astype(np.float32)
    a = dasnas.Scorer("nb201", device="cpu", data=FakeTensor(x)).score(CELL)
    b = dasnas.Scorer("nb201", device="cpu", data=x).score(CELL)
    assert (a["wot"], a["n_units"]) == (b["wot"], b["n_units"])


@pytest.mark.parametrize(
    "data, exc, needle",
    [
        (np.zeros((8, 3, 32, 32), np.float64), TypeError, "float64"),
        (np.zeros((8, 3, 32), np.float32), ValueError, "4 dimensions"),
        (np.zeros((8, 1, 32, 32), np.float32), ValueError, "1 channels"),
        (np.zeros((8, 3, 16, 16), np.float32), ValueError, "takes 32×32"),
        (np.zeros((1, 3, 32, 32), np.float32), ValueError, "at least 2"),
        (np.zeros((32, 32, 3, 8), np.float32).transpose(3, 2, 0, 1), ValueError, "not C-contiguous"),
        (np.full((4, 3, 32, 32), np.nan, np.float32), ValueError, "not finite"),
        ([1, 2, 3], TypeError, "got list"),
    ],
)
def test_bad_data_is_an_exception_naming_it(data, exc, needle):
    with pytest.raises(exc, match=needle):
        dasnas.Scorer("nb201", device="cpu", data=data)


def test_bad_arguments_are_exceptions_naming_them(tmp_path):
    with pytest.raises(ValueError, match="unknown search space `nb999`"):
        dasnas.Scorer("nb999", device="cpu")
    with pytest.raises(ValueError, match="unknown device"):
        dasnas.Scorer(device="tpu")
    with pytest.raises(ValueError, match="at least 2"):
        cpu(batch=1)
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        cpu(data=str(tmp_path / "nope.bin"))
    with pytest.raises(ValueError, match="init_channels"):
        dasnas.Scorer("nb201", device="cpu", batch=4, init_channels=8)
    with pytest.raises(ValueError, match="alpha"):
        cpu(alpha=float("nan"))
    with pytest.raises(ValueError, match="threads"):
        cpu(threads=0)
    s = cpu()
    with pytest.raises(ValueError, match=r"at byte \d+"):
        s.score("|nor_conv_3x3~0|+|bogus~0|")
    with pytest.raises(ValueError, match=r"archs\[1\]"):
        s.score_many([CELL, "garbage"])


def test_auto_without_a_gpu_warns_and_cuda_fails():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = dasnas.Scorer(batch=4)
    if s.device == "cpu":
        assert any("running on the CPU" in str(w.message) for w in caught)
        with pytest.raises(dasnas.DeviceError):
            dasnas.Scorer(device="cuda", batch=4)
    else:  # a machine with a GPU
        assert s.device.startswith("cuda:")


def test_columns_frames_progress_and_out_file(tmp_path):
    s = cpu(extra_alphas=[0.5])
    seen = []
    out = tmp_path / "scores.jsonl"
    cols = s.score_many([CELL, OTHER], progress=lambda d, t: seen.append((d, t)), out=out)
    assert seen[-1] == (2, 2)
    assert "das@0.5" in cols and cols["das@0.5"].dtype == np.float64
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert [l["arch"] for l in lines] == [CELL, OTHER]
    assert lines[0]["wot"] == cols["wot"][0]
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pandas"):
            s.score_many([CELL], as_frame=True)
    else:
        assert list(s.score_many([CELL], as_frame=True)["arch"]) == [CELL]
    assert list(s.score_many([])["arch"]) == []


def test_ctrl_c_stops_between_cells_and_keeps_what_was_done(tmp_path):
    s = cpu()

    def interrupt(done, total):
        if done == 1:
            raise KeyboardInterrupt

    out = tmp_path / "partial.jsonl"
    with pytest.raises(KeyboardInterrupt) as e:
        s.score_many([CELL, OTHER, CELL], progress=interrupt, out=out)
    assert list(e.value.partial["arch"]) == [CELL]
    assert len(out.read_text().splitlines()) == 1


def test_scoring_releases_the_gil():
    s = dasnas.Scorer("nb201", device="cpu", batch=64, threads=1)
    ticks = [0]
    done = threading.Event()

    def work():
        s.score_many([CELL] * 3)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    while not done.is_set():
        ticks[0] += 1
        time.sleep(0.001)
    t.join()
    # With the GIL held for the whole scoring, this loop could not run.
    assert ticks[0] > 10


def test_fast_training_from_a_cifar_file(cifar_file):
    path, _ = cifar_file
    r = cpu(batch=8, data=path, train_steps=2, train_batch=4).score(CELL)
    assert r["train_steps"] == 2 and "train_loss" in r
    assert r["wot"] != cpu(batch=8, data=path).score(CELL)["wot"]
    with pytest.raises(ValueError, match="train_data"):
        cpu(train_steps=2)
    with pytest.raises(ValueError, match="train_records 30:99"):
        cpu(batch=8, data=path, train_steps=1, train_records=(30, 99))


def test_space_options_reach_the_network():
    g = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
    small = dasnas.Scorer("darts", device="cpu", batch=4, init_channels=4, layers=2).score(g)
    wider = dasnas.Scorer("darts", device="cpu", batch=4, init_channels=6, layers=2).score(g)
    assert small["n_units"] < wider["n_units"]


def test_swap_params_flops_and_counting():
    cells = dasnas.spaces.by_index([1, 2])
    s = dasnas.Scorer("nb201", device="cpu", batch=8, threads=1, swap=True, swap_mu=100.0,
                      swap_sigma=1e4, count="graph")
    cols = s.score_many(cells)
    assert (cols["swap"] > 0).all() and (cols["params"] > 0).all() and (cols["flops"] > 0).all()
    assert "swap_reg" in cols
    assert s.run["swap_reg"] == "μ=100,σ=10000" and s.run["options"] == "count=graph"
    plain = dasnas.Scorer("nb201", device="cpu", batch=8, threads=1).score(cells[0])
    assert "swap" not in plain and plain["params"] > 0
    with pytest.raises(ValueError, match="go together"):
        dasnas.Scorer("nb201", device="cpu", batch=8, swap=True, swap_mu=1.0)
    with pytest.raises(ValueError, match="σ"):
        dasnas.Scorer("nb201", device="cpu", batch=8, swap=True, swap_mu=1.0, swap_sigma=0.0)


def test_repeats_match_the_binary(tmp_path, cifar_file):
    path, _ = cifar_file
    cells = dasnas.spaces.by_index([3, 9])
    s = dasnas.Scorer("nb201", device="cpu", batch=8, threads=1, data=str(path), repeats=3)
    out = tmp_path / "py.jsonl"
    cols = s.score_many(cells, out=out)
    assert (cols["repeats"] == 3).all() and "wot_std" in cols
    (tmp_path / "cells.txt").write_text("".join(c + "\n" for c in cells))
    cli = run_cli("score", "--archs", str(tmp_path / "cells.txt"), "--device", "cpu", "--batch",
                  "8", "--data", str(path), "--repeats", "3")
    py = [json.loads(l) for l in out.read_text().splitlines()]
    for a, b in zip(py, (json.loads(l) for l in cli.splitlines())):
        a.pop("ms"), b.pop("ms")
        assert a == b
    with pytest.raises(ValueError, match="repeats 0"):
        dasnas.Scorer("nb201", device="cpu", batch=8, repeats=0)


def test_fast_conv_and_cells_in_flight_match_the_binary(tmp_path, cifar_file):
    """conv="fast" writes the lines `dasnas score --conv fast` writes (stamp
    included); cells in flight change no score; bad values are errors."""
    path, _ = cifar_file
    cells = dasnas.spaces.by_index([3, 9, 11, 200])
    (tmp_path / "cells.txt").write_text("".join(c + "\n" for c in cells))
    cli = run_cli("score", "--archs", str(tmp_path / "cells.txt"), "--device", "cpu", "--batch",
                  "8", "--data", str(path), "--conv", "fast", "--cells-in-flight", "2")
    want = [json.loads(l) for l in cli.splitlines()]
    assert all(w["run"]["conv"] == "fast" for w in want)
    for w in want:
        w.pop("ms")
    for k in (1, 2, 3):
        s = dasnas.Scorer("nb201", device="cpu", batch=8, threads=2, data=str(path), conv="fast",
                          cells_in_flight=k)
        out = tmp_path / f"py{k}.jsonl"
        s.score_many(cells, out=out)
        got = [json.loads(l) for l in out.read_text().splitlines()]
        assert len(got) == len(want)
        for a, b in zip(got, want):
            a.pop("ms")
            assert a == b
    with pytest.raises(ValueError, match="conv algorithm `quick`"):
        dasnas.Scorer("nb201", device="cpu", batch=8, conv="quick")
    with pytest.raises(ValueError, match="cells_in_flight must be at least 1"):
        dasnas.Scorer("nb201", device="cpu", batch=8, cells_in_flight=0)


def test_columns_do_not_depend_on_the_cells(tmp_path):
    scorer = dasnas.Scorer("nb201", device="cpu", batch=8, extra_alphas=[0.5])
    empty = scorer.score_many([])
    full = scorer.score_many(dasnas.spaces.sample("nb201", 2, seed=0))
    assert list(empty) == list(full)
    assert all(len(c) == 0 for c in empty.values())
    for f in ("wot", "d", "das", "das@0.5", "n_units", "params", "flops", "singular", "arch"):
        assert f in empty, f
    # Counts are integers, scores floats.
    assert full["params"].dtype == np.int64 and full["flops"].dtype == np.int64
    assert full["n_units"].dtype == np.int64 and full["wot"].dtype == np.float64
    assert empty["params"].dtype == np.int64


def test_one_cell_errors_name_the_cell_not_a_list():
    scorer = dasnas.Scorer("nb201", device="cpu", batch=8)
    with pytest.raises(ValueError) as e:
        scorer.score("|bogus~0|")
    assert "archs[0]" not in str(e.value) and "bogus" in str(e.value)


def test_out_refuses_a_file_of_another_run(tmp_path):
    out = tmp_path / "o.jsonl"
    cells = dasnas.spaces.sample("nb201", 2, seed=0)
    dasnas.Scorer("nb201", device="cpu", batch=8, seed=0).score_many(cells, out=out)
    before = out.read_bytes()
    with pytest.raises(ValueError, match="another run"):
        dasnas.Scorer("nb201", device="cpu", batch=8, seed=7).score_many(cells, out=out)
    assert out.read_bytes() == before
    # Lines written by Python are the binary's lines, byte for byte but `ms`.
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(lines) == 2 and all(l["run"]["seed"] == 0 for l in lines)


def test_internal_faults_are_internal_errors():
    assert issubclass(dasnas.InternalError, RuntimeError)
    assert not issubclass(dasnas.InternalError, ValueError)


def test_measures_are_keys_of_the_result_and_equal_the_command_line(tmp_path):
    names = ["grad_norm", "zico", "synflow", "nwot"]
    s = dasnas.Scorer(device="cpu", batch=8, measures=names)
    r = s.score(CELL)
    for k in ["grad_norm", "zico", "synflow", "wot"]:
        assert isinstance(r[k], float), (k, r)
    line = json.loads(
        run_cli("score", "--device", "cpu", "--batch", "8", "--arch", CELL,
                "--measures", ",".join(names))
    )
    assert {k: line[k] for k in ["grad_norm", "zico", "synflow"]} == {
        k: r[k] for k in ["grad_norm", "zico", "synflow"]
    }
    assert s.run["measures"] == "grad_norm,zico,synflow"
    cols = s.score_many([CELL, CELL])
    assert list(cols["zico"]) == [r["zico"], r["zico"]]
    listed = {m["name"] for m in dasnas.measures()}
    assert {"grad_norm", "zico", "synflow", "wot", "epe_nas"} <= listed


def test_measure_inputs_are_what_the_measures_drew():
    s = dasnas.Scorer(device="cpu", batch=8, seed=3)
    network, weights, images, _ = s.reference_inputs(CELL)
    w, t = s.measure_inputs(CELL, "az_nas")
    assert set(w) == set(weights) and w.keys() == weights.keys()
    assert t["input"].shape == images.shape
    blocks = network["blocks"]
    assert sorted(k for k in t if k.startswith("seed")) == sorted(f"seed{k}" for k in range(1, len(blocks)))
    assert set(np.unique(t["seed1"])) <= {-1.0, 1.0}
    # Kaiming-normal convolution weights, not the scorer's uniform ones.
    assert not np.array_equal(w["stem.conv.weight"], weights["stem.conv.weight"])
    w2, t2 = s.measure_inputs(CELL, "zen")
    assert set(t2) == {"input", "noise"}
    assert np.array_equal(w2["stem.bn.gamma"], np.ones_like(w2["stem.bn.gamma"]))
    again, _ = s.measure_inputs(CELL, "zen")
    assert all(np.array_equal(again[k], w2[k]) for k in w2)
    _, ch = s.measure_inputs(CELL, "meco_opt")
    assert all(v.size == min(8, v.size) and len(set(v.ravel())) == v.size for v in ch.values())
    with pytest.raises(ValueError, match="az_nas, zen, meco_opt"):
        s.measure_inputs(CELL, "grasp")


def test_measures_are_refused_by_name_or_as_a_string():
    with pytest.raises(ValueError, match="synflo"):
        dasnas.Scorer(device="cpu", batch=8, measures=["synflo"])
    with pytest.raises(TypeError, match="list of names"):
        dasnas.Scorer(device="cpu", batch=8, measures="zico")


def test_reference_inputs_are_the_scored_network_weights_and_batch():
    s = dasnas.Scorer(device="cpu", batch=8, seed=3)
    network, weights, images, labels = s.reference_inputs(CELL)
    assert images.shape == (8, 32, 32, 3) and images.dtype == np.float32
    assert labels.shape == (8,) and labels.max() < 10
    assert [p["name"] for p in network["params"]] == list(weights)
    assert sum(w.size for w in weights.values()) == s.score(CELL)["params"]
    assert network["nodes"][network["output"]]["op"]["kind"] == "linear"
