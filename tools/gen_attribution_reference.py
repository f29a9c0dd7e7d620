#!/usr/bin/env python3
"""Reference attributions for tests/attribution, computed independently with PyTorch (float64).

Writes into --out (the build tree; nothing here is committed):
  tiny_relu.onnx, tiny_softplus.onnx, tiny_gap.onnx   small models with seeded weights, built
      with onnx.helper; between them every layer the attribution methods support
  tiny_methods.json    inputs, classes, and for each model and method the attribution and the
      saliency map, with the options used
  squeezenet_input.npy       chelsea.png, centre square crop, bilinear 227, BGR minus the mean
  squeezenet_<method>.npy    attribution [1, 3, 227, 227] of the top-1 class (float32 PyTorch)
  squeezenet.json            class, score, the methods' options

The ONNX graphs run in a small PyTorch interpreter written here (Conv, Relu, Softplus, MaxPool,
AveragePool, GlobalAveragePool, Concat, Flatten, Gemm, MatMul, Add, Dropout, Identity, Softmax).
Tiny models run in float64. Each method follows its published definition directly:
  gradient / grad_x_input / ig   autograd of the class score (IG: x_i = ref + i/M (x - ref),
                                 i = 1..M, map = (x - ref) * mean of gradients)
  deeplift      Rescale rule: activations get the multiplier (f(x) - f(r)) / (x - r) through a
                custom autograd Function (f'(x) where |x - r| <= sqrt(eps) (1 + |x| + |r|)),
                linear layers and max pooling keep their gradient; map = (x - ref) * multipliers;
                ref = 0 (the preprocessed zero, as for IG); deeplift_image_mean: each
                image's own per-channel mean colour
  guided_backprop   activations' backward replaced by relu(g) * f'(x)
  lrp_*         relevance walked backwards layer by layer from R = S_c: epsilon or alpha-beta on
                Conv/Gemm/MatMul (alpha-beta without biases), z^B with the valid box on layers
                reading the input, the epsilon z-rule on pooling/Add, max pooling winner takes
                all, activations and reshapes pass relevance through
  beta_smoothed     gradient with every Relu replaced by softplus_beta

Usage: /usr/bin/python3 tools/gen_attribution_reference.py --out DIR [--shared ../shared]
"""
import argparse
import json
import math
import os

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

torch.set_default_dtype(torch.float64)


# ---- a tiny ONNX interpreter in PyTorch ------------------------------------------------------

