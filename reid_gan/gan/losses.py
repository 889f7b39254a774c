"""StyleGAN3's training loss (Karras et al. 2021), written from the papers and NVIDIA's ``training/loss.py``.

* Generator: non-saturating logistic loss ``softplus(-D(G(z)))`` (Goodfellow et al. 2014).
* Discriminator: ``softplus(D(G(z))) + softplus(-D(x))``.
* R1 (Mescheder et al. 2018): ``gamma / 2 * ||∇_x D(x)||²`` on reals, evaluated lazily every
  ``r1_interval`` iterations (the caller multiplies by the interval, as StyleGAN2 does, via ``gain``).
* Style mixing with probability ``style_mixing_prob`` (0 for the StyleGAN3 configs, 0.9 for StyleGAN2).
* Blur of every image D sees with a Gaussian of ``sigma = blur_init_sigma * max(1 - nimg / (blur_fade_kimg *
  1000), 0)`` (config R: ``blur_init_sigma = 10``, ``blur_fade_kimg = batch * 200 / 32``).
* Path-length regularisation is off for StyleGAN3 (``pl_weight = 0``) and not implemented here.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["StyleGAN3Loss", "gaussian_blur", "blur_sigma_at", "r1_penalty"]


def blur_sigma_at(cur_nimg: int, blur_init_sigma: float, blur_fade_kimg: float) -> float:
    """The D-input blur at ``cur_nimg`` images shown: linear fade from ``blur_init_sigma`` to 0."""
    if blur_fade_kimg <= 0:
        return 0.0
    return max(1.0 - cur_nimg / (blur_fade_kimg * 1e3), 0.0) * blur_init_sigma


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``img`` [N, C, H, W] with a ``2*floor(3*sigma)+1`` tap kernel.

    Zero padding (the image is treated as 0 outside, i.e. mid-grey in [-1, 1] space), like NVIDIA's
    ``filter2d``. Identity when the kernel has a single tap.
    """
    radius = int(math.floor(sigma * 3))
    if radius <= 0:
        return img
    x = torch.arange(-radius, radius + 1, device=img.device, dtype=img.dtype)
    f = torch.exp2(-(x / sigma).square())  # NVIDIA's kernel: 2^(-(x/sigma)^2)
    f = f / f.sum()
    c = img.shape[1]
    # Separable: rows then columns, depthwise (groups = channels).
    fx = f.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    fy = f.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    img = F.conv2d(F.pad(img, [radius, radius, 0, 0]), fx, groups=c)
    img = F.conv2d(F.pad(img, [0, 0, radius, radius]), fy, groups=c)
    return img


