"""Hand-made Market-1501 trees for the data-layer tests (tiny JPEGs written with OpenCV)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# (split folder, file name) of the default tree; pid 0 = distractor, -1 = junk.
TRAIN = [
    "0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0002_c2s1_000601_02.jpg",
    "0007_c1s1_000101_00.jpg", "0007_c3s2_000201_00.jpg",
    "0012_c4s1_000301_00.jpg", "0012_c6s3_000401_01.jpg",
    "-1_c1s1_000001_00.jpg",  # junk: dropped
]
QUERY = ["0001_c1s1_001051_00.jpg", "0005_c2s1_000151_00.jpg"]
GALLERY = [
    "0001_c2s1_000301_00.jpg", "0001_c3s1_000401_00.jpg", "0001_c1s1_000501_01.jpg",
    "0005_c1s1_000151_00.jpg", "0005_c5s1_000251_00.jpg",
    "0000_c1s1_000151_01.jpg", "0000_c4s1_000376_03.jpg",  # distractors: kept
    "-1_c1s1_000401_03.jpg", "-1_c3s1_000402_01.jpg",  # junk: dropped
]


def write_image(path: Path, pid: int, h: int = 32, w: int = 16, seed: int = 0) -> Path:
    """A tiny JPEG whose colour depends on the pid (so images of one person look alike)."""
    rng = np.random.default_rng(abs(pid) * 7919 + seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 256, 3, dtype=np.uint8)
    img[h // 2:] = rng.integers(0, 256, 3, dtype=np.uint8)
    img = np.clip(img.astype(np.int16) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def _pid(name: str) -> int:
    return int(name.split("_")[0])


def write_market_tree(root: Path, train=TRAIN, query=QUERY, gallery=GALLERY, extra_files=()) -> Path:
    """Write a Market-1501-layout tree under ``root`` (returned); ``extra_files``: ``(relpath, bytes)``."""
    for folder, names in (("bounding_box_train", train), ("query", query), ("bounding_box_test", gallery)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names):
            write_image(root / folder / name, _pid(name), seed=i)
    for rel, data in extra_files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def write_generated_set(root: Path, pids=(10000, 10001), per_person: int = 3, source="seed",
                        camera: int = 7) -> Path:
    """A generated set: only ``bounding_box_train/`` + ``manifest.jsonl`` (cf. the shared interface)."""
    import json

    lines = []
    for pid in pids:
        for k in range(per_person):
            name = f"{pid:05d}_c{camera}s1_{k:06d}_00.jpg" if pid >= 10000 else f"{pid:04d}_c{camera}s1_{k:06d}_00.jpg"
            write_image(root / "bounding_box_train" / name, pid, seed=100 + k)
            src = source if source == "seed" else pid
            lines.append(json.dumps({"file": f"bounding_box_train/{name}", "pid": pid, "source": src,
                                     "seed": k, "method": "base", "params": {}, "psi": 0.7,
                                     "generator_sha256": "0" * 64}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root
