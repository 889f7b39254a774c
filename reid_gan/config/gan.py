"""Schemas of the ``gan`` group (StyleGAN3 training) and the ``metrics`` group (FID/KID or SWD)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore

from reid_gan.config import check


@dataclass
class GanLossSchema:
    r1_gamma: float = 2.0
    r1_interval: int = 16
    style_mixing_prob: float = 0.0
    blur_init_sigma: float = 0.0
    # null → NVIDIA's batch * 200 / 32 when blur_init_sigma > 0
    blur_fade_kimg: Optional[float] = None

    def __post_init__(self) -> None:
        check(self.r1_gamma >= 0, "module.loss.r1_gamma", "must be >= 0", self.r1_gamma)
        check(self.r1_interval >= 1, "module.loss.r1_interval", "must be >= 1", self.r1_interval)
        check(0 <= self.style_mixing_prob <= 1, "module.loss.style_mixing_prob", "must be in [0, 1]",
              self.style_mixing_prob)
        check(self.blur_init_sigma >= 0, "module.loss.blur_init_sigma", "must be >= 0", self.blur_init_sigma)
        check(self.blur_fade_kimg is None or self.blur_fade_kimg >= 0, "module.loss.blur_fade_kimg", "must be >= 0",
              self.blur_fade_kimg)


def _check_target(node: Any, key: str) -> None:
    target = node.get("_target_") if hasattr(node, "get") else None
    check(isinstance(target, str) and "." in target, f"{key}._target_",
          "must be a node with a _target_ (a dotted import path)", target)


@dataclass
class GanModuleSchema:
    """``gan.module``: the training system, ``hydra.utils.instantiate``-d (G, D, the schedule and the label pool
    are passed by the stage); null values are derived inside :class:`reid_gan.gan.module.StyleGAN3Module`."""

    _target_: str = "reid_gan.gan.module.StyleGAN3Module"
    G_opt: Any = None
    D_opt: Any = None
    loss: GanLossSchema = field(default_factory=GanLossSchema)
    ema_kimg: Optional[float] = None  # null → batch * 10 / 32 (NVIDIA)
    ema_rampup: Optional[float] = 0.05
    aug: str = "ada"  # ada | fixed | noaug
    augment: Any = None  # an AugmentPipe node (_partial_: the module gives it p = augment_p)
    augment_p: float = 0.0
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_kimg: float = 500.0

    def __post_init__(self) -> None:
        check(isinstance(self._target_, str) and "." in self._target_, "module._target_",
              "must be a dotted import path of the LightningModule", self._target_)
        check(self.ema_kimg is None or self.ema_kimg >= 0, "module.ema_kimg", "must be >= 0", self.ema_kimg)
        check(self.ema_rampup is None or self.ema_rampup > 0, "module.ema_rampup", "must be > 0 or null",
              self.ema_rampup)
        check(self.aug in ("ada", "fixed", "noaug"), "module.aug", "must be one of ada, fixed, noaug", self.aug)
        check(0 <= self.augment_p <= 1, "module.augment_p", "must be in [0, 1]", self.augment_p)
        check(0 <= self.ada_target <= 1, "module.ada_target", "must be in [0, 1]", self.ada_target)
        check(self.ada_interval >= 1, "module.ada_interval", "must be >= 1", self.ada_interval)
        check(self.ada_kimg > 0, "module.ada_kimg", "must be > 0", self.ada_kimg)


@dataclass
class GanGridSchema:
    rows: int = 4
    cols: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.rows >= 1 and self.cols >= 1, "grid", "rows and cols must be >= 1", (self.rows, self.cols))


@dataclass
class GanSchema:
    name: str = "stylegan3-t"
    run_name: str = "${gan.name}"
    out_dir: str = "${paths.artifacts}/gan/${gan.run_name}"
    resolution: List[int] = field(default_factory=lambda: [128, 64])  # [height, width]
    batch_size: int = 16
    kimg: float = 5000.0
    tick_kimg: float = 4.0
    snap: int = 50
    G: Any = None
    D: Any = None
    mirror: bool = True
    module: GanModuleSchema = field(default_factory=GanModuleSchema)
    # null | auto | embedded (the package's pretrained G, G_ema, D) | PATH (.ckpt of ours, .pt snapshot or
    # packed pretrained file, NVIDIA .pkl)
    resume: Optional[str] = None
    conditional: bool = False  # true: G and D are conditioned on one-hot identity labels (c_dim = #identities)
    max_images: Optional[int] = None
    grid: GanGridSchema = field(default_factory=GanGridSchema)

    def __post_init__(self) -> None:
        check(isinstance(self.resolution, (list, tuple)) and len(self.resolution) == 2
              and all(int(v) > 0 for v in self.resolution), "resolution", "must be [height, width] > 0",
              self.resolution)
        check(self.batch_size >= 1, "batch_size", "must be >= 1", self.batch_size)
        check(self.kimg > 0, "kimg", "must be > 0", self.kimg)
        check(self.tick_kimg > 0, "tick_kimg", "must be > 0", self.tick_kimg)
        check(self.snap >= 1, "snap", "must be >= 1 (ticks between snapshots)", self.snap)
        check(self.max_images is None or self.max_images >= 1, "max_images", "must be >= 1 or null", self.max_images)
        for key in ("G", "D"):
            _check_target(getattr(self, key), key)
        # (here, not in GanModuleSchema: a nested schema's defaults are built once, without these nodes)
        for key in ("G_opt", "D_opt", *(("augment",) if self.module.aug != "noaug" else ())):
            _check_target(getattr(self.module, key), f"module.{key}")
        if not self.conditional:
            for key in ("G", "D"):
                node = getattr(self, key)
                c_dim = node.get("c_dim", 0) if hasattr(node, "get") else 0
                check(not c_dim, f"{key}.c_dim", "must be 0 unless gan.conditional=true (the labels are the "
                      "training identities; c_dim is then set to their number)", c_dim)


@dataclass
class SWDSchema:
    min_res: int = 16
    per_image: int = 128
    num_dirs: int = 512
    num_repeats: int = 4

    def __post_init__(self) -> None:
        check(self.min_res >= 1, "swd.min_res", "must be >= 1", self.min_res)
        check(self.per_image >= 1, "swd.per_image", "must be >= 1", self.per_image)
        check(self.num_dirs >= 1, "swd.num_dirs", "must be >= 1", self.num_dirs)
        check(self.num_repeats >= 1, "swd.num_repeats", "must be >= 1", self.num_repeats)


@dataclass
class MetricsSchema:
    # Local Inception weights (torch-fidelity's weights-inception-2015-12-05 layout); null → SWD instead of FID/KID.
    inception: Optional[str] = None
    num_images: int = 1000  # generated images per evaluation (fid50k_full: 50000)
    num_real: Optional[int] = None  # real images (null: all training images, as fid50k_full)
    batch_size: int = 32
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    seed: int = 0
    swd: SWDSchema = field(default_factory=SWDSchema)

    def __post_init__(self) -> None:
        check(self.num_images >= 2, "num_images", "must be >= 2", self.num_images)
        check(self.num_real is None or self.num_real >= 2, "num_real", "must be >= 2 or null", self.num_real)
        check(self.batch_size >= 1, "batch_size", "must be >= 1", self.batch_size)
        check(self.kid_subsets >= 1 and self.kid_subset_size >= 2, "kid_subsets",
              "kid_subsets >= 1 and kid_subset_size >= 2", (self.kid_subsets, self.kid_subset_size))


def register(cs: ConfigStore) -> None:
    cs.store(group="gan", name="gan_schema", node=GanSchema)
    cs.store(group="metrics", name="metrics_schema", node=MetricsSchema)
