#!/usr/bin/env python3
"""The PyTorch reference formulation of NASWOT on NAS-Bench-201 (DESIGN.md §5),
for side-by-side timing with `dasnas bench` on the same machine and cells.

Forward hooks on every counted ReLU, K += x·xᵀ + (1−x)(1−x)ᵀ in float32,
slogdet. PyTorch default init, BatchNorm in training mode, N(0,1) inputs.
Dead ops (whose result cannot reach the cell output) are left out.

    python3 scripts/torch_reference.py ARCHS_FILE [--batch 128] [--threads 2] [--device cpu|cuda]
prints one line per cell (arch, naswot, n_units, seconds) and a summary. The
first cell is a warm-up and is not timed, as in `dasnas bench`, which samples
the same cells as `dasnas score --sample N+1` with the same seed.
"""
import argparse, time
import torch
import torch.nn as nn

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('archs')
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--device', default='cpu', help='cpu or cuda (the timing includes building and moving each net)')
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    archs = [l.strip() for l in open(a.archs) if l.strip() and not l.startswith('#')]
    x = torch.randn(a.batch, 3, 32, 32).to(dev)
    naswot(network(parse(archs[0])).to(dev), x)  # warm-up, like `dasnas bench`
    total = 0.0
    archs = archs[1:] if len(archs) > 1 else archs
    for s in archs:
        t = time.perf_counter()
        score, units = naswot(network(parse(s)).to(dev), x)  # .item() waits for the GPU
        dt = time.perf_counter() - t
        total += dt
        print(f"{s}\t{score:.4f}\t{units}\t{dt:.3f}", flush=True)
    print(f"torch {torch.__version__}, {a.device}, {a.threads} thread(s), batch {a.batch}: "
          f"{len(archs)} cells in {total:.2f} s = {len(archs) / total:.3f} cells/s")


if __name__ == '__main__':
    main()
