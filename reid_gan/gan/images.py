"""Training images for the GAN stages, in memory at the GAN resolution (paths from the leakage guard,
:func:`reid_gan.data.leakage.generation_images_from_config`). Grids: :func:`reid_gan.report.grids.save_grid`."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["load_images"]


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
