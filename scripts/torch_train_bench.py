#!/usr/bin/env python3
"""Training steps/s of the NB201 network in PyTorch on the CPU, for
side-by-side timing with `dasnas train` on the same cell and batch size.

The network is the one of scripts/torch_reference.py (PyTorch default
init, BatchNorm in training mode). One step = forward, softmax
cross-entropy, backward and torch.optim.SGD (lr 0.1, momentum 0.9,
weight decay 5e-4 on every parameter, optional Nesterov) on one batch of
N(0,1) images with random labels (the data do not change the work).

    python3 scripts/torch_train_bench.py ARCH [--batch 64] [--steps 10] [--threads 2] [--device cpu|cuda]

prints steps/s over --steps steps after one untimed warm-up step. Compare with
    dasnas train --arch ARCH --steps 11 --every 0 --train-batch 64 \
        --data ../shared/data/cifar10_test1000_q75.bin --record /tmp/r.jsonl
whose summary line gives steps/s without its first step.
"""
import argparse, os, sys, time
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import network, parse  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('arch')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--nesterov', action='store_true')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--device', default='cpu', help='cpu or cuda (.item() per step waits for the GPU)')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    net = network(parse(a.arch)).to(dev)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9,
                          weight_decay=5e-4, nesterov=a.nesterov)
    x = torch.randn(a.batch, 3, 32, 32).to(dev)
    y = torch.randint(0, 10, (a.batch,)).to(dev)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up
    t = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    dt = time.perf_counter() - t
    print(f"torch {torch.__version__}, {a.device}, {a.threads} thread(s), batch {a.batch}: "
          f"{a.steps} steps in {dt:.2f} s = {a.steps / dt:.3f} steps/s (last loss {loss:.4f})")


if __name__ == '__main__':
    main()
