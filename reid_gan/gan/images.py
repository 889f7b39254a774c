"""Training images for the GAN stages, in memory at the GAN resolution (paths from the leakage guard,
:func:`reid_gan.data.leakage.generation_images_from_config`). Grids: :func:`reid_gan.report.grids.save_grid`."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["load_images"]


def load_images(paths: Sequence[str], height: int, width: int, max_images: int | None = None,
                on_bad_image: str = "error", kept: list[int] | None = None) -> torch.Tensor:
    """uint8 RGB tensor [N, 3, height, width] (area-resized), all decoded before any training.

    An image that cannot be decoded raises :class:`reid_gan.data.BadImageError` naming it
    (``on_bad_image="error"``) or is dropped with a warning naming it and a final count (``"skip"``);
    ``kept``, when given, receives the indices (into ``paths``) of the images returned.
    """
    import cv2

    from reid_gan.data.market1501 import BadImageError
    from reid_gan.utils.logging import get_logger

    log = get_logger(__name__)
    if on_bad_image not in ("skip", "error"):
        raise ValueError(f"on_bad_image must be 'skip' or 'error' (got {on_bad_image!r})")
    if not paths:
        raise ValueError("no training images found")
    if max_images is not None and max_images > 0:
        paths = list(paths)[:max_images]
    out = np.empty((len(paths), height, width, 3), dtype=np.uint8)
    n, bad = 0, []
    for i, p in enumerate(paths):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None or img.size == 0:
            if on_bad_image == "error":
                raise BadImageError(f"cannot read image {p} (corrupt or not an image; set data.on_bad_image=skip "
                                    f"to drop such images with a warning)")
            log.warning("GAN training images: skipping bad image %s (cannot be decoded; data.on_bad_image=skip)", p)
            bad.append(str(p))
            continue
        if img.shape[:2] != (height, width):
            interp = cv2.INTER_AREA if img.shape[0] >= height else cv2.INTER_LINEAR
            img = cv2.resize(img, (width, height), interpolation=interp)
        out[n] = img[:, :, ::-1]  # BGR → RGB
        n += 1
        if kept is not None:
            kept.append(i)
    if bad:
        log.warning("GAN training images: skipped %d bad image(s) of %d (data.on_bad_image=skip)", len(bad), len(paths))
    if n == 0:
        raise BadImageError(f"no readable training image among {len(paths)} (all {len(bad)} bad)")
    return torch.from_numpy(out[:n]).permute(0, 3, 1, 2).contiguous()
