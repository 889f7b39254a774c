"""Hand-made sets and a random-weights YOLOv4-tiny for the filter tests."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from reid_gan.filters.detector import darknet_conv_layers

DATA = Path(__file__).resolve().parent / "data"
YOLO_CFG = DATA / "yolov4-tiny.cfg"


def write_random_darknet_weights(cfg: Path, path: Path, seed: int = 0) -> Path:
    """A darknet .weights file (header: major 0, minor 2, revision 5, seen int64) with random values:
    per conv layer biases, [BN scales, rolling means, rolling variances (> 0)], weights (He-scaled)."""
    rng = np.random.default_rng(seed)
    parts = [np.array([0, 2, 5], np.int32).tobytes(), np.array([0], np.int64).tobytes()]
    for c in darknet_conv_layers(cfg):
        f = c["filters"]
        fan = c["in_channels"] // c["groups"] * c["size"] ** 2
        parts.append(rng.normal(0, 0.1, f).astype(np.float32).tobytes())
        if c["batch_normalize"]:
            parts.append(rng.uniform(0.5, 1.5, f).astype(np.float32).tobytes())
            parts.append(rng.normal(0, 0.1, f).astype(np.float32).tobytes())
            parts.append(rng.uniform(0.5, 1.5, f).astype(np.float32).tobytes())
        parts.append(rng.normal(0, np.sqrt(2.0 / fan), f * fan).astype(np.float32).tobytes())
    path.write_bytes(b"".join(parts))
    return path


def person_like(rng: np.random.Generator, h: int = 128, w: int = 64, colours=None) -> np.ndarray:
    """A crude standing figure (head, torso, legs) on a textured background, BGR uint8."""
    img = rng.integers(60, 200, (h, w, 3)).astype(np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 3)
    top, bottom = colours if colours is not None else (rng.integers(0, 256, 3), rng.integers(0, 256, 3))
    cx = w // 2
    cv2.circle(img, (cx, h // 8 + 4), h // 14, (80, 110, 170), -1)
    cv2.rectangle(img, (cx - w // 5, h // 5), (cx + w // 5, h // 2), tuple(int(v) for v in top), -1)
    cv2.rectangle(img, (cx - w // 5, h // 2), (cx - 2, h - 8), tuple(int(v) for v in bottom), -1)
    cv2.rectangle(img, (cx + 2, h // 2), (cx + w // 5, h - 8), tuple(int(v) for v in bottom), -1)
    return img


def make_generated_set(root: Path, persons: int = 3, per_person: int = 5, seed: int = 0,
                       noise_images: int = 1) -> Path:
    """A generated set in the shared layout: bounding_box_train/ + manifest.jsonl (pids from 10000,
    camera 7). Per person: a base image, variants (small shifts/noise), and ``noise_images`` pure-noise
    images (which SSIM against the base should discard)."""
    rng = np.random.default_rng(seed)
    d = root / "bounding_box_train"
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for p in range(persons):
        pid = 10000 + p
        cols = (rng.integers(0, 256, 3), rng.integers(0, 256, 3))
        base = person_like(rng, colours=cols)
        for k in range(per_person):
            if k == 0:
                img, method = base, "base"
            elif k > per_person - 1 - noise_images:
                img, method = rng.integers(0, 256, base.shape).astype(np.uint8), "style_mix"
            else:
                img = np.clip(base.astype(int) + rng.integers(-6, 7, base.shape), 0, 255)
                img, method = img.astype(np.uint8), "transform"
            name = f"{pid:05d}_c7s1_{k:06d}_00.jpg"
            cv2.imwrite(str(d / name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            lines.append({"file": f"bounding_box_train/{name}", "pid": pid, "source": "seed", "seed": p,
                          "method": method, "params": {"k": k}, "psi": 0.7, "generator_sha256": "0" * 64})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root


class TinyReID:
    """Built lazily so importing this module does not need torch.nn at collection time."""

    def __new__(cls, dim: int = 8):
        import torch

        class _Tiny(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, dim, 5, stride=2)
                self.pool = torch.nn.AdaptiveAvgPool2d((2, 1))

            def forward(self, x):
                return torch.relu(self.pool(self.conv(x))).flatten(1)

        return _Tiny()
