#!/usr/bin/python3
"""PyTorch float64 reference data for fragile's op tests.

Writes <out>/ops.json (one or more named cases per op of core/ops.h) and <out>/small_cnn.json
(a small softplus CNN: logits, input gradient and input-space HVP of one class score).

Every case holds its inputs (seeded random, kept away from kinks: abs/relu/clamp away from 0 and
the bounds, max-type ops away from ties, log/sqrt/pow on positive inputs), its attributes, the
forward output(s) and the VJP of every input that requires grad for a seeded grad_output. The
C++ side (tests/core/test_op_table.cpp) maps each case's "op" to a call of ops.h.

JSON layout of a tensor: {"shape": [..], "dtype": "float64" | "float32" | "int64", "data": [..]}
(data flattened row-major). Infinite attributes are written as the strings "inf" / "-inf".

Deterministic: every case draws from its own generator seeded from the case name.

Usage: /usr/bin/python3 tools/gen_reference.py --out build/reference
"""
import argparse
import json
import math
import os
import sys
import zlib

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
F64 = torch.float64

# ------------------------------------------------------------------------------------------------
# helpers


def tensor_json(t):
    t = t.detach().cpu()
    if t.dtype == torch.int64:
        data = [int(v) for v in t.reshape(-1).tolist()]
        dt = "int64"
    else:
        dt = {torch.float64: "float64", torch.float32: "float32"}[t.dtype]
        data = [float(v) for v in t.to(F64).reshape(-1).tolist()]
        assert all(math.isfinite(v) for v in data), "non-finite reference value"
    return {"shape": list(t.shape), "dtype": dt, "data": data}


def num(v):
    """A JSON-safe number (infinities as strings)."""
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


