"""Schemas of the ``data`` group (datasets in Market-1501 layout and the re-ID loaders)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from reid_gan.config import check

DATASET_NAMES = ("synthetic", "market1501", "dukemtmc", "folder")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class DataSchema:
    # synthetic | market1501 | dukemtmc | folder | a dotted dataset class path (see reid_gan.data)
    name: str = "synthetic"
    # the dataset folder, or a parent holding Market-1501-v15.09.15/ (Market) or DukeMTMC-reID/ (Duke)
    # (required: each option of the group sets it; data=folder needs data.root=... on the command line)
    root: str = MISSING
    # image size fed to the networks (H x W)
    height: int = 256
    width: int = 128
    batch_size: int = 16
    # evaluation (query/gallery) batch size; null → batch_size
    eval_batch_size: Optional[int] = None
    num_workers: int = 0
    pin_memory: bool = False
    # drop the last incomplete training batch (BatchNorm with a batch of 1 fails)
    drop_last: bool = True
    # unreadable/truncated images: error (default) or skip (warning + count)
    on_bad_image: str = "error"
    # image check while indexing: header (start/end markers, cheap) | decode (full decode) | none
    verify_images: str = "header"
    # training transforms: random horizontal flip probability, zero-padding before the random crop back
    # to height x width (0 = no pad-crop), random erasing and its probability, normalisation
    flip_p: float = 0.5
    pad: int = 10
    random_erasing: bool = False
    random_erasing_p: float = 0.5
    mean: List[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: List[float] = field(default_factory=lambda: list(IMAGENET_STD))
    # the synthetic renderer's settings (owned by reid_gan.data.synthetic); null for other datasets
    render: Any = None

    def __post_init__(self) -> None:
        check(self.name in DATASET_NAMES or "." in self.name, "name",
              f"must be one of {', '.join(DATASET_NAMES)} or a dotted dataset class path", self.name)
        check(bool(self.root), "root", "must name a folder", self.root)
        check(self.height > 0, "height", "must be > 0", self.height)
        check(self.width > 0, "width", "must be > 0", self.width)
        check(self.batch_size > 0, "batch_size", "must be > 0", self.batch_size)
        check(self.eval_batch_size is None or self.eval_batch_size > 0, "eval_batch_size", "must be > 0",
              self.eval_batch_size)
        check(self.num_workers >= 0, "num_workers", "must be >= 0", self.num_workers)
        check(self.on_bad_image in ("skip", "error"), "on_bad_image", "must be skip or error", self.on_bad_image)
        check(self.verify_images in ("none", "header", "decode"), "verify_images",
              "must be none, header or decode", self.verify_images)
        check(0.0 <= self.flip_p <= 1.0, "flip_p", "must be in [0, 1]", self.flip_p)
        check(self.pad >= 0, "pad", "must be >= 0", self.pad)
        check(0.0 <= self.random_erasing_p <= 1.0, "random_erasing_p", "must be in [0, 1]", self.random_erasing_p)
        check(len(self.mean) == 3, "mean", "must have 3 values (R, G, B)", list(self.mean))
        check(len(self.std) == 3 and all(s > 0 for s in self.std), "std", "must have 3 values > 0", list(self.std))


def register(cs: ConfigStore) -> None:
    cs.store(group="data", name="data_schema", node=DataSchema)
