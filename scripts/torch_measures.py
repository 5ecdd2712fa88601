#!/usr/bin/env python3
"""PyTorch reference of the training-free measures (docs/measures.md).

A network comes as the crate's graph JSON (`Graph::to_json`) plus its
weights in the crate's layouts; `GraphNet` rebuilds it as a torch module
(float32, NCHW inside, every conv an `nn.Conv2d`, every classifier an
`nn.Linear`, BatchNorm in training mode) and the measure functions compute,
with the semantics of the official implementations:

  l2_norm, grad_norm, snip, plain, fisher, jacov   NASLib
      (naslib/predictors/utils/pruners/measures/<name>.py, summed over the
      nn.Conv2d / nn.Linear weights as predictive.find_measures does)
  zico                                             ZiCo (SLDGroup/ZiCo,
      ZeroShotProxy/compute_zico.py), the two "batches" being the first
      B // 2 images of the scoring batch and the rest
  wot                                              NASWOT (BayesWatch/
      nas-without-training; NASLib's nwot.py), log|det K|
  params                                           every parameter value

Library use (the file is imported by path):

  net = GraphNet(graph, weights)      # graph: dict; weights: {name: flat array}
  compute(net, images_nhwc, labels, names=MEASURES) -> {name: float}

`compute` runs each measure on its own deep copy of `net` (as NASLib copies
the network per measure); each measure function `f(net, images, labels)`
works on the net it is given. Images are float32 NHWC `[B, h, w, c]`
(numpy or torch), labels integers `[B]`.

Command line:

  python3 scripts/torch_measures.py CELLS.json [--measures a,b] [--threads 2]
                                               [--time] [--repeats R]
  python3 scripts/torch_measures.py --self-test

CELLS.json is a JSON list of cells (one object alone, or one object per
line, is accepted too; `-` reads standard input). A cell:

  {"graph":   {...},                       # Graph::to_json
   "weights": {"<param name>": VALUES},    # crate layout, flat
   "images":  VALUES,                      # [B, h, w, c] NHWC
   "labels":  [int, ...],                  # B labels
   "measures": ["grad_norm", ...]}         # optional, else --measures

VALUES is either a JSON list of numbers (nested or flat; images are
reshaped to [-1, h, w, c] from the graph's input shape) or a string: the
base64 of the little-endian float32 values. Other keys of a cell (`index`,
`key`, `arch`, `name`) are copied to its output line.

Output: one JSON line per cell, `{"index": i, <measure>: value, ...}`, a
value that is not finite written as null (wot of a singular K is −∞). With
`--time` each measure is computed on its own (a deep copy of the net, one
measure, as the field computes them) and the line also has
`"ms": {<measure>: milliseconds}` (the median of `--repeats` runs).
"""

import argparse
import base64
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEASURES = ("l2_norm", "grad_norm", "snip", "plain", "fisher", "jacov", "zico", "wot", "params")

# ---------------------------------------------------------------------------
# The graph interpreter
# ---------------------------------------------------------------------------

_KINDS = {
    "input": "input",
    "conv2d": "conv2d",
    "conv": "conv2d",
    "axisconv": "axis_conv",
    "batchnorm": "batchnorm",
    "relu": "relu",
    "pool": "pool",
    "add": "add",
    "concat": "concat",
    "crop": "crop",
    "zeros": "zeros",
    "globalavgpool": "global_avg_pool",
    "linear": "linear",
}


def _norm(s):
    return str(s).replace("_", "").replace("-", "").lower()


def _parse_op(op):
    """(kind, fields) of a node's `op`: `{"kind": k, ...fields}`, or serde's
    externally tagged forms (`"Relu"`, `{"Conv2d": {...}}`)."""
    if isinstance(op, str):
        return _KINDS[_norm(op)], {}
    if not isinstance(op, dict):
        raise ValueError(f"op {op!r}: expected an object or a string")
    if "kind" in op and _norm(op["kind"]) in _KINDS:
        fields = {k: v for k, v in op.items() if k != "kind"}
        return _KINDS[_norm(op["kind"])], fields
    if "kind" in op and _norm(op["kind"]) in ("avg", "max"):
        # A pool whose own `kind` (Avg / Max) is the only kind given.
        return "pool", dict(op)
    if len(op) == 1:
        (name, fields), = op.items()
        if _norm(name) in _KINDS:
            return _KINDS[_norm(name)], dict(fields or {})
    raise ValueError(f"op {op!r}: unknown kind")


def _pool_kind(fields):
    for key in ("pool_kind", "pool", "mode", "kind"):
        v = fields.get(key)
        if v is not None and _norm(v) in ("avg", "max"):
            return _norm(v)
    raise ValueError(f"pool {fields!r}: no Avg / Max kind in its fields")


def _shape3(s):
    """Per-sample [h, w, c] of a shape given as [h, w, c], [n, h, w, c] or
    {"h", "w", "c"}."""
    if isinstance(s, dict):
        return int(s["h"]), int(s["w"]), int(s["c"])
    s = [int(v) for v in s]
    if len(s) == 4:
        s = s[1:]
    if len(s) != 3:
        raise ValueError(f"shape {s}: expected [h, w, c]")
    return tuple(s)


def _values(v, what):
    """A flat float32 array from a list (any nesting), an array or a tensor,
    or a base64 string of little-endian float32."""
    if isinstance(v, str):
        return np.frombuffer(base64.b64decode(v), dtype="<f4").astype(np.float32)
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    a = np.asarray(v, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what}: values that are not finite")
    return a


