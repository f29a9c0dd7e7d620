#!/usr/bin/env python3
"""Times fragile_bench's workloads in PyTorch on this machine and prints fragile/PyTorch ratios.

Usage: /usr/bin/python3 bench/compare_pytorch.py [--device cpu|cuda]
                                                  [--fragile-bench build/bench/fragile_bench]
                                                  [--threads N] [--filter REGEX]
Runs the Google Benchmark binary (JSON output), then the same shapes in PyTorch, and prints one
row per workload: fragile ms, PyTorch ms, ratio (< 1: fragile faster).

--device cpu (default): bench_engine.cpp and bench_squeezenet.cpp's workloads, PyTorch with the
same thread count. The SqueezeNet rows run the real model from ../shared/models in PyTorch eager
mode, built from the same ONNX file by a small graph walker (F.conv2d, F.max_pool2d, ...).

--device cuda: bench_cuda.cpp's workloads (the cuda/ benchmarks; needs fragile built with the
CUDA backend and a CUDA-enabled PyTorch): the fused element-wise kernels against their PyTorch
eager equivalents, SqueezeNet's input gradient, input HVP and top-k attack direction at
batch 1, 8 and 64, and the host cost per op (cuda/host/: chains of tiny softplus and conv
ops). Both sides are timed with CUDA events around each call, after a warm-up, with TF32 off
(fragile computes float32 without it). Also prints the fused kernels' bandwidth and the HVP /
gradient time ratios.
"""
import argparse
import json
import os
import re
import subprocess
import sys
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


def timeit_cuda(fn, calls=1, min_time=0.5):
    """Milliseconds per call on the GPU, as bench_cuda.cpp measures: one warm-up call, then CUDA
    events recorded around `calls` back-to-back calls, the end event waited for, repeated until
    min_time seconds of event time and at least 3 repetitions."""
    fn()  # warm-up: cuDNN algorithm choice, caching-allocator growth
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    total_ms, n = 0.0, 0
    while total_ms < min_time * 1e3 or n < 3:
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        total_ms += start.elapsed_time(end)
        n += 1
    return total_ms / (n * calls)


def conv_case(n):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 32, 32, 32, generator=g)
    w = torch.randn(64, 32, 3, 3, generator=g) * 0.05
    r = torch.randn(n, 64, 32, 32, generator=g)
    v = torch.randn(n, 32, 32, 32, generator=g)
    return x, w, r, v


def sp(t):  # no-threshold softplus, as fragile computes it
    return torch.logaddexp(t, torch.zeros((), dtype=t.dtype, device=t.device))


def squeezenet_forward(path, device="cpu"):
    """The ONNX SqueezeNet as a PyTorch eager function x -> logits (float32, parameters on
    `device`); `act` replaces Relu (None: relu). Only the ops SqueezeNet v1.0 uses."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load(path)
    init = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()).to(device)
            for t in m.graph.initializer}
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


def squeezenet_workloads(path, device="cpu", batches=(1, 8), prefix=""):
    """bench_squeezenet.cpp's workloads (bench_cuda.cpp's with device="cuda", prefix="cuda/"),
    keyed by benchmark name."""
    out = {}
    run = squeezenet_forward(path, device)
    sp10 = lambda t: sp(10.0 * t) / 10.0  # noqa: E731
    sp1 = sp
    for n in batches:
        g = torch.Generator().manual_seed(n)
        x = (torch.rand(n, 3, 227, 227, generator=g) * 240 - 110).to(device)
        v = (torch.rand(n, 3, 227, 227, generator=g) * 240 - 110).to(device)

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

        out[f"{prefix}squeezenet/input_grad/{n}"] = grad_only
        out[f"{prefix}squeezenet/input_hvp/{n}"] = hvp
        out[f"{prefix}squeezenet/attack_step/{n}"] = attack_step
    return out


# bench_cuda.cpp's fused-kernel workloads: 16M float32 elements; bytes are the minimum traffic
# of the math (every input read once, every output written once), the count fragile reports.
FUSED_NUMEL = 1 << 24
FUSED_CALLS = 10  # calls between one pair of events (bench_cuda.cpp's kCallsPerIteration)
FUSED_TENSORS_MOVED = {
    "cuda/softplus_fwd_bwd": 3,           # read x; write softplus(x), sigmoid(x)
    "cuda/softplus_double_backward": 5,   # read u, g, x; write grad_g, grad_x
    "cuda/ig_accumulate": 3,              # read acc, g; write acc
    "cuda/attack_step": 4,                # read x, d, x0; write x_new
    "cuda/sigmoid": 2,                    # read x; write sigmoid(x)
    "cuda/softmax": 2,                    # read x; write softmax(x)   (rows of 1024)
    "cuda/softmax_backward": 3,           # read g, y; write dx
}
SOFTMAX_ROW = 1024  # bench_cuda.cpp's kSoftmaxRow
CUDA_BATCHES = (1, 8, 64)


HOST_CHAIN = 64  # bench_engine.cpp's kChain and bench_cuda.cpp's kHostChain


def host_cost_workloads(device):
    """Ops too small for their math to matter: the host cost per op. 64 chained softplus on a
    one-element tensor (as a forward, and recorded then differentiated), and on CUDA 64 chained
    1x1 convolutions of a [1, 1, 4, 4] tensor. Keyed by fragile's benchmark names."""
    x = torch.full((1,), 0.5, device=device)

    def softplus_chain(y):
        for _ in range(HOST_CHAIN):
            y = F.softplus(y)
        return y

    def forward():
        return softplus_chain(x)

    leaf = x.clone().requires_grad_()

    def grad():
        return torch.autograd.grad(softplus_chain(leaf), leaf)

    if device == "cpu":
        return {"engine/op_overhead/forward": forward, "engine/op_overhead/grad": grad}
    xc = torch.full((1, 1, 4, 4), 0.5, device=device)
    w = torch.full((1, 1, 1, 1), 0.9, device=device)

    def conv_chain():
        y = xc
        for _ in range(HOST_CHAIN):
            y = F.conv2d(y, w)
        return y

    return {"cuda/host/softplus_op": forward, "cuda/host/conv_op": conv_chain}