def attrs_of(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def softplus_beta(x, beta):
    # Stable for every x, no threshold: relu(x) + log1p(exp(-beta |x|)) / beta.
    return torch.relu(x) + torch.log1p(torch.exp(-beta * x.abs())) / beta


class Model:
    def __init__(self, path, dtype=np.float64):
        self.proto = onnx.load(path)
        g = self.proto.graph
        self.params = {t.name: torch.from_numpy(numpy_helper.to_array(t).astype(dtype))
                       for t in g.initializer if t.data_type == TensorProto.FLOAT}
        self.int_params = {t.name: numpy_helper.to_array(t) for t in g.initializer
                           if t.data_type != TensorProto.FLOAT}
        inits = {t.name for t in g.initializer}
        self.input = [i.name for i in g.input if i.name not in inits][0]
        self.meta = {p.key: p.value for p in self.proto.metadata_props}
        self.score = self.meta.get("score_output", g.output[0].name)
        self.nodes = list(g.node)

    def conv(self, node, x, w, b):
        a = attrs_of(node)
        pads = list(a.get("pads", [0, 0, 0, 0]))
        x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
        return F.conv2d(x, w, b, stride=tuple(a.get("strides", [1, 1])),
                        dilation=tuple(a.get("dilations", [1, 1])), groups=a.get("group", 1))

    def run_node(self, node, ins, act=None):
        """ins: list of tensors (None for omitted). act(node, x) overrides activations."""
        op, a = node.op_type, attrs_of(node)
        if op in ("Relu", "Softplus") and act is not None:
            return act(node, ins[0])
        if op == "Relu":
            return torch.relu(ins[0])
        if op == "Softplus":
            return softplus_beta(ins[0], a.get("beta", 1.0))
        if op == "Conv":
            return self.conv(node, ins[0], ins[1], ins[2] if len(ins) > 2 else None)
        if op == "MaxPool":
            k = tuple(a["kernel_shape"])
            pads = list(a.get("pads", [0, 0, 0, 0]))
            assert pads[0] == pads[2] and pads[1] == pads[3]
            return F.max_pool2d(ins[0], k, tuple(a.get("strides", k)), (pads[0], pads[1]),
                                ceil_mode=bool(a.get("ceil_mode", 0)))
        if op == "AveragePool":
            k = tuple(a["kernel_shape"])
            assert not any(a.get("pads", [0, 0, 0, 0]))
            return F.avg_pool2d(ins[0], k, tuple(a.get("strides", k)),
                                ceil_mode=bool(a.get("ceil_mode", 0)))
        if op == "GlobalAveragePool":
            return ins[0].mean(dim=(2, 3), keepdim=True)
        if op == "Concat":
            return torch.cat(ins, dim=a.get("axis", 1))
        if op == "Flatten":
            ax = a.get("axis", 1)
            return ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)
        if op == "Gemm":
            A, B = ins[0], ins[1]
            if a.get("transA", 0):
                A = A.t()
            if a.get("transB", 0):
                B = B.t()
            y = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                y = y + a.get("beta", 1.0) * ins[2]
            return y
        if op == "MatMul":
            return ins[0] @ ins[1]
        if op == "Add":
            return ins[0] + ins[1]
        if op in ("Dropout", "Identity"):
            return ins[0]
        if op == "Softmax":
            return torch.softmax(ins[0], dim=a.get("axis", -1))
        raise ValueError(f"unsupported op {op}")

    def forward(self, x, act=None, trace=None):
        vals = dict(self.params)
        vals[self.input] = x
        for node in self.nodes:
            ins = [vals[i] if i else None for i in node.input]
            y = self.run_node(node, ins, act)
            if trace is not None:
                trace.append((node, ins, y))
            vals[node.output[0]] = y
            if node.output[0] == self.score:
                break
        return vals[self.score].reshape(x.shape[0], -1)


def class_score(z, classes):
    return (z * F.one_hot(torch.tensor(classes), z.shape[1]).to(z.dtype)).sum()


# ---- methods ---------------------------------------------------------------------------------

def gradient(m, x, classes, act=None):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(class_score(m.forward(x, act), classes), x)[0]


def integrated_gradients(m, x, classes, steps, ref=None):
    """All M points in one batch (images of a point stay together)."""
    ref = torch.zeros_like(x) if ref is None else ref
    pts = torch.cat([ref + (i / steps) * (x - ref) for i in range(1, steps + 1)])
    g = gradient(m, pts, list(classes) * steps).reshape(steps, *x.shape)
    return (x - ref) * g.sum(0) / steps


def act_derivative(node, x):
    if node.op_type == "Relu":
        return (x > 0).to(x.dtype)
    return torch.sigmoid(attrs_of(node).get("beta", 1.0) * x)


def act_value(node, x):
    if node.op_type == "Relu":
        return torch.relu(x)
    return softplus_beta(x, attrs_of(node).get("beta", 1.0))


class Rescale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, r, node_id):
        node = Rescale.nodes[node_id]
        y, yr = act_value(node, x), act_value(node, r)
        dx = x - r
        tol = math.sqrt(torch.finfo(x.dtype).eps)
        far = dx.abs() > tol * (1 + x.abs() + r.abs())
        mult = torch.where(far, (y - yr) / torch.where(far, dx, torch.ones_like(dx)),
                           act_derivative(node, x))
        ctx.save_for_backward(mult)
        return y

    @staticmethod
    def backward(ctx, g):
        (mult,) = ctx.saved_tensors
        return g * mult, None, None


