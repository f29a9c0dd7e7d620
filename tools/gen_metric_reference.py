#!/usr/bin/env python3
"""Reference values of the saliency-map similarity metrics (attribution/metrics.h), from
scipy.stats, scipy.ndimage and scikit-image, for tests/attribution.

Writes --out/metrics.json: a list of cases, each two H x W maps (flattened row-major) and the
expected spearman (scipy.stats.spearmanr, average ranks for ties), kendall_tau_b
(scipy.stats.kendalltau, variant b), pearson (scipy.stats.pearsonr), mse, topk_intersection
(|topk(a) & topk(b)| / k, ties broken by the lower flat index as tf.nn.top_k does), the centres
of mass (scipy.ndimage.center_of_mass, (row, col)) and their L2 distance, and ssim
(skimage.metrics.structural_similarity with its defaults: 7x7 uniform window, K1 0.01, K2 0.03,
sample covariance, data_range = max - min over both maps).

scikit-image is Debian's python3-skimage. Without it the SSIM cases are left out (the C++ test
then skips them) and the script says so.

Usage: /usr/bin/python3 tools/gen_metric_reference.py --out DIR
"""
import argparse
import json
import os

import numpy as np
from scipy import ndimage, stats

try:
    from skimage.metrics import structural_similarity
except ImportError:  # pragma: no cover - depends on the machine
    structural_similarity = None


def topk(v, k):
    # Stable descending order: among equal values the lower index comes first.
    return set(np.argsort(-v, kind="stable")[:k].tolist())


def case(name, a, b, k):
    h, w = a.shape
    fa, fb = a.ravel(), b.ravel()
    c = {"name": name, "h": h, "w": w, "k": k, "a": fa.tolist(), "b": fb.tolist(),
         "spearman": float(stats.spearmanr(fa, fb)[0]),
         "kendall_tau_b": float(stats.kendalltau(fa, fb, variant="b")[0]),
         "pearson": float(stats.pearsonr(fa, fb)[0]),
         "mse": float(np.mean((fa - fb) ** 2)),
         "topk_intersection": len(topk(fa, k) & topk(fb, k)) / k}
    if a.min() >= 0 and b.min() >= 0:
        ca, cb = ndimage.center_of_mass(a), ndimage.center_of_mass(b)
        c["center_a"] = [float(v) for v in ca]
        c["center_b"] = [float(v) for v in cb]
        c["center_shift"] = float(np.hypot(ca[0] - cb[0], ca[1] - cb[1]))
    if structural_similarity is not None and h >= 7 and w >= 7:
        rng = max(a.max(), b.max()) - min(a.min(), b.min())
        c["ssim"] = float(structural_similarity(a, b, data_range=rng))
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(7)
    cases = []

    # Saliency-like maps: a smooth blob plus noise, normalised to sum 1; b a perturbed copy.
    yy, xx = np.mgrid[0:32, 0:40]
    blob = np.exp(-((yy - 12.0) ** 2 + (xx - 25.0) ** 2) / 60.0)
    a = blob + 0.05 * rng.random((32, 40))
    b = np.roll(blob, (3, -4), axis=(0, 1)) + 0.08 * rng.random((32, 40))
    cases.append(case("saliency_like", a / a.sum(), b / b.sum(), 100))

    # Independent random maps (rank correlation near 0).
    cases.append(case("random", rng.random((20, 20)), rng.random((20, 20)), 40))

    # Heavy ties: values on a coarse grid (average ranks, tau-b's tie corrections).
    a = rng.integers(0, 5, (12, 15)).astype(float)
    b = (a + rng.integers(0, 3, (12, 15))).astype(float)
    cases.append(case("ties", a, b, 30))

    # Anti-correlated, with negative values (no centre of mass).
    a = rng.normal(size=(9, 11))
    cases.append(case("negative", a, -a + 0.3 * rng.normal(size=(9, 11)), 10))

    # Identical maps and a tiny non-square one.
    a = rng.random((8, 7))
    cases.append(case("identical", a, a.copy(), 5))
    cases.append(case("small", rng.random((3, 4)), rng.random((3, 4)), 2))

    # A SqueezeNet-sized map (227 x 227 = 51529 pixels, k = 1000 as in Ghorbani et al.).
    yy, xx = np.mgrid[0:227, 0:227]
    a = np.exp(-((yy - 100.0) ** 2 + (xx - 120.0) ** 2) / 2000.0) + 0.2 * rng.random((227, 227))
    b = np.exp(-((yy - 130.0) ** 2 + (xx - 90.0) ** 2) / 2500.0) + 0.2 * rng.random((227, 227))
    cases.append(case("squeezenet_sized", a / a.sum(), b / b.sum(), 1000))

    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump({"ssim_available": structural_similarity is not None, "cases": cases}, f)
    if structural_similarity is None:
        print("scikit-image not found (apt-get install python3-skimage): SSIM cases left out")
    print("metric references written to", args.out)


if __name__ == "__main__":
    main()