class GraphNet(nn.Module):
    """The graph as a torch module (float32, train mode). `forward` takes an
    NCHW batch and gives the logits `[n, classes]`."""

    def __init__(self, graph, weights):
        super().__init__()
        self.nodes = []  # (kind, fields, inputs, shape)
        self.input_shape = _shape3(graph["input"])
        self.output = int(graph["output"])
        pnames = [p["name"] for p in graph["params"]]
        plens = [int(p["len"]) for p in graph["params"]]
        self.layers = nn.ModuleDict()

        def param(pid):
            name = pnames[pid]
            if name not in weights:
                raise ValueError(f"weights: no values for parameter {name}")
            a = _values(weights[name], name)
            if a.size != plens[pid]:
                raise ValueError(f"parameter {name}: {a.size} values, the graph says {plens[pid]}")
            return torch.from_numpy(a.copy())

        for i, node in enumerate(graph["nodes"]):
            kind, f = _parse_op(node["op"])
            ins = [int(j) for j in node.get("inputs", [])]
            pids = [int(p) for p in node.get("params", [])]
            shape = _shape3(node["shape"])
            key = str(i)
            if kind == "conv2d":
                cin, cout, kh, kw = (int(f[k]) for k in ("cin", "cout", "kh", "kw"))
                groups = int(f.get("groups", 1))
                m = nn.Conv2d(cin, cout, (kh, kw), stride=int(f["stride"]), padding=int(f["pad"]),
                              dilation=int(f.get("dilation", 1)), groups=groups, bias=False)
                # Ours [kh][kw][cin/groups][cout] -> torch [cout][cin/groups][kh][kw].
                w = param(pids[0]).reshape(kh, kw, cin // groups, cout).permute(3, 2, 0, 1)
                with torch.no_grad():
                    m.weight.copy_(w)
                self.layers[key] = m
            elif kind == "axis_conv":
                cin, cout, k = int(f["cin"]), int(f["cout"]), int(f["k"])
                stride, pad = int(f["stride"]), int(f["pad"])
                w = param(pids[0]).reshape(k, cin, cout).permute(2, 1, 0)  # [cout][cin][k]
                if _norm(f["axis"]) == "h":
                    m = nn.Conv2d(cin, cout, (k, 1), stride=(stride, 1), padding=(pad, 0), bias=False)
                    w = w.unsqueeze(3)
                elif _norm(f["axis"]) == "w":
                    m = nn.Conv2d(cin, cout, (1, k), stride=(1, stride), padding=(0, pad), bias=False)
                    w = w.unsqueeze(2)
                else:
                    raise ValueError(f"axis_conv: axis {f['axis']!r}")
                with torch.no_grad():
                    m.weight.copy_(w)
                self.layers[key] = m
            elif kind == "batchnorm":
                c = int(f["channels"])
                m = nn.BatchNorm2d(c, eps=float(f["eps"]))
                with torch.no_grad():
                    m.weight.copy_(param(pids[0]))
                    m.bias.copy_(param(pids[1]))
                self.layers[key] = m
            elif kind == "relu":
                self.layers[key] = nn.ReLU(inplace=False)
            elif kind == "linear":
                n_in, n_out = int(f["inputs"]), int(f["outputs"])
                m = nn.Linear(n_in, n_out, bias=True)
                with torch.no_grad():
                    m.weight.copy_(param(pids[0]).reshape(n_in, n_out).t())
                    m.bias.copy_(param(pids[1]))
                self.layers[key] = m
            elif kind == "pool":
                f = dict(f, pool_kind=_pool_kind(f))
            self.nodes.append((kind, f, ins, shape))
        # After its last reader a value is dropped (the output is kept).
        self.last_use = list(range(len(self.nodes)))
        for i, (_, _, ins, _) in enumerate(self.nodes):
            for j in ins:
                self.last_use[j] = max(self.last_use[j], i)
        self.last_use[self.output] = len(self.nodes)
        self.names = [str(node["name"]) for node in graph["nodes"]]
        self.blocks = [int(b) for b in graph.get("blocks", [])]
        # visit(i, value) is called with every node's value (not the input's).
        self.visit = None
        self.train()

    def weight_layers(self):
        """The layers the measures hook: every nn.Conv2d and nn.Linear, in
        node order."""
        return [m for m in self.layers.values() if isinstance(m, (nn.Conv2d, nn.Linear))]

    def forward(self, x):
        n = x.shape[0]
        vals = [None] * len(self.nodes)
        for i, (kind, f, ins, shape) in enumerate(self.nodes):
            a = [vals[j] for j in ins]
            if kind == "input":
                h, w, c = shape
                if tuple(x.shape[1:]) != (c, h, w):
                    raise ValueError(f"input: batch shape {tuple(x.shape)}, expected [n, {c}, {h}, {w}]")
                y = x
            elif kind in ("conv2d", "axis_conv", "batchnorm", "relu"):
                y = self.layers[str(i)](a[0])
            elif kind == "linear":
                flat = a[0].permute(0, 2, 3, 1).reshape(n, -1)  # NHWC order
                y = self.layers[str(i)](flat).reshape(n, -1, 1, 1)
            elif kind == "pool":
                k, s, p = int(f["k"]), int(f["stride"]), int(f["pad"])
                if f["pool_kind"] == "avg":
                    y = F.avg_pool2d(a[0], k, s, p, ceil_mode=False,
                                     count_include_pad=bool(f["count_include_pad"]))
                else:
                    y = F.max_pool2d(a[0], k, s, p, ceil_mode=False)
            elif kind == "add":
                y = a[0]
                for t in a[1:]:
                    y = y + t
            elif kind == "concat":
                y = torch.cat(a, dim=1)
            elif kind == "crop":
                t, l, h, w = int(f["top"]), int(f["left"]), int(f["h"]), int(f["w"])
                c0, c = int(f["c0"]), int(f["c"])
                y = a[0][:, c0:c0 + c, t:t + h, l:l + w]
            elif kind == "zeros":
                # x·0, as the NB201 and DARTS code's Zero op (a graph path
                # that carries a zero gradient).
                h, w, c = shape
                y = a[0] * 0 if a and tuple(a[0].shape[1:]) == (c, h, w) else x.new_zeros((n, c, h, w))
            elif kind == "global_avg_pool":
                y = a[0].mean(dim=(2, 3), keepdim=True)
            else:
                raise ValueError(f"node {i}: kind {kind}")
            h, w, c = shape
            if tuple(y.shape[1:]) != (c, h, w):
                raise ValueError(f"node {i} ({kind}): shape {tuple(y.shape)}, the graph says [n, {c}, {h}, {w}]")
            vals[i] = y
            if self.visit is not None and kind != "input":
                self.visit(i, y)
            for j in ins:
                if self.last_use[j] == i:
                    vals[j] = None
        out = vals[self.output]
        # NHWC flattening (the logits of a linear output are [n, classes]).
        return out.permute(0, 2, 3, 1).reshape(n, -1)


# ---------------------------------------------------------------------------
# The measures
# ---------------------------------------------------------------------------


def _batch(images, labels):
    """NCHW tensor of torch's default dtype (float32 unless a caller set
    float64 to measure rounding) and int64 labels from an NHWC batch."""
    dtype = torch.get_default_dtype()
    if isinstance(images, torch.Tensor):
        x = images.detach().to(dtype)
    else:
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(dtype)
    x = x.permute(0, 3, 1, 2).contiguous()
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)
    if y.numel() != x.shape[0]:
        raise ValueError(f"{y.numel()} labels for {x.shape[0]} images")
    return x, y


