"""The embedded dataset: procedurally rendered pedestrian crops in the exact Market-1501 layout.

Reference for the layout: Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015
(Market-1501). Layout written here::

    <root>/bounding_box_train/   training identities (disjoint from the test identities)
    <root>/bounding_box_test/    gallery: test identities + distractors (pid 0000) + junk (pid -1)
    <root>/query/                one image per (test identity, camera) for all but one of its cameras
    <root>/DATASET.json          parameters, statistics, content hash (written last = completion marker)
    <root>/README.md             the same in words
    <root>/sample_grid.png       rows: identities, columns: their images across cameras

File names follow Market-1501: ``PPPP_cCsS_FFFFFF_NN.jpg`` — person id (4 digits; ``-1`` for junk),
camera ``C`` (1-based, 1..``num_cameras``, default 6), sequence ``S``, frame ``FFFFFF``, box index ``NN``. Images are 128×64
(H×W) JPEGs.

What is rendered (numpy + OpenCV drawing, at 2× resolution then area-downsampled):

* **identities** (one RNG per identity): build (height, girth, leg length, head size), skin tone, hair
  (short, long, bald, cap), upper garment (colour, sleeves, pattern: plain, horizontal or vertical
  stripes, chest logo, two-tone), lower garment (trousers, shorts, skirt), shoes, bag (none, backpack,
  shoulder bag, hand bag). A fraction ``shared_colour_prob`` of the identities copies the clothing
  colours of another identity of its split and must differ from it in pattern, build or bag, so a colour
  histogram alone cannot tell them apart;
* **cameras** (one RNG per camera): a background scene (brick wall, street, park, shopfront, corridor,
  plaza), a colour cast and brightness, a typical viewing direction and distance;
* **per image** (one RNG per file, seeded by the dataset seed and the file name, so every image is
  reproducible on its own): facing (front/back/left/right, biased by the camera), walking phase, scale
  and position jitter, the scene's offset, partial occlusion, blur, noise, JPEG quality.

Persons are framed like detector boxes (about 3/4 of the crop height, feet at 7/8, as in the INRIA
windows OpenCV's HOG detector was trained on), and — as Market-1501's boxes came from a pedestrian
detector (DPM) — a person image keeps the first of up to ``detector_tries`` nuisance draws on which
OpenCV's HOG people detector fires (:func:`render_image`). Distractors are badly aligned boxes (shifted,
too large, too small) of people who appear in no split; junk images are background or body fragments.

Same parameters → byte-identical files (OpenCV's JPEG encoder with fixed parameters, no optimisation,
no progressive mode). :func:`ensure_rendered` renders a missing dataset, resumes a partial one (each image
is written atomically, ``DATASET.json`` last) and re-renders one that was rendered with other parameters
(only if this module made it).

Quickstart size (``conf/data/synthetic.yaml``): 100 train + 100 test identities, 6–12 images each,
6 cameras, 60 distractors, 40 junk images; see ``docs/dataset.md`` for the statistics, the render
time and the HOG people-detector pass rate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import cv2
import numpy as np

from reid_gan.data.market1501 import format_name

# Render workers import this module: keep it free of reid_gan.utils (whose package imports Lightning,
# seconds per worker); the main-process functions import reid_gan.utils.io lazily.
log = logging.getLogger(__name__)

__all__ = [
    "RenderParams",
    "ImageSpec",
    "plan_dataset",
    "render_image",
    "render_dataset",
    "ensure_rendered",
    "is_rendered",
    "RENDERER_VERSION",
]

# Bump when the drawing code changes the pixels: an old render is then re-rendered, not reused.
RENDERER_VERSION = 3
SPLITS = ("bounding_box_train", "bounding_box_test", "query")
MARKER = "DATASET.json"
IN_PROGRESS = ".render_in_progress.json"
GRID_NAME = "sample_grid.png"

OPTICS_SIGMA = (0.6, 1.0)  # Gaussian blur of every image (pixels at 128×64)
PATTERN_CONTRAST = 0.7  # stripes/logos/colour blocks: blend of the two garment colours
FOOT_Y = 0.875  # where the feet are, as a fraction of the crop height (INRIA's 112/128)
_SS = 2  # supersampling factor: drawn at 2× then INTER_AREA-downsampled (anti-aliasing)


# =========================================================================== parameters
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
_DISTRACTOR_BASE = 20000  # identity numbers of never-listed people drawn into distractors


# =========================================================================== plan
def plan_dataset(params: RenderParams) -> tuple[list[ImageSpec], dict[int, int]]:
    """The list of files to render and, per identity, whose clothing colours it wears.

    Returns ``(specs, scheme_of)``; ``scheme_of[pid]`` is the identity whose colours ``pid`` copies
    (itself when it has its own).
    """
    rng = _rng(params.seed, _T_PLAN)
    n_total = params.num_train_ids + params.num_test_ids
    pids = rng.permutation(np.arange(params.pid_start, params.pid_start + n_total))
    train_ids = sorted(int(p) for p in pids[: params.num_train_ids])
    test_ids = sorted(int(p) for p in pids[params.num_train_ids:])

    scheme_of: dict[int, int] = {}
    for group in (train_ids, test_ids):
        order = [int(p) for p in rng.permutation(group)]
        for i, pid in enumerate(order):
            if i > 0 and rng.random() < params.shared_colour_prob:
                src = order[int(rng.integers(0, i))]
                scheme_of[pid] = scheme_of[src]
            else:
                scheme_of[pid] = pid

    specs: list[ImageSpec] = []
    used: set[str] = set()

    def unique_name(pid: int, cam: int) -> str:
        while True:
            seq = int(rng.integers(1, 7))
            frame = int(rng.integers(1, 999999))
            box = int(rng.integers(0 if pid <= 0 else 1, 9))
            name = format_name(pid, cam, seq, frame, box)
            if name not in used:
                used.add(name)
                return name

    def id_images(pid: int) -> dict[int, int]:
        n = int(rng.integers(params.images_per_id[0], params.images_per_id[1] + 1))
        k_hi = min(params.cameras_per_id[1], params.num_cameras, n)
        k_lo = min(params.cameras_per_id[0], k_hi)
        k = int(rng.integers(k_lo, k_hi + 1))
        cams = sorted(int(c) + 1 for c in rng.choice(params.num_cameras, size=k, replace=False))
        counts = {c: 1 for c in cams}
        for c in rng.choice(cams, size=n - k, replace=True):
            counts[int(c)] += 1
        return counts

    for pid in train_ids:
        for cam, cnt in id_images(pid).items():
            for _ in range(cnt):
                specs.append(ImageSpec("bounding_box_train", unique_name(pid, cam), pid, cam, "person", pid))
    for pid in test_ids:
        counts = id_images(pid)
        cams = list(counts)
        gallery_only = cams[int(rng.integers(0, len(cams)))]
        for cam, cnt in counts.items():
            for j in range(cnt):
                split = "query" if (j == 0 and cam != gallery_only) else "bounding_box_test"
                specs.append(ImageSpec(split, unique_name(pid, cam), pid, cam, "person", pid))
    for i in range(params.num_distractors):
        cam = int(rng.integers(1, params.num_cameras + 1))
        specs.append(ImageSpec("bounding_box_test", unique_name(0, cam), 0, cam, "distractor",
                               _DISTRACTOR_BASE + i))
    for i in range(params.num_junk):
        cam = int(rng.integers(1, params.num_cameras + 1))
        specs.append(ImageSpec("bounding_box_test", unique_name(-1, cam), -1, cam, "junk",
                               _DISTRACTOR_BASE + params.num_distractors + i))
    return specs, scheme_of


# =========================================================================== appearance
# Clothing palette (BGR): a deliberately small set, so that many identities share colours.
CLOTHES = np.array([
    (30, 30, 30), (235, 235, 235), (128, 128, 128), (40, 40, 170), (160, 70, 30), (40, 130, 40),
    (40, 190, 220), (60, 60, 110), (120, 40, 110), (30, 100, 200), (140, 160, 200), (90, 60, 30),
    (200, 170, 110), (70, 90, 60),
], dtype=np.float64)
SKIN = np.array([(205, 220, 245), (170, 195, 230), (130, 165, 210), (95, 130, 185), (60, 90, 140),
                 (40, 60, 100)], dtype=np.float64)
HAIR = np.array([(20, 20, 25), (30, 45, 70), (40, 80, 130), (100, 160, 210), (160, 160, 165),
                 (30, 30, 90)], dtype=np.float64)

PATTERNS = ("plain", "hstripes", "vstripes", "logo", "twotone")
BAGS = ("none", "backpack", "shoulder", "hand")
LOWERS = ("trousers", "shorts", "skirt")
HAIRS = ("short", "long", "bald", "cap")


@dataclass(frozen=True)
class Identity:
    pid: int
    height: float          # fraction of the camera's nominal person height
    girth: float           # width multiplier
    leg: float             # leg length as a fraction of the height
    head: float            # head size multiplier
    skin: tuple
    hair_style: str
    hair: tuple
    upper: tuple
    upper2: tuple          # second colour of the pattern
    pattern: str
    stripe_period: float   # in units of the person height
    logo_shape: int
    long_sleeves: bool
    lower_style: str
    lower: tuple
    shoes: tuple
    bag: str
    bag_colour: tuple
    bag_side: int          # -1 left, +1 right


def _colours(scheme: int, seed: int) -> dict[str, Any]:
    r = _rng(seed, _T_SCHEME, scheme)
    idx = r.choice(len(CLOTHES), size=3, replace=False)
    upper = CLOTHES[idx[0]]
    upper2 = CLOTHES[idx[1]]
    lower = CLOTHES[idx[2]] if r.random() < 0.7 else CLOTHES[r.choice([0, 2, 4, 11])]
    jitter = r.normal(0, 8, size=(3, 3))
    return {"upper": tuple(np.clip(upper + jitter[0], 0, 255)),
            "upper2": tuple(np.clip(upper2 + jitter[1], 0, 255)),
            "lower": tuple(np.clip(lower + jitter[2], 0, 255))}


def make_identity(pid: int, seed: int, scheme: int | None = None) -> Identity:
    """The appearance of one person (deterministic in ``(seed, pid, scheme)``)."""
    r = _rng(seed, _T_ID, pid)
    cols = _colours(pid if scheme is None else scheme, seed)
    pattern = PATTERNS[int(r.choice(len(PATTERNS), p=[0.36, 0.16, 0.12, 0.18, 0.18]))]
    bag = BAGS[int(r.choice(len(BAGS), p=[0.45, 0.25, 0.18, 0.12]))]
    girth = float(r.choice([0.82, 0.95, 1.08, 1.22]) + r.normal(0, 0.03))
    height = float(r.uniform(0.93, 1.0))
    if scheme is not None and scheme != pid:
        # A colour twin: must differ from the source identity in pattern, build or bag.
        src = make_identity(scheme, seed, scheme)
        what = int(r.integers(0, 3))
        if what == 0 or pattern == src.pattern:
            pattern = PATTERNS[(PATTERNS.index(src.pattern) + 1 + int(r.integers(0, len(PATTERNS) - 1)))
                               % len(PATTERNS)]
        if what == 1:
            girth = src.girth + (0.3 if src.girth < 1.0 else -0.3)
        if what == 2 or bag == src.bag:
            bag = BAGS[(BAGS.index(src.bag) + 1 + int(r.integers(0, len(BAGS) - 1))) % len(BAGS)]
    hair_style = HAIRS[int(r.choice(len(HAIRS), p=[0.5, 0.25, 0.1, 0.15]))]
    return Identity(
        pid=pid, height=height, girth=girth, leg=float(r.uniform(0.46, 0.52)),
        head=float(r.uniform(0.9, 1.1)),
        skin=tuple(SKIN[int(r.integers(0, len(SKIN)))] + r.normal(0, 6, 3)),
        hair_style=hair_style,
        hair=tuple(HAIR[int(r.integers(0, len(HAIR)))]) if hair_style != "cap"
        else tuple(CLOTHES[int(r.integers(0, len(CLOTHES)))]),
        upper=cols["upper"], upper2=cols["upper2"], pattern=pattern,
        stripe_period=float(r.uniform(0.05, 0.09)), logo_shape=int(r.integers(0, 3)),
        long_sleeves=bool(r.random() < 0.55),
        lower_style=LOWERS[int(r.choice(len(LOWERS), p=[0.7, 0.18, 0.12]))],
        lower=cols["lower"],
        shoes=tuple(CLOTHES[int(r.choice([0, 1, 2, 11, 3]))]),
        bag=bag, bag_colour=tuple(CLOTHES[int(r.integers(0, len(CLOTHES)))] * 0.8),
        bag_side=int(r.choice([-1, 1])),
    )


# =========================================================================== cameras and scenes
SCENES = ("brick", "street", "park", "shop", "corridor", "plaza")


@dataclass(frozen=True)
class Camera:
    cam: int
    scene: str
    cast: tuple            # per-channel gain (BGR)
    brightness: float
    contrast: float
    facing_p: tuple        # probabilities of front, back, left, right
    scale: float           # nominal person height as a fraction of the crop height
    noise: float
    base_colour: tuple
    accent: tuple
    light: float           # side the light comes from (-1 left … +1 right)


def make_camera(cam: int, seed: int) -> Camera:
    r = _rng(seed, _T_CAM, cam)
    scene = SCENES[(cam - 1 + int(_rng(seed, _T_CAM, 0).integers(0, len(SCENES)))) % len(SCENES)]
    cast = np.clip(1.0 + r.normal(0, 0.06, 3), 0.85, 1.15)
    facing = r.dirichlet([2.0, 2.0, 1.0, 1.0])
    return Camera(
        cam=cam, scene=scene, cast=tuple(cast), brightness=float(r.uniform(-15, 15)),
        contrast=float(r.uniform(0.85, 1.1)), facing_p=tuple(0.7 * facing + 0.3 * 0.25),
        scale=float(r.uniform(0.76, 0.8)), noise=float(r.uniform(1.5, 4.0)),
        base_colour=tuple(np.clip(r.uniform(70, 190) + r.normal(0, 18, 3), 0, 255)),  # mostly greyish
        accent=tuple(np.clip(r.uniform(50, 200) + r.normal(0, 35, 3), 0, 255)),
        light=float(r.uniform(-1, 1)),
    )


def _draw_scene(cam: Camera, r: np.random.Generator, H: int, W: int) -> np.ndarray:
    """Background of one image (H×W BGR float32), scene of ``cam`` at a random offset."""
    base = np.array(cam.base_colour, np.float64) + r.normal(0, 10, 3)
    acc = np.array(cam.accent, np.float64) + r.normal(0, 10, 3)
    img = np.empty((H, W, 3), np.float32)
    img[:] = base
    ground = int(H * r.uniform(0.55, 0.75))
    yy = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    s = cam.scene
    if s == "brick":
        img[:] = base = np.array([70, 95, 150], np.float64) * (0.6 + base.mean() / 255) + r.normal(0, 8, 3)
        bh = int(r.integers(10, 16))
        bw = int(r.integers(26, 40))
        off = int(r.integers(0, bw))
        mortar = tuple(float(v) for v in np.clip(base * 0.55 + 70, 0, 255))
        for row, y in enumerate(range(-int(r.integers(0, bh)), ground, bh)):
            cv2.line(img, (0, y), (W, y), mortar, 2)
            shift = off + (bw // 2 if row % 2 else 0)
            for x in range(-shift % bw, W, bw):
                cv2.line(img, (x, y), (x, min(y + bh, ground)), mortar, 2)
        img[ground:] = acc * 0.6 + 50
    elif s == "street":
        img[:] = base * (0.7 + 0.5 * (1 - yy))
        for _ in range(int(r.integers(2, 5))):  # building edges / windows
            x0 = int(r.integers(-20, W))
            w = int(r.integers(15, 50))
            y1 = int(r.integers(ground // 3, ground))
            cv2.rectangle(img, (x0, 0), (x0 + w, y1), tuple(float(v) for v in acc * r.uniform(0.6, 1.0)), -1)
        img[ground:] = 95 + r.normal(0, 5)
        y = int(ground + (H - ground) * r.uniform(0.4, 0.8))
        cv2.line(img, (0, y), (W, y + int(r.integers(-8, 8))), (220, 220, 220), 3)
    elif s == "park":
        green = np.array([60, 140, 70], np.float64) + r.normal(0, 12, 3)
        img[:] = base * 0.5 + np.array([160, 150, 120]) * 0.5  # sky-ish
        img[int(ground * 0.5):] = green * 0.8
        for _ in range(int(r.integers(1, 3))):  # tree trunks
            x = int(r.integers(0, W))
            cv2.rectangle(img, (x, 0), (x + int(r.integers(6, 14)), ground), (40, 60, 90), -1)
        path = np.array([150, 175, 190], np.float64) + r.normal(0, 8, 3)
        img[ground:] = path
    elif s == "shop":
        img[:] = base * 0.6 + 60
        x = -int(r.integers(0, 60))
        while x < W:
            w = int(r.integers(40, 70))
            glass = np.array([200, 190, 170]) * r.uniform(0.7, 1.0)
            cv2.rectangle(img, (x + 4, int(H * 0.08)), (x + w - 4, ground), tuple(float(v) for v in glass), -1)
            cv2.line(img, (x + 10, int(H * 0.15)), (x + w // 2, int(H * 0.45)), (235, 235, 235), 2)
            x += w
        img[ground:] = acc * 0.5 + 40
    elif s == "corridor":
        img[:] = base * (0.75 + 0.3 * yy)
        vx = W * r.uniform(0.2, 0.8)
        for k in range(-3, 5):
            cv2.line(img, (int(vx), int(H * 0.35)), (int(vx + k * W * 0.5), H), tuple(float(v) for v in base * 0.85), 1)
        for y in range(int(H * 0.05), int(H * 0.3), int(r.integers(18, 30))):
            cv2.rectangle(img, (int(vx) - 20, y), (int(vx) + 20, y + 5), (250, 250, 250), -1)
        img[ground:] = (img[ground:] * 0.7 + acc * 0.3)
    else:  # plaza
        img[:] = base * 0.8 + 30
        tile = int(r.integers(14, 24))
        col = tuple(float(v) for v in base * 0.7)
        for y in range(ground, H, tile):
            cv2.line(img, (0, y), (W, y), col, 1)
        for x in range(-int(r.integers(0, tile)), W, tile):
            cv2.line(img, (x, ground), (x + int((x - W / 2) * 0.3), H), col, 1)
        for _ in range(int(r.integers(0, 3))):  # far-away blobs (bench, bins)
            x = int(r.integers(0, W))
            y = int(r.integers(int(H * 0.2), ground))
            cv2.ellipse(img, (x, y), (int(r.integers(5, 16)), int(r.integers(4, 10))), 0, 0, 360,
                        tuple(float(v) for v in acc * r.uniform(0.4, 0.9)), -1)
    # low-frequency illumination variation
    g = r.normal(0, 0.08, (2, 2)).astype(np.float32)
    light = cv2.resize(1.0 + g, (W, H), interpolation=cv2.INTER_LINEAR)
    return img * light[:, :, None]


# =========================================================================== the person
def _c(col: Iterable[float], f: float = 1.0) -> tuple:
    """BGR colour scaled by ``f`` as a BGRA tuple with alpha 1 (persons are drawn on a BGRA layer)."""
    b, g, r = list(col)[:3]
    return (min(255.0, max(0.0, float(b) * f)), min(255.0, max(0.0, float(g) * f)),
            min(255.0, max(0.0, float(r) * f)), 1.0)


def _limb(img: np.ndarray, p0, p1, w0: float, w1: float, col) -> None:
    """A tapered limb from p0 (width w0) to p1 (width w1) with round ends."""
    p0 = np.asarray(p0, np.float64)
    p1 = np.asarray(p1, np.float64)
    d = p1 - p0
    n = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9)
    poly = np.array([p0 + n * w0 / 2, p1 + n * w1 / 2, p1 - n * w1 / 2, p0 - n * w0 / 2])
    cv2.fillConvexPoly(img, np.round(poly * 16).astype(np.int32), col, cv2.LINE_AA, 4)
    cv2.circle(img, tuple(np.round(p0 * 16).astype(int)), int(w0 / 2 * 16), col, -1, cv2.LINE_AA, 4)
    cv2.circle(img, tuple(np.round(p1 * 16).astype(int)), int(w1 / 2 * 16), col, -1, cv2.LINE_AA, 4)


def _poly(img: np.ndarray, pts, col) -> None:
    cv2.fillPoly(img, [np.round(np.asarray(pts, np.float64) * 16).astype(np.int32)], col, cv2.LINE_AA, 4)


def _ellipse(img, centre, axes, col, angle=0.0, start=0, end=360):
    cv2.ellipse(img, (int(round(centre[0] * 16)), int(round(centre[1] * 16))),
                (max(1, int(round(axes[0] * 16))), max(1, int(round(axes[1] * 16)))),
                angle, start, end, col, -1, cv2.LINE_AA, 4)


def _draw_person(canvas: np.ndarray, ident: Identity, cx: float, foot_y: float, height: float,
                 facing: str, phase: float, r: np.random.Generator | None, light: float = 0.0) -> None:
    """Draw one pedestrian in place on a float32 BGR canvas. ``height``: head top to soles (px).

    The figure is drawn on a premultiplied BGRA layer, shaded like a rounded body (darker towards the
    silhouette, lit from the side ``light`` ∈ [-1, 1]) and composited over the canvas.
    """
    H, W = canvas.shape[:2]
    img = np.zeros((H, W, 4), np.float32)
    _draw_figure(img, ident, cx, foot_y, height, facing, phase)
    # shading and compositing only inside the figure's box (plus its shadow)
    y0 = max(0, int(foot_y - 1.1 * height) - 2)
    y1 = min(H, int(foot_y + 0.06 * height) + 3)
    x0 = max(0, int(cx - 0.6 * height) - 2)
    x1 = min(W, int(cx + 0.6 * height) + 3)
    if y1 <= y0 or x1 <= x0:
        return
    lay = img[y0:y1, x0:x1]
    roi = canvas[y0:y1, x0:x1]
    alpha = lay[:, :, 3:4]
    solid = (alpha[:, :, 0] > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(solid, cv2.DIST_L2, 3)
    k = max(1.0, 0.03 * height)
    shade = 0.6 + 0.4 * np.clip(dist / k, 0.0, 1.0)
    if light:
        xs = (np.arange(x0, x1, dtype=np.float32)[None, :] - cx) / max(1.0, 0.15 * height)
        shade = shade * (1.0 + 0.12 * light * np.clip(xs, -1, 1))
    sh = np.zeros(roi.shape[:2], np.float32)  # soft ground shadow
    _ellipse(sh, (cx - x0, foot_y - y0), (0.14 * height, 0.022 * height), 1.0)
    roi *= (1.0 - 0.35 * cv2.GaussianBlur(sh, (0, 0), 0.01 * height + 0.5))[:, :, None]
    roi *= 1.0 - alpha
    roi += lay[:, :, :3] * shade[:, :, None]


# Body proportions in units of the person's height (tuned so that OpenCV's INRIA-trained HOG people
# detector recognises the figures; see docs/dataset.md).
PROPS = {
    "head": 0.062, "sh_front": 0.13, "sh_side": 0.075, "hip_front": 0.085, "hip_side": 0.07,
    "leg_w": 0.075, "arm_w": 0.05, "spread": 0.035, "side_swing": 0.45, "arm_x": 0.95, "neck": 0.03,
    "arm_swing": 0.4, "slope": 0.05, "neck_w": 0.04,
}


def _draw_figure(img: np.ndarray, ident: Identity, cx: float, foot_y: float, height: float,
                 facing: str, phase: float) -> None:
    P = PROPS
    Hh = height
    side = facing in ("left", "right")
    sgn = 1.0 if facing == "right" else -1.0
    g = ident.girth
    head_r = P["head"] * Hh * ident.head
    top = foot_y - Hh
    head_c = (cx + (0.01 * Hh * sgn if side else 0.0), top + head_r * 1.15)
    neck_y = top + head_r * 2.15
    sh_y = neck_y + P["neck"] * Hh
    hip_y = foot_y - ident.leg * Hh
    sw = (P["sh_front"] if not side else P["sh_side"]) * Hh * g      # half shoulder width
    hw = (P["hip_front"] if not side else P["hip_side"]) * Hh * g    # half hip width
    leg_w = P["leg_w"] * Hh * min(g, 1.15)
    arm_w = P["arm_w"] * Hh * min(g, 1.15)
    swing = math.sin(phase)
    skin = _c(ident.skin)
    upper = _c(ident.upper)
    upper2 = _c(ident.upper2)
    lower = _c(ident.lower)
    shoes = _c(ident.shoes)
    leg_len = foot_y - hip_y
    drop = P["slope"] * Hh  # shoulders slope down from the neck (the head-shoulder "omega")
    nk = P["neck_w"] * Hh

    # ---- legs
    def leg(x_hip: float, ang: float, knee_bend: float, shade: float):
        knee = (x_hip + math.sin(ang) * leg_len * 0.5, hip_y + math.cos(ang) * leg_len * 0.5)
        a2 = ang - knee_bend
        foot = (knee[0] + math.sin(a2) * leg_len * 0.5, min(foot_y - 0.012 * Hh, knee[1] + math.cos(a2) * leg_len * 0.5))
        thigh_col = _c(lower, shade) if ident.lower_style != "skirt" else _c(skin, shade)
        shin_col = _c(lower, shade) if ident.lower_style == "trousers" else _c(skin, shade)
        _limb(img, (x_hip, hip_y), knee, leg_w, leg_w * 0.85, thigh_col)
        _limb(img, knee, foot, leg_w * 0.85, leg_w * 0.7, shin_col)
        toe = 1.0 if not side else sgn
        _ellipse(img, (foot[0] + toe * 0.02 * Hh * (1 if side else 0), foot[1] + 0.004 * Hh),
                 (0.045 * Hh if side else 0.035 * Hh, 0.02 * Hh), _c(shoes, shade))

    if side:
        a = sgn * P["side_swing"] * swing
        leg(cx, -a, -sgn * 0.15 * max(0, -swing), 0.75)   # far leg (darker)
        leg(cx, a, -sgn * 0.15 * max(0, swing), 1.0)
    else:
        spread = P["spread"] * Hh * g
        lift = 0.04 * swing
        leg(cx - spread, -0.03 + lift * 0.3, 0.0, 1.0)
        leg(cx + spread, 0.03 - lift * 0.3, 0.0, 1.0)

    # skirt
    if ident.lower_style == "skirt":
        _poly(img, [(cx - hw * 1.05, hip_y - 0.03 * Hh), (cx + hw * 1.05, hip_y - 0.03 * Hh),
                    (cx + hw * 1.45, hip_y + 0.22 * Hh), (cx - hw * 1.45, hip_y + 0.22 * Hh)], lower)
    else:  # hips / seat
        _poly(img, [(cx - hw, hip_y - 0.04 * Hh), (cx + hw, hip_y - 0.04 * Hh),
                    (cx + hw * 0.95, hip_y + 0.05 * Hh), (cx - hw * 0.95, hip_y + 0.05 * Hh)], lower)

    # ---- backpack seen from the side / front: behind the torso
    if ident.bag == "backpack" and side:
        bx = cx - sgn * (sw + 0.045 * Hh)
        _poly(img, [(bx - 0.05 * Hh, sh_y + 0.02 * Hh), (bx + 0.05 * Hh, sh_y + 0.02 * Hh),
                    (bx + 0.055 * Hh, sh_y + 0.2 * Hh), (bx - 0.055 * Hh, sh_y + 0.2 * Hh)], _c(ident.bag_colour))

    # far arm (side view)
    arm_len = 0.36 * Hh
    sleeve_col = upper
    def arm(x_sh: float, ang: float, shade: float):
        elbow = (x_sh + math.sin(ang) * arm_len * 0.5, sh_y + drop + math.cos(ang) * arm_len * 0.5)
        a2 = ang + (0.25 * sgn if side else 0.0) * (1 + abs(ang))
        hand = (elbow[0] + math.sin(a2) * arm_len * 0.48, elbow[1] + math.cos(a2) * arm_len * 0.48)
        _limb(img, (x_sh, sh_y + drop), elbow, arm_w, arm_w * 0.85, _c(sleeve_col, shade))
        _limb(img, elbow, hand, arm_w * 0.85, arm_w * 0.7,
              _c(sleeve_col if ident.long_sleeves else skin, shade))
        _ellipse(img, hand, (arm_w * 0.45, arm_w * 0.5), _c(skin, shade))
        return hand

    if side:
        arm(cx, -sgn * P["arm_swing"] * swing, 0.75)

    # ---- torso with pattern
    H, W = img.shape[:2]
    torso = [(cx - nk, sh_y - drop * 0.3), (cx + nk, sh_y - drop * 0.3), (cx + sw, sh_y + drop),
             (cx + hw * 1.02, hip_y), (cx - hw * 1.02, hip_y), (cx - sw, sh_y + drop)]
    y0, y1 = int(max(0, sh_y - 2)), int(min(H, hip_y + 3))
    x0, x1 = int(max(0, cx - sw - 3)), int(min(W, cx + sw + 4))
    y0 = int(max(0, sh_y - drop * 0.3 - 2))
    if y1 > y0 and x1 > x0:
        mask = np.zeros((H, W), np.float32)
        _poly(mask, torso, 1.0)
        pat = np.empty((y1 - y0, x1 - x0, 4), np.float32)
        pat[:] = upper
        # pattern colour: ``PATTERN_CONTRAST`` of the way from the garment colour to the second colour
        upper2 = tuple(float(a + PATTERN_CONTRAST * (b - a)) for a, b in zip(upper, upper2))
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        period = ident.stripe_period * Hh
        if ident.pattern == "hstripes":
            on = ((ys - sh_y) % period) < period * 0.5
            pat[np.broadcast_to(on, pat.shape[:2])] = upper2
        elif ident.pattern == "vstripes":
            on = ((xs - cx) % (period * 0.8)) < period * 0.4
            pat[np.broadcast_to(on, pat.shape[:2])] = upper2
        elif ident.pattern == "twotone":
            # colour-block top: upper part one colour, lower part the other
            on = np.broadcast_to(ys > sh_y + (hip_y - sh_y) * 0.45, pat.shape[:2])
            pat[on] = upper2
        elif ident.pattern == "logo" and facing == "front":
            lc = (cx - x0, sh_y + (hip_y - sh_y) * 0.35 - y0)
            rad = 0.04 * Hh
            if ident.logo_shape == 0:
                _ellipse(pat, lc, (rad, rad), upper2)
            elif ident.logo_shape == 1:
                _poly(pat, [(lc[0] - rad, lc[1] - rad), (lc[0] + rad, lc[1] - rad),
                            (lc[0] + rad, lc[1] + rad), (lc[0] - rad, lc[1] + rad)], upper2)
            else:
                _poly(pat, [(lc[0], lc[1] - rad * 1.2), (lc[0] + rad * 1.2, lc[1] + rad),
                            (lc[0] - rad * 1.2, lc[1] + rad)], upper2)
        elif ident.pattern == "logo" and facing == "back":
            # a band across the back (the logo's counterpart seen from behind)
            on = np.broadcast_to(np.abs(ys - (sh_y + (hip_y - sh_y) * 0.3)) < 0.02 * Hh, pat.shape[:2])
            pat[on] = upper2
        m = mask[y0:y1, x0:x1, None]
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - m) + pat * m

    # neck
    _limb(img, (head_c[0], head_c[1] + head_r * 0.5), (cx, sh_y + 0.01 * Hh), head_r * 0.75, head_r * 0.8, skin)

    # ---- bags in front of the torso
    if ident.bag == "backpack" and facing == "back":
        _poly(img, [(cx - sw * 0.8, sh_y + 0.02 * Hh), (cx + sw * 0.8, sh_y + 0.02 * Hh),
                    (cx + sw * 0.85, sh_y + 0.24 * Hh), (cx - sw * 0.85, sh_y + 0.24 * Hh)], _c(ident.bag_colour))
    elif ident.bag == "backpack" and facing == "front":
        for s_ in (-1, 1):
            _limb(img, (cx + s_ * sw * 0.55, sh_y), (cx + s_ * sw * 0.6, sh_y + 0.16 * Hh),
                  0.02 * Hh, 0.02 * Hh, _c(ident.bag_colour))
    elif ident.bag == "shoulder":
        s_ = ident.bag_side * (1 if facing != "back" else -1)
        _limb(img, (cx - s_ * sw * 0.8, sh_y), (cx + s_ * hw * 1.2, hip_y - 0.02 * Hh), 0.016 * Hh, 0.016 * Hh,
              _c(ident.bag_colour, 0.8))
        bx = cx + s_ * (hw * 1.25 if not side else 0.0)
        _poly(img, [(bx - 0.045 * Hh, hip_y - 0.06 * Hh), (bx + 0.045 * Hh, hip_y - 0.06 * Hh),
                    (bx + 0.045 * Hh, hip_y + 0.03 * Hh), (bx - 0.045 * Hh, hip_y + 0.03 * Hh)], _c(ident.bag_colour))

    # ---- near arms
    if side:
        hand = arm(cx, sgn * P["arm_swing"] * swing, 1.0)
    else:
        arm(cx - sw * P["arm_x"], 0.08 + 0.12 * swing * 0.5, 0.95)
        hand = arm(cx + sw * P["arm_x"], -0.08 - 0.12 * swing * 0.5, 0.95)
        if ident.bag_side < 0:
            hand = (cx - sw * 0.95 - 0.06 * Hh, sh_y + 0.36 * Hh)
    if ident.bag == "hand":
        _poly(img, [(hand[0] - 0.035 * Hh, hand[1]), (hand[0] + 0.035 * Hh, hand[1]),
                    (hand[0] + 0.04 * Hh, hand[1] + 0.08 * Hh), (hand[0] - 0.04 * Hh, hand[1] + 0.08 * Hh)],
              _c(ident.bag_colour))

    # ---- head and hair
    hc = ident.hair
    _ellipse(img, head_c, (head_r * 0.92, head_r * 1.1), skin)
    if ident.hair_style == "long":
        if facing == "back":
            _poly(img, [(head_c[0] - head_r * 0.95, head_c[1]), (head_c[0] + head_r * 0.95, head_c[1]),
                        (head_c[0] + head_r * 1.0, sh_y - 0.01 * Hh), (head_c[0] - head_r * 1.0, sh_y - 0.01 * Hh)], hc)
        elif side:
            bx = head_c[0] - sgn * head_r * 0.5
            _poly(img, [(bx - head_r * 0.5, head_c[1]), (bx + head_r * 0.5, head_c[1]),
                        (bx + head_r * 0.5, sh_y - 0.01 * Hh), (bx - head_r * 0.6, sh_y - 0.01 * Hh)], hc)
    if ident.hair_style in ("short", "long"):
        if facing == "back":
            _ellipse(img, head_c, (head_r * 0.95, head_r * 1.12), hc)
        else:
            _ellipse(img, (head_c[0], head_c[1] - head_r * 0.15), (head_r * 0.97, head_r * 0.98), hc, 0, 180, 360)
            if side:
                _ellipse(img, (head_c[0] - sgn * head_r * 0.3, head_c[1]), (head_r * 0.65, head_r * 0.9), hc)
    elif ident.hair_style == "cap":
        _ellipse(img, (head_c[0], head_c[1] - head_r * 0.2), (head_r * 1.0, head_r * 0.9), hc, 0, 180, 360)
        if facing != "back":
            brim = sgn if side else 0.0
            _ellipse(img, (head_c[0] + brim * head_r * 0.7, head_c[1] - head_r * 0.2),
                     (head_r * (0.9 if side else 1.1), head_r * 0.22), _c(hc, 0.85))
    elif ident.hair_style == "bald":
        _ellipse(img, (head_c[0] - head_r * 0.3, head_c[1] - head_r * 0.5), (head_r * 0.25, head_r * 0.18),
                 _c(skin, 1.15))


# =========================================================================== one image
def _occlude(img: np.ndarray, r: np.random.Generator, cam: Camera, seed: int) -> None:
    H, W = img.shape[:2]
    kind = int(r.integers(0, 4))
    if kind == 0:  # a pole or sign post
        x = int(r.uniform(0.05, 0.85) * W)
        w = int(r.uniform(0.06, 0.14) * W)
        cv2.rectangle(img, (x, 0), (x + w, H), _c(r.uniform(40, 200, 3)), -1)
    elif kind == 1:  # a car / bench / railing at the bottom
        y = int(r.uniform(0.72, 0.85) * H)
        cv2.rectangle(img, (0, y), (W, H), _c(r.uniform(30, 220, 3)), -1)
        cv2.line(img, (0, y), (W, y), _c(r.uniform(0, 80, 3)), 2)
    elif kind == 2:  # another pedestrian passing at the side
        other = make_identity(900000 + int(r.integers(0, 1000)), seed)
        side = -1 if r.random() < 0.5 else 1
        _draw_person(img, other, W / 2 + side * W * r.uniform(0.55, 0.75), H * r.uniform(0.95, 1.05),
                     H * r.uniform(0.85, 0.95), str(r.choice(["front", "back", "left", "right"])),
                     float(r.uniform(0, 2 * math.pi)), r)
    else:  # a bag/box held up in front, lower half
        x = int(r.uniform(0.0, 0.6) * W)
        y = int(r.uniform(0.55, 0.75) * H)
        cv2.rectangle(img, (x, y), (x + int(W * r.uniform(0.3, 0.45)), y + int(H * r.uniform(0.12, 0.2))),
                      _c(r.uniform(30, 220, 3)), -1)


def _image_seed(seed: int, split: str, name: str) -> np.random.Generator:
    return _rng(seed, _T_IMG, zlib.crc32(f"{split}/{name}".encode()))


def render_image(spec: ImageSpec, params: RenderParams, scheme_of: Mapping[int, int] | None = None,
                 info: dict | None = None) -> tuple[np.ndarray, int]:
    """Render one file of the plan. Returns ``(BGR uint8 128×64 image, JPEG quality)``.

    Person images are drawn like Market-1501's boxes were made — by a pedestrian detector: up to
    ``params.detector_tries`` draws of the per-image nuisance (pose, framing, scene offset, occlusion,
    blur, ...) are rendered and the first one on which OpenCV's HOG people detector has an SVM margin
    ``>= params.detector_min_margin`` is kept (else the last draw). ``detector_tries=1`` switches this
    off. ``info``, when given, receives the nuisance factors of the kept draw and ``tries``/``margin``.
    """
    seed = params.seed
    r = _image_seed(seed, spec.split, spec.name)
    cam = make_camera(spec.cam, seed)
    scheme = None if scheme_of is None else scheme_of.get(spec.identity)
    ident = make_identity(spec.identity, seed, scheme)
    tries = params.detector_tries if spec.kind == "person" else 1
    meta: dict[str, Any] = {}
    margin = None
    for attempt in range(1, tries + 1):
        meta = {}
        out = _render_once(spec, params, r, cam, ident, meta)
        if tries > 1:
            margin = _hog().window_margin(out)
            if margin >= params.detector_min_margin:
                break
    quality = int(r.integers(params.jpeg_quality[0], params.jpeg_quality[1] + 1))
    if info is not None:
        if margin is None:
            margin = _hog().window_margin(out)
        info.update(meta, cam=spec.cam, pattern=ident.pattern, bag=ident.bag, lower=ident.lower_style,
                    hair=ident.hair_style, quality=quality, tries=attempt, margin=margin)
    return out, quality


_HOG = None


def _hog():
    global _HOG
    if _HOG is None:
        from reid_gan.filters.hog import HOGDetector

        _HOG = HOGDetector()
    return _HOG


def _render_once(spec: ImageSpec, params: RenderParams, r: np.random.Generator, cam: Camera,
                 ident: Identity, meta: dict[str, Any]) -> np.ndarray:
    seed = params.seed
    H, W = params.height * _SS, params.width * _SS
    img = _draw_scene(cam, r, H, W)
    facing = ("front", "back", "left", "right")[int(r.choice(4, p=np.asarray(cam.facing_p) / sum(cam.facing_p)))]
    phase = float(r.uniform(0, 2 * math.pi))
    # Framing like the detector boxes of Market-1501 / INRIA: person ≈ 3/4 of the crop height, feet at
    # ≈ 7/8, with scale and position jitter.
    height = H * float(np.clip(cam.scale * ident.height * r.uniform(0.96, 1.04), 0.66, 0.86))
    cx = W / 2 + float(np.clip(r.normal(0, 0.03), -0.07, 0.07)) * W
    foot = H * (FOOT_Y + float(np.clip(r.normal(0, 0.012), -0.025, 0.025)))
    occluded = False
    if spec.kind == "person":
        _draw_person(img, ident, cx, foot, height, facing, phase, r, light=cam.light)
        if r.random() < params.occlusion_prob:
            _occlude(img, r, cam, seed)
            occluded = True
    elif spec.kind == "distractor":
        # a badly aligned detection of someone never listed: shifted, too large or too small
        mode = int(r.integers(0, 3))
        if mode == 0:
            cx += (1 if r.random() < 0.5 else -1) * W * r.uniform(0.4, 0.6)
        elif mode == 1:
            height *= r.uniform(1.5, 2.0)
            foot = foot + height * r.uniform(0.3, 0.5)
        else:
            height *= r.uniform(0.45, 0.6)
        _draw_person(img, ident, cx, foot, height, facing, phase, r, light=cam.light)
    else:  # junk: background, or a fragment (legs / a head) of someone
        if r.random() < 0.5:
            _draw_person(img, ident, cx + W * r.uniform(-0.3, 0.3), foot + height * r.uniform(0.4, 0.6),
                         height * r.uniform(1.8, 2.5), facing, phase, r, light=cam.light)

    # camera response: colour cast, brightness, contrast, sensor noise
    img = cv2.resize(img, (params.width, params.height), interpolation=cv2.INTER_AREA)
    img = (img - 128.0) * cam.contrast + (128.0 + cam.brightness + r.normal(0, 6))
    img *= np.asarray(cam.cast, np.float32) * np.float32(r.uniform(0.9, 1.1))
    # optics: surveillance crops are soft (low-resolution cameras, upscaled boxes)
    img = cv2.GaussianBlur(img, (0, 0), float(r.uniform(*OPTICS_SIGMA)))
    blurred = False
    if r.random() < params.blur_prob:
        blurred = True
        if r.random() < 0.5:
            s = float(r.uniform(0.8, 1.4))
            img = cv2.GaussianBlur(img, (0, 0), s)
        else:  # horizontal motion blur
            k = int(r.integers(3, 6))
            kern = np.zeros((k, k), np.float32)
            kern[k // 2, :] = 1.0 / k
            img = cv2.filter2D(img, -1, kern)
    img += r.normal(0, cam.noise, img.shape).astype(np.float32)
    meta.update(facing=facing, scene=cam.scene, occluded=occluded, blurred=blurred,
                height=height / H, foot=foot / H)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    """JPEG bytes with fixed encoder settings (baseline, no optimisation, 4:2:0) — deterministic."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                                         cv2.IMWRITE_JPEG_OPTIMIZE, 0, cv2.IMWRITE_JPEG_PROGRESSIVE, 0,
                                         cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
    if not ok:  # pragma: no cover
        raise RuntimeError("cv2.imencode failed")
    return buf.tobytes()


