#!/usr/bin/env python3
"""N_A as the NASWOT research code counts it, on NAS-Bench-201, to check
`dasnas score --count graph` against (docs/scores.md, "Which ReLUs count").

The research code builds every edge of a cell, `none` included as
`x.mul(0.)` (AutoDL's Zero), runs one forward and backward pass with a
backward hook marking each ReLU the gradient reaches, and counts the units
of the marked ReLUs. This script does the same on the NB201 CIFAR network
(C = 16, N = 5) and prints `arch<TAB>n_units` per cell.

    /path/to/python-with-torch scripts/torch_count_graph.py ARCHS_FILE [--batch 2]
"""
import argparse
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import EDGES, network, parse  # noqa: E402 - the shared NB201 network


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.)


def edge_op(op, c):
    if op == 'none':
        return Zero()
    if op == 'skip_connect':
        return nn.Identity()
    if op == 'avg_pool_3x3':
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    k = 1 if op == 'nor_conv_1x1' else 3
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, 1, k // 2, bias=False), nn.BatchNorm2d(c))


class Cell(nn.Module):
    """Every edge built, as AutoDL's InferCell builds a genotype."""

    def __init__(self, ops, c):
        super().__init__()
        self.layers = nn.ModuleList(edge_op(op, c) for op in ops)

    def forward(self, x):
        nodes = [x]
        for i in (1, 2, 3):
            nodes.append(sum(self.layers[e](nodes[j]) for e, (j, ii) in enumerate(EDGES) if ii == i))
        return nodes[3]


def graph_units(net, x):
    """The research code's rule: ReLUs the backward pass visits count."""
    visited = set()
    hooks = []
    for m in net.modules():
        if isinstance(m, nn.ReLU):
            hooks.append(m.register_full_backward_hook(lambda mod, gi, go: visited.add(id(mod))))
    net.zero_grad()
    x = x.clone().requires_grad_(True)
    net(x).sum().backward()
    for h in hooks:
        h.remove()
    units = [0]

    def count(mod, inp, out):
        if id(mod) in visited:
            units[0] += inp[0][0].numel()

    for m in net.modules():
        if isinstance(m, nn.ReLU):
            hooks.append(m.register_forward_hook(count))
    with torch.no_grad():
        net(x)
    return units[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('archs')
    ap.add_argument('--batch', type=int, default=2)
    a = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(a.batch, 3, 32, 32)
    for s in (l.strip() for l in open(a.archs)):
        if s and not s.startswith('#'):
            print(f"{s}\t{graph_units(network(parse(s), cell=Cell), x)}", flush=True)


if __name__ == '__main__':
    main()
