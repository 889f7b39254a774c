"""Image files and arrays: reading, encoding with pinned encoder flags, and float → uint8.

Layouts: OpenCV's BGR ``H×W×3`` uint8 arrays on disk; generators give float ``[N, C, H, W]`` in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["read_bgr", "encode_image", "to_uint8", "to_uint8_hwc"]


def read_bgr(path: str | Path) -> np.ndarray:
    """``H×W×3`` BGR uint8; ``ValueError`` naming the file when it cannot be decoded."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: cannot be read as an image (corrupt or not an image)")
    return img


def encode_image(bgr: np.ndarray, fmt: str = "jpg", quality: int = 95, png_compression: int | None = 3) -> bytes:
    """Bytes of a BGR uint8 image. JPEG with pinned flags (baseline, no optimisation, 4:2:0 — OpenCV's
    defaults, stated so that a library update cannot change the bytes); PNG at ``png_compression``
    (``None``: OpenCV's default)."""
    if fmt in ("jpg", "jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_OPTIMIZE, 0,
                  cv2.IMWRITE_JPEG_PROGRESSIVE, 0,
                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    elif fmt == "png":
        params = [] if png_compression is None else [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    else:
        raise ValueError(f"cannot encode images as {fmt!r} (jpg or png)")
    ok, buf = cv2.imencode("." + fmt, np.ascontiguousarray(bgr), params)
    if not ok:  # pragma: no cover
        raise RuntimeError(f"cannot encode a {bgr.shape} image as {fmt}")
    return buf.tobytes()


def to_uint8(images):
    """Float ``[N, C, H, W]`` in [-1, 1] → uint8 tensor ``[N, C, H, W]`` (NVIDIA's rounding: ``x * 127.5 + 128``,
    clamped)."""
    import torch

    return (images.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def to_uint8_hwc(images) -> np.ndarray:
    """Float ``[N, C, H, W]`` in [-1, 1] → numpy ``[N, H, W, C]`` uint8 RGB (same rounding as :func:`to_uint8`)."""
    return to_uint8(images).permute(0, 2, 3, 1).cpu().numpy()