# =========================================================================== the whole dataset
def _stats(specs: list[ImageSpec], scheme_of: Mapping[int, int]) -> dict[str, Any]:
    def per_split(split: str) -> dict[str, Any]:
        s = [x for x in specs if x.split == split]
        ids = {x.pid for x in s if x.pid > 0}
        per_id: dict[int, int] = {}
        cams: dict[int, set] = {}
        for x in s:
            if x.pid > 0:
                per_id[x.pid] = per_id.get(x.pid, 0) + 1
                cams.setdefault(x.pid, set()).add(x.cam)
        counts = list(per_id.values()) or [0]
        return {"images": len(s), "identities": len(ids),
                "images_per_identity": {"min": min(counts), "mean": round(float(np.mean(counts)), 2),
                                        "max": max(counts)},
                "distractors": sum(1 for x in s if x.pid == 0),
                "junk": sum(1 for x in s if x.pid == -1),
                "cameras": sorted({x.cam for x in s})}

    test_ids = {x.pid for x in specs if x.split != "bounding_box_train" and x.pid > 0}
    all_cams: dict[int, set] = {}
    for x in specs:
        if x.pid > 0:
            all_cams.setdefault(x.pid, set()).add(x.cam)
    ncams = [len(v) for v in all_cams.values()]
    twins = sum(1 for p, s in scheme_of.items() if s != p)
    return {
        "splits": {sp: per_split(sp) for sp in SPLITS},
        "total_images": len(specs),
        "test_identities": len(test_ids),
        "cameras_per_identity": {"min": min(ncams), "mean": round(float(np.mean(ncams)), 2), "max": max(ncams)},
        "colour_twins": twins,
    }