def _weight_layers(net):
    # NASLib's get_layer_metric_array: every nn.Conv2d / nn.Linear module.
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _weight_grads(net, x, y):
    """(weight, ∂L/∂weight) per hooked layer, float64; L the mean
    cross-entropy of the whole batch (BatchNorm on batch statistics). A
    layer the loss does not reach has a zero gradient (NASLib: `grad is
    None` -> zeros)."""
    net.train()
    layers = _weight_layers(net)
    ws = [m.weight for m in layers]
    loss = F.cross_entropy(net(x), y)
    gs = torch.autograd.grad(loss, ws, allow_unused=True)
    out = []
    for w, g in zip(ws, gs):
        g = torch.zeros_like(w) if g is None else g
        out.append((w.detach().double(), g.detach().double()))
    return out


def synflow(net, images, labels=None):
    """NASLib synflow.py (`bn=False`, mode "param"): every BatchNorm's
    forward replaced by the identity (NASLib's `copynet(bn=False)`), every
    parameter replaced by its absolute value, the network in float64, one
    input of ones shaped like one image; R = Σ output, backward; the score
    is Σ over conv/linear weights of |θ · ∂R/∂θ|."""
    x, _ = _batch(images[:1], np.zeros(1))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.forward = lambda v: v
    net = net.double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    out = net(torch.ones_like(x, dtype=torch.float64))
    out.sum().backward()
    total = 0.0
    for m in _weight_layers(net):
        if m.weight.grad is not None:
            total += float((m.weight * m.weight.grad).abs().sum().item())
    return total


def l2_norm(net, images, labels=None):
    """Σ over conv/linear layers of ||W||₂ (NASLib l2_norm.py)."""
    return float(sum(m.weight.detach().double().norm().item() for m in _weight_layers(net)))


def grad_norm(net, images, labels):
    """Σ over conv/linear layers of ||∂L/∂W||₂ (NASLib grad_norm.py)."""
    x, y = _batch(images, labels)
    return float(sum(g.norm().item() for _, g in _weight_grads(net, x, y)))


def snip(net, images, labels):
    """Σ |∂L/∂mask| = Σ |W ⊙ ∂L/∂W| over conv/linear weights (NASLib
    snip.py: the mask's gradient at mask = 1 is W ⊙ ∂L/∂(W·mask))."""
    x, y = _batch(images, labels)
    return float(sum((w * g).abs().sum().item() for w, g in _weight_grads(net, x, y)))


def plain(net, images, labels):
    """Σ W ⊙ ∂L/∂W over conv/linear weights (NASLib plain.py)."""
    x, y = _batch(images, labels)
    return float(sum((w * g).sum().item() for w, g in _weight_grads(net, x, y)))


def fisher(net, images, labels):
    """NASLib fisher.py in its channel mode. Per conv/linear layer, act is the
    layer's own output (before BatchNorm or anything else; a linear's
    includes its bias) and g = ∂L/∂act; per (sample n, channel c)
    s[n, c] = Σ over positions of act·g; per channel F_c = 0.5·mean_n s².
    NASLib then broadcasts F_c over the channel's weights
    (`weight.shape[1:]`, reshape_elements) before find_measures sums every
    element: so each channel counts prod(weight.shape[1:]) times
    (cin/groups·kh·kw for a conv, `inputs` for a linear). That quirk is
    reproduced here. A layer the loss does not reach gives 0 (NASLib: its
    hook never fires, `fisher is None` -> zeros)."""
    x, y = _batch(images, labels)
    net.train()
    layers = _weight_layers(net)
    acts = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out: acts.__setitem__(mod, out)) for m in layers]
    try:
        loss = F.cross_entropy(net(x), y)
    finally:
        for h in hooks:
            h.remove()
    reached = [m for m in layers if m in acts]
    outs = [acts[m] for m in reached]
    grads = torch.autograd.grad(loss, outs, allow_unused=True) if outs else []
    total = 0.0
    for m, a, g in zip(reached, outs, grads):
        if g is None:
            continue
        ag = a.detach().double() * g.detach().double()
        s = ag.sum(dim=tuple(range(2, ag.dim()))) if ag.dim() > 2 else ag
        per_channel = 0.5 * s.pow(2).mean(dim=0)
        total += per_channel.abs().sum().item() * math.prod(m.weight.shape[1:])
    return float(total)


