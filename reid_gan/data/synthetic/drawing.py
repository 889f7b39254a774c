"""Drawing with numpy and OpenCV: a camera's background scene, a pedestrian (shaded, composited over the
scene) and occluders. Coordinates are floats at the supersampled size; OpenCV draws with 4 fractional bits."""

from __future__ import annotations

import math
from typing import Iterable

import cv2
import numpy as np

from reid_gan.data.synthetic.appearance import Camera, Identity, make_identity

PATTERN_CONTRAST = 0.7  # stripes/logos/colour blocks: blend of the two garment colours


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
