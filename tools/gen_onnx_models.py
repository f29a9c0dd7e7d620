#!/usr/bin/python3
"""ONNX test models and PyTorch reference values for tests/nn (generated, never committed).

Writes into --out (e.g. build/reference/nn):
  manifest.json       what the C++ tests read (paths relative to --out, except the shared model)
  models/*.onnx       small op models (onnx.helper), an Inception v1 in the ONNX model zoo's
                      layout (opset 7, LRN, asymmetric pool pads, typed float_data initializers),
                      torchvision GoogLeNet (opset 13, BatchNorm kept) and Inception v3 (opset 17,
                      BatchNorm fused by the exporter) with seeded weights, a model with an
                      unknown op, and one with external data
  *.npy               inputs, directions and reference outputs (float64 unless noted)

References are computed in float64 by PyTorch: for torchvision models by the torchvision module
itself, for the rest by the small ONNX interpreter below, written from the ONNX operator spec on
torch.nn.functional (independent of the C++ runtime). Gradients and HVPs are of one class score
z[k] with respect to the input, with every ReLU replaced by a stable softplus_beta (beta = 10).
The float64 runs record their max-pool winners (Winners), so PyTorch's float32 error can be
measured both on its own winners and on float64's.

Re-running with an unchanged script and inputs is a no-op (a stamp file holds a hash).

Usage: /usr/bin/python3 tools/gen_onnx_models.py --out build/reference/nn --shared ../shared
"""
import argparse
import contextlib
import hashlib
import json
import math
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

import onnx
from onnx import TensorProto, helper, numpy_helper

F64 = torch.float64
BETA = 10.0


# ------------------------------------------------------------------------------------------------
# A reference ONNX interpreter on PyTorch (float64), following the operator spec.


def stable_softplus(x, beta):
    bx = beta * x
    return (torch.clamp(bx, min=0) + torch.log1p(torch.exp(-bx.abs()))) / beta