def r1_penalty(real_logits: torch.Tensor, real_img: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||∇_x sum D(x)||²`` [N]; ``real_img`` must require grad. Differentiable (create_graph)."""
    (grads,) = torch.autograd.grad(outputs=real_logits.sum(), inputs=real_img, create_graph=True)
    return grads.square().sum(dim=[1, 2, 3])


class StyleGAN3Loss(nn.Module):
    """The losses of one StyleGAN3 iteration; each ``*_loss`` returns a scalar to ``backward()``.

    Args:
        G: generator with ``mapping(z, c, update_emas=...)`` → ws [N, num_ws, w_dim] and
            ``synthesis(ws, update_emas=...)`` → img [N, C, H, W].
        D: discriminator ``D(img, c)`` → logits [N, 1].
        augment_pipe: optional differentiable augmentation applied to every image D sees (ADA).
        r1_gamma: R1 weight ``gamma``.
        style_mixing_prob: probability of mixing two latents at a random cutoff (0 for StyleGAN3).
        blur_init_sigma, blur_fade_kimg: D-input blur schedule (config R: 10 and batch*200/32).
    """

    def __init__(self, G: nn.Module, D: nn.Module, augment_pipe: Optional[Callable] = None, r1_gamma: float = 10.0,
                 style_mixing_prob: float = 0.0, blur_init_sigma: float = 0.0, blur_fade_kimg: float = 0.0):
        super().__init__()
        if r1_gamma < 0:
            raise ValueError(f"r1_gamma must be >= 0 (got {r1_gamma})")
        if not 0 <= style_mixing_prob <= 1:
            raise ValueError(f"style_mixing_prob must be in [0, 1] (got {style_mixing_prob})")
        # Not registered as submodules: the LightningModule owns G and D.
        self.__dict__["G"] = G
        self.__dict__["D"] = D
        self.__dict__["augment_pipe"] = augment_pipe
        self.r1_gamma = float(r1_gamma)
        self.style_mixing_prob = float(style_mixing_prob)
        self.blur_init_sigma = float(blur_init_sigma)
        self.blur_fade_kimg = float(blur_fade_kimg)

    # -- forward passes -------------------------------------------------------------------------
    def run_G(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = False) -> torch.Tensor:
        ws = self.G.mapping(z, c, update_emas=update_emas)
        assert ws.ndim == 3 and ws.shape[0] == z.shape[0], f"mapping output {tuple(ws.shape)}"
        if self.style_mixing_prob > 0:
            num_ws = ws.shape[1]
            cutoff = torch.randint(1, num_ws, (), device=ws.device) if num_ws > 1 else torch.tensor(num_ws)
            cutoff = torch.where(torch.rand((), device=ws.device) < self.style_mixing_prob, cutoff,
                                 torch.full_like(cutoff, num_ws))
            ws2 = self.G.mapping(torch.randn_like(z), c, update_emas=False)
            keep = (torch.arange(num_ws, device=ws.device) < cutoff).view(1, -1, 1)
            ws = torch.where(keep, ws, ws2)
        return self.G.synthesis(ws, update_emas=update_emas)

    def run_D(self, img: torch.Tensor, c: torch.Tensor, blur_sigma: float = 0.0) -> torch.Tensor:
        img = gaussian_blur(img, blur_sigma)
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        logits = self.D(img, c)
        assert logits.shape[0] == img.shape[0], f"D output {tuple(logits.shape)} for {img.shape[0]} images"
        return logits

    def blur_sigma(self, cur_nimg: int) -> float:
        return blur_sigma_at(cur_nimg, self.blur_init_sigma, self.blur_fade_kimg)

    # -- losses ---------------------------------------------------------------------------------
    def generator_loss(self, z: torch.Tensor, c: torch.Tensor, cur_nimg: int) -> torch.Tensor:
        """Non-saturating G loss ``mean softplus(-D(G(z)))``."""
        img = self.run_G(z, c)
        logits = self.run_D(img, c, self.blur_sigma(cur_nimg))
        return F.softplus(-logits).mean()

    def discriminator_loss(self, real_img: torch.Tensor, real_c: torch.Tensor, z: torch.Tensor, c: torch.Tensor,
                           cur_nimg: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean softplus(D(G(z))) + mean softplus(-D(x))``; also returns the real logits (for ADA)."""
        sigma = self.blur_sigma(cur_nimg)
        with torch.no_grad():
            fake = self.run_G(z, c, update_emas=True)
        fake_logits = self.run_D(fake, c, sigma)
        real_logits = self.run_D(real_img.detach(), real_c, sigma)
        loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        return loss, real_logits.detach()

    def r1_loss(self, real_img: torch.Tensor, real_c: torch.Tensor, cur_nimg: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean gamma/2 * ||∇ D(x)||²`` and the mean un-weighted penalty (for logging)."""
        x = real_img.detach().requires_grad_(True)
        logits = self.run_D(x, real_c, self.blur_sigma(cur_nimg))
        pen = r1_penalty(logits, x)
        # ``logits * 0`` keeps every D parameter in the graph (as NVIDIA does), so DDP sees all grads.
        return (pen * (self.r1_gamma / 2)).mean() + logits.sum() * 0, pen.detach().mean()