class Rng:
    """Seeded draws for one case (seed from the case name, so adding cases changes nothing)."""

    def __init__(self, name):
        self.g = torch.Generator().manual_seed(zlib.crc32(name.encode()))

    def randn(self, *shape):
        return torch.randn(tuple(shape), generator=self.g, dtype=F64)

    def uniform(self, lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(tuple(shape), generator=self.g, dtype=F64)

    def away(self, *shape, margin=0.1, hi=2.0):
        """Values with |v| in [margin, hi] and a random sign: away from 0 (abs, relu, sign)."""
        mag = self.uniform(margin, hi, *shape)
        sgn = torch.where(torch.rand(tuple(shape), generator=self.g) < 0.5, -1.0, 1.0).to(F64)
        return mag * sgn

    def distinct(self, *shape, lo=-2.0, hi=2.0):
        """A random permutation of evenly spaced values: no ties anywhere (max-type ops); the
        spacing (>= (hi-lo)/n) is far larger than any finite-difference step."""
        n = 1
        for s in shape:
            n *= s
        vals = torch.linspace(lo, hi, n, dtype=F64)
        perm = torch.randperm(n, generator=self.g)
        return vals[perm].reshape(*shape)

    def positive(self, *shape, lo=0.5, hi=2.0):
        return self.uniform(lo, hi, *shape)

    def coin(self, *shape):
        return (torch.rand(tuple(shape), generator=self.g) < 0.5).to(F64)

    def halves(self, *shape, k=3):
        """Multiples of 0.5 in [-k/2, k/2]: many exact ties (comparisons)."""
        return torch.randint(-k, k + 1, shape, generator=self.g).to(F64) * 0.5

    def ints(self, lo, hi, *shape):
        return torch.randint(lo, hi, shape, generator=self.g)


CASES = []
NAMES = set()


def add_case(name, op, inputs, fn, attrs=None, differentiable=True, gradcheck=True,
             gradgradcheck=True, rng=None):
    """inputs: list of (tensor, requires_grad). fn(*tensors) -> tensor or tuple of tensors (the
    first is the differentiated output)."""
    assert name not in NAMES, name
    NAMES.add(name)
    rng = rng or Rng(name + "/grad_output")
    leaves = []
    for t, rg in inputs:
        t = t.detach().clone()
        if rg and differentiable:
            t.requires_grad_(True)
        leaves.append(t)
    outs = fn(*leaves)
    if not isinstance(outs, tuple):
        outs = (outs,)
    case = {
        "name": name,
        "op": op,
        "attrs": attrs or {},
        "inputs": [dict(tensor_json(t), requires_grad=bool(rg)) for t, (_, rg) in
                   zip(leaves, inputs)],
        "outputs": [tensor_json(o) for o in outs],
        "differentiable": differentiable,
        "gradcheck": differentiable and gradcheck,
        "gradgradcheck": differentiable and gradcheck and gradgradcheck,
    }
    if differentiable:
        out = outs[0]
        g = torch.Generator().manual_seed(zlib.crc32((name + "/grad_output").encode()))
        go = torch.randn(out.shape, generator=g, dtype=F64).to(out.dtype)
        wrt = [t for t in leaves if t.requires_grad]
        grads = torch.autograd.grad(out, wrt, go, allow_unused=True) if wrt else []
        it = iter(grads)
        gj = []
        for t in leaves:
            if t.requires_grad:
                gr = next(it)
                gj.append(tensor_json(gr if gr is not None else torch.zeros_like(t)))
            else:
                gj.append(None)
        case["grad_output"] = tensor_json(go)
        case["grads"] = gj
    CASES.append(case)


# ------------------------------------------------------------------------------------------------
# element-wise


def elementwise_cases():
    # Binary ops with broadcasting. Shapes: same, row/column broadcast, rank mismatch, 0-d.
    shapes = [
        ("same", (3, 4), (3, 4)),
        ("bcast_row", (3, 4), (1, 4)),
        ("bcast_col_rank", (2, 3, 4), (3, 1)),
        ("bcast_both", (2, 1, 4), (3, 1)),
        ("scalar_rhs", (2, 3), ()),
    ]
    for sname, sa, sb in shapes:
        r = Rng("add_" + sname)
        add_case("add_" + sname, "add", [(r.randn(*sa), True), (r.randn(*sb), True)],
                 lambda a, b: a + b)
        r = Rng("sub_" + sname)
        add_case("sub_" + sname, "sub", [(r.randn(*sa), True), (r.randn(*sb), True)],
                 lambda a, b: a - b)
        r = Rng("mul_" + sname)
        add_case("mul_" + sname, "mul", [(r.randn(*sa), True), (r.randn(*sb), True)],
                 lambda a, b: a * b)
        r = Rng("div_" + sname)
        add_case("div_" + sname, "div", [(r.randn(*sa), True), (r.away(*sb, margin=0.5), True)],
                 lambda a, b: a / b)
        r = Rng("pow_" + sname)
        add_case("pow_" + sname, "pow", [(r.positive(*sa), True), (r.uniform(-2, 2, *sb), True)],
                 lambda a, b: torch.pow(a, b))
    # pow with a negative base and integer exponents, exponent not differentiated.
    r = Rng("pow_negative_base")
    add_case("pow_negative_base", "pow",
             [(r.away(3, 4, margin=0.3), True), (torch.tensor([[2.0, 3.0, 1.0, 4.0]]), False)],
             lambda a, b: torch.pow(a, b))

    # Operators (same ops, other spelling).
    r = Rng("operator_plus")
    add_case("operator_plus", "op_plus", [(r.randn(3, 4), True), (r.randn(4), True)],
             lambda a, b: a + b)
    r = Rng("operator_minus")
    add_case("operator_minus", "op_minus", [(r.randn(3, 4), True), (r.randn(3, 1), True)],
             lambda a, b: a - b)
    r = Rng("operator_times")
    add_case("operator_times", "op_times", [(r.randn(3, 4), True), (r.randn(4), True)],
             lambda a, b: a * b)
    r = Rng("operator_divide")
    add_case("operator_divide", "op_divide",
             [(r.randn(3, 4), True), (r.away(3, 1, margin=0.5), True)], lambda a, b: a / b)
    r = Rng("operator_negate")
    add_case("operator_negate", "op_negate", [(r.randn(3, 4), True)], lambda a: -a)
    r = Rng("operator_times_scalar")
    add_case("operator_times_scalar", "op_times_scalar", [(r.randn(3, 4), True)],
             lambda a: a * 2.5, attrs={"scalar": 2.5})
    r = Rng("operator_scalar_times")
    add_case("operator_scalar_times", "op_scalar_times", [(r.randn(3, 4), True)],
             lambda a: -1.5 * a, attrs={"scalar": -1.5})

    # Scalar operands.
    for op, s, f in [("add_scalar", 1.25, lambda a, s: a + s), ("sub_scalar", 0.75, lambda a, s: a - s),
                     ("mul_scalar", -2.0, lambda a, s: a * s), ("div_scalar", 3.0, lambda a, s: a / s),
                     ("rsub", 2.0, lambda a, s: s - a)]:
        r = Rng(op)
        add_case(op, op, [(r.randn(2, 5), True)], lambda a, s=s, f=f: f(a, s), attrs={"scalar": s})

    # Unary.
    r = Rng("neg")
    add_case("neg", "neg", [(r.randn(3, 5), True)], lambda x: -x)
    r = Rng("exp")
    add_case("exp", "exp", [(r.uniform(-3, 3, 3, 5), True)], torch.exp)
    r = Rng("log")
    add_case("log", "log", [(r.positive(3, 5, lo=0.2, hi=5.0), True)], torch.log)
    r = Rng("abs")
    add_case("abs", "abs", [(r.away(4, 5), True)], torch.abs)
    r = Rng("sign")
    add_case("sign", "sign", [(r.away(4, 5), True)], torch.sign)
    r = Rng("sqrt")
    add_case("sqrt", "sqrt", [(r.positive(3, 5, lo=0.2, hi=4.0), True)], torch.sqrt)
    for tag, e, positive in [("2", 2.0, False), ("3", 3.0, False), ("0_5", 0.5, True),
                             ("neg1_5", -1.5, True), ("1_7", 1.7, True)]:
        name = "pow_scalar_" + tag
        r = Rng(name)
        x = r.positive(3, 4) if positive else r.randn(3, 4)
        add_case(name, "pow_scalar", [(x, True)], lambda x, e=e: torch.pow(x, e),
                 attrs={"exponent": e})
    for tag, lo, hi in [("both", -0.5, 0.5), ("lo_only", -0.3, math.inf), ("hi_only", -math.inf, 0.2)]:
        name = "clamp_" + tag
        r = Rng(name)
        # Keep every value at least 0.05 away from both bounds.
        x = r.uniform(-1.5, 1.5, 4, 5)
        for b in (lo, hi):
            if math.isfinite(b):
                x = torch.where((x - b).abs() < 0.05, x + 0.1, x)
        add_case(name, "clamp", [(x, True)], lambda x, lo=lo, hi=hi: torch.clamp(x, lo, hi),
                 attrs={"lo": num(lo), "hi": num(hi)})
    r = Rng("where")
    add_case("where", "where", [(r.coin(3, 4), False), (r.randn(3, 4), True), (r.randn(3, 4), True)],
             lambda c, a, b: torch.where(c != 0, a, b))
    r = Rng("where_bcast")
    add_case("where_bcast", "where",
             [(r.coin(3, 1), False), (r.randn(2, 3, 4), True), (r.randn(4), True)],
             lambda c, a, b: torch.where(c != 0, a, b))

    # Comparisons (ties on purpose): no gradient.
    for op, f in [("eq", torch.eq), ("ne", torch.ne), ("lt", torch.lt), ("le", torch.le),
                  ("gt", torch.gt), ("ge", torch.ge)]:
        r = Rng(op)
        add_case(op, op, [(r.halves(3, 4), True), (r.halves(3, 4), True)],
                 lambda a, b, f=f: f(a, b).to(F64), differentiable=False)
        r = Rng(op + "_bcast")
        add_case(op + "_bcast", op, [(r.halves(2, 3, 4), True), (r.halves(3, 1), True)],
                 lambda a, b, f=f: f(a, b).to(F64), differentiable=False)


# ------------------------------------------------------------------------------------------------
# reductions


def reduction_cases():
    r = Rng("sum_all")
    add_case("sum_all", "sum", [(r.randn(3, 4), True)], torch.sum)
    for tag, dims, keep in [("d1", [1], False), ("d02_keep", [0, 2], True), ("neg", [-1], False),
                            ("all_dims", [0, 1, 2], False)]:
        name = "sum_" + tag
        r = Rng(name)
        add_case(name, "sum", [(r.randn(2, 3, 4), True)],
                 lambda x, d=dims, k=keep: torch.sum(x, d, keepdim=k),
                 attrs={"dims": dims, "keepdim": keep})
    r = Rng("mean_all")
    add_case("mean_all", "mean", [(r.randn(3, 4), True)], torch.mean)
    for tag, dims, keep in [("d1", [1], False), ("d02_keep", [0, 2], True)]:
        name = "mean_" + tag
        r = Rng(name)
        add_case(name, "mean", [(r.randn(2, 3, 4), True)],
                 lambda x, d=dims, k=keep: torch.mean(x, d, keepdim=k),
                 attrs={"dims": dims, "keepdim": keep})
    r = Rng("amax_all")
    add_case("amax_all", "amax", [(r.distinct(3, 4), True)], torch.amax)
    for tag, dims, keep in [("d1", [1], False), ("d02_keep", [0, 2], True), ("neg", [-1], True)]:
        name = "amax_" + tag
        r = Rng(name)
        add_case(name, "amax", [(r.distinct(2, 3, 4), True)],
                 lambda x, d=dims, k=keep: torch.amax(x, d, keepdim=k),
                 attrs={"dims": dims, "keepdim": keep})
    # Ties: the gradient is split equally among tied maxima. Not differentiable at ties, so no
    # finite-difference check, but forward and VJP must match torch.amax.
    x = torch.tensor([[1.0, 3.0, 3.0, -1.0], [2.0, 2.0, 2.0, 0.5], [0.0, -1.0, 4.0, 4.0]])
    add_case("amax_ties", "amax", [(x, True)], lambda x: torch.amax(x, [1]),
             attrs={"dims": [1], "keepdim": False}, gradcheck=False)
    add_case("amax_ties_all", "amax", [(x, True)], lambda x: torch.amax(x), gradcheck=False)
    for tag, src, dst in [("lead", (2, 3, 4), (3, 4)), ("keep1", (2, 3, 4), (3, 1)),
                          ("mixed", (2, 3, 4), (2, 1, 4)), ("scalar", (2, 3), ())]:
        name = "sum_to_" + tag
        r = Rng(name)

        def st(x, dst=dst):
            lead = x.dim() - len(dst)
            if lead:
                x = x.sum(list(range(lead)))
            dims = [i for i, s in enumerate(dst) if s == 1 and x.shape[i] != 1]
            if dims:
                x = x.sum(dims, keepdim=True)
            return x.reshape(dst)

        add_case(name, "sum_to", [(r.randn(*src), True)], st, attrs={"shape": list(dst)})


# ------------------------------------------------------------------------------------------------
# shape and layout


def shape_cases():
    r = Rng("reshape")
    add_case("reshape", "reshape", [(r.randn(2, 3, 4), True)], lambda x: x.reshape(4, -1),
             attrs={"shape": [4, -1]})
    r = Rng("reshape_of_permuted")
    add_case("reshape_of_permuted", "reshape", [(r.randn(2, 3, 4), True)],
             lambda x: x.permute(2, 0, 1).reshape(-1, 3),
             attrs={"shape": [-1, 3], "pre_permute": [2, 0, 1]})
    r = Rng("flatten")
    add_case("flatten", "flatten", [(r.randn(2, 3, 2, 2), True)], lambda x: torch.flatten(x, 1),
             attrs={"start_dim": 1, "end_dim": -1})
    r = Rng("flatten_mid")
    add_case("flatten_mid", "flatten", [(r.randn(2, 3, 2, 2), True)],
             lambda x: torch.flatten(x, 0, 1), attrs={"start_dim": 0, "end_dim": 1})
    r = Rng("permute")
    add_case("permute", "permute", [(r.randn(2, 3, 4), True)], lambda x: x.permute(2, 0, 1),
             attrs={"dims": [2, 0, 1]})
    r = Rng("transpose")
    add_case("transpose", "transpose", [(r.randn(2, 3, 4), True)], lambda x: x.transpose(0, 2),
             attrs={"d0": 0, "d1": 2})
    r = Rng("unsqueeze")
    add_case("unsqueeze", "unsqueeze", [(r.randn(3, 4), True)], lambda x: x.unsqueeze(1),
             attrs={"dim": 1})
    r = Rng("unsqueeze_neg")
    add_case("unsqueeze_neg", "unsqueeze", [(r.randn(3, 4), True)], lambda x: x.unsqueeze(-1),
             attrs={"dim": -1})
    r = Rng("squeeze")
    add_case("squeeze", "squeeze", [(r.randn(3, 1, 4), True)], lambda x: x.squeeze(1),
             attrs={"dim": 1})
    for tag, shape, dim, start, end, step in [("basic", (5, 6), 1, 1, 5, 1),
                                              ("step2", (5, 6), 1, 0, 6, 2),
                                              ("neg_start", (5, 6), 0, -3, 100, 1),
                                              ("neg_end_step3", (2, 7, 3), 1, 1, -1, 3)]:
        name = "slice_" + tag
        r = Rng(name)
        idx = [slice(None)] * len(shape)
        idx[dim] = slice(start, end, step)
        add_case(name, "slice", [(r.randn(*shape), True)], lambda x, idx=tuple(idx): x[idx],
                 attrs={"dim": dim, "start": start, "end": end, "step": step})
        # slice_backward: the adjoint of slice, an op of its own.
        name = "slice_backward_" + tag
        r = Rng(name)
        gshape = torch.zeros(shape)[tuple(idx)].shape

        def sb(g, shape=shape, idx=tuple(idx)):
            z = torch.zeros(shape, dtype=F64)
            z[idx] = g
            return z

        add_case(name, "slice_backward", [(r.randn(*gshape), True)], sb,
                 attrs={"input_shape": list(shape), "dim": dim, "start": start, "end": end,
                        "step": step})
    r = Rng("concat")
    add_case("concat", "concat", [(r.randn(2, 1, 3), True), (r.randn(2, 3, 3), True),
                                  (r.randn(2, 2, 3), True)],
             lambda a, b, c: torch.cat([a, b, c], 1), attrs={"dim": 1})
    r = Rng("concat_neg")
    add_case("concat_neg", "concat", [(r.randn(3, 2), True), (r.randn(3, 4), True)],
             lambda a, b: torch.cat([a, b], -1), attrs={"dim": -1})
    for tag, shape, before, after, value in [("zero", (2, 3, 4), [0, 1, 2], [1, 0, 1], 0.0),
                                             ("value", (2, 2, 3, 3), [0, 0, 1, 1], [0, 0, 2, 0], -1.5)]:
        name = "pad_" + tag
        r = Rng(name)
        pads = []
        for b, a in zip(reversed(before), reversed(after)):
            pads += [b, a]
        add_case(name, "pad", [(r.randn(*shape), True)],
                 lambda x, pads=pads, v=value: F.pad(x, pads, value=v),
                 attrs={"before": before, "after": after, "value": value})
    r = Rng("expand")
    add_case("expand", "expand", [(r.randn(3, 1, 4), True)], lambda x: x.expand(2, 3, 5, 4),
             attrs={"shape": [2, 3, 5, 4]})
    r = Rng("contiguous")
    add_case("contiguous", "contiguous", [(r.randn(2, 3, 4), True)],
             lambda x: x.permute(1, 2, 0).contiguous(), attrs={"pre_permute": [1, 2, 0]})
    r = Rng("to_dtype_f64")
    add_case("to_dtype_f64", "to_dtype", [(r.randn(3, 4), True)], lambda x: x.to(F64),
             attrs={"dtype": "float64"})
    # Rounding to float32 defeats float64 finite differences: forward and VJP only.
    r = Rng("to_dtype_f32")
    add_case("to_dtype_f32", "to_dtype", [(r.randn(3, 4), True)], lambda x: x.to(torch.float32),
             attrs={"dtype": "float32"}, gradcheck=False)
    r = Rng("dropout_inference")
    add_case("dropout_inference", "dropout_inference", [(r.randn(3, 4), True)], lambda x: x * 1.0)


# ------------------------------------------------------------------------------------------------
# linear algebra


def linalg_cases():
    for tag, sa, sb in [("2d", (3, 4), (4, 5)), ("nd_2d", (2, 3, 4), (4, 5)),
                        ("4d_2d", (2, 2, 3, 4), (4, 2)), ("batched", (2, 3, 4), (2, 4, 5))]:
        name = "matmul_" + tag
        r = Rng(name)
        add_case(name, "matmul", [(r.randn(*sa), True), (r.randn(*sb), True)], torch.matmul)
    r = Rng("linear")
    add_case("linear", "linear", [(r.randn(4, 6), True), (r.randn(5, 6), True), (r.randn(5), True)],
             F.linear)
    r = Rng("linear_nobias")
    add_case("linear_nobias", "linear", [(r.randn(4, 6), True), (r.randn(5, 6), True)],
             lambda x, w: F.linear(x, w))


# ------------------------------------------------------------------------------------------------
# convolution and pooling


def conv_attrs(stride, padding, dilation, groups):
    return {"stride": [stride] * 2 if isinstance(stride, int) else list(stride),
            "padding": [padding] * 2 if isinstance(padding, int) else list(padding),
            "dilation": [dilation] * 2 if isinstance(dilation, int) else list(dilation),
            "groups": groups}


CONV_CONFIGS = [
    # tag, x shape, w shape, bias, stride, padding, dilation, groups
    ("basic", (2, 3, 6, 6), (4, 3, 3, 3), True, 1, 0, 1, 1),
    ("stride2", (2, 3, 7, 7), (4, 3, 3, 3), True, 2, 0, 1, 1),
    ("pad1", (1, 3, 5, 5), (4, 3, 3, 3), True, 1, 1, 1, 1),
    ("dilation2", (1, 2, 7, 7), (3, 2, 3, 3), True, 1, 0, 2, 1),
    ("groups2", (2, 4, 5, 5), (6, 2, 3, 3), True, 1, 1, 1, 2),
    ("1x1", (2, 4, 4, 4), (3, 4, 1, 1), False, 1, 0, 1, 1),
    ("mixed", (1, 4, 8, 7), (4, 2, 3, 2), True, (2, 1), (1, 2), (2, 1), 2),
]


def conv_cases():
    for tag, xs, ws, bias, stride, padding, dilation, groups in CONV_CONFIGS:
        name = "conv2d_" + tag
        r = Rng(name)
        attrs = conv_attrs(stride, padding, dilation, groups)
        kw = dict(stride=attrs["stride"], padding=attrs["padding"], dilation=attrs["dilation"],
                  groups=groups)
        ins = [(r.randn(*xs), True), (r.randn(*ws) * 0.5, True)]
        if bias:
            ins.append((r.randn(ws[0]), True))
        add_case(name, "conv2d", ins, lambda *a, kw=kw: F.conv2d(*a, **kw), attrs=attrs)

        # conv2d_backward_input(grad, w, input_shape, p): dL/dx.
        out_shape = F.conv2d(torch.zeros(xs), torch.zeros(ws), **kw).shape
        name = "conv2d_backward_input_" + tag
        r = Rng(name)

        def bi(g, w, xs=xs, kw=kw):
            ref = torch.nn.grad.conv2d_input(xs, w, g, **kw)
            # Cross-check with autograd of conv2d (create_graph keeps it differentiable).
            x0 = torch.zeros(xs, requires_grad=True)
            alt, = torch.autograd.grad(F.conv2d(x0, w, **kw), x0, g, create_graph=True)
            assert torch.allclose(ref, alt, rtol=1e-12, atol=1e-12)
            return ref

        add_case(name, "conv2d_backward_input", [(r.randn(*out_shape), True), (r.randn(*ws), True)],
                 bi, attrs=dict(attrs, input_shape=list(xs)))

        name = "conv2d_backward_weight_" + tag
        r = Rng(name)

        def bw(x, g, ws=ws, kw=kw):
            ref = torch.nn.grad.conv2d_weight(x, ws, g, **kw)
            w0 = torch.zeros(ws, requires_grad=True)
            alt, = torch.autograd.grad(F.conv2d(x, w0, **kw), w0, g, create_graph=True)
            assert torch.allclose(ref, alt, rtol=1e-12, atol=1e-12)
            return alt  # the autograd form is certainly differentiable in x and g

        add_case(name, "conv2d_backward_weight", [(r.randn(*xs), True), (r.randn(*out_shape), True)],
                 bw, attrs=dict(attrs, weight_shape=list(ws)))


def pool_attrs(kernel, stride, padding, ceil_mode, count_include_pad=True):
    return {"kernel": list(kernel), "stride": list(stride), "padding": list(padding),
            "ceil_mode": ceil_mode, "count_include_pad": count_include_pad}


POOL_CONFIGS = [
    # tag, x shape, kernel, stride, padding, ceil_mode
    ("k2s2", (2, 3, 6, 6), (2, 2), (2, 2), (0, 0), False),
    ("k3s2_overlap", (1, 2, 7, 7), (3, 3), (2, 2), (0, 0), False),
    ("k3s2_pad1", (1, 2, 6, 6), (3, 3), (2, 2), (1, 1), False),
    ("k2s2_ceil", (1, 2, 7, 7), (2, 2), (2, 2), (0, 0), True),
    ("k3s2_pad1_ceil", (1, 2, 6, 6), (3, 3), (2, 2), (1, 1), True),
    ("k3s2_floor_vs_ceil", (1, 2, 8, 8), (3, 3), (2, 2), (0, 0), True),
    ("rect", (1, 2, 7, 6), (3, 2), (2, 1), (1, 0), False),
]


def pool_cases():
    for tag, xs, k, s, p, ceil in POOL_CONFIGS:
        attrs = pool_attrs(k, s, p, ceil)
        kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
        name = "max_pool2d_" + tag
        r = Rng(name)
        add_case(name, "max_pool2d", [(r.distinct(*xs), True)],
                 lambda x, kw=kw: F.max_pool2d(x, **kw), attrs=attrs)
        name = "max_pool2d_with_indices_" + tag
        r = Rng(name)
        add_case(name, "max_pool2d_with_indices", [(r.distinct(*xs), True)],
                 lambda x, kw=kw: F.max_pool2d(x, return_indices=True, **kw), attrs=attrs)

        # The backward pair, with indices from a real pooling (overlapping windows repeat
        # indices: the scatter must add).
        r = Rng("max_pool2d_backward_" + tag)
        _, idx = F.max_pool2d(r.distinct(*xs), return_indices=True, **kw)
        N, C, H, W = xs

        def scatter(g, idx, N=N, C=C, H=H, W=W):
            z = torch.zeros(N, C, H * W, dtype=F64)
            return z.scatter_add(2, idx.reshape(N, C, -1), g.reshape(N, C, -1)).reshape(N, C, H, W)

        add_case("max_pool2d_backward_" + tag, "max_pool2d_backward",
                 [(r.randn(*idx.shape), True), (idx, False)], scatter,
                 attrs={"input_shape": list(xs), **attrs})
        r = Rng("max_pool2d_gather_" + tag)

        def gather(x, idx, N=N, C=C):
            return x.reshape(N, C, -1).gather(2, idx.reshape(N, C, -1)).reshape(idx.shape)

        add_case("max_pool2d_gather_" + tag, "max_pool2d_gather",
                 [(r.randn(*xs), True), (idx, False)], gather, attrs=attrs)

        for cip in (True, False):
            if (p == (0, 0) and not ceil) and not cip:
                continue  # count_include_pad only matters with padding or ceil overhang
            suffix = tag + ("_cip" if cip else "_nocip")
            a = pool_attrs(k, s, p, ceil, cip)
            akw = dict(kw, count_include_pad=cip)
            name = "avg_pool2d_" + suffix
            r = Rng(name)
            add_case(name, "avg_pool2d", [(r.randn(*xs), True)],
                     lambda x, akw=akw: F.avg_pool2d(x, **akw), attrs=a)
            name = "avg_pool2d_backward_" + suffix
            r = Rng(name)
            oshape = F.avg_pool2d(torch.zeros(xs), **akw).shape

            def apb(g, xs=xs, akw=akw):
                x0 = torch.zeros(xs, requires_grad=True)
                gx, = torch.autograd.grad(F.avg_pool2d(x0, **akw), x0, g, create_graph=True)
                return gx

            add_case(name, "avg_pool2d_backward", [(r.randn(*oshape), True)], apb,
                     attrs=dict(a, input_shape=list(xs)))
    r = Rng("global_avg_pool2d")
    add_case("global_avg_pool2d", "global_avg_pool2d", [(r.randn(2, 3, 4, 5), True)],
             lambda x: F.adaptive_avg_pool2d(x, 1))


# ------------------------------------------------------------------------------------------------
# activations, losses, normalisation


def softplus_ref(x, beta):
    # fragile's softplus has no linear threshold (PyTorch's Softplus switches to x above
    # beta x > 20, which zeroes the second derivative there).
    return torch.logaddexp(beta * x, torch.zeros_like(x)) / beta


def stable_sigmoid(z):
    # sigmoid written so that autograd's derivative keeps full relative precision for large |z|
    # (torch.sigmoid's backward uses y (1 - y), which cancels in float64 once z > ~30).
    return torch.exp(-torch.logaddexp(torch.zeros_like(z), -z))


def activation_cases():
    r = Rng("relu")
    add_case("relu", "relu", [(r.away(4, 5), True)], torch.relu)
    r = Rng("relu_backward")  # PyTorch's threshold_backward: a select, not grad * mask
    add_case("relu_backward", "relu_backward", [(r.randn(4, 5), True), (r.away(4, 5), True)],
             lambda g, x: torch.ops.aten.threshold_backward(g, x, 0.0))
    for tag, beta, lo, hi in [("beta1", 1.0, -4, 4), ("beta10", 10.0, -1, 1),
                              ("beta10_wide", 10.0, -6, 6), ("beta0_5", 0.5, -8, 8)]:
        name = "softplus_" + tag
        r = Rng(name)
        add_case(name, "softplus", [(r.uniform(lo, hi, 4, 5), True)],
                 lambda x, b=beta: softplus_ref(x, b), attrs={"beta": beta})
        name = "softplus_backward_" + tag
        r = Rng(name)
        add_case(name, "softplus_backward", [(r.randn(4, 5), True), (r.uniform(lo, hi, 4, 5), True)],
                 lambda g, x, b=beta: g * stable_sigmoid(b * x), attrs={"beta": beta})
    r = Rng("sigmoid")
    add_case("sigmoid", "sigmoid", [(r.uniform(-5, 5, 4, 5), True)], torch.sigmoid)
    r = Rng("tanh")
    add_case("tanh", "tanh", [(r.uniform(-3, 3, 4, 5), True)], torch.tanh)
    for op, f in [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]:
        r = Rng(op + "_2d")
        add_case(op + "_2d", op, [(r.randn(3, 5) * 2, True)], lambda x, f=f: f(x, 1),
                 attrs={"dim": 1})
        r = Rng(op + "_3d_dim0")
        add_case(op + "_3d_dim0", op, [(r.randn(3, 2, 4) * 2, True)], lambda x, f=f: f(x, 0),
                 attrs={"dim": 0})
        r = Rng(op + "_3d_last")
        add_case(op + "_3d_last", op, [(r.randn(2, 3, 4) * 2 + 10, True)], lambda x, f=f: f(x, -1),
                 attrs={"dim": -1})
        # ImageNet-sized rows (1000 classes): the kernels' long-row path; large logits.
        r = Rng(op + "_wide")
        add_case(op + "_wide", op, [(r.randn(2, 1000) * 8, True)], lambda x, f=f: f(x, 1),
                 attrs={"dim": 1}, gradgradcheck=False)
        r = Rng(op + "_nchw_channels")
        add_case(op + "_nchw_channels", op, [(r.randn(2, 3, 2, 3) * 2, True)],
                 lambda x, f=f: f(x, 1), attrs={"dim": 1})

    # The backwards as ops of their own: y need not be a softmax output for the formulas
    # (and gradcheck perturbs it freely), but realistic values keep the cases meaningful.
    def softmax_backward_ref(g, y, dim):
        return y * (g - (g * y).sum(dim, keepdim=True))

    def log_softmax_backward_ref(g, y, dim):
        return g - torch.exp(y) * g.sum(dim, keepdim=True)

    for op, ref, out_fn in [("softmax_backward", softmax_backward_ref, torch.softmax),
                            ("log_softmax_backward", log_softmax_backward_ref, torch.log_softmax)]:
        for tag, shape, dim in [("2d", (3, 5), 1), ("3d_dim0", (3, 2, 4), 0),
                                ("3d_last", (2, 3, 4), -1)]:
            name = f"{op}_{tag}"
            r = Rng(name)
            y = out_fn(r.randn(*shape) * 2, dim)
            add_case(name, op, [(r.randn(*shape), True), (y, True)],
                     lambda g, y, d=dim, f=ref: f(g, y, d), attrs={"dim": dim})


def loss_norm_cases():
    r = Rng("nll_loss")
    lp = torch.log_softmax(r.randn(5, 4), 1)
    add_case("nll_loss", "nll_loss", [(lp, True), (r.ints(0, 4, 5), False)], F.nll_loss)
    r = Rng("nll_loss_raw")
    add_case("nll_loss_raw", "nll_loss", [(r.randn(3, 6), True), (torch.tensor([5, 0, 5]), False)],
             F.nll_loss)
    r = Rng("cross_entropy")
    add_case("cross_entropy", "cross_entropy", [(r.randn(6, 5) * 2, True), (r.ints(0, 5, 6), False)],
             F.cross_entropy)
    r = Rng("one_hot")
    add_case("one_hot", "one_hot", [(torch.tensor([2, 0, 4, 4, 1]), False)],
             lambda t: F.one_hot(t, 5).to(F64), attrs={"num_classes": 5}, differentiable=False)

    # LRN: torch's window is [c - size//2, c + (size-1)//2], the centred window for odd sizes
    # (even sizes differ between torch and ONNX/Caffe, so only odd ones are referenced).
    for tag, shape, size, alpha, beta, k in [("alexnet", (2, 7, 3, 3), 5, 0.5, 0.75, 2.0),
                                             ("size3", (1, 4, 2, 3), 3, 0.3, 0.75, 1.0),
                                             ("size1", (1, 3, 2, 2), 1, 0.2, 0.5, 1.5)]:
        name = "local_response_norm_" + tag
        r = Rng(name)
        add_case(name, "local_response_norm", [(r.randn(*shape) * 1.5, True)],
                 lambda x, a=(size, alpha, beta, k): F.local_response_norm(x, *a),
                 attrs={"size": size, "alpha": alpha, "beta": beta, "k": k})

    def bn(x, m, v, g, b, eps=1e-5):
        ref = F.batch_norm(x, m.detach(), v.detach(), g, b, training=False, eps=eps)
        shape = [1, -1] + [1] * (x.dim() - 2)
        manual = (x - m.reshape(shape)) / torch.sqrt(v.reshape(shape) + eps) * g.reshape(shape) \
            + b.reshape(shape)
        assert torch.allclose(ref, manual, rtol=1e-12, atol=1e-12)
        return manual  # differentiable in the running statistics too

    for tag, shape in [("4d", (2, 3, 4, 4)), ("2d", (4, 5))]:
        name = "batch_norm_inference_" + tag
        r = Rng(name)
        C = shape[1]
        add_case(name, "batch_norm_inference",
                 [(r.randn(*shape), True), (r.randn(C) * 0.5, True), (r.positive(C, lo=0.3, hi=2.0), True),
                  (r.randn(C), True), (r.randn(C), True)], bn, attrs={"eps": 1e-5})


# ------------------------------------------------------------------------------------------------
# fused saliency moments (the attacks' top-k / targeted / centre-of-mass losses)


def saliency_moments_ref(a, w):
    s = a.abs().sum(1)                                   # [N, H, W] pixel saliency
    t = s.sum((1, 2))                                    # [N] total
    m = (s.unsqueeze(1) * w).sum((2, 3)) / t.unsqueeze(1)
    return torch.cat([m, t.unsqueeze(1)], 1)


def saliency_moments_backward_ref(g, a, w, moments):
    k = w.shape[1]
    m, t = moments[:, :k], moments[:, k]
    term = ((w - m[:, :, None, None]) * g[:, :k, None, None]).sum(1) / t[:, None, None]
    return torch.sign(a) * (term + g[:, k, None, None]).unsqueeze(1)


def saliency_cases():
    h, w = 4, 5
    rows = torch.arange(h, dtype=F64)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=F64)[None, :].expand(h, w)
    coords = torch.stack([rows, cols]).unsqueeze(0)      # [1, 2, H, W]
    for tag, n, weights in [("mask", 2, lambda r: r.coin(2, 1, h, w)),
                            ("coords", 3, lambda r: coords.clone())]:
        name = "saliency_moments_" + tag
        r = Rng(name)
        wt = weights(r)
        add_case(name, "saliency_moments", [(r.away(n, 3, h, w), True), (wt, False)],
                 saliency_moments_ref)
        name = "saliency_moments_backward_" + tag
        r = Rng(name)
        k = wt.shape[1]
        moments = torch.cat([r.randn(n, k), r.positive(n, 1)], 1)
        add_case(name, "saliency_moments_backward",
                 [(r.randn(n, k + 1), True), (r.away(n, 3, h, w), True), (wt, False),
                  (moments, True)], saliency_moments_backward_ref)


