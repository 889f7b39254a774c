"""Schemas of the ``reid`` group (re-ID model and its training) and the ``aug`` group (generated images
added to the re-ID training set)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from reid_gan.config import ConfigError, check

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101")


@dataclass
class ReIDSchema:
    net: Any = None
    pretrained: Optional[str] = None
    max_epochs: int = 60
    height: Optional[int] = None
    width: Optional[int] = None
    val_every_n_epochs: int = 1
    label_smoothing: float = 0.0
    backbone_lr_mult: float = 1.0
    distance: str = "cosine"
    optimizer: Any = None
    scheduler: Any = None
    eval_ckpt: str = "last"
    checkpoint: Any = None
    ranked_queries: int = 6

    def __post_init__(self) -> None:
        check(self.max_epochs >= 1, "max_epochs", "must be >= 1", self.max_epochs)
        check(self.height is None or self.height > 0, "height", "must be > 0", self.height)
        check(self.width is None or self.width > 0, "width", "must be > 0", self.width)
        check(self.val_every_n_epochs >= 1, "val_every_n_epochs", "must be >= 1", self.val_every_n_epochs)
        check(0.0 <= self.label_smoothing < 1.0, "label_smoothing", "must be in [0, 1)", self.label_smoothing)
        check(self.backbone_lr_mult >= 0.0, "backbone_lr_mult", "must be >= 0", self.backbone_lr_mult)
        check(self.distance in ("cosine", "euclidean"), "distance", "must be cosine or euclidean", self.distance)
        check(self.eval_ckpt in ("last", "best"), "eval_ckpt", "must be last or best", self.eval_ckpt)
        check(self.ranked_queries >= 0, "ranked_queries", "must be >= 0", self.ranked_queries)
        if isinstance(self.net, dict) or hasattr(self.net, "get"):
            arch = self.net.get("arch")
            check(arch in ARCHS, "net.arch", f"must be one of {', '.join(ARCHS)}", arch)
            ls = self.net.get("last_stride", 2)
            check(ls in (1, 2), "net.last_stride", "must be 1 or 2", ls)
            dr = self.net.get("dropout", 0.0)
            check(0.0 <= float(dr) < 1.0, "net.dropout", "must be in [0, 1)", dr)


AUG_ARMS = ("none", "persons", "real_variants")


def aug_arm(persons: Any, images_per_person: Any) -> str:
    """The augmentation arm the two numbers select: ``persons`` (``aug.persons=N``; N = 0 adds nothing),
    ``real_variants`` (``aug.images_per_person=K``) or ``none`` (neither given: the baseline)."""
    if persons is not None and images_per_person is not None:
        raise ConfigError(f"aug.persons={persons} and aug.images_per_person={images_per_person}: give one of them "
                          "(aug.persons=N adds N synthetic persons; aug.images_per_person=K adds K generated "
                          "variants of each real person)")
    if persons is not None:
        return "persons"
    if images_per_person is not None:
        return "real_variants"
    return "none"


@dataclass
class AugSchema:
    # synthetic persons to add (the persons arm; 0 = the baseline)
    persons: Optional[int] = None
    # generated variants to add per real identity (the real-variants arm)
    images_per_person: Optional[int] = None
    # a kept generated set in Market layout (bounding_box_train/ + manifest.jsonl); null → the kept set of
    # the newest complete study (paths.artifacts/latest.json)
    source: Optional[str] = None
    # new_class (the thesis) | lsro
    label: str = "new_class"
    # real-variants arm, a person with fewer than K kept variants: skip (gets none) | fewer (gets the ones it
    # has) | error
    short: str = "skip"

    def __post_init__(self) -> None:
        check(self.label in ("new_class", "lsro"), "label", "must be new_class or lsro", self.label)
        check(self.short in ("skip", "fewer", "error"), "short", "must be skip, fewer or error", self.short)
        check(self.persons is None or self.persons >= 0, "persons", "must be >= 0 (0 = the baseline)", self.persons)
        check(self.images_per_person is None or self.images_per_person >= 0, "images_per_person", "must be >= 0",
              self.images_per_person)
        try:
            aug_arm(self.persons, self.images_per_person)
        except ConfigError as e:
            raise ConfigError(str(e).removeprefix("aug.")) from None


def register(cs: ConfigStore) -> None:
    cs.store(group="reid", name="reid_schema", node=ReIDSchema)
    cs.store(group="aug", name="aug_schema", node=AugSchema)
