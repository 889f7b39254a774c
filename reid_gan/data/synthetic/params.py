"""The renderer's parameters (:class:`RenderParams`), one planned file (:class:`ImageSpec`) and the seeding.

Every random draw comes from a seed sequence of the dataset seed, a stream tag and the thing drawn
(an identity, a camera, a file), so every image is reproducible on its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

# Bump when the drawing code changes the pixels: an old render is then re-rendered, not reused.
RENDERER_VERSION = 3
SPLITS = ("bounding_box_train", "bounding_box_test", "query")


@dataclass(frozen=True)
class RenderParams:
    """Everything that determines the rendered files (see ``conf/data/synthetic.yaml``)."""

    seed: int = 0
    num_train_ids: int = 100
    num_test_ids: int = 100
    images_per_id: tuple[int, int] = (6, 12)       # inclusive range, per identity
    num_cameras: int = 6
    cameras_per_id: tuple[int, int] = (2, 6)       # inclusive range, capped by images and cameras
    num_distractors: int = 60                      # gallery images with pid 0000
    num_junk: int = 40                             # gallery images with pid -1
    jpeg_quality: tuple[int, int] = (75, 95)       # inclusive range, per image
    height: int = 128
    width: int = 64
    shared_colour_prob: float = 0.35               # identities that copy another's clothing colours
    occlusion_prob: float = 0.15
    blur_prob: float = 0.3
    detector_tries: int = 4                        # 1: no detector in the loop (see render_image)
    detector_min_margin: float = 0.0               # HOG SVM margin a kept person image must reach
    grid_ids: int = 8                              # rows of the sample grid (0: no grid)
    grid_cols: int = 10
    num_workers: int = 2                           # render processes (not part of the fingerprint)
    pid_start: int = 1                             # first person id: a render whose ids start past
                                                   # another's is disjoint from it by construction

    def __post_init__(self) -> None:
        def bad(key: str, msg: str, value: Any) -> None:
            raise ValueError(f"render.{key}: {msg} (got {value!r})")

        if self.num_train_ids < 1:
            bad("num_train_ids", "must be >= 1", self.num_train_ids)
        if self.num_test_ids < 1:
            bad("num_test_ids", "must be >= 1", self.num_test_ids)
        if self.pid_start < 1:
            bad("pid_start", "must be >= 1", self.pid_start)
        if self.pid_start - 1 + self.num_train_ids + self.num_test_ids > 9999:
            bad("num_train_ids", "pid_start - 1 + train + test identities must fit in 4 digits (<= 9999)",
                self.pid_start - 1 + self.num_train_ids + self.num_test_ids)
        lo, hi = self.images_per_id
        if not 2 <= lo <= hi:
            bad("images_per_id", "must be [min, max] with 2 <= min <= max", list(self.images_per_id))
        if not 2 <= self.num_cameras <= 9:
            bad("num_cameras", "must be in [2, 9] (one digit in the file name)", self.num_cameras)
        clo, chi = self.cameras_per_id
        if not 2 <= clo <= chi:
            bad("cameras_per_id", "must be [min, max] with 2 <= min <= max", list(self.cameras_per_id))
        if clo > self.num_cameras:
            bad("cameras_per_id", f"min exceeds num_cameras={self.num_cameras}", list(self.cameras_per_id))
        if self.num_distractors < 0:
            bad("num_distractors", "must be >= 0", self.num_distractors)
        if self.num_junk < 0:
            bad("num_junk", "must be >= 0", self.num_junk)
        qlo, qhi = self.jpeg_quality
        if not 1 <= qlo <= qhi <= 100:
            bad("jpeg_quality", "must be [min, max] within 1..100", list(self.jpeg_quality))
        if (self.height, self.width) != (128, 64):
            bad("height/width", "the renderer draws 128×64 (H×W) crops, like Market-1501",
                (self.height, self.width))
        for k in ("shared_colour_prob", "occlusion_prob", "blur_prob"):
            v = getattr(self, k)
            if not 0.0 <= v <= 1.0:
                bad(k, "must be in [0, 1]", v)
        if self.detector_tries < 1:
            bad("detector_tries", "must be >= 1", self.detector_tries)
        if self.grid_ids < 0 or self.grid_cols < 1:
            bad("grid_ids", "grid_ids must be >= 0 and grid_cols >= 1", (self.grid_ids, self.grid_cols))

    @classmethod
    def from_config(cls, cfg: Any = None, **overrides: Any) -> "RenderParams":
        """From a dict, a DictConfig (``data.render``), a dataclass or None, plus keyword overrides."""
        values: dict[str, Any] = {}
        if cfg is not None:
            if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
                values = dataclasses.asdict(cfg)
            else:
                try:
                    from omegaconf import DictConfig, OmegaConf

                    if isinstance(cfg, DictConfig):
                        cfg = OmegaConf.to_container(cfg, resolve=True)
                except ImportError:  # pragma: no cover
                    pass
                values = dict(cfg)
        values.update(overrides)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"render: unknown parameter(s) {unknown}; known: {sorted(names)}")
        for k in ("images_per_id", "cameras_per_id", "jpeg_quality"):
            if k in values:
                v = values[k]
                if isinstance(v, (int, np.integer)):
                    v = (v, v)
                if len(v) != 2:
                    raise ValueError(f"render.{k}: must be [min, max] (got {v!r})")
                values[k] = (int(v[0]), int(v[1]))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The parameters that determine the files (``num_workers`` does not)."""
        d = dataclasses.asdict(self)
        d.pop("num_workers")
        if d["pid_start"] == 1:  # the default leaves the fingerprint (and every existing key) as it was
            d.pop("pid_start")
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    def fingerprint(self) -> str:
        """Hash of the parameters that determine the pixels (plus the renderer version)."""
        d = self.to_dict()
        d["renderer_version"] = RENDERER_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ImageSpec:
    """One file of the plan."""

    split: str          # one of SPLITS
    name: str           # file name
    pid: int            # Market pid: >0 identity, 0 distractor, -1 junk
    cam: int            # 1-based camera
    kind: str           # "person", "distractor" or "junk"
    identity: int       # identity whose appearance is drawn (for distractors: a never-listed one)

    @property
    def relpath(self) -> str:
        return f"{self.split}/{self.name}"


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]))


# Stream tags of the seed sequences (never change: they define the dataset).
_T_PLAN, _T_ID, _T_CAM, _T_IMG, _T_SCHEME = 11, 12, 13, 14, 15
