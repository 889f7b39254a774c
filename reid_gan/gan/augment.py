"""Adaptive discriminator augmentation (ADA; Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data"), written from the paper and from reading NVIDIA's ``training/augment.py``.

Every image D sees (real and generated) goes through the same random pipeline; each transform is applied
to each sample independently with probability ``p``. The pipeline is differentiable in the images, so G
receives gradients through it. Geometric transforms are composed into one 3×3 matrix per sample (in
pixel units, origin at the image centre) and applied once with ``F.affine_grid`` + ``F.grid_sample``
(bilinear, reflection padding); colour transforms are composed into one 4×4 matrix per sample acting on
RGB (in [-1, 1]).

``p`` is adapted by :class:`AdaController`: every ``ada_interval`` iterations, ``r_t = E[sign(D(real))]``
over those iterations; ``p += sign(r_t - target) * batch * ada_interval / (ada_kimg * 1000)``, clamped at 0
(``target = 0.6``, ``ada_kimg = 500`` in StyleGAN3).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AugmentPipe", "AdaController"]


# --- 3×3 (2-D homogeneous) and 4×4 (RGB homogeneous) matrix builders, batched over N -------------------
def _mat(rows, device) -> torch.Tensor:
    """Stack a nested list of [N] tensors / floats into an [N, R, C] matrix."""
    n = next(v.shape[0] for r in rows for v in r if torch.is_tensor(v))
    out = [[v if torch.is_tensor(v) else torch.full((n,), float(v), device=device) for v in r] for r in rows]
    return torch.stack([torch.stack(r, dim=-1) for r in out], dim=-2)


def _translate2d(tx, ty, device):
    return _mat([[1, 0, tx], [0, 1, ty], [0, 0, 1]], device)


def _scale2d(sx, sy, device):
    return _mat([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], device)


def _rotate2d(theta, device):
    c, s = torch.cos(theta), torch.sin(theta)
    return _mat([[c, -s, 0], [s, c, 0], [0, 0, 1]], device)


def _translate3d(t, device):
    return _mat([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], device)


def _scale3d(s, device):
    return _mat([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], device)


def _rotate3d(axis: torch.Tensor, theta, device):
    """Rotation by ``theta`` [N] around the unit ``axis`` [3] (Rodrigues), as a 4×4 homogeneous matrix."""
    x, y, z = (float(a) for a in axis)
    c, s = torch.cos(theta), torch.sin(theta)
    cc = 1 - c
    return _mat([[x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, 0],
                 [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, 0],
                 [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, 0],
                 [0, 0, 0, 1]], device)


class AugmentPipe(nn.Module):
    """ADA's "bgc" pipeline: blit (x-flip, 90° rotation, integer translation), general geometric
    (isotropic scaling, pre/post rotation, anisotropic scaling, fractional translation) and colour
    (brightness, contrast, luma flip, hue rotation, saturation).

    Each ``*`` argument is the transform's probability multiplier (1 = on, 0 = off); its effective
    probability is ``multiplier * p``. ``p`` lives in a buffer so it is saved with the module.

    Args:
        p: initial augmentation probability in [0, 1].
        *_std / *_max: strengths, with StyleGAN2-ADA's defaults.

    Shapes: ``forward(images [N, C, H, W]) -> [N, C, H, W]`` (C = 3 for colour transforms; other channel
    counts get the geometric transforms only).
    """

    def __init__(self, p: float = 0.0, xflip: float = 1, rotate90: float = 1, xint: float = 1, scale: float = 1,
                 rotate: float = 1, aniso: float = 1, xfrac: float = 1, brightness: float = 1, contrast: float = 1,
                 lumaflip: float = 1, hue: float = 1, saturation: float = 1,
                 xint_max: float = 0.125, scale_std: float = 0.2, rotate_max: float = 1.0, aniso_std: float = 0.2,
                 xfrac_std: float = 0.125, brightness_std: float = 0.2, contrast_std: float = 0.5,
                 hue_max: float = 1.0, saturation_std: float = 1.0):
        super().__init__()
        self.register_buffer("p", torch.tensor(float(p)))
        self.xflip, self.rotate90, self.xint, self.scale = float(xflip), float(rotate90), float(xint), float(scale)
        self.rotate, self.aniso, self.xfrac = float(rotate), float(aniso), float(xfrac)
        self.brightness, self.contrast, self.lumaflip = float(brightness), float(contrast), float(lumaflip)
        self.hue, self.saturation = float(hue), float(saturation)
        self.xint_max, self.scale_std, self.rotate_max = xint_max, scale_std, rotate_max
        self.aniso_std, self.xfrac_std = aniso_std, xfrac_std
        self.brightness_std, self.contrast_std, self.hue_max = brightness_std, contrast_std, hue_max
        self.saturation_std = saturation_std
        self.register_buffer("_luma_axis", torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3))

    def _gate(self, n: int, prob: float, device) -> torch.Tensor:
        """[N] bool: which samples get a transform of probability ``prob``."""
        return torch.rand(n, device=device) < prob

    def geometric_matrix(self, n: int, h: int, w: int, device) -> torch.Tensor:
        """The [N, 3, 3] matrix mapping output pixel coordinates (centred) to input coordinates."""
        p = float(self.p)
        I3 = torch.eye(3, device=device).expand(n, 3, 3)
        G = I3.clone()
        if self.xflip > 0:
            i = torch.floor(torch.rand(n, device=device) * 2)
            i = torch.where(self._gate(n, self.xflip * p, device), i, torch.zeros_like(i))
            G = G @ _scale2d(1 - 2 * i, torch.ones_like(i), device)
        if self.rotate90 > 0:
            i = torch.floor(torch.rand(n, device=device) * 4)
            i = torch.where(self._gate(n, self.rotate90 * p, device), i, torch.zeros_like(i))
            G = G @ _rotate2d(-math.pi / 2 * i, device)
        if self.xint > 0:
            t = (torch.rand(n, 2, device=device) * 2 - 1) * self.xint_max
            t = torch.where(self._gate(n, self.xint * p, device)[:, None], t, torch.zeros_like(t))
            G = G @ _translate2d(torch.round(t[:, 0] * w), torch.round(t[:, 1] * h), device)
        if self.scale > 0:
            s = torch.exp2(torch.randn(n, device=device) * self.scale_std)
            s = torch.where(self._gate(n, self.scale * p, device), s, torch.ones_like(s))
            G = G @ _scale2d(s, s, device)
        # Rotation is applied twice (before and after anisotropic scaling); each with p_rot chosen so that
        # the probability of at least one rotation is ``rotate * p``.
        p_rot = 1 - math.sqrt(min(max(1 - self.rotate * p, 0.0), 1.0))
        if self.rotate > 0:
            th = (torch.rand(n, device=device) * 2 - 1) * math.pi * self.rotate_max
            th = torch.where(self._gate(n, p_rot, device), th, torch.zeros_like(th))
            G = G @ _rotate2d(-th, device)
        if self.aniso > 0:
            s = torch.exp2(torch.randn(n, device=device) * self.aniso_std)
            s = torch.where(self._gate(n, self.aniso * p, device), s, torch.ones_like(s))
            G = G @ _scale2d(s, 1 / s, device)
        if self.rotate > 0:
            th = (torch.rand(n, device=device) * 2 - 1) * math.pi * self.rotate_max
            th = torch.where(self._gate(n, p_rot, device), th, torch.zeros_like(th))
            G = G @ _rotate2d(-th, device)
        if self.xfrac > 0:
            t = torch.randn(n, 2, device=device) * self.xfrac_std
            t = torch.where(self._gate(n, self.xfrac * p, device)[:, None], t, torch.zeros_like(t))
            G = G @ _translate2d(t[:, 0] * w, t[:, 1] * h, device)
        return G

    def color_matrix(self, n: int, device) -> torch.Tensor:
        """The [N, 4, 4] matrix acting on homogeneous RGB."""
        p = float(self.p)
        C = torch.eye(4, device=device).expand(n, 4, 4).clone()
        v = self._luma_axis.to(device)
        vv = torch.outer(v, v)
        I4 = torch.eye(4, device=device)
        if self.brightness > 0:
            b = torch.randn(n, device=device) * self.brightness_std
            b = torch.where(self._gate(n, self.brightness * p, device), b, torch.zeros_like(b))
            C = _translate3d(b, device) @ C
        if self.contrast > 0:
            c = torch.exp2(torch.randn(n, device=device) * self.contrast_std)
            c = torch.where(self._gate(n, self.contrast * p, device), c, torch.ones_like(c))
            C = _scale3d(c, device) @ C
        if self.lumaflip > 0:
            i = torch.floor(torch.rand(n, device=device) * 2)
            i = torch.where(self._gate(n, self.lumaflip * p, device), i, torch.zeros_like(i))
            C = (I4 - 2 * vv * i.view(-1, 1, 1)) @ C  # Householder reflection of the luma axis
        if self.hue > 0:
            th = (torch.rand(n, device=device) * 2 - 1) * math.pi * self.hue_max
            th = torch.where(self._gate(n, self.hue * p, device), th, torch.zeros_like(th))
            C = _rotate3d(v[:3], th, device) @ C
        if self.saturation > 0:
            s = torch.exp2(torch.randn(n, device=device) * self.saturation_std)
            s = torch.where(self._gate(n, self.saturation * p, device), s, torch.ones_like(s))
            C = (vv + (I4 - vv) * s.view(-1, 1, 1)) @ C
        return C

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.ndim == 4, f"expected [N, C, H, W], got {tuple(images.shape)}"
        n, ch, h, w = images.shape
        if float(self.p) <= 0 or n == 0:
            return images
        device = images.device
        G = self.geometric_matrix(n, h, w, device)
        eye3 = torch.eye(3, device=device)
        if not torch.allclose(G, eye3.expand_as(G)):
            # Pixel (centred) → normalised [-1, 1] coordinates: x_norm = x_pix / (w/2), y_norm = y_pix / (h/2).
            S = torch.diag(torch.tensor([w / 2, h / 2, 1.0], device=device))
            S_inv = torch.diag(torch.tensor([2 / w, 2 / h, 1.0], device=device))
            theta = (S_inv @ G @ S)[:, :2, :].to(images.dtype)
            grid = F.affine_grid(theta, [n, ch, h, w], align_corners=False)
            images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if ch == 3:
            C = self.color_matrix(n, device)
            if not torch.allclose(C, torch.eye(4, device=device).expand_as(C)):
                C = C.to(images.dtype)
                flat = images.reshape(n, 3, h * w)
                images = (C[:, :3, :3] @ flat + C[:, :3, 3:]).reshape(n, 3, h, w)
        return images


class AdaController:
    """ADA's ``p`` update from the sign of D's output on reals.

    Call :meth:`accumulate` with the real logits of every D step and :meth:`step` once per iteration;
    every ``interval`` iterations ``p`` moves by ``sign(E[sign D(x)] - target) * batch * interval /
    (kimg * 1000)``, never below 0 (and, here, never above 1).
    """

    def __init__(self, pipe: AugmentPipe, target: float = 0.6, interval: int = 4, kimg: float = 500.0):
        if not 0 <= target <= 1:
            raise ValueError(f"ada_target must be in [0, 1] (got {target})")
        if interval < 1 or kimg <= 0:
            raise ValueError(f"ada_interval must be >= 1 and ada_kimg > 0 (got {interval}, {kimg})")
        self.pipe, self.target, self.interval, self.kimg = pipe, float(target), int(interval), float(kimg)
        self._sum, self._count = 0.0, 0
        self.last_rt: float | None = None

    def accumulate(self, real_logits: torch.Tensor) -> None:
        self._sum += float(torch.sign(real_logits.detach()).sum())
        self._count += int(real_logits.numel())

    def step(self, iteration: int, batch_size: int) -> float:
        """Adjust ``p`` after iteration ``iteration`` (0-based) when it is due; returns the current ``p``."""
        if (iteration + 1) % self.interval == 0 and self._count > 0:
            rt = self._sum / self._count
            self.last_rt = rt
            adjust = math.copysign(1.0, rt - self.target) if rt != self.target else 0.0
            adjust *= batch_size * self.interval / (self.kimg * 1000)
            self.pipe.p.copy_(torch.clamp(self.pipe.p + adjust, 0.0, 1.0))
            self._sum, self._count = 0.0, 0
        return float(self.pipe.p)
