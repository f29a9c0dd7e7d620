#!/usr/bin/env python3
"""Times bench_engine's workloads in PyTorch on this machine and prints fragile/PyTorch ratios.

Usage: /usr/bin/python3 bench/compare_pytorch.py [--fragile-bench build/bench/fragile_bench]
                                                  [--threads N] [--filter REGEX]
Runs the Google Benchmark binary (JSON output), then the same shapes in PyTorch (same thread
count), and prints one row per workload: fragile ms, PyTorch ms, ratio (< 1: fragile faster).
The SqueezeNet rows run the real model from ../shared/models in PyTorch eager mode, built from
the same ONNX file by a small graph walker (F.conv2d, F.max_pool2d, ...).
"""
import argparse
import json
import os
import re
import subprocess
import time


import torch
import torch.nn.functional as F


def timeit(fn, min_time=0.5):
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_time and n >= 3:
            return dt / n * 1e3


def conv_case(n):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 32, 32, 32, generator=g)
    w = torch.randn(64, 32, 3, 3, generator=g) * 0.05
    r = torch.randn(n, 64, 32, 32, generator=g)
    v = torch.randn(n, 32, 32, 32, generator=g)
    return x, w, r, v


def sp(t):  # no-threshold softplus, as fragile computes it
    return torch.logaddexp(t, torch.zeros((), dtype=t.dtype))


