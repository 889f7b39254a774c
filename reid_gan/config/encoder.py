"""Schemas of the ``encoder`` group (``python -m reid_gan.train_encoder``) and the ``invert`` group
(``python -m reid_gan.invert``); see ``docs/encoder.md``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore

from reid_gan.config import check


@dataclass
class EncoderLossSchema:
    l2: float = 1.0
    lpips: float = 0.8        # the perceptual term (LPIPS, or the named substitute)
    sim: float = 0.5          # the similarity term (MoCo or re-ID embeddings)
    w_norm: float = 0.0

    def __post_init__(self) -> None:
        for k in ("l2", "lpips", "sim", "w_norm"):
            check(getattr(self, k) >= 0, f"loss.{k}", "must be >= 0", getattr(self, k))


@dataclass
class LPIPSSchema:
    trunk: Optional[str] = None          # local torchvision alexnet/vgg16/squeezenet1_1 .pth; null → substitute
    net: Optional[str] = None            # alex | vgg | squeeze; null = inferred from the file
    substitute: str = "alex_random"      # without a trunk: alex_random | reid
    seed: int = 0                        # the random AlexNet's seed
    min_size: int = 64                   # upsample inputs whose short side is below this (0: never)

    def __post_init__(self) -> None:
        check(self.net in (None, "alex", "vgg", "squeeze"), "lpips.net", "must be alex, vgg, squeeze or null", self.net)
        check(self.substitute in ("alex_random", "reid"), "lpips.substitute", "must be alex_random or reid",
              self.substitute)
        check(self.min_size >= 0, "lpips.min_size", "must be >= 0", self.min_size)


@dataclass
class MocoSchema:
    weights: Optional[str] = None        # local moco_v2_800ep_pretrain.pth.tar
    short_side: int = 224                # resize keeping the aspect ratio (pSp squashes to 224x224)

    def __post_init__(self) -> None:
        check(self.short_side >= 32, "moco.short_side", "must be >= 32", self.short_side)


@dataclass
class EncoderReIDSchema:
    ckpt: Optional[str] = None           # a re-ID stage checkpoint: similarity loss (reid) + identity score
    height: Optional[int] = None         # its input size; null → reid.height/width, else data.height/width
    width: Optional[int] = None

    def __post_init__(self) -> None:
        check((self.height is None) == (self.width is None), "reid.height", "set both height and width, or neither",
              (self.height, self.width))


@dataclass
class EncoderSchema:
    out_dir: str = "${paths.artifacts}/encoder/default"
    ckpt: Optional[str] = None           # G snapshot .pt / folder of snapshots / train_gan .ckpt / NVIDIA .pkl
    random_init: Any = None              # smoke only: a randomly initialised G (`_target_` + kwargs)
    iterations: int = 3                  # ReStyle refinement passes (stylegan3-editing: 3 for StyleGAN3)
    input_size: Optional[List[int]] = None   # [height, width] of the encoder input; null → G's resolution
    base_channels: int = 64              # ResNet34 width (64 = torchvision's layout; needed by backbone_weights)
    head_channels: int = 512             # channels of each map-to-style head (pSp: 512)
    backbone_weights: Optional[str] = None   # local torchvision resnet34-*.pth; null → from scratch
    loss: EncoderLossSchema = field(default_factory=EncoderLossSchema)
    lpips: LPIPSSchema = field(default_factory=LPIPSSchema)
    id_loss: str = "auto"                # auto | moco | reid | none
    moco: MocoSchema = field(default_factory=MocoSchema)
    reid: EncoderReIDSchema = field(default_factory=EncoderReIDSchema)
    optimizer: Any = field(default_factory=lambda: {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4})
    batch_size: int = 8
    max_steps: int = 1000
    val_every: int = 200                 # validate (grid + metrics + checkpoint) every this many steps
    val_ids: int = 10                    # training identities held out from the encoder for validation
    val_max_images: Optional[int] = 64
    max_images: Optional[int] = None     # cap on the training images (null: all)
    grid_images: int = 6                 # validation inputs shown in the grid
    mirror: bool = False                 # random horizontal flips of the training images
    resume: Optional[str] = None         # null | auto (this run's last.ckpt) | PATH (.ckpt)

    def __post_init__(self) -> None:
        check(self.iterations >= 1, "iterations", "must be >= 1", self.iterations)
        check(self.input_size is None or (len(self.input_size) == 2 and all(v >= 16 for v in self.input_size)),
              "input_size", "must be [height, width] with both >= 16, or null", self.input_size)
        check(self.base_channels >= 4, "base_channels", "must be >= 4", self.base_channels)
        check(self.head_channels >= 4, "head_channels", "must be >= 4", self.head_channels)
        check(self.id_loss in ("auto", "moco", "reid", "none"), "id_loss", "must be auto, moco, reid or none",
              self.id_loss)
        check(self.batch_size >= 1, "batch_size", "must be >= 1", self.batch_size)
        check(self.max_steps >= 0, "max_steps", "must be >= 0", self.max_steps)
        check(self.val_every >= 1, "val_every", "must be >= 1", self.val_every)
        check(self.val_ids >= 1, "val_ids", "must be >= 1 (identities held out for validation)", self.val_ids)
        check(self.val_max_images is None or self.val_max_images >= 1, "val_max_images", "must be >= 1 or null",
              self.val_max_images)
        check(self.max_images is None or self.max_images >= 1, "max_images", "must be >= 1 or null", self.max_images)
        check(self.grid_images >= 1, "grid_images", "must be >= 1", self.grid_images)
        check(self.resume is None or bool(self.resume), "resume", "null, auto or a .ckpt path", self.resume)


@dataclass
class InvertSchema:
    source: Optional[str] = None         # the train_encoder output folder (or its encoder.pt)
    ckpt: Optional[str] = None           # the generator; null → the one recorded in encoder.pt
    images_per_identity: Optional[int] = None   # K real images per identity (null: all)
    out: str = "${paths.artifacts}/invert/default"
    batch_size: int = 16
    seed: int = 0                        # which K images of an identity (when images_per_identity is set)

    def __post_init__(self) -> None:
        check(self.images_per_identity is None or self.images_per_identity >= 1, "images_per_identity",
              "must be >= 1 or null (all)", self.images_per_identity)
        check(self.batch_size >= 1, "batch_size", "must be >= 1", self.batch_size)


def register(cs: ConfigStore) -> None:
    cs.store(group="encoder", name="encoder_schema", node=EncoderSchema)
    cs.store(group="invert", name="invert_schema", node=InvertSchema)
