import numpy as np
import pytest

import dasnas
from dasnas.adapters import naslib, naswot, nni_adapter
from conftest import CELL

# NB101 test vector (NB101's own example spec).
NB101_MATRIX = [
    [0, 1, 0, 0, 1, 1, 0],
    [0, 0, 1, 0, 0, 0, 0],
    [0, 0, 0, 1, 0, 0, 1],
    [0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
]
NB101_OPS = ["input", "conv3x3-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"]
NB101_STRING = "".join(str(x) for r in NB101_MATRIX for x in r) + "/" + "|".join(NB101_OPS)
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
# NASLib's compact form of DARTS-V2: (input, op index) over
# [max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5].
DARTS_V2_COMPACT = (
    ((0, 3), (1, 3), (0, 3), (1, 3), (1, 3), (0, 2), (0, 2), (2, 5)),
    ((0, 0), (1, 0), (2, 2), (1, 0), (0, 0), (2, 2), (2, 2), (1, 0)),
)


class Graph:
    """Stands in for a NASLib graph: only get_hash() is read."""

    def __init__(self, h):
        self.h = h

    def get_hash(self):
        return self.h


def loader(images, batches=3):
    """Stands in for a DataLoader: (inputs, targets) batches."""
    return [(images, np.zeros(len(images), np.int64)) for _ in range(batches)]


def loader_xy(images, labels, batches=2):
    """A DataLoader stand-in with its own targets."""
    return [(images, labels) for _ in range(batches)]


def test_naslib_encodings_convert_exactly():
    # CELL's edges (0->1, 0->2, 0->3, 1->2, 1->3, 2->3): conv3, conv3, skip, avg, conv3, skip.
    assert naslib.nb201_from_op_indices((2, 2, 0, 4, 2, 0)) == CELL
    assert naslib.nb201_from_op_indices((1, 1, 1, 1, 1, 1)) == "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert naslib.nb201_from_op_indices((3, 0, 0, 0, 0, 0)) == \
        "|nor_conv_1x1~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    codes = [0, 4, 2, 4, 4, 3, 1]
    tup = tuple(x for r in NB101_MATRIX for x in r) + tuple(codes)
    assert naslib.nb101_from_tuple(tup) == NB101_STRING
    assert dasnas.spaces.is_valid("nb101", NB101_STRING)
    assert naslib.darts_from_compact(DARTS_V2_COMPACT) == dasnas.spaces.parse("darts", DARTS_V2)
    assert naslib.arch_from_hash((2, 2, 0, 4, 2, 0)) == ("nb201", CELL)
    assert naslib.arch_from_hash(tup)[0] == "nb101"
    assert naslib.arch_from_hash(DARTS_V2_COMPACT)[0] == "darts"
    with pytest.raises(ValueError, match="op code 7"):
        naslib.nb201_from_op_indices((7, 0, 0, 0, 0, 0))
    with pytest.raises(ValueError, match="V\\*V"):
        naslib.nb101_from_tuple((0, 1, 0))


def test_zero_cost_scores_the_dataloaders_first_batch():
    x = np.random.default_rng(3).standard_normal((16, 3, 32, 32)).astype(np.float32)
    want = dasnas.Scorer("nb201", device="cpu", data=x).score(CELL)
    for method, field in [("nwot", "wot"), ("d", "d"), ("n_units", "n_units"), ("das", "das")]:
        zc = naslib.ZeroCost(method_type=method, device="cpu")
        assert zc.query(Graph((2, 2, 0, 4, 2, 0)), dataloader=loader(x)) == want[field]
    # Without a dataloader: Gaussian images of `batch`.
    zc = naslib.ZeroCost(device="cpu", batch=16)
    assert zc.query(Graph((2, 2, 0, 4, 2, 0))) == dasnas.Scorer("nb201", device="cpu", batch=16).score(CELL)["wot"]
    with pytest.raises(ValueError, match="method_type 'grasp'"):
        naslib.ZeroCost(method_type="grasp")


def test_zero_cost_computes_every_measure_with_the_dataloaders_labels():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    for method, field in [("snip", "snip"), ("jacob_cov", "jacov"), ("synflow", "synflow")]:
        want = dasnas.Scorer("nb201", device="cpu", data=x, labels=y, measures=[field]).score(CELL)
        zc = naslib.ZeroCost(method_type=method, device="cpu")
        assert zc.query(Graph((2, 2, 0, 4, 2, 0)), dataloader=loader_xy(x, y)) == want[field]
    # The labels count: others give another snip.
    other = dasnas.Scorer("nb201", device="cpu", data=x, labels=(y + 1) % 10, measures=["snip"]).score(CELL)
    zc = naslib.ZeroCost(method_type="snip", device="cpu")
    assert zc.query(Graph((2, 2, 0, 4, 2, 0)), dataloader=loader_xy(x, y)) != other["snip"]


def test_labels_are_checked():
    x = np.zeros((4, 3, 32, 32), np.float32)
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        dasnas.Scorer("nb201", device="cpu", data=x, labels=[0, 1, 2], measures=["snip"])
    with pytest.raises(ValueError, match="without images of your own"):
        dasnas.Scorer("nb201", device="cpu", batch=4, labels=[0, 1, 2, 3])
    with pytest.raises(TypeError, match="class indices"):
        dasnas.Scorer("nb201", device="cpu", data=x, labels=[0.5, 1, 2, 3])
    # A smaller batch keeps the first labels.
    s = dasnas.Scorer("nb201", device="cpu", data=x, batch=2, labels=[0, 1, 2, 3], measures=["snip"])
    assert s.batch_size == 2


def test_zero_cost_maps_singular_cells_as_naslib_does():
    same = np.ones((4, 3, 32, 32), np.float32)  # equal images: equal codes, K_H singular
    assert naslib.ZeroCost(device="cpu").query(Graph((2, 2, 0, 4, 2, 0)), loader(same)) == -1e8


def test_a_dataloader_with_one_image_is_an_error():
    one = np.zeros((1, 3, 32, 32), np.float32)
    with pytest.raises(ValueError, match="at least 2 images"):
        naslib.ZeroCost(device="cpu").query(Graph((2, 2, 0, 4, 2, 0)), loader(one))


def test_nni_samples_convert_exactly():
    sample = {"0_1": "conv_3x3", "0_2": "conv_3x3", "1_2": "avg_pool_3x3",
              "0_3": "skip_connect", "1_3": "conv_3x3", "2_3": "skip_connect"}
    assert nni_adapter.nb201_arch(sample) == CELL
    assert nni_adapter.nb201_arch({f"cell/{k}": v for k, v in sample.items()}) == CELL
    nb101 = {"op1": "conv3x3-bn-relu", "op2": "maxpool3x3", "op3": "conv3x3-bn-relu", "op4": "conv3x3-bn-relu",
             "op5": "conv1x1-bn-relu", "input1": [0], "input2": [1], "input3": [2], "input4": [0],
             "input5": [0, 3, 4], "input6": [2, 5]}
    assert nni_adapter.nb101_arch(nb101) == NB101_STRING
    assert nni_adapter.nb101_arch({"num_nodes": 3, "op1": "maxpool3x3", "input1": [0], "input2": [0, 1]}) == \
        "011001000/input|maxpool3x3|output"
    with pytest.raises(ValueError, match="0_3"):
        nni_adapter.nb201_arch({k: v for k, v in sample.items() if k != "0_3"})
    with pytest.raises(ValueError, match="conv_5x5"):
        nni_adapter.nb201_arch(sample | {"1_2": "conv_5x5"})
    evaluate = nni_adapter.NniEvaluator("nb201", device="cpu", batch=16)
    assert evaluate(sample) == dasnas.Scorer("nb201", device="cpu", batch=16).score(CELL)["wot"]


def test_naswot_scores_in_the_given_order(tmp_path):
    csv = tmp_path / "nb201.csv"
    cells = dasnas.spaces.sample("nb201", 4, seed=9)
    csv.write_text("arch_index,arch_str\n" + "".join(f"{i},{a}\n" for i, a in reversed(list(enumerate(cells)))))
    assert naswot.nb201_archs_by_index(csv) == cells
    s = dasnas.Scorer("nb201", device="cpu", batch=8)
    out = tmp_path / "scores.npy"
    got = naswot.score_networks(s, cells, save=out)
    np.testing.assert_array_equal(np.load(out), got)
    np.testing.assert_array_equal(got, [s.score(a)["wot"] for a in cells])
    bad = tmp_path / "bad.csv"
    bad.write_text("arch_index,arch_str\n0,a\n2,b\n")
    with pytest.raises(ValueError, match="each once"):
        naswot.nb201_archs_by_index(bad)


def test_the_nni_adapter_does_not_hide_nni():
    # The adapter's module name is not `nni`: importing it leaves a user's
    # own `nni` (NNI's package) alone.
    import dasnas.adapters as adapters

    assert not hasattr(adapters, "nni")
    assert nni_adapter.__name__ == "dasnas.adapters.nni_adapter"


def test_nni_samples_as_nni_3_gives_them():
    # NNI 3.0 model-space samples: labels under a `cell/` prefix, a
    # `cell/final` key, and (NB101) unused `op5`/`input6` keys of vertices
    # the cell does not have.
    nb201 = {
        "cell/0_1": "conv_3x3",
        "cell/0_2": "conv_3x3",
        "cell/1_2": "avg_pool_3x3",
        "cell/0_3": "skip_connect",
        "cell/1_3": "conv_3x3",
        "cell/2_3": "skip_connect",
        "cell/final": 0,
    }
    assert nni_adapter.nb201_arch(nb201) == CELL
    nb101 = {
        "cell/num_nodes": 3,
        "cell/op1": "maxpool3x3",
        "cell/input1": [0],
        "cell/input2": [0, 1],
        "cell/op5": "conv3x3-bn-relu",
        "cell/input6": [0],
        "cell/final": 0,
    }
    assert nni_adapter.nb101_arch(nb101) == nni_adapter.nb101_arch(
        {"num_nodes": 3, "op1": "maxpool3x3", "input1": [0], "input2": [0, 1]}
    )
