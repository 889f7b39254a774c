"""Batched SSIM (Wang et al. 2004) in torch, equal to scikit-image's Gaussian-weighted setting.

Setting (the standard one of the paper, and what the filter stage reports): an 11×11 Gaussian window
with σ = 1.5 (scikit-image's radius ``int(3.5·σ + 0.5) = 5`` for ``gaussian_weights=True``), K1 = 0.01,
K2 = 0.03, population (not sample) covariances, ``data_range`` given explicitly. The SSIM map is
averaged over the *valid* region only — ``(win - 1) // 2 = 5`` pixels are cropped from every border, as
scikit-image does — and then over channels. So, for uint8 HWC arrays ``a``, ``b``::

    ssim(x, y)[i] == skimage.metrics.structural_similarity(
        a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255)             # to ~1e-6 (tests check 1e-4)

How it is fast on a CPU: inside the valid region a separable Gaussian filter is two matrix products,
``G_h @ X @ G_w^T`` with banded matrices ``G_h`` [(H-10) × H] and ``G_w`` [(W-10) × W]. The four maps
(x, y, x² + y², xy) of every channel and every pair go through the two products at once. The vertical
product is done block-wise (overlapping row windows of ``block + 10`` rows, a strided view, no copy)
so it multiplies by a small Toeplitz block instead of the whole mostly-zero band matrix.
Accuracy in float32: each image channel is centred on its mean first (variances and covariances do
not change; the means are added back), which removes the cancellation in ``E[x²] − E[x]²``.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["ssim", "gaussian_window_1d", "SSIM_SETTING"]

SSIM_SETTING = ("Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, population "
                "covariance, mean over the valid region and channels (= skimage structural_similarity "
                "with gaussian_weights=True, sigma=1.5, use_sample_covariance=False)")


def gaussian_window_1d(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    """Normalised 1-D Gaussian taps (float64), radius ``int(truncate·σ + 0.5)`` as scipy.ndimage/skimage."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


@functools.lru_cache(maxsize=32)
def _band(n_in: int, sigma: float, truncate: float, dtype: torch.dtype) -> torch.Tensor:
    """[n_in - win + 1, n_in] matrix whose row i holds the taps at columns i .. i + win - 1."""
    g = gaussian_window_1d(sigma, truncate)
    win = g.numel()
    n_out = n_in - win + 1
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        m[i, i:i + win] = g
    return m.to(dtype)


def _filter_rows(maps: torch.Tensor, sigma: float, truncate: float, block: int) -> torch.Tensor:
    """Valid 1-D Gaussian filter along dim -2 of a contiguous [B, H, W] tensor → [B, H - win + 1, W]."""
    b, h, w = maps.shape
    win = 2 * int(truncate * sigma + 0.5) + 1
    h_out = h - win + 1
    if h_out <= block:
        return torch.matmul(_band(h, sigma, truncate, maps.dtype), maps)
    nblk = math.ceil(h_out / block)
    rows_needed = nblk * block + win - 1
    if rows_needed > h:  # pad at the bottom; the padded outputs are cropped below
        maps = torch.nn.functional.pad(maps, (0, 0, 0, rows_needed - h))
    # overlapping windows of (block + win - 1) rows every `block` rows: a view, no copy
    s0, s1, s2 = maps.stride()
    windows = maps.as_strided((b, nblk, block + win - 1, w), (s0, block * s1, s1, s2))
    toeplitz = _band(block + win - 1, sigma, truncate, maps.dtype)  # [block, block + win - 1]
    out = torch.matmul(toeplitz, windows)  # [B, nblk, block, W]
    return out.reshape(b, nblk * block, w)[:, :h_out]


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0, *, sigma: float = 1.5,
         truncate: float = 3.5, k1: float = 0.01, k2: float = 0.03, block: int = 59,
         dtype: torch.dtype = torch.float32, chunk: int = 32) -> torch.Tensor:
    """Mean SSIM of each pair.

    Args:
        x, y: images [N, C, H, W] (any real dtype; uint8 0..255 or float), same shape; H, W ≥ the
            window (11 for σ = 1.5).
        data_range: max − min of the pixel scale (255 for uint8 images, 1 for [0, 1] floats).
        sigma, truncate: Gaussian window (scikit-image uses truncate 3.5 with ``gaussian_weights``).
        k1, k2: the SSIM stabilising constants.
        block: output rows per block of the vertical filter (speed only; results do not depend on it).
        dtype: compute precision (float32 is accurate to ~1e-6 here; float64 for references).
        chunk: pairs per internal batch (memory/cache only; results do not depend on it).

    Returns:
        [N] tensor (``dtype``): SSIM averaged over the valid region and the channels.
    """
    if x.shape != y.shape:
        raise ValueError(f"ssim: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.ndim != 4:
        raise ValueError(f"ssim: expected [N, C, H, W] tensors, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    win = 2 * int(truncate * sigma + 0.5) + 1
    if h < win or w < win:
        raise ValueError(f"ssim: images of {h}x{w} are smaller than the {win}x{win} window")
    if n == 0:
        return torch.zeros(0, dtype=dtype)
    if n > chunk:  # chunks keep the 5 maps of a chunk in cache; results do not depend on it
        return torch.cat([ssim(x[i:i + chunk], y[i:i + chunk], data_range, sigma=sigma, truncate=truncate,
                               k1=k1, k2=k2, block=block, dtype=dtype, chunk=chunk)
                          for i in range(0, n, chunk)])
    x = x.to(dtype)
    y = y.to(dtype)
    # centre each image channel (SSIM's variances/covariances are shift invariant; means added back)
    cx = x.mean(dim=(2, 3), keepdim=True)
    cy = y.mean(dim=(2, 3), keepdim=True)
    # SSIM needs only σx² + σy² (never each alone) and σxy: four maps, x, y, x² + y², xy
    maps = torch.empty(n, 4, c, h, w, dtype=dtype)
    xc = torch.sub(x, cx, out=maps[:, 0])
    yc = torch.sub(y, cy, out=maps[:, 1])
    torch.mul(xc, xc, out=maps[:, 2]).addcmul_(yc, yc)
    torch.mul(xc, yc, out=maps[:, 3])
    filt = _filter_rows(maps.view(n * 4 * c, h, w), sigma, truncate, block)   # [B, H', W]
    filt = torch.matmul(filt, _band(w, sigma, truncate, dtype).T)              # [B, H', W']
    filt = filt.view(n, 4, c, h - win + 1, w - win + 1)
    ux, uy, uss, uxy = filt.unbind(1)
    # σx² + σy² = E[x² + y²] − E[x]² − E[y]²,  σxy = E[xy] − E[x]E[y]  (on the centred data)
    vsum = torch.addcmul(uss, ux, ux, value=-1).addcmul_(uy, uy, value=-1)
    vxy = torch.addcmul(uxy, ux, uy, value=-1)
    ux.add_(cx)                                   # the means of the uncentred images
    uy.add_(cy)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    num = torch.mul(ux, uy).mul_(2).add_(c1).mul_(vxy.mul_(2).add_(c2))          # (2μxμy + C1)(2σxy + C2)
    den = torch.mul(ux, ux).addcmul_(uy, uy).add_(c1).mul_(vsum.add_(c2))        # (μx²+μy²+C1)(σx²+σy²+C2)
    return num.div_(den).mean(dim=(1, 2, 3))
