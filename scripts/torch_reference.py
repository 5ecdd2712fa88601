#!/usr/bin/env python3
"""The PyTorch reference formulation of NASWOT (docs/performance.md) on NAS-Bench-201,
NAS-Bench-101 and DARTS networks, for side-by-side timing with `dasnas bench`
on the same machine and cells.

Score (as the NASWOT code's `score_network`): a forward hook on every ReLU of
the network takes the sign code of its input, x = (in > 0).float() flattened
per sample (for a ReLU that is not in place this is (out > 0)), and adds
x·xᵀ + (1−x)(1−x)ᵀ to a B×B float32 matrix K (N_A minus the Hamming
distances); the score is ln|det K| (slogdet). PyTorch default init,
BatchNorm in training mode (batch statistics), one N(0,1) batch, no grad.
N_A is the number of ReLU units per sample that the hooks saw.

Only the ops whose result can reach the output are built (dead ops left
out), which is the network `dasnas` scores (its graphs are pruned), so N_A
equals dasnas's `n_units`; `--check-units` checks that cell by cell.

Networks (each written for this file, after the public code named):

* `--space nb201` (default): NAS-Bench-201's CIFAR network (AutoDL's
  `TinyNetwork` / `InferCell`): stem conv3×3 (3→16) + BN; 3 stages of 5
  cells with a residual block (ReLU-conv-BN ×2, avg-pool + 1×1 shortcut)
  between stages; BN, ReLU, global average pool, linear. Cell edges:
  ReLU-conv-BN 1×1 / 3×3, 3×3 average pool, identity, none (no edge).
* `--space nb101`: NAS-Bench-101's `model_builder.py` (and the PyTorch port
  the NASWOT code uses): stem conv3×3 (3→`--stem-channels`) + BN + ReLU;
  3 stacks of 3 cells, a 2×2 stride-2 max pool before stacks 2 and 3 with
  the channels doubled; global average pool; linear. The cell is the
  pruned spec (`ModelSpec._prune`); vertex channels by
  `compute_vertex_channels`; vertex t's input is the sum of its interior
  predecessors truncated to its channels and, if the input feeds it, a
  1×1 conv-BN-ReLU projection of the cell input; ops conv3×3-BN-ReLU,
  conv1×1-BN-ReLU, 3×3 stride-1 max pool; the output concatenates the
  vertices that feed it, plus the projection of the input when the input
  feeds the output (and is that projection alone when nothing else does).
* `--space darts`: DARTS's `model.py` `NetworkCIFAR` with `operations.py`
  (C = `--init-channels`, `--layers` cells, no auxiliary head, drop path
  0): stem conv3×3 (3→3C) + BN; the cells at layers//3 and 2·layers//3
  reduce (channels ×2, stride 2 on the edges from the cell inputs); each
  cell preprocesses its inputs with ReLU-conv1×1-BN (FactorizedReduce for
  input 0 after a reduction cell); a node is the sum of its two edges; the
  output concatenates the `concat` states; global average pool; linear.
  Ops: sep_conv (ReLU, depthwise k×k stride s, 1×1, BN, ReLU, depthwise
  k×k, 1×1, BN), dil_conv (ReLU, depthwise k×k dilation 2, 1×1, BN),
  max/avg pool 3×3 (no BN, as in the evaluation network; the average
  excludes padding), skip_connect (identity, or FactorizedReduce at stride
  2: ReLU, two 1×1 stride-2 convs, the second on x[:, :, 1:, 1:],
  concatenated, BN), none. `--count functional` (dasnas's default): `none`
  is no edge, and a node whose edges are both `none` holds zeros (DARTS's
  `Zero` on its first edge); `--count graph`: every `none` is `Zero`
  (x·0), keeping its source in the network, as the NASWOT code counts.

Usage:

    python3 scripts/torch_reference.py ARCHS_FILE [--space nb201|nb101|darts]
        [--batch 128] [--threads 2] [--device cpu|cuda] [--seed 0]
        [--stem-channels 128] [--init-channels 16] [--layers 8]
        [--count functional|graph] [--check-units SCORES.jsonl]

ARCHS_FILE has one arch string per line in dasnas's formats (blank and `#`
lines skipped): NB201 `|op~0|+|op~0|op~1|+|…|`, NB101
`<n² matrix digits>/input|…|output`, DARTS `Genotype(normal=[…], …)`.
Prints one line per cell (arch, naswot, n_units, seconds) and a summary. The
first cell is a warm-up and is not timed, as in `dasnas bench`, which samples
the same cells as `dasnas score --sample N+1` with the same seed.

`--check-units FILE` reads a `dasnas score` JSON Lines file and compares
each cell's N_A with its `n_units` (warm-up cell included; exit status 1 on
a difference); its run stamp must name the same space and the same options
that change N_A. Without ARCHS_FILE the cells are those of FILE. A small
`--batch` (e.g. 8) keeps such a check quick: N_A does not depend on it. E.g.

    dasnas score --space darts --sample 20 --batch 8 --device cpu --out d.jsonl
    python3 scripts/torch_reference.py --space darts --check-units d.jsonl --batch 8
"""
import argparse, ast, json, sys, time
import torch
import torch.nn as nn