def is_rendered(root: str | Path, params: RenderParams | None = None) -> bool:
    """True when ``root`` holds a complete render (of ``params``, when given)."""
    root = Path(root)
    marker = root / MARKER
    if not marker.is_file() or (root / IN_PROGRESS).exists():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if params is not None and info.get("fingerprint") != params.fingerprint():
        return False
    counts = info.get("file_counts", {})
    for split in SPLITS:
        d = root / split
        if not d.is_dir() or sum(1 for _ in d.glob("*.jpg")) != counts.get(split, -1):
            return False
    return True


def _ours(root: Path) -> bool:
    for name in (MARKER, IN_PROGRESS):
        p = root / name
        if p.is_file():
            try:
                if json.loads(p.read_text()).get("generator") == __name__:
                    return True
            except (OSError, json.JSONDecodeError):
                pass
    return False


def render_dataset(root: str | Path, params: RenderParams | None = None, progress: bool = True,
                   **kwargs: Any) -> dict[str, Any]:
    """Render (or finish rendering) the dataset into ``root``. Returns the ``DATASET.json`` content.

    ``params`` or keyword arguments (the fields of :class:`RenderParams`) give the parameters. Images
    already present (from an interrupted run with the same parameters) are kept; each image is
    written atomically; ``DATASET.json`` is written last and is the completion marker.
    """
    from reid_gan.utils.io import atomic_write_json, atomic_write_text

    root = Path(root)
    params = RenderParams.from_config(params, **kwargs) if kwargs or not isinstance(params, RenderParams) \
        else params
    t0 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    fp = params.fingerprint()
    progress_file = root / IN_PROGRESS
    existing_split = any((root / s).exists() for s in SPLITS)
    if existing_split:
        same = False
        for name in (IN_PROGRESS, MARKER):
            p = root / name
            if p.is_file():
                try:
                    info = json.loads(p.read_text())
                    same = info.get("generator") == __name__ and info.get("fingerprint") == fp
                except (OSError, json.JSONDecodeError):
                    pass
                break
        if not same:
            if not _ours(root):
                raise FileExistsError(
                    f"{root} already holds a dataset that reid_gan.data.synthetic did not render; refusing "
                    f"to overwrite it (choose another data.root or delete the folder)")
            log.info("%s was rendered with other parameters: re-rendering", root)
            for s in SPLITS:
                shutil.rmtree(root / s, ignore_errors=True)
            for name in (MARKER, GRID_NAME, "README.md"):
                (root / name).unlink(missing_ok=True)
    (root / MARKER).unlink(missing_ok=True)
    atomic_write_json(progress_file, {"generator": __name__, "fingerprint": fp, "params": params.to_dict()})

    specs, scheme_of = plan_dataset(params)
    planned = {s.relpath for s in specs}
    for split in SPLITS:
        d = root / split
        d.mkdir(exist_ok=True)
        for f in d.iterdir():  # stray files (temp files of a killed run, files of no plan)
            if f"{split}/{f.name}" not in planned:
                f.unlink()
    todo = [s for s in specs if not (root / s.relpath).is_file()]
    if len(todo) < len(specs):
        log.info("Resuming the render in %s: %d of %d images already there", root, len(specs) - len(todo),
                 len(specs))
    _render_files(root, todo, params, scheme_of, progress)

    if params.grid_ids > 0:
        from reid_gan.report.grids import save_grid

        imgs, labels = sample_grid_images(root, specs, params.grid_ids, params.grid_cols)
        save_grid(root / GRID_NAME, imgs, nrow=params.grid_cols, row_labels=labels, label_width=34)

    hashes = hashlib.sha256()
    for s in sorted(specs, key=lambda x: x.relpath):
        hashes.update(s.relpath.encode())
        hashes.update(hashlib.sha256((root / s.relpath).read_bytes()).digest())
    info = {
        "generator": __name__,
        "renderer_version": RENDERER_VERSION,
        "fingerprint": fp,
        "params": params.to_dict(),
        "layout": "Market-1501",
        "file_counts": {sp: sum(1 for s in specs if s.split == sp) for sp in SPLITS},
        "stats": _stats(specs, scheme_of),
        "content_sha256": hashes.hexdigest(),
        "image_size_hw": [params.height, params.width],
    }
    atomic_write_text(root / "README.md", _readme(info))
    atomic_write_json(root / MARKER, info)
    progress_file.unlink(missing_ok=True)
    log.info("Rendered %d images into %s in %.1f s", len(todo), root, time.perf_counter() - t0)
    return info


