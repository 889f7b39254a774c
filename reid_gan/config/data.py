"""Schemas of the ``data`` group (datasets in Market-1501 layout and the re-ID loaders)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from reid_gan.config import check

DATASET_NAMES = ("synthetic", "market1501", "dukemtmc", "folder")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class RenderSchema:
    """``data.render``: parameters of the synthetic renderer (:mod:`reid_gan.data.synthetic`)."""

    seed: int = 0
    num_train_ids: int = 100
    num_test_ids: int = 100
    images_per_id: List[int] = field(default_factory=lambda: [6, 12])  # [min, max]
    num_cameras: int = 6
    cameras_per_id: List[int] = field(default_factory=lambda: [2, 6])  # [min, max]
    num_distractors: int = 60
    num_junk: int = 40
    jpeg_quality: List[int] = field(default_factory=lambda: [75, 95])  # [min, max]
    height: int = 128
    width: int = 64
    shared_colour_prob: float = 0.35
    occlusion_prob: float = 0.15
    blur_prob: float = 0.3
    detector_tries: int = 4
    detector_min_margin: float = 0.0
    grid_ids: int = 8
    grid_cols: int = 10
    num_workers: int = 2  # processes rendering in parallel (does not change the files)
    pid_start: int = 1  # first person id (a render whose ids start past another's is disjoint from it)

    def __post_init__(self) -> None:
        # keys are prefixed with "render." because this node is only ever nested in ``data``
        def pair(key: str, lo_min: int, hi_max: int | None = None) -> None:
            v = list(getattr(self, key))
            check(len(v) == 2 and lo_min <= v[0] <= v[1] and (hi_max is None or v[1] <= hi_max), f"render.{key}",
                  f"must be [min, max] with {lo_min} <= min <= max" + (f" <= {hi_max}" if hi_max else ""), v)

        check(self.num_train_ids >= 1, "render.num_train_ids", "must be >= 1", self.num_train_ids)
        check(self.num_test_ids >= 1, "render.num_test_ids", "must be >= 1", self.num_test_ids)
        check(self.pid_start >= 1, "render.pid_start", "must be >= 1", self.pid_start)
        check(self.pid_start - 1 + self.num_train_ids + self.num_test_ids <= 9999, "render.num_train_ids",
              "pid_start - 1 + train + test identities must be <= 9999 (4-digit ids)",
              self.pid_start - 1 + self.num_train_ids + self.num_test_ids)
        pair("images_per_id", 2)
        check(2 <= self.num_cameras <= 9, "render.num_cameras", "must be in [2, 9]", self.num_cameras)
        pair("cameras_per_id", 2, self.num_cameras)
        check(self.num_distractors >= 0, "render.num_distractors", "must be >= 0", self.num_distractors)
        check(self.num_junk >= 0, "render.num_junk", "must be >= 0", self.num_junk)
        pair("jpeg_quality", 1, 100)
        check((self.height, self.width) == (128, 64), "render.height",
              "height and width must be 128 and 64: the renderer draws 128x64 (HxW) crops like Market-1501", (self.height, self.width))
        for k in ("shared_colour_prob", "occlusion_prob", "blur_prob"):
            check(0.0 <= getattr(self, k) <= 1.0, f"render.{k}", "must be in [0, 1]", getattr(self, k))
        check(self.detector_tries >= 1, "render.detector_tries", "must be >= 1", self.detector_tries)
        check(self.grid_ids >= 0, "render.grid_ids", "must be >= 0", self.grid_ids)
        check(self.grid_cols >= 1, "render.grid_cols", "must be >= 1", self.grid_cols)
        check(self.num_workers >= 0, "render.num_workers", "must be >= 0", self.num_workers)


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
    # the synthetic renderer's parameters (data=synthetic only; owned by reid_gan.data.synthetic)
    render: Optional[RenderSchema] = None

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
