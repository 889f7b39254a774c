"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, "Progressive Growing of
GANs for Improved Quality, Stability, and Variation", §5 and appendix D). Needs no pretrained weights.

For each level of a Laplacian pyramid (full resolution down to ``min_res`` on the shorter side), 128
random 7×7 neighbourhoods are taken per image; each set of descriptors is normalised per channel
(its own mean and std over the set); the SWD between the real and generated descriptor sets is the mean,
over ``num_dirs`` random unit directions (× ``num_repeats``), of the mean absolute difference between the
sorted projections. Reported ×1e3 per level and averaged over levels (as ``metric/swd``). Lower is
better; identical sets give 0.

Images are [N, 3, H, W] tensors in [-1, 1] (or any consistent range).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["laplacian_pyramid", "pyramid_descriptors", "sliced_wasserstein", "swd", "SWDMetric"]

_GAUSS = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = _GAUSS.to(x)
    x = F.conv2d(F.pad(x, [2, 2, 0, 0], mode="reflect"), k.view(1, 1, 1, 5).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, [0, 0, 2, 2], mode="reflect"), k.view(1, 1, 5, 1).repeat(c, 1, 1, 1), groups=c)


def num_levels(h: int, w: int, min_res: int) -> int:
    n, s = 0, min(h, w)
    while s >= min_res:
        n += 1
        s //= 2
    return max(n, 1)


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` tensors: band-pass levels from full resolution down, the last one the low-pass residual."""
    out = []
    cur = x
    for _ in range(levels - 1):
        down = _blur(cur)[:, :, ::2, ::2]
        up = F.interpolate(down, size=cur.shape[-2:], mode="bilinear", align_corners=False)
        out.append(cur - up)
        cur = down
    out.append(cur)
    return out


def pyramid_descriptors(x: torch.Tensor, levels: int, per_image: int = 128, patch: int = 7,
                        generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Per level, [N * per_image, C * patch²] random neighbourhood descriptors."""
    out = []
    for lvl in laplacian_pyramid(x.float(), levels):
        n, c, h, w = lvl.shape
        k = min(patch, h, w)
        cols = F.unfold(lvl, kernel_size=k)  # [N, C*k*k, L]
        L = cols.shape[-1]
        idx = torch.randint(0, L, (n, per_image), generator=generator)
        d = torch.gather(cols, 2, idx.unsqueeze(1).expand(-1, cols.shape[1], -1))  # [N, D, per_image]
        out.append(d.permute(0, 2, 1).reshape(n * per_image, -1))
    return out


def _normalise(d: torch.Tensor, channels: int) -> torch.Tensor:
    """Per-channel mean/std normalisation over the descriptor set (descriptors are channel-major)."""
    v = d.view(d.shape[0], channels, -1)
    mean = v.mean(dim=(0, 2), keepdim=True)
    std = v.std(dim=(0, 2), keepdim=True).clamp_min(1e-8)
    return ((v - mean) / std).view_as(d)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, num_dirs: int = 512, num_repeats: int = 4,
                       generator: torch.Generator | None = None) -> float:
    """SWD between two descriptor sets [Na, D], [Nb, D] (resampled to the same size by quantiles if needed)."""
    dists = []
    for _ in range(num_repeats):
        dirs = torch.randn(a.shape[1], num_dirs, generator=generator)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        pa = torch.sort(a @ dirs, dim=0).values
        pb = torch.sort(b @ dirs, dim=0).values
        if pa.shape[0] != pb.shape[0]:
            q = torch.linspace(0, 1, min(pa.shape[0], pb.shape[0]))
            pa, pb = torch.quantile(pa, q, dim=0), torch.quantile(pb, q, dim=0)
        dists.append((pa - pb).abs().mean())
    return float(torch.stack(dists).mean())


def swd(real: torch.Tensor, fake: torch.Tensor, min_res: int = 16, per_image: int = 128, num_dirs: int = 512,
        num_repeats: int = 4, seed: int = 0) -> dict[str, float]:
    """SWD×1e3 per pyramid level (``swd_<h>x<w>``) and their mean (``swd``) between two image sets."""
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"SWD needs images of one shape: real {tuple(real.shape[1:])}, fake {tuple(fake.shape[1:])}")
    _, c, h, w = real.shape
    levels = num_levels(h, w, min_res)
    # The same patch positions for both sets (same seed), so that identical sets give exactly 0.
    da = pyramid_descriptors(real.cpu(), levels, per_image, generator=torch.Generator().manual_seed(seed))
    db = pyramid_descriptors(fake.cpu(), levels, per_image, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1)
    out: dict[str, float] = {}
    vals = []
    for i, (a, b) in enumerate(zip(da, db)):
        v = 1e3 * sliced_wasserstein(_normalise(a, c), _normalise(b, c), num_dirs, num_repeats, generator=g)
        out[f"swd_{h >> i}x{w >> i}"] = v
        vals.append(v)
    out["swd"] = float(sum(vals) / len(vals))
    return out


class SWDMetric:
    """Holds a fixed real set; ``__call__(fake)`` → dict as :func:`swd` (same seed every call)."""

    name = "swd"

    def __init__(self, real: torch.Tensor, min_res: int = 16, per_image: int = 128, num_dirs: int = 512,
                 num_repeats: int = 4, seed: int = 0):
        self.real = real.detach().cpu().float()
        self.kw = dict(min_res=min_res, per_image=per_image, num_dirs=num_dirs, num_repeats=num_repeats, seed=seed)

    def __call__(self, fake: torch.Tensor) -> dict[str, float]:
        return swd(self.real, fake.detach().cpu().float(), **self.kw)