def attr_dict(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def window_geometry(x, attrs, kernel):
    """strides, dilations, pads as (begin[2], end[2]) per the ONNX spec (incl. auto_pad)."""
    strides = list(attrs.get("strides", [1, 1]))
    dil = list(attrs.get("dilations", [1, 1]))
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    begin, end = pads[:2], pads[2:]
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto == "VALID":
        begin, end = [0, 0], [0, 0]
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        for i in range(2):
            n = x.shape[2 + i]
            out = -(-n // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - n, 0)
            small, big = total // 2, total - total // 2
            begin[i], end[i] = (small, big) if auto == "SAME_UPPER" else (big, small)
    return strides, dil, begin, end


class Winners:
    """Max-pool winners, recorded in one run and replayed in another (as fragile's
    core/pool_decisions.h): max pooling is not differentiable at ties, and near one float32
    and float64 pick different winners, so a float32 run is compared with float64 on the same
    winners. `take` pools windows laid out along dim 2 of `cols`."""

    def __init__(self):
        self.mode, self.taken, self.next = None, [], 0

    @contextlib.contextmanager
    def scope(self, mode, taken=None):
        self.mode, self.taken, self.next = mode, (taken if taken is not None else []), 0
        try:
            yield self.taken
        finally:
            self.mode = None
        assert mode != "replay" or self.next == len(self.taken), "winners left unreplayed"

    def take(self, cols):
        if self.mode == "replay":
            idx = self.taken[self.next]
            self.next += 1
            return cols.gather(2, idx.unsqueeze(2)).squeeze(2)
        values, idx = cols.max(dim=2)
        if self.mode == "record":
            self.taken.append(idx)
        return values


WINNERS = Winners()


def functional_max_pool(input, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, return_indices=False):
    """F.max_pool2d through WINNERS (windows of the -inf padded input). torchvision calls it
    from nn.MaxPool2d and directly (Inception v3's InceptionB and InceptionD)."""
    pair = torch.nn.modules.utils._pair
    assert not return_indices and pair(dilation) == (1, 1)
    k, p = pair(kernel_size), pair(padding)
    s = pair(stride) if stride not in (None, []) else k
    return pool(input, list(k), list(s), list(p), list(p), ceil_mode, "max", False)


def pool(x, kernel, strides, begin, end, ceil_mode, mode, count_include_pad):
    """Max / average pooling by explicit windows (unfold), output sizes as PyTorch/ONNX: with
    ceil_mode a last window must start inside the input or the begin padding."""
    n, c, h, w = x.shape
    sizes, extra = [], []
    for i, ext in enumerate((h, w)):
        span = ext + begin[i] + end[i] - kernel[i]
        o = (-(-span // strides[i]) if ceil_mode else span // strides[i]) + 1
        if ceil_mode and (o - 1) * strides[i] >= ext + begin[i]:
            o -= 1
        sizes.append(o)
        extra.append(max(0, (o - 1) * strides[i] + kernel[i] - (ext + begin[i] + end[i])))
    fill = -math.inf if mode == "max" else 0.0
    padspec = (begin[1], end[1] + extra[1], begin[0], end[0] + extra[0])
    xp = F.pad(x, padspec, value=fill)
    cols = F.unfold(xp, kernel, stride=strides).reshape(n, c, kernel[0] * kernel[1], *sizes)
    if mode == "max":
        return WINNERS.take(cols)
    ones = torch.ones(1, 1, h, w, dtype=x.dtype)
    if count_include_pad:  # padding counts, the ceil-mode overhang does not
        ones = F.pad(ones, (begin[1], end[1], begin[0], end[0]), value=1.0)
        mask = F.pad(ones, (0, extra[1], 0, extra[0]))
    else:
        mask = F.pad(ones, padspec)
    denom = F.unfold(mask, kernel, stride=strides).reshape(1, 1, -1, *sizes).sum(dim=2)
    return cols.sum(dim=2) / denom


def lrn(x, size, alpha, beta, bias):
    """ONNX LRN: square sum over channels [c - floor((size-1)/2), c + ceil((size-1)/2)]."""
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    sq = F.pad(x * x, (0, 0, 0, 0, lo, hi))
    c = x.shape[1]
    s = sum(sq[:, i:i + c] for i in range(size))
    return x / (bias + alpha / size * s) ** beta


class TorchOnnx:
    """Runs an onnx.ModelProto with torch ops in float64 (or `dtype`). `softplus_beta` replaces
    Relu."""

    def __init__(self, model, softplus_beta=None, dtype=np.float64):
        self.model = model
        self.beta = softplus_beta
        self.dtype = dtype
        self.opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        self.init = {}
        for t in model.graph.initializer:
            a = numpy_helper.to_array(t)
            self.init[t.name] = torch.from_numpy(a.astype(dtype) if a.dtype.kind == "f"
                                                 else a.astype(np.int64))

    def run(self, feeds, outputs=None):
        v = dict(self.init)
        v.update(feeds)
        for node in self.model.graph.node:
            ins = [v[i] if i else None for i in node.input]
            outs = self.op(node, ins, attr_dict(node))
            for name, val in zip(node.output, outs):
                if name:
                    v[name] = val
        names = outputs or [o.name for o in self.model.graph.output]
        return {k: v[k] for k in names}

    def op(self, node, ins, a):
        t, opset = node.op_type, self.opset
        x = ins[0] if ins else None
        if t == "Conv":
            w, b = ins[1], ins[2] if len(ins) > 2 else None
            k = list(a.get("kernel_shape", w.shape[2:]))
            s, d, pb, pe = window_geometry(x, a, k)
            xp = F.pad(x, (pb[1], pe[1], pb[0], pe[0]))
            return [F.conv2d(xp, w, b, stride=s, dilation=d, groups=a.get("group", 1))]
        if t in ("MaxPool", "AveragePool"):
            k = list(a["kernel_shape"])
            s, _, pb, pe = window_geometry(x, a, k)
            mode = "max" if t == "MaxPool" else "avg"
            return [pool(x, k, s, pb, pe, bool(a.get("ceil_mode", 0)), mode,
                         bool(a.get("count_include_pad", 0)))]
        if t == "GlobalAveragePool":
            return [x.mean(dim=(2, 3), keepdim=True)]
        if t == "GlobalMaxPool":
            return [x.amax(dim=(2, 3), keepdim=True)]
        if t == "Relu":
            return [stable_softplus(x, self.beta) if self.beta else torch.relu(x)]
        if t == "Softplus":
            return [stable_softplus(x, a.get("beta", 1.0))]
        if t == "Sigmoid":
            return [torch.sigmoid(x)]
        if t in ("Identity", "Dropout"):
            return [x, torch.ones_like(x)] if t == "Dropout" else [x]
        if t == "Add":
            return [ins[0] + ins[1]]
        if t == "Sub":
            return [ins[0] - ins[1]]
        if t == "Mul":
            return [ins[0] * ins[1]]
        if t == "Div":
            if ins[0].dtype == torch.int64:
                return [torch.div(ins[0], ins[1], rounding_mode="trunc")]
            return [ins[0] / ins[1]]
        if t == "Concat":
            return [torch.cat(ins, dim=a.get("axis", 1))]
        if t == "Flatten":
            ax = a.get("axis", 1)
            ax = ax + x.dim() if ax < 0 else ax
            return [x.reshape(int(np.prod(x.shape[:ax], dtype=np.int64)), -1)]
        if t == "Reshape":
            shape = [int(s) for s in (ins[1] if opset >= 5 else a["shape"])]
            shape = [x.shape[i] if s == 0 and not a.get("allowzero", 0) else s
                     for i, s in enumerate(shape)]
            return [x.reshape(shape)]
        if t == "Transpose":
            return [x.permute(*a.get("perm", list(reversed(range(x.dim())))))]
        if t == "Gemm":
            A, B = ins[0], ins[1]
            A = A.t() if a.get("transA", 0) else A
            B = B.t() if a.get("transB", 0) else B
            y = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                y = y + a.get("beta", 1.0) * ins[2]
            return [y]
        if t == "MatMul":
            return [torch.matmul(ins[0], ins[1])]
        if t == "BatchNormalization":
            sc, bi, mean, var = ins[1:5]
            shp = (1, -1) + (1,) * (x.dim() - 2)
            eps = a.get("epsilon", 1e-5)
            return [(x - mean.reshape(shp)) / torch.sqrt(var.reshape(shp) + eps) * sc.reshape(shp)
                    + bi.reshape(shp)]
        if t == "LRN":
            return [lrn(x, a["size"], a.get("alpha", 1e-4), a.get("beta", 0.75), a.get("bias", 1.0))]
        if t == "Softmax":
            if opset >= 13:
                return [torch.softmax(x, dim=a.get("axis", -1))]
            ax = a.get("axis", 1) % x.dim()
            flat = x.reshape(int(np.prod(x.shape[:ax], dtype=np.int64)), -1)
            return [torch.softmax(flat, dim=1).reshape(x.shape)]
        if t == "Pad":
            if opset >= 11:
                pads = [int(p) for p in ins[1]]
                value = float(ins[2]) if len(ins) > 2 and ins[2] is not None else 0.0
            else:
                pads, value = list(a["pads"]), a.get("value", 0.0)
            r = x.dim()
            spec = []
            for i in reversed(range(r)):
                spec += [pads[i], pads[i + r]]
            return [F.pad(x, spec, value=value)]  # negative pads crop in torch too
        if t == "Clip":
            if opset >= 11:
                lo = float(ins[1]) if len(ins) > 1 and ins[1] is not None else -math.inf
                hi = float(ins[2]) if len(ins) > 2 and ins[2] is not None else math.inf
            else:
                lo, hi = a.get("min", -math.inf), a.get("max", math.inf)
            return [torch.clamp(x, lo, hi)]
        if t == "Constant":
            arr = numpy_helper.to_array(a["value"])
            return [torch.from_numpy(arr.astype(self.dtype) if arr.dtype.kind == "f"
                                     else arr.astype(np.int64))]
        if t == "Shape":
            return [torch.tensor(list(x.shape), dtype=torch.int64)]
        if t == "Gather":
            return [torch.index_select(x, a.get("axis", 0), ins[1].reshape(-1)).reshape(
                list(x.shape[:a.get("axis", 0)]) + list(ins[1].shape)
                + list(x.shape[a.get("axis", 0) + 1:]))]
        if t == "Unsqueeze":
            axes = [int(i) for i in ins[1]] if opset >= 13 else list(a["axes"])
            for ax in sorted(axes):
                x = x.unsqueeze(ax)
            return [x]
        raise NotImplementedError(t)


# ------------------------------------------------------------------------------------------------
# helpers


def rng(name):
    return np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))


def save(out, rel, arr):
    path = os.path.join(out, rel)
    np.save(path, np.ascontiguousarray(arr))
    return rel


def grad_and_hvp(score_fn, x, v, cls):
    """Gradient and H v of z[:, cls].sum() w.r.t. x (float64), by double backward."""
    x = x.clone().requires_grad_(True)
    z = score_fn(x)
    s = z.reshape(z.shape[0], -1)[:, cls].sum()
    (g,) = torch.autograd.grad(s, x, create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), x)
    return z.detach(), g.detach(), hv.detach()


def rel_err(a, ref):
    return float((a.double() - ref).abs().max() / ref.abs().max())


def float32_accuracy(e, score_fn32, x, v, cls, grad64, hv64, winners64):
    """How far PyTorch itself lands from the float64 truth when it runs in float32: on its own
    max-pool winners (torch_f32_*_err) and on float64's (torch_f32_same_winners_*_err). Near a
    max-pool tie float32 rounding picks the winner, and the other winner puts the gradient on
    another piece of the function; on the same winners what is left is float32 arithmetic,
    which for a softplus(10) network with large pre-activations can itself approach 1e-3. The
    tests require fragile's float32, on float64's winners, within 1e-3 of the truth or within
    3x of PyTorch's float32 on the same winners."""
    def run(tag):
        if hv64 is not None:
            _, g32, hv32 = grad_and_hvp(score_fn32, x.float(), v.float(), cls)
            e[f"torch_f32{tag}_hvp_err"] = rel_err(hv32, hv64)
        else:
            xg = x.float().clone().requires_grad_(True)
            z = score_fn32(xg)
            (g32,) = torch.autograd.grad(z.reshape(z.shape[0], -1)[:, cls].sum(), xg)
        e[f"torch_f32{tag}_grad_err"] = rel_err(g32, grad64)
    run("")
    with WINNERS.scope("replay", winners64):
        run("_same_winners")


@contextlib.contextmanager
def torch_max_pools_through_winners():
    """Every F.max_pool2d (nn.MaxPool2d's too) through WINNERS, so torchvision models' winners
    can be recorded and replayed."""
    orig = F.max_pool2d
    F.max_pool2d = functional_max_pool
    try:
        yield
    finally:
        F.max_pool2d = orig


@contextlib.contextmanager
def relu_as_softplus(beta):
    """torchvision's BasicConv2d calls F.relu; route it to a stable softplus_beta."""
    orig = F.relu
    F.relu = lambda x, inplace=False: stable_softplus(x, beta)
    try:
        yield
    finally:
        F.relu = orig


def he_init(model, seed):
    """He-normal conv/linear weights and non-trivial BatchNorm statistics, so activations keep
    their scale through deep random networks (the logits are then O(1), not vanishing)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        elif isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))


def make_model(nodes, inputs, outputs, inits, opset, name, metadata=None, raw=True):
    init_protos = []
    for k, arr in inits.items():
        if raw or arr.dtype != np.float32:
            init_protos.append(numpy_helper.from_array(arr, k))
        else:  # typed field (float_data), as older exporters write
            init_protos.append(helper.make_tensor(k, TensorProto.FLOAT, arr.shape,
                                                  arr.reshape(-1).tolist()))
    graph = helper.make_graph(nodes, name, inputs, outputs, init_protos)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="fragile-gen_onnx_models")
    m.ir_version = 7 if opset >= 12 else (4 if opset >= 9 else 3)
    for k, v in (metadata or {}).items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    return m


def fvi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


# ------------------------------------------------------------------------------------------------
# small op models: y = f(x); reference y and d sum(y * w) / dx


def op_cases():
    cases = []

    def case(name, opset, nodes, xshape, inits=None, yname="y", note=""):
        cases.append(dict(name=name, opset=opset, nodes=nodes, xshape=xshape,
                          inits=inits or {}, yname=yname, note=note))

    def rnd(name, *shape, scale=1.0):
        return (scale * rng(name).standard_normal(shape)).astype(np.float32)

    N = helper.make_node
    case("conv_asym_pads_dilation_group", 13,
         [N("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[0, 1, 2, 1], strides=[2, 1],
            dilations=[1, 2], group=2)],
         [2, 4, 9, 10], {"w": rnd("cw", 6, 2, 3, 3), "b": rnd("cb", 6)})
    case("conv_same_upper", 11,
         [N("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])],
         [1, 3, 8, 7], {"w": rnd("cw2", 4, 3, 4, 4)})
    case("conv_symmetric_bias", 7,
         [N("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], kernel_shape=[3, 3])],
         [2, 3, 6, 6], {"w": rnd("cw3", 5, 3, 3, 3), "b": rnd("cb3", 5)})
    case("maxpool_ceil_pads", 12,
         [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
            ceil_mode=1)], [1, 2, 10, 11])
    case("maxpool_ceil_partial", 10,
         [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
         [1, 2, 12, 9])
    case("maxpool_asym_pads", 7,
         [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])],
         [1, 3, 8, 8])
    case("avgpool_exclude_pad", 11,
         [N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
            count_include_pad=0)], [2, 2, 7, 8])
    case("avgpool_include_pad", 11,
         [N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
            count_include_pad=1)], [1, 2, 5, 6])
    case("avgpool_include_pad_asym", 11,
         [N("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 2, 1],
            count_include_pad=1)], [1, 2, 7, 6])
    case("avgpool_exclude_pad_asym", 7,
         [N("AveragePool", ["x"], ["y"], kernel_shape=[2, 3], strides=[1, 2], pads=[0, 1, 1, 2])],
         [1, 3, 6, 7])
    case("global_pools", 13,
         [N("GlobalAveragePool", ["x"], ["a"]), N("GlobalMaxPool", ["x"], ["m"]),
          N("Concat", ["a", "m"], ["y"], axis=1)], [2, 3, 4, 5])
    case("gemm_trans_alpha_beta", 13,
         [N("Gemm", ["x", "B", "C"], ["y"], transA=1, transB=1, alpha=0.5, beta=2.0)],
         [5, 3], {"B": rnd("gB", 4, 5), "C": rnd("gC", 4)})
    case("gemm_plain_matrix_c", 7,
         [N("Gemm", ["x", "B", "C"], ["y"])], [3, 5], {"B": rnd("gB2", 5, 4), "C": rnd("gC2", 3, 4)})
    case("matmul_batched", 13,
         [N("MatMul", ["x", "W"], ["y"])], [2, 3, 4, 5], {"W": rnd("mW", 5, 6)})
    case("matmul_broadcast", 13,
         [N("MatMul", ["x", "W"], ["y"])], [2, 1, 4, 5], {"W": rnd("mW2", 3, 5, 6)})
    case("softmax_opset11_axis1", 11, [N("Softmax", ["x"], ["y"], axis=1)], [2, 3, 4])
    case("softmax_opset13_axis1", 13, [N("Softmax", ["x"], ["y"], axis=1)], [2, 3, 4])
    case("pad_opset11_negative", 11,
         [N("Pad", ["x", "pads", "cv"], ["y"], mode="constant")], [1, 2, 5, 6],
         {"pads": np.array([0, 0, 1, -1, 0, 1, 2, 1], np.int64), "cv": np.array(0.5, np.float32)})
    case("pad_opset2_attr", 9,
         [N("Pad", ["x"], ["y"], pads=[0, 0, 2, 1, 0, 0, 0, 3], value=-1.0)], [1, 2, 3, 4])
    case("clip_opset11_inputs", 11,
         [N("Clip", ["x", "lo", "hi"], ["y"])], [2, 3, 4],
         {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)})
    case("clip_opset6_attrs", 9, [N("Clip", ["x"], ["y"], min=-0.3, max=0.4)], [2, 3, 4])
    case("elementwise_mix", 13,
         [N("Sigmoid", ["x"], ["s"]), N("Mul", ["s", "c"], ["sc"]), N("Softplus", ["x"], ["sp"]),
          N("Add", ["sc", "sp"], ["t"]), N("Div", ["x", "d"], ["xd"]), N("Sub", ["t", "xd"], ["y"])],
         [2, 3, 4], {"c": rnd("ec", 3, 1), "d": np.array([1.5, 2.0, -3.0, 4.0], np.float32)})
    case("flatten_axis2", 13, [N("Flatten", ["x"], ["y"], axis=2)], [2, 3, 4, 5])
    case("reshape_zero_minus1", 13, [N("Reshape", ["x", "s"], ["y"])], [2, 3, 4, 5],
         {"s": np.array([0, -1, 5], np.int64)})
    case("transpose_identity_dropout", 12,
         [N("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]), N("Identity", ["t"], ["i"]),
          N("Dropout", ["i", "ratio"], ["y"])], [2, 3, 4, 5],
         {"ratio": np.array(0.3, np.float32)})
    case("constant_node", 12,
         [N("Constant", [], ["k"], value=numpy_helper.from_array(rnd("ck", 1, 3, 1, 1), "k")),
          N("Mul", ["x", "k"], ["y"])], [2, 3, 2, 2])
    case("shape_gather_reshape", 13,
         [N("Shape", ["x"], ["sh"]), N("Gather", ["sh", "zero"], ["n"], axis=0),
          N("Unsqueeze", ["n", "ax"], ["n1"]), N("Concat", ["n1", "m1"], ["target"], axis=0),
          N("Reshape", ["x", "target"], ["y"])], [3, 2, 4, 4],
         {"zero": np.array(0, np.int64), "ax": np.array([0], np.int64),
          "m1": np.array([-1], np.int64)})
    case("lrn_size5", 13,
         [N("LRN", ["x"], ["y"], size=5, alpha=0.01, beta=0.75, bias=2.0)], [2, 7, 3, 3])
    case("lrn_size3_defaults", 7, [N("LRN", ["x"], ["y"], size=3)], [1, 4, 3, 3])
    c = 4
    case("batchnorm_opset9", 9,
         [N("BatchNormalization", ["x", "g", "bb", "m", "v"], ["y"], epsilon=1e-3)], [2, c, 3, 3],
         {"g": (0.5 + rng("g").random(c)).astype(np.float32), "bb": rnd("bb", c),
          "m": rnd("m", c), "v": (0.5 + rng("v").random(c)).astype(np.float32)})
    case("bn_fold", 15,
         [N("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
          N("BatchNormalization", ["c1", "g1", "be1", "m1", "v1"], ["n1"]),
          N("Relu", ["n1"], ["r1"]),
          N("Conv", ["r1", "w2"], ["c2"]),
          N("BatchNormalization", ["c2", "g2", "be2", "m2", "v2"], ["n2"], epsilon=1e-3),
          N("Concat", ["n2", "x"], ["cat"], axis=1),
          N("BatchNormalization", ["cat", "g3", "be3", "m3", "v3"], ["y"])],
         [1, 3, 6, 6],
         {"w1": rnd("w1", 4, 3, 3, 3), "b1": rnd("b1", 4), "w2": rnd("w2", 5, 4, 1, 1),
          **{f"{p}{i}": arr for i, ch in ((1, 4), (2, 5), (3, 8)) for p, arr in (
              ("g", (0.5 + rng(f"g{i}").random(ch)).astype(np.float32)),
              ("be", rnd(f"be{i}", ch)), ("m", rnd(f"m{i}", ch)),
              ("v", (0.5 + rng(f"v{i}").random(ch)).astype(np.float32)))}},
         note="fold_batchnorm folds the first two BatchNorms, not the one after Concat")
    return cases


def build_op_cases(out):
    entries = []
    for cs in op_cases():
        name = cs["name"]
        model = make_model(cs["nodes"], [fvi("x", cs["xshape"])], [fvi(cs["yname"], None)],
                           cs["inits"], cs["opset"], name)
        rel = f"models/op_{name}.onnx"
        onnx.save(model, os.path.join(out, rel))
        g = rng("x-" + name)
        x = g.standard_normal(cs["xshape"]).astype(np.float32)
        interp = TorchOnnx(model)
        xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
        y = interp.run({"x": xt})[cs["yname"]]
        w = torch.from_numpy(g.standard_normal(tuple(y.shape)))
        (gx,) = torch.autograd.grad((y * w).sum(), xt)
        entries.append(dict(name=name, model=rel, input=save(out, f"op_{name}_x.npy", x),
                            output=save(out, f"op_{name}_y.npy", y.detach().numpy()),
                            weight=save(out, f"op_{name}_w.npy", w.numpy()),
                            grad=save(out, f"op_{name}_grad.npy", gx.numpy()),
                            note=cs["note"]))
    # The same conv model with its initializers in an external data file.
    base = onnx.load(os.path.join(out, "models/op_conv_asym_pads_dilation_group.onnx"))
    onnx.save_model(base, os.path.join(out, "models/external.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="external.onnx.data",
                    size_threshold=0)
    return entries


# ------------------------------------------------------------------------------------------------
# Inception v1 in the ONNX model zoo's layout (converted from Caffe's bvlc_googlenet)

ZOO_MODULES = [  # name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj
    ("inception_3a", 64, 96, 128, 16, 32, 32), ("inception_3b", 128, 128, 192, 32, 96, 64),
    "pool3",
    ("inception_4a", 192, 96, 208, 16, 48, 64), ("inception_4b", 160, 112, 224, 24, 64, 64),
    ("inception_4c", 128, 128, 256, 24, 64, 64), ("inception_4d", 112, 144, 288, 32, 64, 64),
    ("inception_4e", 256, 160, 320, 32, 128, 128),
    "pool4",
    ("inception_5a", 256, 160, 320, 32, 128, 128), ("inception_5b", 384, 192, 384, 48, 128, 128),
]


def build_zoo_inception_v1(path):
    g = torch.Generator().manual_seed(1)
    nodes, inits = [], {}
    N = helper.make_node

    def conv(name, x, cin, cout, k, pad=0, stride=1):
        w = (torch.randn(cout, cin, k, k, generator=g) * math.sqrt(2.0 / (cin * k * k))).numpy()
        inits[f"{name}_w_0"] = w.astype(np.float32)
        inits[f"{name}_b_0"] = (0.05 * torch.randn(cout, generator=g)).numpy().astype(np.float32)
        nodes.append(N("Conv", [x, f"{name}_w_0", f"{name}_b_0"], [f"{name}_1"], name=name,
                       kernel_shape=[k, k], pads=[pad] * 4, strides=[stride, stride]))
        nodes.append(N("Relu", [f"{name}_1"], [f"{name}_2"], name=f"{name}_relu"))
        return f"{name}_2"

    def maxpool(name, x, k, s, pads):
        nodes.append(N("MaxPool", [x], [f"{name}_1"], name=name, kernel_shape=[k, k],
                       strides=[s, s], pads=pads))
        return f"{name}_1"

    def norm(name, x):
        nodes.append(N("LRN", [x], [f"{name}_1"], name=name, size=5, alpha=1e-4, beta=0.75,
                       bias=1.0))
        return f"{name}_1"

    x = conv("conv1/7x7_s2", "data_0", 3, 64, 7, pad=3, stride=2)
    x = maxpool("pool1/3x3_s2", x, 3, 2, [0, 0, 1, 1])
    x = norm("pool1/norm1", x)
    x = conv("conv2/3x3_reduce", x, 64, 64, 1)
    x = conv("conv2/3x3", x, 64, 192, 3, pad=1)
    x = norm("conv2/norm2", x)
    x = maxpool("pool2/3x3_s2", x, 3, 2, [0, 0, 1, 1])
    cin = 192
    for m in ZOO_MODULES:
        if isinstance(m, str):
            x = maxpool(f"{m}/3x3_s2", x, 3, 2, [0, 0, 1, 1])
            continue
        name, c1, c3r, c3, c5r, c5, cp = m
        b1 = conv(f"{name}/1x1", x, cin, c1, 1)
        b3 = conv(f"{name}/3x3", conv(f"{name}/3x3_reduce", x, cin, c3r, 1), c3r, c3, 3, pad=1)
        b5 = conv(f"{name}/5x5", conv(f"{name}/5x5_reduce", x, cin, c5r, 1), c5r, c5, 5, pad=2)
        bp = conv(f"{name}/pool_proj", maxpool(f"{name}/pool", x, 3, 1, [1, 1, 1, 1]), cin, cp, 1)
        nodes.append(N("Concat", [b1, b3, b5, bp], [f"{name}/output_1"], name=f"{name}/output",
                       axis=1))
        x, cin = f"{name}/output_1", c1 + c3 + c5 + cp
    nodes.append(N("AveragePool", [x], ["pool5/7x7_s1_1"], name="pool5/7x7_s1",
                   kernel_shape=[7, 7], strides=[1, 1], pads=[0, 0, 0, 0]))
    nodes.append(N("Dropout", ["pool5/7x7_s1_1"], ["pool5/drop_7x7_s1_1"], name="pool5/drop_7x7_s1",
                   ratio=0.4))
    inits["OC2_DUMMY_1"] = np.array([1, 1024], np.int64)
    nodes.append(N("Reshape", ["pool5/drop_7x7_s1_1", "OC2_DUMMY_1"], ["OC2_DUMMY_0"],
                   name="OC2_DUMMY_0"))
    inits["loss3/classifier_w_0"] = (torch.randn(1000, 1024, generator=g) /
                                     math.sqrt(1024)).numpy().astype(np.float32)
    inits["loss3/classifier_b_0"] = np.zeros(1000, np.float32)
    nodes.append(N("Gemm", ["OC2_DUMMY_0", "loss3/classifier_w_0", "loss3/classifier_b_0"],
                   ["loss3/classifier_1"], name="loss3/classifier", transB=1))
    nodes.append(N("Softmax", ["loss3/classifier_1"], ["prob_1"], name="prob", axis=1))
    # Zoo models from Caffe2 (IR 3) list every initializer as a graph input too.
    inputs = [fvi("data_0", [1, 3, 224, 224])] + [
        helper.make_tensor_value_info(k, TensorProto.INT64 if v.dtype == np.int64 else
                                      TensorProto.FLOAT, list(v.shape)) for k, v in inits.items()]
    model = make_model(nodes, inputs, [fvi("prob_1", [1, 1000])], inits, 7, "inception_v1_zoo",
                       raw=False)
    onnx.save(model, path)
    return model


# ------------------------------------------------------------------------------------------------
# torchvision exports


def export_torchvision(out, name, ctor, size, opset, training_mode, seed, metadata):
    torch.manual_seed(seed)
    m = ctor().eval()
    he_init(m, seed)
    rel = f"models/{name}.onnx"
    path = os.path.join(out, rel)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(1, 3, size, size, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, x, path, opset_version=opset, input_names=["input"],
                          output_names=["logits"], training=training_mode,
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    model = onnx.load(path)
    for k, v in metadata.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, path)

    md = m.double()
    xd = x.double()
    with torch.no_grad():
        logits = md(xd)
    v = torch.randn(x.shape, generator=g, dtype=F64).float().double()
    cls = int(logits.argmax())
    with relu_as_softplus(BETA), torch_max_pools_through_winners(), \
            WINNERS.scope("record") as winners:
        z_sp, grad, hv = grad_and_hvp(md, xd, v, cls)
    assert len(winners) == sum(n.op_type == "MaxPool" for n in model.graph.node), name
    e = dict(name=name, model=rel, input=save(out, f"{name}_x.npy", x.numpy()),
             logits=save(out, f"{name}_logits.npy", logits.numpy()),
             sp_logits=save(out, f"{name}_sp_logits.npy", z_sp.numpy()),
             vector=save(out, f"{name}_v.npy", v.numpy().astype(np.float32)),
             grad=save(out, f"{name}_grad.npy", grad.numpy()),
             hvp=save(out, f"{name}_hvp.npy", hv.numpy()), cls=cls, beta=BETA)
    with relu_as_softplus(BETA), torch_max_pools_through_winners():
        float32_accuracy(e, md.float(), xd, v, cls, grad, hv, winners)
    return e


def onnx_reference(out, name, model, model_path, input_name, x, score, with_hvp=True):
    """Logits and softplus-swapped gradient/HVP of an ONNX model by the torch interpreter."""
    xd = torch.from_numpy(x.astype(np.float64))
    logits = TorchOnnx(model).run({input_name: xd}, [score])[score]
    cls = int(logits.reshape(logits.shape[0], -1)[0].argmax())
    sp = TorchOnnx(model, softplus_beta=BETA)
    g = torch.Generator().manual_seed(7)
    v = torch.randn(x.shape, generator=g, dtype=F64).float().double()
    fn = lambda t: sp.run({input_name: t}, [score])[score]  # noqa: E731
    e = dict(name=name, model=model_path, input=save(out, f"{name}_x.npy", x),
             logits=save(out, f"{name}_logits.npy", logits.numpy()), cls=cls, beta=BETA,
             vector=save(out, f"{name}_v.npy", v.numpy().astype(np.float32)))
    with WINNERS.scope("record") as winners:
        if with_hvp:
            z_sp, grad, hv = grad_and_hvp(fn, xd, v, cls)
            e["hvp"] = save(out, f"{name}_hvp.npy", hv.numpy())
        else:
            xg = xd.clone().requires_grad_(True)
            z_sp = fn(xg)
            (grad,) = torch.autograd.grad(z_sp.reshape(z_sp.shape[0], -1)[:, cls].sum(), xg)
    assert len(winners) == sum(n.op_type == "MaxPool" for n in model.graph.node), name
    e["sp_logits"] = save(out, f"{name}_sp_logits.npy", z_sp.detach().numpy())
    e["grad"] = save(out, f"{name}_grad.npy", grad.numpy())
    sp32 = TorchOnnx(model, softplus_beta=BETA, dtype=np.float32)
    fn32 = lambda t: sp32.run({input_name: t}, [score])[score]  # noqa: E731
    float32_accuracy(e, fn32, xd, v, cls, grad, hv if with_hvp else None, winners)
    return e


def preprocess_reference(image_path, size, mean, bgr):
    """Center square crop, bilinear (half-pixel centers, no antialias), channel order, mean."""
    from PIL import Image
    img = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float64)
    h, w, _ = img.shape
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = torch.from_numpy(img[y0:y0 + s, x0:x0 + s].transpose(2, 0, 1).copy())[None]
    r = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False,
                      antialias=False)
    if bgr:
        r = r.flip(1)
    return (r - torch.tensor(mean, dtype=F64).reshape(1, 3, 1, 1)).numpy().astype(np.float32)


def unknown_op_model(path):
    N = helper.make_node
    m = make_model([N("Relu", ["x"], ["r"], name="relu"),
                    N("FooBar", ["r"], ["y"], name="mystery_node")],
                   [fvi("x", [1, 3, 8, 8])], [fvi("y", None)], {}, 13, "unknown_op")
    onnx.save(m, path)


# ------------------------------------------------------------------------------------------------


_T0 = time.time()


def log(msg):
    print(f"gen_onnx_models: [{time.time() - _T0:6.1f}s] {msg}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", required=True, help="the shared/ folder (models, images)")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    shared = os.path.abspath(args.shared)
    squeeze_path = os.path.join(shared, "models", "squeezenet1.0.onnx")
    chelsea = os.path.join(shared, "images", "chelsea.png")

    h = hashlib.sha256(open(__file__, "rb").read())
    for p in (squeeze_path, chelsea):
        h.update(str(os.stat(p).st_size).encode() + p.encode())
    stamp_path = os.path.join(out, "stamp")
    if os.path.exists(stamp_path) and open(stamp_path).read() == h.hexdigest() and \
            os.path.exists(os.path.join(out, "manifest.json")):
        print("gen_onnx_models: up to date")
        return 0
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    manifest = {"ops": build_op_cases(out), "models": []}
    log("op cases")
    unknown_op_model(os.path.join(out, "models/unknown_op.onnx"))
    manifest["unknown_op_model"] = "models/unknown_op.onnx"
    manifest["external_data_model"] = "models/external.onnx"
    manifest["external_data_same_as"] = "models/op_conv_asym_pads_dilation_group.onnx"

    # SqueezeNet (real weights) on the preprocessed chelsea.png.
    x = preprocess_reference(chelsea, 227, [104.0, 117.0, 123.0], bgr=True)
    manifest["chelsea_preprocessed"] = save(out, "chelsea_227_bgr.npy", x)
    sq = onnx.load(squeeze_path)
    e = onnx_reference(out, "squeezenet", sq, squeeze_path, "data", x, "logits")
    e["float64"] = True
    manifest["models"].append(e)
    log("squeezenet")

    # Inception v1, ONNX-zoo layout (LRN, opset 7, typed initializers); forward + gradient.
    zoo = build_zoo_inception_v1(os.path.join(out, "models/inception_v1_zoo.onnx"))
    xz = (40.0 * rng("zoo-x").standard_normal((1, 3, 224, 224))).astype(np.float32)
    e = onnx_reference(out, "inception_v1_zoo", zoo, "models/inception_v1_zoo.onnx", "data_0", xz,
                       "loss3/classifier_1", with_hvp=False)
    manifest["models"].append(e)
    log("inception_v1_zoo")

    import torchvision
    manifest["models"].append(export_torchvision(
        out, "googlenet",
        lambda: torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False),
        224, 13, torch.onnx.TrainingMode.PRESERVE, 11,
        {"preprocess.channel_order": "RGB", "preprocess.mean": "123.675,116.28,103.53",
         "preprocess.scale": "0.017124754,0.017507003,0.017429194", "preprocess.size": "224",
         "preprocess.resize": "center-crop-square,bilinear", "score_output": "logits"}))
    log("googlenet")
    manifest["models"].append(export_torchvision(
        out, "inception_v3",
        lambda: torchvision.models.inception_v3(weights=None, aux_logits=False,
                                                init_weights=False),
        299, 17, torch.onnx.TrainingMode.EVAL, 12, {}))
    log("inception_v3")

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    with open(stamp_path, "w") as f:
        f.write(h.hexdigest())
    print(f"gen_onnx_models: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