def deeplift(m, x, classes, ref=None):
    if ref is None:
        ref = torch.zeros_like(x)
    elif isinstance(ref, str) and ref == "image_mean":
        ref = x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    rtrace = []
    with torch.no_grad():
        m.forward(ref, trace=rtrace)
    ref_in = {n.name: ins[0] for n, ins, _ in rtrace}
    Rescale.nodes = {n.name: n for n, _, _ in rtrace}

    def act(node, v):
        return Rescale.apply(v, ref_in[node.name], node.name)

    return (x - ref) * gradient(m, x, classes, act)


class Guided(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, node_id):
        node = Guided.nodes[node_id]
        ctx.save_for_backward(act_derivative(node, x))
        return act_value(node, x)

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        return torch.relu(g) * d, None


def guided_backprop(m, x, classes):
    Guided.nodes = {n.name: n for n in m.nodes}
    return gradient(m, x, classes, lambda node, v: Guided.apply(v, node.name))


def beta_smoothed(m, x, classes, beta):
    def act(node, v):
        return softplus_beta(v, beta) if node.op_type == "Relu" else act_value(node, v)
    return gradient(m, x, classes, act)


def stab(z, eps):
    return torch.where(z >= 0, z + eps, z - eps)


def vjp(f, a, s):
    a = a.detach().requires_grad_(True)
    return torch.autograd.grad(f(a), a, s)[0]


def input_box(m, x, low=None, high=None):
    c = x.shape[1]
    if low is not None:
        return (torch.full((1, c, 1, 1), low, dtype=x.dtype),
                torch.full((1, c, 1, 1), high, dtype=x.dtype))
    mean = [float(v) for v in m.meta["preprocess.mean"].split(",")]
    scale = [float(v) for v in m.meta.get("preprocess.scale", "1").split(",")]
    mean = mean * c if len(mean) == 1 else mean
    scale = scale * c if len(scale) == 1 else scale
    lo = [(0 - mu) * s for mu, s in zip(mean, scale)]
    hi = [(255 - mu) * s for mu, s in zip(mean, scale)]
    return (torch.tensor(lo, dtype=x.dtype).reshape(1, c, 1, 1),
            torch.tensor(hi, dtype=x.dtype).reshape(1, c, 1, 1))


