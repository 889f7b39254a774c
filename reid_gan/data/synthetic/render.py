"""One image of the plan: the nuisance draws (pose, framing, occlusion, blur, camera response) and the
HOG people detector that keeps the first draw it fires on (:func:`render_image`).

Render workers import this module: keep it free of ``reid_gan.utils``'s heavy modules (Lightning would cost
seconds per worker).
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Mapping

import cv2
import numpy as np

from reid_gan.data.synthetic.appearance import Camera, Identity, make_camera, make_identity
from reid_gan.data.synthetic.drawing import _draw_person, _draw_scene, _occlude
from reid_gan.data.synthetic.params import _T_IMG, ImageSpec, RenderParams, _rng

OPTICS_SIGMA = (0.6, 1.0)  # Gaussian blur of every image (pixels at 128×64)
FOOT_Y = 0.875  # where the feet are, as a fraction of the crop height (INRIA's 112/128)
_SS = 2  # supersampling factor: drawn at 2× then INTER_AREA-downsampled (anti-aliasing)


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
