"""Image grids (PNG) for datasets, generated sets, filter examples, reconstructions.

:func:`image_grid` takes a list of BGR uint8 arrays (any sizes: each is resized to the first one's,
grey images are expanded) or a tensor/array batch ``(N, C, H, W)`` (RGB, float in ``value_range`` or
uint8) and lays them out ``nrow`` images per row (torchvision's convention), with optional per-cell
border colours (e.g. green = kept, red = rejected), per-cell captions and row labels in a left margin.
:func:`save_grid` writes the grid atomically (PNG unless the suffix says otherwise).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

__all__ = ["image_grid", "save_grid", "to_bgr_list"]

Colour = tuple[int, int, int]


def to_bgr_list(images: Any, value_range: tuple[float, float] | None = None) -> list[np.ndarray]:
    """A list of H×W×3 BGR uint8 arrays from a list of arrays or a ``(N, C, H, W)`` RGB batch.

    Float batches are mapped from ``value_range`` (default ``(-1, 1)`` if any value is negative, else
    ``(0, 1)``) to 0..255. Arrays in a list are taken as BGR (OpenCV's convention) and must be uint8.
    """
    if hasattr(images, "detach"):  # torch tensor
        images = images.detach().cpu().float().numpy() if images.is_floating_point() else \
            images.detach().cpu().numpy()
    if isinstance(images, np.ndarray) and images.ndim == 4:
        arr = images
        if arr.shape[1] not in (1, 3):
            raise ValueError(f"expected a (N, C, H, W) batch with C in (1, 3), got shape {arr.shape}")
        if arr.dtype != np.uint8:
            lo, hi = value_range if value_range is not None else ((-1.0, 1.0) if arr.min() < 0 else (0.0, 1.0))
            arr = np.clip((arr.astype(np.float64) - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        arr = np.transpose(arr, (0, 2, 3, 1))
        if arr.shape[3] == 1:
            arr = np.repeat(arr, 3, axis=3)
        return [np.ascontiguousarray(a[:, :, ::-1]) for a in arr]  # RGB → BGR
    out = []
    for i, im in enumerate(images):
        im = np.asarray(im)
        if im.dtype != np.uint8:
            raise TypeError(f"image {i}: expected uint8 BGR, got {im.dtype}")
        if im.ndim == 2:
            im = cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
        elif im.ndim == 3 and im.shape[2] == 4:
            im = im[:, :, :3]
        elif not (im.ndim == 3 and im.shape[2] == 3):
            raise ValueError(f"image {i}: expected H×W×3, got shape {im.shape}")
        out.append(np.ascontiguousarray(im))
    return out


def image_grid(images: Any, nrow: int = 8, padding: int = 2, pad_value: int = 255,
               border_colors: Sequence[Colour | None] | None = None, border_width: int = 2,
               row_labels: Sequence[str] | None = None, label_width: int = 48,
               captions: Sequence[str] | None = None, scale: int = 1,
               value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Lay images out in a grid; returns a BGR uint8 array.

    Args:
        images: list of BGR uint8 arrays, or an RGB ``(N, C, H, W)`` tensor/array (see :func:`to_bgr_list`).
        nrow: images per row (the last row may be shorter; blank cells are ``pad_value``).
        padding: pixels between cells (and around the grid).
        pad_value: grey level of padding and empty cells.
        border_colors: one BGR colour (or None) per image: a frame drawn inside the cell.
        border_width: that frame's width in pixels (of the cell, after ``scale``).
        row_labels: one text per row, drawn in a left margin ``label_width`` pixels wide.
        captions: one short text per image, drawn under it.
        scale: integer up-scaling of every cell (nearest neighbour), for small crops.
        value_range: of float tensors (default inferred).
    """
    imgs = to_bgr_list(images, value_range)
    if not imgs:
        raise ValueError("image_grid: no images")
    if nrow < 1:
        raise ValueError(f"image_grid: nrow must be >= 1 (got {nrow})")
    n = len(imgs)
    if border_colors is not None and len(border_colors) != n:
        raise ValueError(f"image_grid: {len(border_colors)} border colours for {n} images")
    if captions is not None and len(captions) != n:
        raise ValueError(f"image_grid: {len(captions)} captions for {n} images")
    h, w = imgs[0].shape[:2]
    h, w = h * scale, w * scale
    ncol = min(nrow, n)
    nrows = math.ceil(n / nrow)
    if row_labels is not None and len(row_labels) > nrows:
        raise ValueError(f"image_grid: {len(row_labels)} row labels for {nrows} rows")
    cap_h = 12 if captions is not None else 0
    left = label_width if row_labels is not None else 0
    H = padding + nrows * (h + cap_h + padding)
    W = left + padding + ncol * (w + padding)
    grid = np.full((H, W, 3), pad_value, np.uint8)
    text_col = (0, 0, 0) if pad_value > 127 else (255, 255, 255)
    for i, im in enumerate(imgs):
        if im.shape[:2] != (h // scale, w // scale):
            im = cv2.resize(im, (w // scale, h // scale), interpolation=cv2.INTER_AREA)
        if scale > 1:
            im = cv2.resize(im, (w, h), interpolation=cv2.INTER_NEAREST)
        else:
            im = im.copy()
        if border_colors is not None and border_colors[i] is not None:
            cv2.rectangle(im, (0, 0), (w - 1, h - 1), tuple(int(c) for c in border_colors[i]), border_width)
        r, c = divmod(i, nrow)
        y = padding + r * (h + cap_h + padding)
        x = left + padding + c * (w + padding)
        grid[y:y + h, x:x + w] = im
        if captions is not None and captions[i]:
            cv2.putText(grid, str(captions[i])[: max(1, w // 6)], (x, y + h + cap_h - 2),
                        cv2.FONT_HERSHEY_PLAIN, 0.7, text_col, 1, cv2.LINE_AA)
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            y = padding + r * (h + cap_h + padding) + h // 2 + 4
            cv2.putText(grid, str(label), (3, y), cv2.FONT_HERSHEY_PLAIN, 0.9, text_col, 1, cv2.LINE_AA)
    return grid


def save_grid(path: str | Path, images: Any, nrow: int = 8, png_compression: int | None = 9, **kwargs: Any) -> Path:
    """:func:`image_grid` written atomically to ``path`` (PNG, or JPEG for a ``.jpg`` suffix);
    ``png_compression=None`` is OpenCV's default level."""
    from reid_gan.utils.image import encode_image
    from reid_gan.utils.io import atomic_write_bytes

    grid = image_grid(images, nrow=nrow, **kwargs)
    path = Path(path)
    ext = (path.suffix or ".png").lower().lstrip(".")
    if ext not in ("png", "jpg", "jpeg"):
        raise ValueError(f"save_grid: cannot encode {path} (suffix {path.suffix!r}; .png or .jpg)")
    return atomic_write_bytes(path, encode_image(grid, ext, png_compression=png_compression))