_PARALLEL_MIN = 256  # fewer images than this are rendered in this process


def _render_files(root: Path, todo: list[ImageSpec], params: RenderParams, scheme_of: Mapping[int, int],
                  progress: bool) -> None:
    """Render and write ``todo``; in ``params.num_workers`` processes when there is enough work.

    Worker processes are forked where the platform can (no re-import of the package per worker:
    importing ``reid_gan`` pulls in Lightning, seconds per process), before the progress bar's thread
    starts; joblib's loky workers elsewhere. Each image depends only on its own seed, so the files do
    not depend on the number of workers.
    """
    import multiprocessing as mp

    if not todo:
        return
    chunk = 64
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    workers = min(params.num_workers, len(chunks)) if len(todo) >= _PARALLEL_MIN else 0
    sch = dict(scheme_of)
    pool = None
    if workers > 1 and "fork" in mp.get_all_start_methods():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded process, fork()"
            pool = mp.get_context("fork").Pool(workers, initializer=cv2.setNumThreads, initargs=(1,))
    if workers <= 1:
        results: Iterable[int] = (_render_chunk(str(root), c, params, sch) for c in chunks)
    elif pool is not None:
        results = pool.imap_unordered(_render_chunk_args, [(str(root), c, params, sch) for c in chunks])
    else:
        from joblib import Parallel, delayed

        par = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")
        results = par(delayed(_render_chunk)(str(root), c, params, sch) for c in chunks)
    try:
        if progress:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task(f"rendering {root.name}", total=len(todo))
                for n in results:
                    bar.advance(task, n)
        else:
            for _ in results:
                pass
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _render_chunk_args(args: tuple) -> int:
    return _render_chunk(*args)