# ------------------------------------------------------------------------------------------------
# the small softplus CNN


def small_cnn(out_dir):
    r = Rng("small_cnn")
    beta = 10.0
    w1 = r.randn(4, 3, 3, 3) * (2.0 / 27) ** 0.5
    b1 = r.randn(4) * 0.1
    w2 = r.randn(6, 4, 3, 3) * (2.0 / 36) ** 0.5
    b2 = r.randn(6) * 0.1
    wf = r.randn(5, 6) * (1.0 / 6) ** 0.5
    bf = r.randn(5) * 0.1
    x = r.randn(1, 3, 12, 12)
    v = r.randn(1, 3, 12, 12)
    target = 2

    def logits_of(x):
        h = F.conv2d(x, w1, b1, padding=1)
        h = softplus_ref(h, beta)
        h = F.max_pool2d(h, 2)
        h = F.conv2d(h, w2, b2)
        h = softplus_ref(h, beta)
        h = F.adaptive_avg_pool2d(h, 1).flatten(1)
        return F.linear(h, wf, bf)

    def score(x):
        return logits_of(x)[0, target]

    logits = logits_of(x)
    xg = x.clone().requires_grad_(True)
    g, = torch.autograd.grad(score(xg), xg, create_graph=True)
    hv_db, = torch.autograd.grad(g, xg, v)
    _, hv = torch.autograd.functional.hvp(score, x, v)
    assert torch.allclose(hv, hv_db, rtol=1e-10, atol=1e-12)
    doc = {
        "description": "conv(3->4,3x3,pad1) -> softplus(beta) -> maxpool2 -> conv(4->6,3x3) -> "
                       "softplus(beta) -> global avg pool -> flatten -> linear(6->5); "
                       "score = logits[0, target]; hvp = H_x(score) v",
        "beta": beta,
        "target": target,
        "conv1_weight": tensor_json(w1), "conv1_bias": tensor_json(b1),
        "conv2_weight": tensor_json(w2), "conv2_bias": tensor_json(b2),
        "fc_weight": tensor_json(wf), "fc_bias": tensor_json(bf),
        "input": tensor_json(x), "v": tensor_json(v),
        "logits": tensor_json(logits),
        "input_grad": tensor_json(g),
        "hvp": tensor_json(hv),
    }
    with open(os.path.join(out_dir, "small_cnn.json"), "w") as f:
        json.dump(doc, f, allow_nan=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (created)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    elementwise_cases()
    reduction_cases()
    shape_cases()
    linalg_cases()
    conv_cases()
    pool_cases()
    activation_cases()
    loss_norm_cases()
    saliency_cases()
    doc = {"generator": "tools/gen_reference.py", "torch": torch.__version__, "cases": CASES}
    tmp = os.path.join(args.out, "ops.json.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, allow_nan=False)
    os.replace(tmp, os.path.join(args.out, "ops.json"))
    small_cnn(args.out)
    ops = sorted({c["op"] for c in CASES})
    print(f"gen_reference: {len(CASES)} cases over {len(ops)} ops -> {args.out}/ops.json, "
          f"{args.out}/small_cnn.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
