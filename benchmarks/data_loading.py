"""Data-layer costs: indexing with each image check, and loader throughput per input size.

Writes a throw-away Market-layout folder of 128×64 JPEGs (the size of Market-1501's crops) to a temp
dir, then prints: index time per image for ``verify_images`` = none / header / decode (ratio vs none),
and training-loader images/s at 256×128 and 128×64 (ratio vs 256×128), one thread, ``num_workers=0``.

    python benchmarks/data_loading.py [--images 4000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid_gan.data import FolderDataset  # noqa: E402
from reid_gan.data.datamodule import ReIDDataModule  # noqa: E402


def write_set(root: Path, n: int) -> int:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (128, 64, 3), dtype=np.uint8)
    total = 0
    for split, k in (("bounding_box_train", n), ("query", n // 20), ("bounding_box_test", n // 5)):
        d = root / split
        d.mkdir(parents=True)
        for i in range(k):
            img = np.roll(base, i, 0)
            cv2.imwrite(str(d / f"{i // 10 + 1:04d}_c{i % 6 + 1}s1_{i:06d}_00.jpg"), img)
        total += k
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=4000, help="training images (test splits add 25 %%)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "set"
        n = write_set(root, args.images)
        FolderDataset(root, verify_images="header")  # warm the page cache once
        base = None
        for mode in ("none", "header", "decode"):
            t = time.perf_counter()
            FolderDataset(root, verify_images=mode)
            dt = (time.perf_counter() - t) / n
            base = base or dt
            print(f"index, verify_images={mode:6s}: {dt * 1e3:.3f} ms/image  ({dt / base:.1f}x none)")
        ref = None
        for h, w in ((256, 128), (128, 64)):
            dm = ReIDDataModule(FolderDataset(root), height=h, width=w, batch_size=32, random_erasing=True)
            loader = dm.train_dataloader()
            it = iter(loader)
            next(it)
            t = time.perf_counter()
            m = sum(next(it)[0].shape[0] for _ in range(min(10, len(loader) - 1)))  # a small set has few batches
            if not m:
                raise SystemExit(f"--images {args.images}: too few for two training batches of 32")
            rate = m / (time.perf_counter() - t)
            ref = ref or rate
            print(f"train loader {h}x{w}: {rate:.0f} images/s  ({rate / ref:.2f}x 256x128)")


if __name__ == "__main__":
    main()