def _render_chunk(root: str, specs: list[ImageSpec], params: RenderParams, scheme_of: dict[int, int]) -> int:
    cv2.setNumThreads(1)
    for spec in specs:
        img, q = render_image(spec, params, scheme_of)
        _write(Path(root) / spec.relpath, encode_jpeg(img, q))
    return len(specs)


def _write(path: Path, data: bytes) -> None:
    # Atomic (temp + rename) without the fsync of atomic_write_bytes: thousands of tiny files; a crash
    # can lose the last few, never leave a half-written one under its final name.
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    tmp.replace(path)


def sample_grid_images(root: Path, specs: list[ImageSpec], n_ids: int, n_cols: int
                       ) -> tuple[list[np.ndarray], list[str]]:
    """Images of the first ``n_ids`` training identities, spread over their cameras, one row each."""
    by_id: dict[int, list[ImageSpec]] = {}
    for s in specs:
        if s.split == "bounding_box_train":
            by_id.setdefault(s.pid, []).append(s)
    imgs: list[np.ndarray] = []
    labels: list[str] = []
    blank = np.full((128, 64, 3), 255, np.uint8)
    for pid in sorted(by_id)[:n_ids]:
        items = sorted(by_id[pid], key=lambda s: (s.cam, s.name))
        # round-robin over cameras so that the row shows every camera first
        cams: dict[int, list[ImageSpec]] = {}
        for s in items:
            cams.setdefault(s.cam, []).append(s)
        order: list[ImageSpec] = []
        while len(order) < len(items):
            for c in sorted(cams):
                if cams[c]:
                    order.append(cams[c].pop(0))
        row = [cv2.imread(str(root / s.relpath), cv2.IMREAD_COLOR) for s in order[:n_cols]]
        row += [blank] * (n_cols - len(row))
        imgs += row
        labels.append(f"{pid:04d}")
    return imgs, labels