def lrp(m, x, classes, rule, eps, alpha=1.0, beta=0.0, low=None, high=None):
    trace = []
    with torch.no_grad():
        z = m.forward(x, trace=trace)
    lo, hi = input_box(m, x, low, high)
    first = {m.input}  # layers reading the input use z^B (the models here start with a Conv)
    onehot = F.one_hot(torch.tensor(classes), z.shape[1]).to(z.dtype)
    rel = {m.score: (z * onehot).reshape(trace[-1][2].shape)}
    for node, ins, out in reversed(trace):
        if node.output[0] not in rel:
            continue
        R = rel.pop(node.output[0])
        op = node.op_type
        data = [i for i, name in enumerate(node.input) if name and name not in m.params]
        res = {}
        if op in ("Relu", "Softplus", "Dropout", "Identity"):
            res[0] = R
        elif op in ("Flatten", "Concat", "MaxPool"):
            def f(*a_all, node=node, ins=ins):
                full = list(ins)
                for i, v in zip(data, a_all):
                    full[i] = v
                return m.run_node(node, full)
            leaves = [ins[i].detach().requires_grad_(True) for i in data]
            gs = torch.autograd.grad(f(*leaves), leaves, R)
            res = dict(zip(data, gs))
        elif op in ("AveragePool", "GlobalAveragePool", "Add"):
            s = R / stab(out, eps)
            leaves = [ins[i].detach().requires_grad_(True) for i in data]
            full = list(ins)
            for i, v in zip(data, leaves):
                full[i] = v
            gs = torch.autograd.grad(m.run_node(node, full), leaves, s)
            res = {i: ins[i] * g for i, g in zip(data, gs)}
        elif op in ("Conv", "Gemm", "MatMul"):
            a, w = ins[0], ins[1]

            def layer(v, wt, node=node, ins=ins):
                full = [v, wt] + [None] * (len(ins) - 2)
                return m.run_node(node, full)

            wp, wn = w.clamp(min=0), w.clamp(max=0)
            if node.input[0] in first:  # z^B
                l_, h_ = lo.expand_as(a), hi.expand_as(a)
                zb = layer(a, w) - layer(l_, wp) - layer(h_, wn)
                s = R / stab(zb, eps)
                res[0] = a * vjp(lambda v: layer(v, w), a, s) - l_ * vjp(
                    lambda v: layer(v, wp), a, s) - h_ * vjp(lambda v: layer(v, wn), a, s)
            elif rule == "epsilon":
                s = R / stab(out, eps)
                res[0] = a * vjp(lambda v: layer(v, w), a, s)
            else:
                ap, an = a.clamp(min=0), a.clamp(max=0)
                zp = layer(ap, wp) + layer(an, wn)
                sp = R / (zp + eps)
                r = alpha * (ap * vjp(lambda v: layer(v, wp), a, sp) +
                             an * vjp(lambda v: layer(v, wn), a, sp))
                if beta != 0:
                    zn = layer(ap, wn) + layer(an, wp)
                    sn = R / (zn - eps)
                    r = r - beta * (ap * vjp(lambda v: layer(v, wn), a, sn) +
                                    an * vjp(lambda v: layer(v, wp), a, sn))
                res[0] = r
        else:
            raise ValueError(f"lrp: unsupported {op}")
        for i, r in res.items():
            name = node.input[i]
            rel[name] = rel[name] + r if name in rel else r
    return rel[m.input]


def saliency(attr):
    s = attr.abs().sum(1)
    return s / s.sum(dim=(1, 2), keepdim=True)


# ---- tiny models -----------------------------------------------------------------------------

def make_model(path, nodes, inits, in_shape, n_classes, meta=None):
    g = helper.make_graph(
        nodes, os.path.basename(path).split(".")[0],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + in_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_classes]),
         helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", n_classes])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for k, v in (meta or {}).items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, path)