def add_all(terms):
    """The sum of a non-empty list of tensors, left to right."""
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


# ---------------------------------------------------------------- NAS-Bench-201

EDGES = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]


def parse(s):
    ops = []
    for group in s.split('+'):
        for tok in group.strip('|').split('|'):
            ops.append(tok.split('~')[0])
    return ops


def relu_conv_bn(c, k):
    return nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c, c, k, 1, k // 2, bias=False), nn.BatchNorm2d(c))


class Cell(nn.Module):
    def __init__(self, ops, c):
        super().__init__()
        reaches = {3}
        for (j, i), op in reversed(list(zip(EDGES, ops))):
            if op != 'none' and i in reaches:
                reaches.add(j)
        self.edges = []
        self.layers = nn.ModuleList()
        for (j, i), op in zip(EDGES, ops):
            if op == 'none' or i not in reaches:
                continue
            if op == 'skip_connect':
                layer = nn.Identity()
            elif op == 'avg_pool_3x3':
                layer = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
            else:
                layer = relu_conv_bn(c, 1 if op == 'nor_conv_1x1' else 3)
            self.edges.append((j, i, len(self.layers)))
            self.layers.append(layer)

    def forward(self, x):
        nodes = [x, None, None, None]
        for i in (1, 2, 3):
            terms = [self.layers[l](nodes[j] if nodes[j] is not None else torch.zeros_like(x))
                     for j, ii, l in self.edges if ii == i]
            nodes[i] = sum(terms) if terms else None
        return nodes[3] if nodes[3] is not None else torch.zeros_like(x)


class ResBlock(nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.conv_a = nn.Sequential(nn.ReLU(), nn.Conv2d(a, b, 3, 2, 1, bias=False), nn.BatchNorm2d(b))
        self.conv_b = nn.Sequential(nn.ReLU(), nn.Conv2d(b, b, 3, 1, 1, bias=False), nn.BatchNorm2d(b))
        self.down = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(a, b, 1, bias=False))

    def forward(self, x):
        return self.down(x) + self.conv_b(self.conv_a(x))