def squeezenet_forward(path):
    """The ONNX SqueezeNet as a PyTorch eager function x -> logits (float32); `act` replaces
    Relu (None: relu). Only the ops SqueezeNet v1.0 uses."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load(path)
    init = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    nodes = [(n.op_type, list(n.input), list(n.output),
              {a.name: helper.get_attribute_value(a) for a in n.attribute}) for n in m.graph.node]
    score = {p.key: p.value for p in m.metadata_props}.get("score_output", m.graph.output[0].name)

    def run(x, act=None):
        v = dict(init)
        v[m.graph.input[0].name] = x
        for op, ins, outs, a in nodes:
            i = [v[n] for n in ins if n]
            if op == "Conv":
                p = a.get("pads", [0, 0, 0, 0])
                y = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a.get("strides", [1, 1]),
                             (p[0], p[1]))
            elif op == "Relu":
                y = torch.relu(i[0]) if act is None else act(i[0])
            elif op == "MaxPool":
                y = F.max_pool2d(i[0], a["kernel_shape"], a["strides"],
                                 ceil_mode=bool(a.get("ceil_mode", 0)))
            elif op == "Concat":
                y = torch.cat(i, a["axis"])
            elif op == "Dropout":
                y = i[0]
            elif op == "GlobalAveragePool":
                y = i[0].mean((2, 3), keepdim=True)
            elif op == "Flatten":
                y = i[0].flatten(1)
            elif op == "Softmax":
                y = torch.softmax(i[0], a.get("axis", 1))
            else:
                raise RuntimeError("compare_pytorch: SqueezeNet op " + op + " not handled")
            v[outs[0]] = y
            if outs[0] == score:
                return y
        return v[score]
    return run


def squeezenet_workloads(path):
    out = {}
    run = squeezenet_forward(path)
    sp10 = lambda t: sp(10.0 * t) / 10.0  # noqa: E731
    sp1 = sp
    for n in (1, 8):
        g = torch.Generator().manual_seed(n)
        x = torch.rand(n, 3, 227, 227, generator=g) * 240 - 110
        v = torch.rand(n, 3, 227, 227, generator=g) * 240 - 110

        def grad_only(x=x):
            xx = x.clone().requires_grad_()
            torch.autograd.grad(run(xx)[:, 285].sum(), xx)

        def hvp(x=x, v=v):
            xx = x.clone().requires_grad_()
            (gr,) = torch.autograd.grad(run(xx, sp10)[:, 285].sum(), xx, create_graph=True)
            torch.autograd.grad(gr, xx, v)

        def saliency(xx, act, create_graph):
            (gr,) = torch.autograd.grad(run(xx, act)[:, 285].sum(), xx, create_graph=create_graph)
            m = gr.abs().sum(1)
            return m / m.sum((1, 2), keepdim=True)

        x0 = x.clone().requires_grad_()
        s0 = saliency(x0, None, False).detach().flatten(1)
        mask = torch.zeros_like(s0)
        mask.scatter_(1, s0.topk(1000, 1).indices, 1.0)
        mask = mask.reshape(n, 227, 227)

        def attack_step(x=x, mask=mask):
            xx = x.clone().requires_grad_()
            loss = (saliency(xx, sp1, True) * mask).sum()
            torch.autograd.grad(loss, xx)

        out[f"squeezenet/input_grad/{n}"] = grad_only
        out[f"squeezenet/input_hvp/{n}"] = hvp
        out[f"squeezenet/attack_step/{n}"] = attack_step
    return out


def workloads():
    out = {}
    for n in (1, 8):
        x, w, r, v = conv_case(n)

        def fwd(x=x, w=w):
            with torch.no_grad():
                F.conv2d(x, w, padding=1)

        def bwd(x=x, w=w, r=r):
            xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
            torch.autograd.grad(F.conv2d(xx, ww, padding=1), (xx, ww), r)

        def dbl(x=x, w=w, r=r, v=v):
            xx = x.clone().requires_grad_()
            f = (sp(F.conv2d(xx, w, padding=1)) * r).sum()
            (g,) = torch.autograd.grad(f, xx, create_graph=True)
            torch.autograd.grad(g, xx, v)

        out[f"conv/forward/{n}"] = fwd
        out[f"conv/backward/{n}"] = bwd
        out[f"conv/double_backward/{n}"] = dbl

    g = torch.Generator().manual_seed(1)
    p = [torch.randn(16, 1, 3, 3, generator=g) * 0.3, torch.randn(16, generator=g) * 0.1,
         torch.randn(32, 16, 3, 3, generator=g) * 0.1, torch.randn(32, generator=g) * 0.1,
         torch.randn(64, 1568, generator=g) * 0.03, torch.randn(64, generator=g) * 0.1,
         torch.randn(10, 64, generator=g) * 0.1, torch.randn(10, generator=g) * 0.1]

    def net(x):
        h = F.max_pool2d(sp(F.conv2d(x, p[0], p[1], padding=1)), 2)
        h = F.max_pool2d(sp(F.conv2d(h, p[2], p[3], padding=1)), 2)
        h = sp(F.linear(h.flatten(1), p[4], p[5]))
        return F.linear(h, p[6], p[7])

    for n in (1, 32):
        x = torch.rand(n, 1, 28, 28, generator=g)
        v = torch.randn(n, 1, 28, 28, generator=g)

        def grad_only(x=x):
            xx = x.clone().requires_grad_()
            torch.autograd.grad(net(xx)[:, 3].sum(), xx)

        def hvp(x=x, v=v):
            xx = x.clone().requires_grad_()
            (gr,) = torch.autograd.grad(net(xx)[:, 3].sum(), xx, create_graph=True)
            torch.autograd.grad(gr, xx, v)

        out[f"cnn/input_grad/{n}"] = grad_only
        out[f"cnn/input_hvp/{n}"] = hvp
    squeeze = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                           "models", "squeezenet1.0.onnx")
    if os.path.exists(squeeze):
        out.update(squeezenet_workloads(squeeze))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fragile-bench", default="build/bench/fragile_bench")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--filter", default=".", help="only workloads whose name matches this regex")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    res = subprocess.run([args.fragile_bench, "--benchmark_format=json",
                          "--benchmark_min_time=0.5", "--benchmark_filter=" + args.filter],
                         check=True, capture_output=True, text=True, env=env)
    ours = {b["name"]: b["real_time"] for b in json.loads(res.stdout)["benchmarks"]}
    print(f"{'workload':28s} {'fragile ms':>11s} {'pytorch ms':>11s} {'ratio':>7s}")
    print(f"# {torch.__version__}, {args.threads} threads, CPU")
    for name, fn in workloads().items():
        if not re.search(args.filter, name):
            continue
        t = timeit(fn)
        f = ours.get(name)
        if f is None:
            print(f"{name:28s} {'-':>11s} {t:11.3f}")
            continue
        print(f"{name:28s} {f:11.3f} {t:11.3f} {f / t:7.2f}")


if __name__ == "__main__":
    main()
