"""Training images for the GAN stages (leakage-guarded ``bounding_box_train`` only) and PNG grids."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["training_image_paths", "load_images", "to_uint8", "save_grid", "make_grid"]


def training_image_paths(data_cfg) -> list[str]:
    """Paths of the images a generator may train on: ``<data.root>/bounding_box_train/*`` only.

    Uses the data module's leakage guard (``reid_gan.data.leakage.generation_images_from_config``: refuses
    test-split folders and identities shared with query/gallery) when it is available; otherwise reads
    ``bounding_box_train/*.jpg|png`` directly and says so.
    """
    try:
        from reid_gan.data.leakage import generation_images_from_config
    except ImportError:
        generation_images_from_config = None
    if generation_images_from_config is not None:
        return [str(s.path) for s in generation_images_from_config(data_cfg)]
    root = Path(str(data_cfg.root))
    folder = root / "bounding_box_train"
    if not folder.is_dir():
        raise FileNotFoundError(f"data.root: {folder} does not exist (the GAN trains on bounding_box_train/ only)")
    paths = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    log.warning("reid_gan.data's leakage guard is not available: reading %s directly (%d images)", folder, len(paths))
    return paths


def load_images(paths: Sequence[str], height: int, width: int, max_images: int | None = None) -> torch.Tensor:
    """uint8 RGB tensor [N, 3, height, width] (area-resized); a clear error names an unreadable file."""
    import cv2

    if not paths:
        raise ValueError("no training images found")
    if max_images is not None and max_images > 0:
        paths = list(paths)[:max_images]
    out = np.empty((len(paths), height, width, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot read image {p}")
        if img.shape[:2] != (height, width):
            interp = cv2.INTER_AREA if img.shape[0] >= height else cv2.INTER_LINEAR
            img = cv2.resize(img, (width, height), interpolation=interp)
        out[i] = img[:, :, ::-1]  # BGR → RGB
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float → uint8 [0, 255] (NVIDIA's convention: ``img * 127.5 + 128`` clamped)."""
    return (img.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def make_grid(images: torch.Tensor, cols: int, pad: int = 2) -> np.ndarray:
    """uint8 [N, 3, H, W] → one RGB uint8 [rows*(H+pad)+pad, cols*(W+pad)+pad, 3] array."""
    n, _, h, w = images.shape
    rows = max(1, -(-n // cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y:y + h, x:x + w] = arr[i]
    return grid


def save_grid(images: torch.Tensor, path: str | Path, cols: int) -> Path:
    """Write a PNG grid atomically (uint8 RGB input)."""
    import cv2

    from reid_gan.utils.io import atomic_path

    grid = make_grid(images, cols)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), grid[:, :, ::-1]):
            raise OSError(f"could not write {path}")
    return Path(path)
