"""Image loading and the standard re-ID transforms (torchvision ``transforms.v2``).

Training: resize to ``height × width`` → random horizontal flip (``flip_p``) → zero-pad by ``pad`` pixels
and random-crop back to ``height × width`` (skipped when ``pad == 0``) → float in [0, 1] → normalise
(ImageNet mean/std by default) → optional random erasing (``random_erasing_p``, applied on the
normalised tensor, erased pixels set to 0 = the dataset mean).
Evaluation: resize → float → normalise. Output: ``float32`` tensor ``[3, height, width]``.

Randomness comes from torch's global RNG (seeded by ``seed_everything`` in the main process; in
DataLoader workers by the loader's seeded generator), so a run is reproducible for a given seed and
``num_workers``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torchvision.transforms import v2

from reid_gan.data.market1501 import BadImageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "build_train_transform", "build_eval_transform", "load_image"]


def load_image(path: str | Path) -> Image.Image:
    """Read an image as RGB; a missing, truncated or corrupt file raises :class:`BadImageError` naming it."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")  # forces the full decode here, inside the try
    except (OSError, ValueError, SyntaxError) as e:
        raise BadImageError(f"cannot read image {path}: {e}") from None


def build_train_transform(height: int = 256, width: int = 128, flip_p: float = 0.5, pad: int = 10,
                          random_erasing: bool = False, random_erasing_p: float = 0.5,
                          mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """The training transform described in the module docstring (PIL RGB image → ``[3, H, W]`` tensor)."""
    steps: list = [v2.Resize((height, width), interpolation=v2.InterpolationMode.BILINEAR, antialias=True)]
    if flip_p > 0:
        steps.append(v2.RandomHorizontalFlip(p=flip_p))
    if pad > 0:
        steps += [v2.Pad(pad, fill=0), v2.RandomCrop((height, width))]
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    if random_erasing and random_erasing_p > 0:
        steps.append(v2.RandomErasing(p=random_erasing_p, value=0))
    return v2.Compose(steps)


def build_eval_transform(height: int = 256, width: int = 128, mean: Sequence[float] = IMAGENET_MEAN,
                         std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """Resize + normalise (PIL RGB image → ``[3, H, W]`` tensor), no randomness."""
    return v2.Compose([
        v2.Resize((height, width), interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
        v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std)),
    ])