def tiny_relu_nodes(act):
    A = lambda i, o: helper.make_node(act, [i], [o], name=o)  # noqa: E731
    N = helper.make_node
    return [
        N("Conv", ["x", "w1", "b1"], ["c1"], name="c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        A("c1", "r1"),
        N("MaxPool", ["r1"], ["p1"], name="p1", kernel_shape=[2, 2], strides=[2, 2]),
        N("Conv", ["p1", "w2", "b2"], ["e1"], name="e1", kernel_shape=[1, 1]),
        A("e1", "a1"),
        N("Conv", ["p1", "w3", "b3"], ["e3"], name="e3", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        A("e3", "a3"),
        N("Concat", ["a1", "a3"], ["cat"], name="cat", axis=1),
        N("Conv", ["cat", "w4", "b4"], ["c4"], name="c4", kernel_shape=[2, 2], pads=[0, 0, 1, 1]),
        A("c4", "r4"),
        N("AveragePool", ["r4"], ["ap"], name="ap", kernel_shape=[2, 2], strides=[2, 2]),
        N("Dropout", ["ap"], ["dr"], name="dr"),
        N("Identity", ["dr"], ["idn"], name="idn"),
        N("Flatten", ["idn"], ["fl"], name="fl", axis=1),
        N("Gemm", ["fl", "w5", "b5"], ["h"], name="h", transB=1),
        A("h", "h1"),
        N("MatMul", ["h1", "w6"], ["mm"], name="mm"),
        N("Add", ["mm", "b6"], ["mb"], name="mb"),
        A("mb", "h2"),
        N("Add", ["h2", "h1"], ["res"], name="res"),
        N("Gemm", ["res", "w7", "b7"], ["logits"], name="fc", transB=1),
        N("Softmax", ["logits"], ["prob"], name="softmax", axis=1),
    ]


def tiny_relu_weights(rng):
    r = lambda *s: rng.normal(0, 1, s) / math.sqrt(np.prod(s[1:]) if len(s) > 1 else 1)  # noqa
    return {"w1": r(4, 2, 3, 3), "b1": 0.1 * rng.normal(size=4),
            "w2": r(3, 4, 1, 1), "b2": 0.1 * rng.normal(size=3),
            "w3": r(3, 4, 3, 3), "b3": 0.1 * rng.normal(size=3),
            "w4": r(4, 6, 2, 2), "b4": 0.1 * rng.normal(size=4),
            "w5": r(8, 16), "b5": 0.1 * rng.normal(size=8),
            "w6": rng.normal(0, 1, (8, 8)) / math.sqrt(8), "b6": 0.1 * rng.normal(size=8),
            "w7": r(5, 8), "b7": 0.1 * rng.normal(size=5)}


def tiny_gap(path, rng):
    N = helper.make_node
    nodes = [
        N("Conv", ["x", "w1", "b1"], ["c1"], name="c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        N("Relu", ["c1"], ["r1"], name="r1"),
        N("Conv", ["r1", "w2", "b2"], ["c2"], name="c2", kernel_shape=[1, 1], pads=[1, 1, 1, 1]),
        N("Relu", ["c2"], ["r2"], name="r2"),
        N("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        N("Flatten", ["gap"], ["logits"], name="fl", axis=1),
        N("Softmax", ["logits"], ["prob"], name="softmax", axis=1),
    ]
    inits = {"w1": rng.normal(0, 1, (4, 3, 3, 3)) / 5, "b1": 0.1 * rng.normal(size=4),
             "w2": rng.normal(0, 1, (5, 4, 1, 1)) / 2, "b2": 0.2 + 0.1 * rng.normal(size=5)}
    make_model(path, nodes, inits, [3, 6, 6], 5,
               {"score_output": "logits", "preprocess.mean": "0", "preprocess.scale": "0.01"})


def tensor_json(t):  # noqa: D103
    a = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return {"shape": list(a.shape), "dtype": "float64", "data": a.astype(np.float64).ravel().tolist()}


def tiny_references(out, rng):
    w = tiny_relu_weights(rng)
    meta = {"score_output": "logits", "preprocess.mean": "128,100", "preprocess.scale": "0.01"}
    make_model(os.path.join(out, "tiny_relu.onnx"), tiny_relu_nodes("Relu"), w, [2, 8, 8], 5, meta)
    make_model(os.path.join(out, "tiny_softplus.onnx"), tiny_relu_nodes("Softplus"), w, [2, 8, 8],
               5, meta)
    tiny_gap(os.path.join(out, "tiny_gap.onnx"), rng)

    # Inputs inside the valid box [(0 - mean) * scale, (255 - mean) * scale] per channel.
    lo = np.array([-1.28, -1.0]).reshape(1, 2, 1, 1)
    hi = np.array([1.27, 1.55]).reshape(1, 2, 1, 1)
    x = torch.from_numpy(lo + (hi - lo) * rng.uniform(size=(3, 2, 8, 8)))
    # Values as float32 would store them, so float32 runs see the same input.
    x = x.float().double()
    classes = [1, 3, 0]
    ig_ref = torch.from_numpy(0.2 * rng.normal(size=(1, 2, 8, 8))).float().double()
    doc = {"x": tensor_json(x), "classes": classes, "ig_reference": tensor_json(ig_ref),
           "models": {}}
    for name in ("tiny_relu", "tiny_softplus"):
        m = Model(os.path.join(out, name + ".onnx"))
        methods = {
            "gradient": ({}, gradient(m, x, classes)),
            "grad_x_input": ({}, x * gradient(m, x, classes)),
            "ig": ({"ig_steps": 8, "ig_batch": 3}, integrated_gradients(m, x, classes, 8)),
            "ig_with_reference": ({"ig_steps": 5, "ig_batch": 2, "reference": True},
                                  integrated_gradients(m, x, classes, 5, ig_ref)),
            "deeplift": ({}, deeplift(m, x, classes)),
            "deeplift_image_mean": ({"default_reference": "image_channel_mean"},
                                    deeplift(m, x, classes, "image_mean")),
            "guided_backprop": ({}, guided_backprop(m, x, classes)),
            "lrp_epsilon": ({"lrp_epsilon": 0.01}, lrp(m, x, classes, "epsilon", 0.01)),
            "lrp_alphabeta": ({"lrp_epsilon": 1e-6},
                              lrp(m, x, classes, "alphabeta", 1e-6, 1.0, 0.0)),
            "lrp_alpha2beta1": ({"lrp_epsilon": 1e-6, "lrp_alpha": 2.0, "lrp_beta": 1.0,
                                 "lrp_low": -2.0, "lrp_high": 2.0},
                                lrp(m, x, classes, "alphabeta", 1e-6, 2.0, 1.0, -2.0, 2.0)),
            "beta_smoothed": ({"smoothing_beta": 5.0}, beta_smoothed(m, x, classes, 5.0)),
        }
        with torch.no_grad():
            logits = m.forward(x)
        doc["models"][name] = {
            "logits": tensor_json(logits),
            "methods": {k: {"options": o, "attribution": tensor_json(a),
                            "saliency": tensor_json(saliency(a))} for k, (o, a) in methods.items()},
        }
    with open(os.path.join(out, "tiny_methods.json"), "w") as f:
        json.dump(doc, f)


# ---- SqueezeNet --------------------------------------------------------------------------------

def squeezenet_input(shared):
    from PIL import Image
    img = Image.open(os.path.join(shared, "images", "chelsea.png")).convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    img = img.resize((227, 227), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32)[:, :, ::-1]  # BGR
    a = a - np.array([104, 117, 123], dtype=np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None])


def squeezenet_references(out, shared):
    model_path = os.path.join(shared, "models", "squeezenet1.0.onnx")
    xin = squeezenet_input(shared)
    np.save(os.path.join(out, "squeezenet_input.npy"), xin)
    # float32, as PyTorch runs it by default (float64 convolutions are an order of magnitude
    # slower on CPU); the tests allow 1e-3 of the map's maximum.
    m = Model(model_path, np.float32)
    x = torch.from_numpy(xin)
    with torch.no_grad():
        z = m.forward(x)
    c = int(z.argmax())
    classes = [c]
    ig_steps = 16
    methods = {
        "gradient": gradient(m, x, classes),
        "ig": integrated_gradients(m, x, classes, ig_steps),
        "deeplift": deeplift(m, x, classes),
        "guided_backprop": guided_backprop(m, x, classes),
        "lrp_epsilon": lrp(m, x, classes, "epsilon", 1e-6),
        "lrp_alphabeta": lrp(m, x, classes, "alphabeta", 1e-6, 1.0, 0.0),
        "beta_smoothed": beta_smoothed(m, x, classes, 10.0),
    }
    for k, a in methods.items():
        np.save(os.path.join(out, f"squeezenet_{k}.npy"), a.numpy().astype(np.float32))
    with open(os.path.join(out, "squeezenet.json"), "w") as f:
        json.dump({"class": c, "score": float(z[0, c]), "ig_steps": ig_steps,
                   "smoothing_beta": 10.0, "lrp_epsilon": 1e-6,
                   "methods": sorted(methods)}, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                     "shared"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(2)
    rng = np.random.default_rng(20240607)
    tiny_references(args.out, rng)
    if os.path.exists(os.path.join(args.shared, "models", "squeezenet1.0.onnx")):
        squeezenet_references(args.out, args.shared)
    else:
        print("squeezenet1.0.onnx not found under", args.shared, "- SqueezeNet references skipped")
    print("attribution references written to", args.out)


if __name__ == "__main__":
    main()
