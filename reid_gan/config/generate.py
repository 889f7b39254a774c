"""Schema of the ``generate`` group (``python -m reid_gan.generate``; see ``docs/generate.md``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

from reid_gan.config import check
from reid_gan.data.generated import SYNTHETIC_PID_START

_NAMED = ("coarse", "middle", "fine")


@dataclass
class StyleMixSchema:
    weight: float = 20.0              # relative share of the non-base images
    ranges: List[Any] = field(default_factory=lambda: ["coarse", "middle"])  # cycled over the images

    def __post_init__(self) -> None:
        check(self.weight >= 0, "methods.style_mix.weight", "must be >= 0", self.weight)
        check_layer_ranges(self.ranges, "methods.style_mix.ranges")


def check_layer_ranges(ranges: Any, key: str) -> None:
    """Named ranges (coarse, middle, fine) or explicit ``[start, end)`` pairs; at least one."""
    check(len(ranges) > 0, key, "needs at least one layer range", list(ranges))
    for i, r in enumerate(ranges):
        if isinstance(r, str):
            check(r in _NAMED, f"{key}[{i}]", "must be coarse, middle, fine or [start, end)", r)
        else:
            vals = list(r) if isinstance(r, (list, tuple)) or hasattr(r, "__iter__") else [r]
            check(len(vals) == 2 and all(isinstance(v, int) for v in vals) and 0 <= vals[0] < vals[1],
                  f"{key}[{i}]", "an explicit range is [start, end) with 0 <= start < end", vals)


@dataclass
class InterpolateSchema:
    weight: float = 20.0
    space: str = "w"                  # w: lerp in W | z: slerp in Z (seed persons only)
    min_alpha: float = 0.05           # step toward the partner, drawn in [min_alpha, max_alpha]
    max_alpha: float = 0.3            # the maximum step: keeps the identity

    def __post_init__(self) -> None:
        check(self.weight >= 0, "methods.interpolate.weight", "must be >= 0", self.weight)
        check(self.space in ("w", "z"), "methods.interpolate.space", "must be w or z", self.space)
        check(0 <= self.min_alpha <= self.max_alpha <= 1, "methods.interpolate.max_alpha",
              "need 0 <= min_alpha <= max_alpha <= 1", (self.min_alpha, self.max_alpha))


@dataclass
class TransformSchema:
    weight: float = 10.0
    max_translate: float = 0.1        # |tx|, |ty| <= this (input-grid units; the image spans ~1)
    max_rotate: float = 10.0          # degrees, |angle| <= this

    def __post_init__(self) -> None:
        check(self.weight >= 0, "methods.transform.weight", "must be >= 0", self.weight)
        check(self.max_translate >= 0, "methods.transform.max_translate", "must be >= 0", self.max_translate)
        check(0 <= self.max_rotate <= 180, "methods.transform.max_rotate", "must be in [0, 180]", self.max_rotate)


@dataclass
class MethodsSchema:
    style_mix: StyleMixSchema = field(default_factory=StyleMixSchema)
    interpolate: InterpolateSchema = field(default_factory=InterpolateSchema)
    transform: TransformSchema = field(default_factory=TransformSchema)


@dataclass
class FiguresSchema:
    enabled: bool = True
    persons: int = 4                  # rows of both figures
    donors: int = 2                   # donors per layer range in the style-mixing grid
    ranges: List[Any] = field(default_factory=lambda: ["coarse", "middle", "fine"])
    steps: int = 9                    # columns of the interpolation strip (alpha 0 .. 1)
    scale: int = 1                    # integer up-scaling of each cell

    def __post_init__(self) -> None:
        check(self.persons >= 1, "figures.persons", "must be >= 1", self.persons)
        check(self.donors >= 1, "figures.donors", "must be >= 1", self.donors)
        check(self.steps >= 2, "figures.steps", "must be >= 2", self.steps)
        check(self.scale >= 1, "figures.scale", "must be >= 1", self.scale)
        check_layer_ranges(self.ranges, "figures.ranges")


@dataclass
class GenerateSchema:
    ckpt: Optional[str] = None        # snapshot .pt / folder of snapshots / Lightning .ckpt / NVIDIA .pkl
    random_init: Any = None  # smoke only: a randomly initialised G (`_target_` + kwargs)
    out: str = "${paths.artifacts}/generated"
    latents: Optional[str] = None     # real-variant mode: .pt {'pids': [N], 'ws': [N, num_ws, w_dim]}
    persons: Optional[int] = 401      # seed mode: number of new persons; real mode: first N (null = all)
    images_per_person: int = 51
    pid_start: int = SYNTHETIC_PID_START
    seed_start: int = 0               # person i is seed seed_start + i
    plan_seed: int = 0                # seeds the per-person choice of donors, alphas, transforms
    partner_seed_min: int = 1000000   # donor/partner seeds are drawn from [partner_seed_min, 2**31)
    psi: float = 0.7
    truncation_cutoff: Optional[int] = None
    noise_mode: str = "const"
    methods: MethodsSchema = field(default_factory=MethodsSchema)
    format: str = "jpg"
    quality: int = 95
    height: Optional[int] = None      # resize to height × width (both or neither); null = G's size
    width: Optional[int] = None
    batch_persons: int = 8            # persons per write step (does not change any output byte)
    synthesis_batch: int = 16         # max images per synthesis call (part of the settings: can change rounding)
    device: str = "cpu"               # cpu | cuda | auto
    progress: bool = True
    figures: FiguresSchema = field(default_factory=FiguresSchema)

    def __post_init__(self) -> None:
        check(self.persons is None or self.persons >= 1, "persons", "must be >= 1 (or null: all latents)", self.persons)
        check(self.images_per_person >= 1, "images_per_person", "must be >= 1", self.images_per_person)
        check(self.images_per_person <= 999999, "images_per_person", "must be <= 999999 (6-digit frame)",
              self.images_per_person)
        check(self.pid_start >= SYNTHETIC_PID_START, "pid_start",
              f"synthetic pids start at >= {SYNTHETIC_PID_START} (real ids stay below)",
              self.pid_start)
        check(self.seed_start >= 0, "seed_start", "must be >= 0", self.seed_start)
        check(0 <= self.partner_seed_min < 2**31, "partner_seed_min", "must be in [0, 2**31)", self.partner_seed_min)
        check(self.noise_mode in ("const", "none"), "noise_mode", "must be const or none (random noise is not reproducible)",
              self.noise_mode)
        check(self.format in ("jpg", "png"), "format", "must be jpg or png", self.format)
        check(1 <= self.quality <= 100, "quality", "must be in [1, 100]", self.quality)
        check((self.height is None) == (self.width is None), "height", "set both height and width, or neither",
              (self.height, self.width))
        check(self.height is None or (self.height > 0 and self.width > 0), "height", "must be > 0",
              (self.height, self.width))
        check(self.truncation_cutoff is None or self.truncation_cutoff >= 0, "truncation_cutoff",
              "must be >= 0 (layers truncated) or null (all)", self.truncation_cutoff)
        check(self.synthesis_batch >= 1, "synthesis_batch", "must be >= 1", self.synthesis_batch)
        check(self.batch_persons >= 1, "batch_persons", "must be >= 1", self.batch_persons)
        check(self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:"), "device",
              "must be cpu, cuda, cuda:N or auto", self.device)


def register(cs: ConfigStore) -> None:
    cs.store(group="generate", name="generate_schema", node=GenerateSchema)
