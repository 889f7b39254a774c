"""Who is drawn and where: the palettes, a person's appearance (:class:`Identity`) and a camera's scene,
light and viewing habits (:class:`Camera`), each deterministic in the dataset seed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reid_gan.data.synthetic.params import _T_CAM, _T_ID, _T_SCHEME, _rng


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