def jacov(net, images, labels=None):
    """NASLib jacov.py: J = ∂(Σ logits)/∂input (y.backward(ones), BatchNorm on
    batch statistics, so samples interact), one row per sample; C =
    np.corrcoef(J) in float64; v its eigenvalues; score
    −Σ (ln(v + 1e-5) + 1/(v + 1e-5)). NASLib calls np.linalg.eig on this
    symmetric matrix; the symmetric solver eigh is used here (same
    eigenvalues up to rounding, always real). NaN when C is not finite
    (a sample whose gradient is constant), as NASLib's except branch."""
    x, _ = _batch(images, labels if labels is not None else np.zeros(len(images)))
    net.train()
    x = x.clone().requires_grad_(True)
    out = net(x)
    (gx,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    if gx is None:
        # The output does not depend on the input (every path cut): NASLib's
        # x.grad is None and its except branch gives NaN.
        return float("nan")
    jac = gx.detach().reshape(gx.shape[0], -1).numpy()
    return _jacov_score(jac)


def epe_nas(net, images, labels):
    """NASLib epe_nas.py: the input Jacobian of jacov; samples grouped by
    label in order of first appearance; per label, s = Σ ln(|corrcoef| +
    1e-5) (a one-sample label: corrcoef is the scalar 1); with at most 100
    classes the score is Σ |s|, else each s is divided by its sample count
    (one-sample labels skipped, as NASLib's except does) and the score is
    Σ_c Σ_c' |s_c − s_c'| / labels seen."""
    x, y = _batch(images, labels)
    net.train()
    x = x.clone().requires_grad_(True)
    out = net(x)
    classes = out.shape[-1]
    (gx,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    if gx is None:
        return float("nan")
    jac = gx.detach().reshape(gx.shape[0], -1).double().numpy()
    labels = np.asarray(y)
    order = []
    for l in labels:
        if l not in order:
            order.append(l)
    scores = []
    k = 1e-5
    for c in order:
        rows = jac[labels == c]
        if len(rows) == 1:
            if classes > 100:
                continue
            scores.append(np.log(1.0 + k))
            continue
        with np.errstate(all="ignore"):
            corr = np.corrcoef(rows)
            s = float(np.sum(np.log(np.abs(corr) + k)))
        if classes > 100:
            s /= len(rows)
        scores.append(s)
    if classes <= 100:
        return float(sum(abs(s) for s in scores))
    total = sum(abs(a - b) for a in scores for b in scores)
    return float(total / max(len(scores), 1))


def _jacov_score(jac):
    with np.errstate(all="ignore"):
        c = np.corrcoef(jac)
    if not np.all(np.isfinite(c)):
        return float("nan")
    v = np.linalg.eigh(c)[0]
    k = 1e-5
    with np.errstate(all="ignore"):
        return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def zico(net, images, labels):
    """ZiCo (SLDGroup/ZiCo, ZeroShotProxy/compute_zico.py) on two batches:
    the first B // 2 images and the rest, each with its own forward and
    backward (BatchNorm on that half's statistics, mean cross-entropy).
    Per conv/linear weight element, the gradients g_1, g_2 of the two
    batches give std (numpy, ddof 0) and mean |g|; per layer
    S = Σ mean|g| / std over the elements whose std is not 0, and the
    score is Σ ln S over the layers whose S is not 0. Statistics in float64
    (the official code runs them in float32 numpy). A layer the loss does
    not reach has zero gradients (the official code would fail on it) and
    so S = 0: it is skipped."""
    x, y = _batch(images, labels)
    b = x.shape[0]
    if b < 2:
        raise ValueError("zico: the batch needs at least 2 images")
    net.train()
    layers = _weight_layers(net)
    ws = [m.weight for m in layers]
    per_batch = []
    for lo, hi in ((0, b // 2), (b // 2, b)):
        loss = F.cross_entropy(net(x[lo:hi]), y[lo:hi])
        gs = torch.autograd.grad(loss, ws, allow_unused=True)
        per_batch.append([
            np.zeros(w.numel()) if g is None else g.detach().reshape(-1).double().numpy()
            for w, g in zip(ws, gs)
        ])
    total = 0.0
    for li in range(len(ws)):
        gl = np.stack([per_batch[0][li], per_batch[1][li]])
        std = np.std(gl, axis=0)
        nz = np.nonzero(std)[0]
        mean_abs = np.mean(np.abs(gl), axis=0)
        s = np.sum(mean_abs[nz] / std[nz])
        if s != 0:
            total += math.log(s)
    return float(total)


def wot(net, images, labels=None):
    """NASWOT: for every ReLU, x = (its input > 0) per sample, flattened;
    K = Σ x·xᵀ + (1−x)·(1−x)ᵀ (float64, exact counts); the score is
    ln|det K| (slogdet; −∞ when K is singular)."""
    x, _ = _batch(images, labels if labels is not None else np.zeros(len(images)))
    net.train()
    b = x.shape[0]
    k = torch.zeros(b, b, dtype=torch.float64)

    def hook(mod, inp):
        nonlocal k
        c = (inp[0].detach().reshape(b, -1) > 0).double()
        k += c @ c.t() + (1.0 - c) @ (1.0 - c).t()

    hooks = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    _, logabsdet = np.linalg.slogdet(k.numpy())
    return float(logabsdet)


def meco(net, images, labels=None, channels=None):
    """MeCo (HamsterMimi/MeCo, get_score): for every node's feature map
    with more than one position, sample 0 as C rows of H·W values,
    torch.corrcoef of the rows with NaN set to 0, the smallest real part of
    its eigenvalues (torch.linalg.eig); summed. With `channels` ({node
    name: indices}) only those channels, times C / len(indices)
    (meco_opt)."""
    x, _ = _batch(images, labels if labels is not None else np.zeros(len(images)))
    total = [0.0]

    def visit(i, y):
        if y.dim() != 4 or y.shape[2] * y.shape[3] <= 1:
            return
        fea = y[0].detach().reshape(y.shape[1], -1)
        c = fea.shape[0]
        scale = 1.0
        if channels is not None:
            idx = [int(v) for v in np.asarray(channels[net.names[i]]).reshape(-1)]
            fea = fea[idx]
            scale = c / len(idx)
        corr = torch.corrcoef(fea)
        corr[torch.isnan(corr)] = 0
        corr[torch.isinf(corr)] = 0
        val = torch.min(torch.real(torch.linalg.eig(corr)[0])).item()
        total[0] += val * scale

    net.visit = visit
    try:
        with torch.no_grad():
            net(x)
    finally:
        net.visit = None
    return float(total[0])


def zen(net, images, noise, gamma=1e-2):
    """Zen-NAS (NASLib zen.py, one repeat) on a net already holding its
    N(0, 1) weights: ln(mean over samples of Σ|f(x) − f(x + γ·noise)|) of
    the features before global pooling, plus Σ over BatchNorm layers of
    ln √(mean running_var) after the two passes (PyTorch's own running
    statistics, from a fresh module)."""
    dtype = torch.get_default_dtype()
    x = torch.as_tensor(np.asarray(images)).to(dtype).permute(0, 3, 1, 2).contiguous()
    e = torch.as_tensor(np.asarray(noise)).to(dtype).permute(0, 3, 1, 2).contiguous()
    pre = [k for k, (kind, _, _, _) in enumerate(net.nodes) if kind == "global_avg_pool"]
    src = net.nodes[pre[0]][2][0]
    feats = {}

    def visit(i, y):
        if i == src:
            feats["f"] = y.detach()

    net.visit = visit
    net.train()
    try:
        with torch.no_grad():
            net(x)
            f1 = feats["f"]
            net(x + gamma * e)
            f2 = feats["f"]
    finally:
        net.visit = None
    d = torch.sum(torch.abs(f1 - f2), dim=[1, 2, 3]).mean()
    bn = 0.0
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            bn += torch.log(torch.sqrt(torch.mean(m.running_var))).item()
    return float(torch.log(d).item() + bn)


def az_nas(net, images, seeds):
    """AZ-NAS (cvlab-yonsei/AZ-NAS compute_az_nas_score.py) on a net
    already holding its Kaiming-normal weights, on the Gaussian batch
    `images` (NHWC) with the Rademacher vectors `seeds[k]` (NHWC) at block
    k ≥ 1: {az_expressivity, az_progressivity, az_trainability}."""
    dtype = torch.get_default_dtype()
    x = torch.as_tensor(np.asarray(images)).to(dtype).permute(0, 3, 1, 2).contiguous()
    blocks = net.blocks
    vals = {}

    def visit(i, y):
        if i in blocks:
            vals[i] = y

    net.visit = visit
    net.train()
    try:
        net(x)
    finally:
        net.visit = None
    feats = [vals[b] for b in blocks]
    ent = []
    for f in feats:
        b, c, h, w = f.shape
        m = f.detach().permute(0, 2, 3, 1).reshape(b * h * w, c)
        m = m - m.mean(0, keepdim=True)
        s = torch.linalg.eigvalsh(m.t() @ m / (b * h * w))
        p = s / s.sum()
        ent.append(float(torch.sum(-p * torch.log(p + 1e-8)).item()))
    ent = np.array(ent)
    expressivity = float(np.sum(ent))
    progressivity = float(np.min(ent[1:] - ent[:-1]))
    scores = []
    for k in range(len(feats) - 1, 0, -1):
        f_out, f_in = feats[k], feats[k - 1]
        g_out = torch.as_tensor(np.asarray(seeds[k])).to(dtype).permute(0, 3, 1, 2).contiguous()
        if blocks[k] == blocks[k - 1]:
            scores.append(-np.inf)
            continue
        if not f_out.requires_grad:
            g_in = torch.zeros_like(f_in)
        else:
            g_in = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)[0]
            g_in = torch.zeros_like(f_in) if g_in is None else g_in
        if g_in.shape == g_out.shape and torch.all(g_in == g_out):
            scores.append(-np.inf)
            continue
        if g_in.shape[2] != g_out.shape[2]:
            g_in = F.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
        bo, co, ho, wo = g_out.shape
        gi = g_in.permute(0, 2, 3, 1).reshape(bo * ho * wo, -1)
        go = g_out.permute(0, 2, 3, 1).reshape(bo * ho * wo, -1)
        mat = gi.t() @ go / (bo * ho * wo)
        sigma = torch.max(torch.linalg.svdvals(mat)).item()
        scores.append(-sigma - 1.0 / (sigma + 1e-6) + 2.0)
    trainability = float(np.mean(scores))
    return {"az_expressivity": expressivity, "az_progressivity": progressivity,
            "az_trainability": trainability}


def params(net, images=None, labels=None):
    """Every parameter value of the network (conv and linear weights, linear
    biases, BatchNorm γ and β)."""
    return float(sum(p.numel() for p in net.parameters()))


_FUNCS = {
    "l2_norm": l2_norm, "grad_norm": grad_norm, "snip": snip, "plain": plain,
    "fisher": fisher, "jacov": jacov, "zico": zico, "wot": wot, "params": params,
    "synflow": synflow, "epe_nas": epe_nas, "meco": meco,
}


def compute(net, images_nhwc, labels, names=MEASURES):
    """{name: float} for each measure of `names`, each on a fresh deep copy
    of `net` (its weights untouched)."""
    out = {}
    for name in names:
        if name not in _FUNCS:
            raise ValueError(f"unknown measure {name!r}; known: {', '.join(MEASURES)}")
        n = copy.deepcopy(net)
        n.train()
        out[name] = float(_FUNCS[name](n, images_nhwc, labels))
    return out


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _read_cells(path):
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    s = text.lstrip()
    if s.startswith("["):
        return json.loads(s)
    try:
        v = json.loads(s)
        return [v]
    except json.JSONDecodeError:
        return [json.loads(line) for line in s.splitlines() if line.strip()]


def _cell_inputs(cell):
    graph = cell["graph"]
    net = GraphNet(graph, cell["weights"])
    h, w, c = _shape3(graph["input"])
    images = _values(cell["images"], "images").reshape(-1, h, w, c)
    labels = np.asarray(cell["labels"], dtype=np.int64).reshape(-1)
    return net, images, labels


def _json_value(v):
    return v if math.isfinite(v) else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cells", nargs="?", help="JSON file of cells (- for stdin)")
    ap.add_argument("--measures", default=",".join(MEASURES),
                    help="comma-separated measures (default: all)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--time", action="store_true",
                    help="time each measure on its own, ms per cell per measure")
    ap.add_argument("--repeats", type=int, default=1, help="with --time: median of R runs")
    ap.add_argument("--self-test", action="store_true", help="run the self-checks and exit")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    if args.self_test:
        self_test()
        return 0
    if not args.cells:
        ap.error("give a CELLS.json file (or --self-test)")
    default = [m.strip() for m in args.measures.split(",") if m.strip()]
    for i, cell in enumerate(_read_cells(args.cells)):
        names = cell.get("measures") or default
        net, images, labels = _cell_inputs(cell)
        line = {"index": cell.get("index", i)}
        for k in ("key", "arch", "name"):
            if k in cell:
                line[k] = cell[k]
        if args.time:
            ms = {}
            for name in names:
                times = []
                for _ in range(max(1, args.repeats)):
                    t0 = time.perf_counter()
                    v = compute(net, images, labels, [name])[name]
                    times.append((time.perf_counter() - t0) * 1e3)
                line[name] = _json_value(v)
                ms[name] = round(float(np.median(times)), 3)
            line["ms"] = ms
        else:
            for name, v in compute(net, images, labels, names).items():
                line[name] = _json_value(v)
        print(json.dumps(line), flush=True)
    return 0


# ---------------------------------------------------------------------------
# Self-test: hand-built graphs against hand-written torch models
# ---------------------------------------------------------------------------


class _GraphBuilder:
    """Builds a graph JSON the way Graph::to_json writes it, with weights
    given in torch layouts and stored in the crate's layouts."""

    def __init__(self, h, w, c):
        self.nodes, self.params, self.weights = [], [], {}
        self.input = [h, w, c]
        self.add("input", {"shape": {"n": 1, "h": h, "w": w, "c": c}}, [], [h, w, c])

    def add(self, kind, fields, inputs, shape, params=()):
        i = len(self.nodes)
        pids = []
        for suffix, values in params:
            name = f"n{i}.{suffix}"
            pids.append(len(self.params))
            self.params.append({"name": name, "len": int(values.size)})
            self.weights[name] = values.astype(np.float32)
        op = dict(fields, kind=kind)
        self.nodes.append({"name": f"n{i}", "op": op, "inputs": list(inputs),
                           "params": pids, "shape": list(shape)})
        return i

    def conv(self, x, wt, stride=1, pad=0, dilation=1, groups=1):
        """wt: torch weight [cout, cin/g, kh, kw]."""
        h, w, c = self.nodes[x]["shape"]
        cout, _, kh, kw = wt.shape
        oh = (h + 2 * pad - dilation * (kh - 1) - 1) // stride + 1
        ow = (w + 2 * pad - dilation * (kw - 1) - 1) // stride + 1
        ours = wt.permute(2, 3, 1, 0).reshape(-1).numpy()
        return self.add("conv2d", dict(cin=c, cout=cout, kh=kh, kw=kw, stride=stride, pad=pad,
                                       dilation=dilation, groups=groups),
                        [x], [oh, ow, cout], [("weight", ours)])

    def axis_conv(self, x, wt, axis, stride, pad):
        """wt: [cout, cin, k] (the kernel along `axis`)."""
        h, w, c = self.nodes[x]["shape"]
        cout, cin, k = wt.shape
        if axis == "H":
            h = (h + 2 * pad - k) // stride + 1
        else:
            w = (w + 2 * pad - k) // stride + 1
        ours = wt.permute(2, 1, 0).reshape(-1).numpy()
        return self.add("axis_conv", dict(cin=cin, cout=cout, axis=axis, k=k, stride=stride, pad=pad),
                        [x], [h, w, cout], [("weight", ours)])

    def bn(self, x, gamma, beta, eps):
        return self.add("batchnorm", dict(channels=int(gamma.numel()), eps=eps), [x],
                        self.nodes[x]["shape"], [("gamma", gamma.numpy()), ("beta", beta.numpy())])

    def relu(self, x):
        return self.add("relu", {}, [x], self.nodes[x]["shape"])

    def pool(self, x, kind, k, stride, pad, cip):
        h, w, c = self.nodes[x]["shape"]
        o = lambda i: (i + 2 * pad - k) // stride + 1
        return self.add("pool", dict(pool_kind=kind, k=k, stride=stride, pad=pad,
                                     count_include_pad=cip), [x], [o(h), o(w), c])

    def linear(self, x, u, b):
        """u: [inputs, outputs] (the crate's layout, inputs in NHWC order)."""
        return self.add("linear", dict(inputs=u.shape[0], outputs=u.shape[1]), [x],
                        [1, 1, u.shape[1]], [("weight", u.reshape(-1).numpy()), ("bias", b.numpy())])

    def graph(self, output):
        return {"input": self.input, "output": output, "params": self.params, "nodes": self.nodes}


def _hand_bn(v, g, b, eps):
    mean = v.mean(dim=(0, 2, 3), keepdim=True)
    var = ((v - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    return (v - mean) / torch.sqrt(var + eps) * g.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)


def _hand_linear(v, u, b):
    # logits[n, o] = Σ_{h,w,c} v[n, c, h, w] · u[(h, w, c), o] + b[o]
    n, c, h, w = v.shape
    return torch.einsum("nchw,hwco->no", v, u.reshape(h, w, c, -1)) + b


def _hand_avg(v, k, s, p, cip):
    summed = F.avg_pool2d(F.pad(v, (p, p, p, p)), k, s, 0) * (k * k)
    if cip:
        return summed / (k * k)
    ones = F.pad(torch.ones_like(v[:1, :1]), (p, p, p, p))
    count = F.avg_pool2d(ones, k, s, 0) * (k * k)
    return summed / count


def _hand_max(v, k, s, p):
    padded = F.pad(v, (p, p, p, p), value=float("-inf"))
    return padded.unfold(2, k, s).unfold(3, k, s).amax(dim=(-1, -2))


def _model_a(rng):
    """input 6x6x3 -> conv3x3 -> bn -> relu -> conv3x3 -> bn -> add(skip) ->
    relu -> global avg pool -> linear(8 -> 10)."""
    t = lambda *s: torch.from_numpy(rng.standard_normal(s).astype(np.float32))
    P = {
        "c1": t(8, 3, 3, 3) * 0.4, "g1": 1 + 0.2 * t(8), "b1": 0.1 * t(8),
        "c2": t(8, 8, 3, 3) * 0.2, "g2": 1 + 0.2 * t(8), "b2": 0.1 * t(8),
        "u": t(8, 10) * 0.3, "bias": 0.1 * t(10),
    }
    gb = _GraphBuilder(6, 6, 3)
    x = gb.conv(0, P["c1"], pad=1)
    x = gb.bn(x, P["g1"], P["b1"], 1e-5)
    r1 = gb.relu(x)
    x = gb.conv(r1, P["c2"], pad=1)
    x = gb.bn(x, P["g2"], P["b2"], 1e-3)
    x = gb.add("add", {}, [x, r1], gb.nodes[x]["shape"])
    x = gb.relu(x)
    x = gb.add("global_avg_pool", {}, [x], [1, 1, 8])
    out = gb.linear(x, P["u"], P["bias"])

    def hand(P, x, scale=None, relu_ins=None):
        sc = scale or {}
        relu = lambda v: (relu_ins.append(v) if relu_ins is not None else None) or F.relu(v)
        a1 = F.conv2d(x, P["c1"], padding=1) * sc.get("c1", 1)
        r = relu(_hand_bn(a1, P["g1"], P["b1"], 1e-5))
        a2 = F.conv2d(r, P["c2"], padding=1) * sc.get("c2", 1)
        v = relu(_hand_bn(a2, P["g2"], P["b2"], 1e-3) + r)
        v = v.mean(dim=(2, 3), keepdim=True)
        return _hand_linear(v, P["u"], P["bias"]) * sc.get("u", 1)

    weights_of = {"c1": "c1", "c2": "c2", "u": "u"}  # weight layers
    return gb.graph(out), gb.weights, P, hand, weights_of


def _model_b(rng):
    """Pools (max, avg with and without padding counted), axis convs, a
    dilated depthwise and a grouped conv, concat, crop, zeros fed by a conv
    the loss does not reach, and a linear on a 2x2x6 map."""
    t = lambda *s: torch.from_numpy(rng.standard_normal(s).astype(np.float32))
    P = {
        "c1": t(8, 4, 3, 3) * 0.3, "g1": 1 + 0.2 * t(8), "b1": 0.1 * t(8),
        "ah": t(6, 8, 3) * 0.3, "aw": t(6, 6, 3) * 0.3,
        "dw": t(8, 1, 3, 3) * 0.5, "gc": t(4, 4, 1, 1) * 0.5,
        "g2": 1 + 0.2 * t(10), "b2": 0.1 * t(10),
        "dead": t(6, 6, 1, 1) * 0.5,
        "u": t(24, 5) * 0.3, "bias": 0.1 * t(5),
    }
    gb = _GraphBuilder(9, 9, 4)
    x = gb.conv(0, P["c1"], pad=1)                                   # 9x9x8
    x = gb.bn(x, P["g1"], P["b1"], 1e-5)
    r1 = gb.relu(x)
    mp = gb.pool(r1, "Max", 3, 1, 1, False)                          # 9x9x8
    ap = gb.pool(mp, "Avg", 3, 2, 1, False)                          # 5x5x8
    ah = gb.axis_conv(r1, P["ah"], "H", 2, 1)                        # 5x9x6
    aw = gb.axis_conv(ah, P["aw"], "W", 2, 1)                        # 5x5x6
    dw = gb.conv(ap, P["dw"], pad=2, dilation=2, groups=8)           # 5x5x8
    gc = gb.conv(dw, P["gc"], groups=2)                              # 5x5x4
    cat = gb.add("concat", {}, [aw, gc], [5, 5, 10])
    x = gb.bn(cat, P["g2"], P["b2"], 1e-4)
    r2 = gb.relu(x)
    cr = gb.add("crop", dict(top=1, left=1, h=4, w=4, c0=2, c=6), [r2], [4, 4, 6])
    dead = gb.conv(cr, P["dead"])
    z = gb.add("zeros", {"shape": {"n": 1, "h": 4, "w": 4, "c": 6}}, [dead], [4, 4, 6])
    x = gb.add("add", {}, [cr, z], [4, 4, 6])
    x = gb.pool(x, "Avg", 3, 2, 1, True)                             # 2x2x6
    x = gb.relu(x)
    out = gb.linear(x, P["u"], P["bias"])

    def hand(P, x, scale=None, relu_ins=None):
        sc = scale or {}
        relu = lambda v: (relu_ins.append(v) if relu_ins is not None else None) or F.relu(v)
        r1 = relu(_hand_bn(F.conv2d(x, P["c1"], padding=1) * sc.get("c1", 1), P["g1"], P["b1"], 1e-5))
        ap = _hand_avg(_hand_max(r1, 3, 1, 1), 3, 2, 1, False)
        ah = F.conv2d(F.pad(r1, (0, 0, 1, 1)), P["ah"].unsqueeze(3), stride=(2, 1)) * sc.get("ah", 1)
        aw = F.conv2d(F.pad(ah, (1, 1, 0, 0)), P["aw"].unsqueeze(2), stride=(1, 2)) * sc.get("aw", 1)
        dw = F.conv2d(ap, P["dw"], padding=2, dilation=2, groups=8) * sc.get("dw", 1)
        gc = F.conv2d(dw, P["gc"], groups=2) * sc.get("gc", 1)
        r2 = relu(_hand_bn(torch.cat([aw, gc], 1), P["g2"], P["b2"], 1e-4))
        cr = r2[:, 2:8, 1:5, 1:5]
        _ = F.conv2d(cr, P["dead"]) * sc.get("dead", 1)  # only feeds the zeros
        v = relu(_hand_avg(cr, 3, 2, 1, True))
        return _hand_linear(v, P["u"], P["bias"]) * sc.get("u", 1)

    weights_of = {k: k for k in ("c1", "ah", "aw", "dw", "gc", "dead", "u")}
    return gb.graph(out), gb.weights, P, hand, weights_of


def _fan(w):
    # prod(torch weight.shape[1:]) for each hand weight layout.
    if w.dim() == 2:   # linear in [inputs, outputs]
        return w.shape[0]
    if w.dim() == 3:   # axis conv [cout, cin, k]
        return w.shape[1] * w.shape[2]
    return math.prod(w.shape[1:])


def _hand_measures(P, hand, layers, x, y):
    """The measures by a second formulation, on the hand model."""
    res = {}
    leaf = {k: v.clone().requires_grad_(True) for k, v in P.items()}
    loss = F.cross_entropy(hand(leaf, x), y)
    ws = [leaf[k] for k in layers]
    gs = [torch.zeros_like(w) if g is None else g
          for w, g in zip(ws, torch.autograd.grad(loss, ws, allow_unused=True))]
    wd = [w.detach().double() for w in ws]
    gd = [g.double() for g in gs]
    res["l2_norm"] = sum(w.norm().item() for w in wd)
    res["grad_norm"] = sum(g.norm().item() for g in gd)
    res["snip"] = sum((w * g).abs().sum().item() for w, g in zip(wd, gd))
    res["plain"] = sum((w * g).sum().item() for w, g in zip(wd, gd))
    res["params"] = float(sum(v.numel() for v in P.values()))

    # fisher: s[n, c] = Σ_pos act·∂L/∂act = ∂L/∂e[n, c] for act -> act·e at e = 1.
    n = x.shape[0]
    with torch.no_grad():
        probe = {}
        hand(P, x, scale={k: _Probe(k, probe) for k in layers})
    scales = {k: torch.ones(probe[k], dtype=torch.float32, requires_grad=True) for k in layers}
    loss = F.cross_entropy(hand(P, x, scale=scales), y)
    es = [scales[k] for k in layers]
    total = 0.0
    for k, g in zip(layers, torch.autograd.grad(loss, es, allow_unused=True)):
        if g is None:
            continue
        s = g.double().reshape(n, -1)
        total += (0.5 * s.pow(2).mean(0)).sum().item() * _fan(P[k])
    res["fisher"] = total

    # jacov: the full Jacobian of the logits, summed over the outputs.
    jac = torch.autograd.functional.jacobian(lambda v: hand(P, v), x)  # [n, o, n, c, h, w]
    j = jac.sum(dim=(0, 1)).reshape(n, -1).double().numpy()
    with np.errstate(all="ignore"):
        v_eig = np.linalg.eig(np.corrcoef(j))[0]
    k = 1e-5
    res["jacov"] = float(np.real(-np.sum(np.log(v_eig + k) + 1.0 / (v_eig + k))))

    # zico: (|g1| + |g2|) / |g1 − g2| per element where g1 != g2.
    half = []
    for lo, hi in ((0, n // 2), (n // 2, n)):
        leaf = {kk: v.clone().requires_grad_(True) for kk, v in P.items()}
        loss = F.cross_entropy(hand(leaf, x[lo:hi]), y[lo:hi])
        ws = [leaf[kk] for kk in layers]
        half.append([torch.zeros_like(w).double() if g is None else g.double()
                     for w, g in zip(ws, torch.autograd.grad(loss, ws, allow_unused=True))])
    total = 0.0
    for g1, g2 in zip(*half):
        d = (g1 - g2).abs()
        mask = d != 0
        s = ((g1.abs() + g2.abs())[mask] / d[mask]).sum().item()
        if s != 0:
            total += math.log(s)
    res["zico"] = total

    # wot: K = N_A − Hamming in integers; ln det by Cholesky.
    ins = []
    with torch.no_grad():
        hand(P, x, relu_ins=ins)
    codes = torch.cat([(v.reshape(n, -1) > 0) for v in ins], dim=1).to(torch.int64)
    ham = (codes.unsqueeze(1) != codes.unsqueeze(0)).sum(-1)
    kh = (codes.shape[1] - ham).double()
    res["wot"] = 2.0 * torch.log(torch.diagonal(torch.linalg.cholesky(kh))).sum().item()
    return res


class _Probe:
    """Records the shape [n, c, 1, 1] (or [n, c]) a layer's scale needs."""

    def __init__(self, key, store):
        self.key, self.store = key, store

    def __rmul__(self, act):
        shape = list(act.shape[:2]) + [1] * (act.dim() - 2)
        self.store[self.key] = shape
        return act

    __mul__ = __rmul__


def _close(a, b, rtol, what, atol=0.0):
    if not (abs(a - b) <= atol + rtol * max(abs(a), abs(b))):
        raise AssertionError(f"{what}: {a!r} vs {b!r}")


def self_test():
    t0 = time.perf_counter()
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    checked = 0
    for name, build, batch in (("A", _model_a, 8), ("B", _model_b, 7)):
        graph, weights, P, hand, layers = build(rng)
        graph = json.loads(json.dumps(graph))  # as it comes from a file
        net = GraphNet(graph, weights)
        h, w, c = graph["input"]
        images = rng.standard_normal((batch, h, w, c)).astype(np.float32)
        labels = rng.integers(0, net(torch.zeros(2, c, h, w)).shape[1], size=batch)
        x, y = _batch(images, labels)

        # 1. The interpreter's logits against the hand-written model.
        with torch.no_grad():
            got, want = net(x), hand(P, x)
        err = (got - want).abs().max().item()
        assert err < 1e-4 * max(1.0, want.abs().max().item()), f"{name}: logits differ by {err}"
        assert sum(p["len"] for p in graph["params"]) == int(params(net)), f"{name}: params"

        # 2. Every measure against its second formulation.
        before = {k: v.clone() for k, v in net.state_dict().items()}
        ours = compute(net, images, labels)
        ref = _hand_measures(P, hand, list(layers), x, y)
        for m in MEASURES:
            _close(ours[m], ref[m], 1e-4, f"graph {name}: {m}", atol=1e-9)
            checked += 1

        # 3. compute leaves the net untouched and repeats itself.
        for k, v in net.state_dict().items():
            if "running" in k or "num_batches" in k:
                continue
            assert torch.equal(v, before[k]), f"{name}: compute changed {k}"
        again = compute(net, images, labels, ("grad_norm", "zico", "fisher"))
        for m, v in again.items():
            _close(v, ours[m], 1e-6, f"graph {name}: repeat {m}")

        # 4. NASLib's eig and eigh give the same jacov here.
        xj = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(copy.deepcopy(net)(xj).sum(), xj)
        jm = gx.reshape(batch, -1).numpy()
        v = np.linalg.eig(np.corrcoef(jm))[0]
        _close(float(np.real(-np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5)))), ours["jacov"], 1e-6,
               f"graph {name}: jacov eig vs eigh")

        # 5. The op spellings serde may write give the same network.
        alt = json.loads(json.dumps(graph))
        for node in alt["nodes"]:
            op = node["op"]
            kind = op.pop("kind")
            if kind == "pool":
                op["kind"] = op.pop("pool_kind").lower()  # pool's own kind only
            elif kind == "relu":
                node["op"] = "Relu"
                continue
            else:
                node["op"] = {"".join(s.title() for s in kind.split("_")): op}
            if "axis" in op:
                op["axis"] = op["axis"].lower()
        with torch.no_grad():
            assert torch.equal(GraphNet(alt, weights)(x), got), f"{name}: op spellings"

    # 6. The command line on a file: lists and base64, with and without --time.
    import contextlib
    import io
    import tempfile
    graph, weights, _, _, _ = _model_a(rng)
    images = rng.standard_normal((6, 6, 6, 3)).astype(np.float32)
    labels = rng.integers(0, 10, size=6).tolist()
    b64 = lambda a: base64.b64encode(np.asarray(a, dtype="<f4").tobytes()).decode()
    cells = [
        {"key": "lists", "graph": graph, "weights": {k: v.tolist() for k, v in weights.items()},
         "images": images.tolist(), "labels": labels},
        {"key": "b64", "graph": graph, "weights": {k: b64(v) for k, v in weights.items()},
         "images": b64(images), "labels": labels, "measures": ["wot", "params"]},
    ]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "cells.json")
        with open(path, "w") as f:
            json.dump(cells, f)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            main([path, "--threads", str(torch.get_num_threads())])
            main([path, "--time", "--measures", "snip,wot", "--threads", str(torch.get_num_threads())])
    lines = [json.loads(s) for s in buf.getvalue().splitlines()]
    assert [l["key"] for l in lines] == ["lists", "b64", "lists", "b64"], lines
    assert set(lines[0]) == {"index", "key", *MEASURES}, lines[0]
    assert set(lines[1]) == {"index", "key", "wot", "params"}, lines[1]
    assert lines[0]["wot"] == lines[1]["wot"] and lines[0]["params"] == lines[1]["params"]
    assert set(lines[2]["ms"]) == {"snip", "wot"} and lines[2]["snip"] == lines[0]["snip"]
    want = compute(GraphNet(graph, weights), images, labels)
    for m in MEASURES:
        if lines[0][m] is not None:
            _close(lines[0][m], want[m], 1e-6, f"command line: {m}")
    print(f"self-test: ok ({checked} measure checks on 2 graphs, interpreter, "
          f"op spellings, command line; {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