def network(ops, c=16, n=5, classes=10, cell=None):
    """The NB201 CIFAR network; `cell(ops, channels)` builds each cell
    (default: this file's `Cell`, dead ops left out)."""
    cell = cell or Cell
    layers = [nn.Conv2d(3, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)]
    for s in range(3):
        cs = c << s
        if s:
            layers.append(ResBlock(cs // 2, cs))
        layers += [cell(ops, cs) for _ in range(n)]
    layers += [nn.BatchNorm2d(c * 4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c * 4, classes)]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------- NAS-Bench-101

NB101_OPS = ('conv3x3-bn-relu', 'conv1x1-bn-relu', 'maxpool3x3')


def parse_nb101(s):
    """`<n² digits>/input|…|output` → (matrix as lists of 0/1, labels)."""
    digits, labels = s.split('/')
    ops = labels.split('|')
    n = len(ops)
    if len(digits) != n * n or ops[0] != 'input' or ops[-1] != 'output' \
            or any(op not in NB101_OPS for op in ops[1:-1]):
        raise ValueError(f'not an NB101 cell: {s}')
    return [[int(digits[i * n + j]) for j in range(n)] for i in range(n)], ops


def prune_nb101(matrix, ops):
    """NB101's `ModelSpec._prune`: drop the vertices not on an input→output path."""
    n = len(ops)
    from_input = [True] + [False] * (n - 1)
    for j in range(1, n):
        from_input[j] = any(from_input[i] and matrix[i][j] for i in range(j))
    to_output = [False] * (n - 1) + [True]
    for i in range(n - 2, -1, -1):
        to_output[i] = any(to_output[j] and matrix[i][j] for j in range(i + 1, n))
    if not to_output[0]:
        raise ValueError('the input is not connected to the output')
    keep = [v for v in range(n) if from_input[v] and to_output[v]]
    return [[matrix[i][j] for j in keep] for i in keep], [ops[v] for v in keep]


def vertex_channels(c_in, c_out, matrix):
    """NB101's `compute_vertex_channels`: the output's channels split evenly
    over the vertices feeding it (the first ones get the remainder), every
    other interior vertex the most of its interior successors."""
    n = len(matrix)
    vc = [c_in] + [0] * (n - 2) + [c_out]
    if n == 2:
        return vc
    feeding = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    for k, v in enumerate(feeding):
        vc[v] = c_out // len(feeding) + (1 if k < c_out % len(feeding) else 0)
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            vc[v] = max([vc[d] for d in range(v + 1, n - 1) if matrix[v][d]] + [vc[v]])
        assert vc[v] > 0
    return vc


def conv_bn_relu(c_in, c_out, k):
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, 1, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class Nb101Cell(nn.Module):
    """One module (`build_module`) of a pruned spec, `c_in` → `c_out` channels."""

    def __init__(self, matrix, ops, c_in, c_out):
        super().__init__()
        self.m, n = matrix, len(ops)
        self.vc = vertex_channels(c_in, c_out, matrix)
        # The 1×1 projections of the cell input, for every vertex the input feeds
        # (the output's only when it is fed directly).
        self.proj = nn.ModuleDict({str(t): conv_bn_relu(c_in, self.vc[t], 1)
                                   for t in range(1, n) if matrix[0][t]})
        self.ops = nn.ModuleDict()
        for t in range(1, n - 1):
            c = self.vc[t]
            self.ops[str(t)] = (conv_bn_relu(c, c, 3) if ops[t] == 'conv3x3-bn-relu' else
                                conv_bn_relu(c, c, 1) if ops[t] == 'conv1x1-bn-relu' else
                                nn.MaxPool2d(3, 1, 1))

    def forward(self, x):
        m, n = self.m, len(self.m)
        tensors, out = [x], []
        for t in range(1, n - 1):
            fan_in = [tensors[s][:, :self.vc[t]] for s in range(1, t) if m[s][t]]
            if m[0][t]:
                fan_in.append(self.proj[str(t)](x))
            tensors.append(self.ops[str(t)](add_all(fan_in)))
            if m[t][n - 1]:
                out.append(tensors[t])
        if not out:
            return self.proj[str(n - 1)](x)
        y = torch.cat(out, 1) if len(out) > 1 else out[0]
        return y + self.proj[str(n - 1)](x) if m[0][n - 1] else y


def nb101_network(arch, stem=128, stacks=3, cells=3, classes=10):
    matrix, ops = prune_nb101(*parse_nb101(arch))
    layers = [conv_bn_relu(3, stem, 3)]
    c = stem
    for s in range(stacks):
        if s:
            layers.append(nn.MaxPool2d(2, 2))
        for i in range(cells):
            c_out = c * 2 if s and i == 0 else c
            layers.append(Nb101Cell(matrix, ops, c, c_out))
            c = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------- DARTS

def parse_darts(s):
    """`Genotype(normal=[(op, j), …], normal_concat=[…], reduce=[…],
    reduce_concat=[…])` (a concat may be `range(a, b)`) → {'normal': (edges,
    concat), 'reduce': (edges, concat)}, read as literals (no eval)."""
    call = ast.parse(s.strip(), mode='eval').body
    if not (isinstance(call, ast.Call) and getattr(call.func, 'id', None) == 'Genotype') or call.args:
        raise ValueError(f'not a DARTS genotype: {s}')
    f = {}
    for kw in call.keywords:
        v = kw.value
        if isinstance(v, ast.Call) and getattr(v.func, 'id', None) == 'range':
            f[kw.arg] = list(range(*(ast.literal_eval(a) for a in v.args)))
        else:
            f[kw.arg] = [tuple(e) if isinstance(e, (list, tuple)) else e for e in ast.literal_eval(v)]
    return {k: (f[k], f[k + '_concat']) for k in ('normal', 'reduce')}


class Zero(nn.Module):
    """DARTS's `Zero`: x·0, subsampled at stride 2."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x.mul(0.) if self.stride == 1 else x[:, :, ::self.stride, ::self.stride].mul(0.)


class FactorizedReduce(nn.Module):
    """DARTS's `FactorizedReduce`: ReLU, two 1×1 stride-2 convs (the second on
    the input shifted by a pixel) concatenated, BN."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, 2, 0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, 2, 0, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], 1))


def relu_conv1x1_bn(c_in, c_out):
    """DARTS's `ReLUConvBN(c_in, c_out, 1, 1, 0)`."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))


def dil_conv(c, k, stride, pad, dil):
    """DARTS's `DilConv`: ReLU, depthwise k×k, 1×1, BN."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, stride, pad, dilation=dil, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))


def darts_op(name, c, stride):
    """DARTS's `OPS[name](C, stride, affine=True)`."""
    if name == 'none':
        return Zero(stride)
    if name == 'avg_pool_3x3':
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if name == 'max_pool_3x3':
        return nn.MaxPool2d(3, stride, 1)
    if name == 'skip_connect':
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    k = int(name[-1])
    if name.startswith('sep_conv'):  # SepConv: two DilConv-shaped blocks, dilation 1
        return nn.Sequential(dil_conv(c, k, stride, k // 2, 1), dil_conv(c, k, 1, k // 2, 1))
    if name.startswith('dil_conv'):
        return dil_conv(c, k, stride, k - 1, 2)
    raise ValueError(f'unknown DARTS op {name}')


def darts_live(cell, count):
    """The states of a cell whose value (`functional`) or graph path (`graph`)
    reaches the cell's output, and each node's edges to build (k, op, j)."""
    edges, concat = cell
    live, build = set(concat), {}
    for node in reversed(range(len(edges) // 2)):
        if node + 2 not in live:
            continue
        pair = [(k, *edges[k]) for k in (2 * node, 2 * node + 1)]
        keep = [e for e in pair if e[1] != 'none' or count == 'graph']
        build[node] = keep or pair[:1]  # both `none`: zeros of the first edge's shape
        live.update(j for _, _, j in build[node])
    return live, build


class DartsCell(nn.Module):
    """DARTS's `model.py` `Cell`, with only the live ops (`darts_live`)."""

    def __init__(self, cell, count, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        live, build = darts_live(cell, count)
        self.concat, self.steps = cell[1], len(cell[0]) // 2
        self.uses = (0 in live, 1 in live)
        self.pre0 = (FactorizedReduce(c_pp, c) if reduction_prev else relu_conv1x1_bn(c_pp, c)) \
            if self.uses[0] else None
        self.pre1 = relu_conv1x1_bn(c_p, c) if self.uses[1] else None
        self.edges = [[] for _ in range(self.steps)]  # per node: (input state, op index)
        self.ops = nn.ModuleList()
        for node, keep in sorted(build.items()):
            for k, name, j in keep:
                self.edges[node].append((j, len(self.ops)))
                self.ops.append(darts_op(name, c, 2 if reduction and j < 2 else 1))

    def forward(self, s0, s1):
        states = [self.pre0(s0) if self.pre0 is not None else None,
                  self.pre1(s1) if self.pre1 is not None else None]
        for node in range(self.steps):
            terms = [self.ops[i](states[j]) for j, i in self.edges[node]]
            states.append(add_all(terms) if terms else None)  # None: a dead node
        return torch.cat([states[i] for i in self.concat], 1)


class DartsNetwork(nn.Module):
    """DARTS's `NetworkCIFAR` (no auxiliary head, drop path 0), leaving out
    the cells whose output reaches neither the classifier nor a live cell."""

    def __init__(self, geno, c=16, layers=8, classes=10, count='functional', stem_multiplier=3):
        super().__init__()
        c_cur = stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(3, c_cur, 3, padding=1, bias=False), nn.BatchNorm2d(c_cur))
        reductions = [i in (layers // 3, 2 * layers // 3) for i in range(layers)]
        cells = [geno['reduce' if r else 'normal'] for r in reductions]
        live = [darts_live(cell, count)[0] for cell in cells]
        needed = [False] * (layers - 1) + [True]
        for i in reversed(range(layers)):
            if needed[i] and 1 in live[i] and i >= 1:
                needed[i - 1] = True
            if needed[i] and 0 in live[i] and i >= 2:
                needed[i - 2] = True
        self.cells = nn.ModuleList()
        c_pp, c_p, c_cur = c_cur, c_cur, c
        for i, (cell, red) in enumerate(zip(cells, reductions)):
            if red:
                c_cur *= 2
            prev_red = i > 0 and reductions[i - 1]
            self.cells.append(DartsCell(cell, count, c_pp, c_p, c_cur, red, prev_red) if needed[i] else None)
            c_pp, c_p = c_p, len(cell[1]) * c_cur
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, (cell(s0, s1) if cell is not None else None)
        return self.classifier(self.gap(s1).flatten(1))


# ---------------------------------------------------------------------- score

def naswot(net, x):
    b = x.shape[0]
    k = torch.zeros(b, b, device=x.device)
    units = [0]

    def hook(mod, inp, out):
        v = (inp[0].detach().reshape(b, -1) > 0).float()
        k.add_(v @ v.t() + (1 - v) @ (1 - v).t())
        units[0] += v.shape[1]

    for m in net.modules():
        if isinstance(m, nn.ReLU):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(x)
    return torch.slogdet(k)[1].item(), units[0]


def builder(a):
    """arch string → a fresh network of `a.space` (the options of `a`)."""
    if a.space == 'nb201':
        return lambda s: network(parse(s))
    if a.space == 'nb101':
        return lambda s: nb101_network(s, stem=a.stem_channels)
    return lambda s: DartsNetwork(parse_darts(s), c=a.init_channels, layers=a.layers, count=a.count)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('archs', nargs='?', help='one arch string per line (default: the cells of --check-units)')
    ap.add_argument('--space', choices=('nb201', 'nb101', 'darts'), default='nb201')
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--device', default='cpu', help='cpu or cuda (the timing includes building and moving each net)')
    ap.add_argument('--stem-channels', type=int, default=128, help='NB101: stem and first-stack channels')
    ap.add_argument('--init-channels', type=int, default=16, help='DARTS: C of the first cells')
    ap.add_argument('--layers', type=int, default=8, help='DARTS: number of cells')
    ap.add_argument('--count', choices=('functional', 'graph'), default='functional',
                    help="DARTS: `none` as no edge (dasnas's default) or as x·0 (the NASWOT code's)")
    ap.add_argument('--check-units', metavar='JSONL',
                    help="a `dasnas score` output: compare every cell's N_A with its n_units")
    a = ap.parse_args()
    if a.count != 'functional' and a.space != 'darts':
        ap.error('--count graph is implemented for --space darts only')
    expected = {}
    if a.check_units:
        # The network options that change N_A, as dasnas's run stamp names them.
        ours = {'nb201': {'count': a.count},
                'nb101': {'stem_channels': str(a.stem_channels)},
                'darts': {'count': a.count, 'init_channels': str(a.init_channels), 'layers': str(a.layers)}}[a.space]
        defaults = {'count': 'functional', 'stem_channels': '128', 'init_channels': '16', 'layers': '8'}
        for line in open(a.check_units):
            if line.strip():
                r = json.loads(line)
                expected[r['arch']] = r['n_units']
                run = r.get('run', {})
                if run.get('space', a.space) != a.space:
                    ap.error(f"{a.check_units} scores space {run['space']}, not {a.space}")
                theirs = dict(kv.split('=', 1) for kv in run.get('options', '').split(',') if kv)
                for key, value in ours.items():
                    if theirs.get(key, defaults[key]) != value:
                        ap.error(f"{a.check_units} was scored with {key}={theirs.get(key, defaults[key])}, "
                                 f"this run has {value}")
    if a.archs:
        archs = [l.strip() for l in open(a.archs) if l.strip() and not l.startswith('#')]
    elif expected:
        archs = list(expected)
    else:
        ap.error('give ARCHS_FILE or --check-units')
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    build = builder(a)
    x = torch.randn(a.batch, 3, 32, 32).to(dev)
    units_of = {}
    _, units_of[archs[0]] = naswot(build(archs[0]).to(dev), x)  # warm-up, like `dasnas bench`
    total = 0.0
    timed = archs[1:] if len(archs) > 1 else archs
    for s in timed:
        t = time.perf_counter()
        score, units = naswot(build(s).to(dev), x)  # .item() waits for the GPU
        dt = time.perf_counter() - t
        total += dt
        units_of[s] = units
        print(f"{s}\t{score:.4f}\t{units}\t{dt:.3f}", flush=True)
    bad = 0
    if a.check_units:
        checked = [s for s in archs if s in expected]
        for s in checked:
            if units_of[s] != expected[s]:
                bad += 1
                print(f"N_A differs: {s}: torch {units_of[s]}, dasnas {expected[s]}", file=sys.stderr)
        print(f"N_A check ({a.space}): {len(checked) - bad} of {len(checked)} cells equal to dasnas's n_units"
              + (f", {len(archs) - len(checked)} not in {a.check_units}" if len(checked) < len(archs) else ''))
    print(f"torch {torch.__version__}, {a.device}, {a.threads} thread(s), batch {a.batch}"
          f"{'' if a.space == 'nb201' else ', ' + a.space}: "
          f"{len(timed)} cells in {total:.2f} s = {len(timed) / total:.3f} cells/s")
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