def fused_workloads(device, numel=FUSED_NUMEL):
    """PyTorch eager equivalents of the fused kernels, keyed by benchmark name. beta = 1, as on
    the fragile side (so softplus and sigmoid are single PyTorch kernels; x in [-6, 6] never
    reaches F.softplus's threshold, so the math is fragile's)."""
    g = torch.Generator().manual_seed(7)
    x = (torch.rand(numel, generator=g) * 12 - 6).to(device)
    u = torch.randn(numel, generator=g).to(device)
    gr = torch.randn(numel, generator=g).to(device)
    acc = torch.zeros(numel, device=device)

    def softplus_fwd_bwd():
        return F.softplus(x), torch.sigmoid(x)

    def softplus_double_backward():
        # grad_g = u s, grad_x = u g beta s (1 - s), s = sigmoid(beta x), beta = 1
        s = torch.sigmoid(x)
        return u * s, u * gr * s * (1 - s)

    def ig_accumulate():
        # acc += w g as one in-place kernel (`acc += w * g` would be two)
        return acc.add_(gr, alpha=1.0 / 32)

    # The sign step with per-channel ball and box, as eager PyTorch writes it: 64 images of
    # 4 x 256 x 256 (bench_cuda.cpp's shape), alpha 0.5, eps 8, SqueezeNet's pixel box.
    shape = (64, 4, 256, 256)
    xs, ds, x0s = x.view(shape), u.view(shape), gr.view(shape)
    lo = torch.tensor([-104.0, -117, -123, -123], device=device).view(1, 4, 1, 1)
    hi = torch.tensor([151.0, 138, 132, 132], device=device).view(1, 4, 1, 1)

    def attack_step():
        stepped = xs + 0.5 * torch.sign(ds)
        return torch.max(torch.min(x0s + torch.clamp(stepped - x0s, -8, 8), hi), lo)

    def sigmoid():
        return torch.sigmoid(x)

    rows = (numel // SOFTMAX_ROW, SOFTMAX_ROW)
    y = torch.softmax(x.view(rows), 1)

    def softmax():
        return torch.softmax(x.view(rows), 1)

    def softmax_backward():
        # the kernel autograd runs for softmax's backward (no graph bookkeeping around it)
        return torch.ops.aten._softmax_backward_data(gr.view(rows), y, 1, y.dtype)

    return {"cuda/softplus_fwd_bwd": softplus_fwd_bwd,
            "cuda/softplus_double_backward": softplus_double_backward,
            "cuda/ig_accumulate": ig_accumulate,
            "cuda/attack_step": attack_step,
            "cuda/sigmoid": sigmoid,
            "cuda/softmax": softmax,
            "cuda/softmax_backward": softmax_backward}


# fragile rows timed against another row's PyTorch workload: the recorded (CUDA Graph)
# attack step is compared with PyTorch's eager step, the yardstick.
PYTORCH_SAME_AS = {f"cuda/squeezenet/attack_step_graph/{n}": f"cuda/squeezenet/attack_step/{n}"
                   for n in CUDA_BATCHES}


def cuda_workload_names():
    names = list(FUSED_TENSORS_MOVED)
    for what in ("input_grad", "input_hvp", "attack_step", "attack_step_graph"):
        names += [f"cuda/squeezenet/{what}/{n}" for n in CUDA_BATCHES]
    return names + ["cuda/host/softplus_op", "cuda/host/conv_op"]


def cuda_workloads(device="cuda", batches=CUDA_BATCHES, numel=FUSED_NUMEL):
    out = fused_workloads(device, numel)
    out.update(host_cost_workloads(device))
    path = squeezenet_path()
    if os.path.exists(path):
        out.update(squeezenet_workloads(path, device, batches, prefix="cuda/"))
    return out


def squeezenet_path():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                        "models", "squeezenet1.0.onnx")


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
    out.update(host_cost_workloads("cpu"))
    squeeze = squeezenet_path()
    if os.path.exists(squeeze):
        out.update(squeezenet_workloads(squeeze))
    return out


