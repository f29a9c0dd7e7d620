#!/usr/bin/python3
"""PyTorch float64 reference data for fragile's influence tests (tests/influence/).

Writes <out>/influence.json with two cases:

  "mlp": a softplus MLP classifier, params theta = (W1 [6,4], b1 [6], W2 [3,6], b2 [3]) flattened
     in that order, row-major (P = 51), on 10 seeded training points. Objective
     J = mean cross-entropy + l2/2 |theta|^2. Stored: J, grad J, H v (double backward), the exact
     Hessian, per-example gradients, s_test = H^-1 grad L(z_t) and the influences
     I(z_i, z_t) = -grad L(z_t)^T H^-1 grad L(z_i) of every training point on one test point.

  "attack": the mixed derivative of Ghorbani et al.'s influence attack on a tiny frozen network:
     features f(x) = softplus(linear(flatten(softplus(conv3x3(x))))) for x [1,1,6,6], a logistic
     last layer theta = (w [5,1], b [1]) and the loss L = softplus(-y (f w + b)); stored
     grad_x [-grad_theta L(x)^T u] for a seeded u.

Also writes <out>/influence_gzip.gz: gzip (level 9, dynamic Huffman blocks) of 20000 bytes
b[i] = "abcdefghij  \n"[(s_i >> 16) mod 13] with the LCG s_0 = 1,
s_{i+1} = (1103515245 s_i + 12345) mod 2^31, which tests/influence regenerates to check the
decoder of influence/gzip.cpp.

Tensor layout as tools/gen_reference.py: {"shape": [..], "dtype": "float64", "data": [..]}.

Usage: /usr/bin/python3 tools/gen_influence_reference.py --out build/reference
"""
import argparse
import gzip
import json
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def tj(t):
    t = t.detach().cpu()
    if t.dtype == torch.int64:
        return {"shape": list(t.shape), "dtype": "int64", "data": t.reshape(-1).tolist()}
    return {"shape": list(t.shape), "dtype": "float64",
            "data": [float(v) for v in t.reshape(-1).tolist()]}


def flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def mlp_case():
    g = torch.Generator().manual_seed(6)
    n, d, h, c = 10, 4, 6, 3
    l2 = 0.5  # large enough that H is positive definite (CG and Cholesky apply)
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    xt = torch.randn(1, d, generator=g)
    yt = torch.randint(0, c, (1,), generator=g)
    shapes = [(h, d), (h,), (c, h), (c,)]
    params0 = [0.5 * torch.randn(*s, generator=g) for s in shapes]
    sizes = [p.numel() for p in params0]
    theta0 = flat(params0)
    v = torch.randn(theta0.numel(), generator=g)

    def unflat(theta):
        out, at = [], 0
        for s, k in zip(shapes, sizes):
            out.append(theta[at:at + k].reshape(s))
            at += k
        return out

    def losses(theta, xs, ys):
        w1, b1, w2, b2 = unflat(theta)
        z = F.linear(F.softplus(F.linear(xs, w1, b1)), w2, b2)
        return F.cross_entropy(z, ys, reduction="none")

    def objective(theta):
        return losses(theta, x, y).mean() + 0.5 * l2 * (theta * theta).sum()

    theta = theta0.clone().requires_grad_(True)
    j = objective(theta)
    (grad,) = torch.autograd.grad(j, theta, create_graph=True)
    (hv,) = torch.autograd.grad(grad, theta, v)
    hess = torch.autograd.functional.hessian(objective, theta0)
    per_ex = torch.stack([torch.autograd.grad(losses(theta, x[i:i + 1], y[i:i + 1]).sum(),
                                              theta)[0] for i in range(n)])
    (gt,) = torch.autograd.grad(losses(theta, xt, yt).sum(), theta)
    s_test = torch.linalg.solve(hess, gt)
    infl = -(per_ex @ s_test)
    return {
        "n": n, "l2": l2, "param_shapes": [list(s) for s in shapes],
        "x": tj(x), "y": tj(y), "x_test": tj(xt), "y_test": tj(yt),
        "theta": tj(theta0), "v": tj(v),
        "objective": float(j), "gradient": tj(grad), "hvp": tj(hv), "hessian": tj(hess),
        "per_example_gradients": tj(per_ex), "test_gradient": tj(gt), "s_test": tj(s_test),
        "influence": tj(infl),
    }


def attack_case():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 1, 6, 6, generator=g)
    conv_w = 0.5 * torch.randn(2, 1, 3, 3, generator=g)
    conv_b = 0.1 * torch.randn(2, generator=g)
    fc_w = 0.3 * torch.randn(5, 32, generator=g)
    fc_b = 0.1 * torch.randn(5, generator=g)
    w = torch.randn(5, 1, generator=g)
    b = torch.randn(1, generator=g)
    u = torch.randn(6, generator=g)
    y = 1.0

    xs = x.clone().requires_grad_(True)
    wl = w.clone().requires_grad_(True)
    bl = b.clone().requires_grad_(True)
    f = F.softplus(F.linear(torch.flatten(F.softplus(F.conv2d(xs, conv_w, conv_b)), 1), fc_w, fc_b))
    loss = F.softplus(-y * (f @ wl + bl)).sum()
    gw, gb = torch.autograd.grad(loss, (wl, bl), create_graph=True)
    q = -(flat([gw, gb]) * u).sum()
    (gx,) = torch.autograd.grad(q, xs)
    return {
        "x": tj(x), "conv_w": tj(conv_w), "conv_b": tj(conv_b), "fc_w": tj(fc_w),
        "fc_b": tj(fc_b), "w": tj(w), "b": tj(b), "u": tj(u), "y": y,
        "loss": float(loss), "input_gradient": tj(gx),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    doc = {"generator": "tools/gen_influence_reference.py", "torch": torch.__version__,
           "mlp": mlp_case(), "attack": attack_case()}
    alphabet = b"abcdefghij  \n"
    raw, state = bytearray(), 1
    for _ in range(20000):
        raw.append(alphabet[(state >> 16) % 13])
        state = (1103515245 * state + 12345) % (1 << 31)
    raw = bytes(raw)
    with open(os.path.join(args.out, "influence_gzip.gz"), "wb") as fh:
        fh.write(gzip.compress(raw, compresslevel=9, mtime=0))
    path = os.path.join(args.out, "influence.json")
    with open(path, "w") as fh:
        json.dump(doc, fh)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
