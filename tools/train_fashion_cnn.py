#!/usr/bin/env python3
"""Trains the small softplus CNN that ships with fragile and exports it as ONNX.

Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist). The model is small
(~110k parameters, < 0.5 MB) so it can be committed and used as the default of the main job.
Softplus (beta = 1) everywhere: its input Hessian is non-zero, so explanation attacks have a
direction without a surrogate. Deterministic given --seed.

Usage: /usr/bin/python3 tools/train_fashion_cnn.py [--out tools/models] [--epochs 3]
"""
import argparse
import gzip
import os

import numpy as np
import onnx
import torch
import torch.nn as nn

DATA = "/usr/share/datasets/fashion-mnist"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
          "Bag", "Ankle boot"]


def load(split):
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(os.path.join(DATA, f"{prefix}-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(DATA, f"{prefix}-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x, y.astype(np.int64)


class FashionCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.Softplus(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.Softplus(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.Softplus(), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "models"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)

    xtr, ytr = load("train")
    xte, yte = load("test")
    # Preprocessing (recorded in the ONNX metadata): pixel / 255, one gray channel.
    to_t = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)
    xtr_t, xte_t = to_t(xtr), to_t(xte)
    ytr_t, yte_t = torch.from_numpy(ytr), torch.from_numpy(yte)

    model = FashionCnn()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xtr_t))
        model.train()
        for i in range(0, len(perm), 128):
            idx = perm[i:i + 128]
            loss = nn.functional.cross_entropy(model(xtr_t[idx]), ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xte_t).argmax(1) == yte_t).float().mean().item()
        print(f"epoch {epoch + 1}: test accuracy {acc:.4f}")

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "fashion_cnn.onnx")

    class WithProb(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            z = self.m(x)
            return z, torch.softmax(z, 1)

    torch.onnx.export(WithProb(model), torch.zeros(1, 1, 28, 28), path, opset_version=13,
                      input_names=["image"], output_names=["logits", "prob"],
                      dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}, "prob": {0: "N"}})
    m = onnx.load(path)
    meta = {
        "preprocess.channel_order": "GRAY",
        "preprocess.mean": "0",
        "preprocess.scale": str(1.0 / 255.0),
        "preprocess.size": "28",
        "preprocess.resize": "center-crop-square,bilinear",
        "labels": "fashion_mnist_classes.txt",
        "score_output": "logits",
        "test_accuracy": f"{acc:.4f}",
        "trained_by": "tools/train_fashion_cnn.py",
    }
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(m, path)
    with open(os.path.join(args.out, "fashion_mnist_classes.txt"), "w") as f:
        f.write("\n".join(LABELS) + "\n")

    # A few test images as PNG fixtures (28x28 gray, a few hundred bytes each).
    from PIL import Image
    sample_dir = os.path.join(args.out, "fashion_samples")
    os.makedirs(sample_dir, exist_ok=True)
    for i in range(8):
        Image.fromarray(xte[i, 0]).save(
            os.path.join(sample_dir, f"test{i}_{LABELS[yte[i]].split('/')[0].lower().replace(' ', '_')}.png"))
    print(f"wrote {path} ({os.path.getsize(path)} bytes), accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