def exact_filter(names):
    """A --benchmark_filter matching exactly these benchmark names (with or without Google
    Benchmark's /manual_time suffix), written in the subset of regex syntax that every
    regex engine Google Benchmark may be built with understands."""
    for n in names:
        if not re.fullmatch(r"[A-Za-z0-9_/]+", n):
            raise ValueError("compare_pytorch: unexpected benchmark name " + n)
    return "^(" + "|".join(names) + ")(/manual_time)?$"


UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def fragile_results(stdout):
    """Google Benchmark JSON -> {name: run}, names without the /manual_time suffix, each run
    with "ms" (real time per iteration in ms) or "error" (the message of a skipped run)."""
    out = {}
    for b in json.loads(stdout)["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        name = re.sub(r"/manual_time$", "", b["name"])
        if b.get("error_occurred"):
            out[name] = {"error": b.get("error_message", "skipped")}
        else:
            out[name] = dict(b, ms=b["real_time"] * UNIT_MS[b.get("time_unit", "ns")])
    return out


def main_cpu(args):
    torch.set_num_threads(args.threads)
    todo = {name: fn for name, fn in workloads().items() if re.search(args.filter, name)}
    if not todo:
        sys.exit(f"compare_pytorch: no workload matches --filter {args.filter!r}")
    # Only these names: a CUDA build's binary also holds the cuda/ benchmarks.
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    res = subprocess.run([args.fragile_bench, "--benchmark_format=json",
                          "--benchmark_min_time=0.5", "--benchmark_filter=" + exact_filter(todo)],
                         check=True, capture_output=True, text=True, env=env)
    ours = {name: r["ms"] for name, r in fragile_results(res.stdout).items() if "ms" in r}
    print(f"{'workload':28s} {'fragile ms':>11s} {'pytorch ms':>11s} {'ratio':>7s}")
    print(f"# {torch.__version__}, {args.threads} threads, CPU")
    for name, fn in todo.items():
        t = timeit(fn)
        f = ours.get(name)
        if f is None:
            print(f"{name:28s} {'-':>11s} {t:11.3f}")
            continue
        print(f"{name:28s} {f:11.3f} {t:11.3f} {f / t:7.2f}")


def main_cuda(args):
    if not torch.cuda.is_available():
        sys.exit(f"compare_pytorch: --device cuda needs a GPU and a CUDA-enabled PyTorch, but "
                 f"torch {torch.__version__} reports torch.cuda.is_available() == False")
    names = [n for n in cuda_workload_names() if re.search(args.filter, n)]
    if not names:
        sys.exit(f"compare_pytorch: no cuda/ workload matches --filter {args.filter!r}")
    # fragile first, before this process touches the GPU; only its cuda/ benchmarks.
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    res = subprocess.run([args.fragile_bench, "--benchmark_format=json",
                          "--benchmark_min_time=0.5", "--benchmark_filter=" + exact_filter(names)],
                         capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"compare_pytorch: {args.fragile_bench} exited with status {res.returncode}:\n"
                 + res.stderr[-4000:])
    if args.fragile_json:
        with open(args.fragile_json, "w") as f:
            f.write(res.stdout)
    ours = fragile_results(res.stdout)
    failed = []

    # Same arithmetic as fragile: float32 without TF32 (fragile asks cuBLAS for default math and
    # cuDNN for FMA math).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name()
    label = next((r["label"] for r in ours.values() if r.get("label")), "-")
    print(f"{'workload':32s} {'fragile ms':>11s} {'pytorch ms':>11s} {'ratio':>7s}  device")
    print(f"# torch {torch.__version__} (CUDA {torch.version.cuda}), eager, CUDA events; "
          f"fragile sees: {label}")
    theirs = {}
    torch_fns = cuda_workloads()
    for alias, same in PYTORCH_SAME_AS.items():
        if same in torch_fns:
            torch_fns[alias] = torch_fns[same]
    for name in names:
        fn = torch_fns.get(name)
        if fn is None:
            continue
        same = PYTORCH_SAME_AS.get(name)
        if same in theirs:
            t = theirs[name] = theirs[same]  # timed once already
        else:
            try:
                t = theirs[name] = timeit_cuda(fn, FUSED_CALLS if name in FUSED_TENSORS_MOVED
                                               else 1)
            except Exception as e:  # one broken workload must not lose the others' rows
                failed.append(name)
                r = ours.get(name, {})
                ms = f"{r['ms']:11.3f}" if "ms" in r else f"{'-':>11s}"
                print(f"{name:32s} {ms} {'-':>11s} {'-':>7s}  {device}  (pytorch: "
                      f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
                continue
        r = ours.get(name, {"error": "not in fragile's output"})
        if "error" in r:
            print(f"{name:32s} {'-':>11s} {t:11.3f} {'-':>7s}  {device}  (fragile: {r['error']})")
        else:
            print(f"{name:32s} {r['ms']:11.3f} {t:11.3f} {r['ms'] / t:7.2f}  {device}")

    fused = [n for n in FUSED_TENSORS_MOVED if n in theirs]
    if fused:
        print()
        print("# fused kernels: effective GB/s = minimum bytes moved / time (1e9 B/s); % of the "
              "device-to-device copy bandwidth fragile measured (read + write bytes)")
        print(f"{'workload':32s} {'fragile GB/s':>13s} {'% of copy':>10s} "
              f"{'pytorch GB/s':>13s} {'% of copy':>10s}")
        for name in fused:
            gb = FUSED_TENSORS_MOVED[name] * FUSED_NUMEL * 4 / 1e9
            r = ours.get(name, {})
            copy = r.get("copy_GBps")
            ours_gbps = f"{gb / (r['ms'] * 1e-3):13.1f}" if "ms" in r else f"{'-':>13s}"
            ours_pct = f"{r['pct_of_copy']:10.1f}" if "pct_of_copy" in r else f"{'-':>10s}"
            their_gbps = gb / (theirs[name] * 1e-3)
            their_pct = f"{100 * their_gbps / copy:10.1f}" if copy else f"{'-':>10s}"
            print(f"{name:32s} {ours_gbps} {ours_pct} {their_gbps:13.1f} {their_pct}")

    hvp_rows = []
    for n in CUDA_BATCHES:
        g, h = f"cuda/squeezenet/input_grad/{n}", f"cuda/squeezenet/input_hvp/{n}"
        if g in theirs and h in theirs:
            f = (f"{ours[h]['ms'] / ours[g]['ms']:8.2f}"
                 if "ms" in ours.get(g, {}) and "ms" in ours.get(h, {}) else f"{'-':>8s}")
            hvp_rows.append(f"{n:5d} {f} {theirs[h] / theirs[g]:8.2f}")
    if hvp_rows:
        print()
        print("# SqueezeNet input HVP time / input gradient time")
        print(f"{'batch':>5s} {'fragile':>8s} {'pytorch':>8s}")
        print("\n".join(hvp_rows))
    if failed:
        sys.exit(f"compare_pytorch: the PyTorch side of {len(failed)} workload(s) failed: "
                 + ", ".join(failed))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cpu: the CPU workloads (default); cuda: bench_cuda.cpp's GPU workloads")
    ap.add_argument("--fragile-bench", default="build/bench/fragile_bench")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--filter", default=".", help="only workloads whose name matches this regex")
    ap.add_argument("--fragile-json", metavar="PATH",
                    help="--device cuda: also save fragile_bench's JSON output here")
    args = ap.parse_args()
    if args.device == "cuda":
        main_cuda(args)
    else:
        main_cpu(args)


if __name__ == "__main__":
    main()
