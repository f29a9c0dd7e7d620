#!/usr/bin/env python3
"""Times bench_engine's workloads in PyTorch on this machine and prints fragile/PyTorch ratios.

Usage: /usr/bin/python3 bench/compare_pytorch.py [--fragile-bench build/bench/fragile_bench]
Runs the Google Benchmark binary (JSON output), then the same shapes in PyTorch (same thread
count), and prints one row per workload: fragile ms, PyTorch ms, ratio (< 1: fragile faster).
"""
import argparse
import json
import os
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
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fragile-bench", default="build/bench/fragile_bench")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    res = subprocess.run([args.fragile_bench, "--benchmark_format=json",
                          "--benchmark_min_time=0.5"], check=True, capture_output=True,
                         text=True, env=env)
    ours = {b["name"]: b["real_time"] for b in json.loads(res.stdout)["benchmarks"]}
    print(f"{'workload':28s} {'fragile ms':>11s} {'pytorch ms':>11s} {'ratio':>7s}")
    print(f"# {torch.__version__}, {args.threads} threads, CPU")
    for name, fn in workloads().items():
        t = timeit(fn)
        f = ours.get(name)
        if f is None:
            print(f"{name:28s} {'-':>11s} {t:11.3f}")
            continue
        print(f"{name:28s} {f:11.3f} {t:11.3f} {f / t:7.2f}")


if __name__ == "__main__":
    main()