def _readme(info: dict[str, Any]) -> str:
    st = info["stats"]
    lines = [
        "# Synthetic pedestrian dataset (Market-1501 layout)",
        "",
        "Rendered procedurally by `reid_gan.data.synthetic` (`python -m reid_gan.make_dataset`).",
        "Same parameters give byte-identical files; `content_sha256` in DATASET.json hashes them all.",
        "",
        "| split | images | identities | distractors (0000) | junk (-1) |",
        "|---|---|---|---|---|",
    ]
    for sp in SPLITS:
        s = st["splits"][sp]
        lines.append(f"| {sp} | {s['images']} | {s['identities']} | {s['distractors']} | {s['junk']} |")
    c = st["cameras_per_identity"]
    lines += [
        "",
        f"Cameras per identity: min {c['min']}, mean {c['mean']}, max {c['max']}. "
        f"Identities wearing another identity's clothing colours: {st['colour_twins']}.",
        "",
        "Parameters:",
        "",
        "```json",
        json.dumps(info["params"], indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)


def ensure_rendered(root: str | Path, render_cfg: Any = None, progress: bool = True) -> Path:
    """Render the dataset into ``root`` unless a complete render of these parameters is there.

    ``render_cfg``: the ``data.render`` config node (DictConfig), a dict, a :class:`RenderParams` or
    None (defaults). A file lock (``<root>.lock``) makes concurrent callers wait for one renderer.
    """
    from filelock import FileLock

    root = Path(root)
    params = render_cfg if isinstance(render_cfg, RenderParams) else RenderParams.from_config(render_cfg)
    if is_rendered(root, params):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not is_rendered(root, params):
            render_dataset(root, params, progress=progress)
    return root
