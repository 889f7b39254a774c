"""FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018) with Inception-v3 weights from a local file.

The weights file is torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (the TensorFlow FID
Inception converted to PyTorch; the same file torchmetrics' ``feature_extractor_weights_path`` takes). It is
read with ``torch.load(weights_only=True)`` and loaded strictly into :class:`InceptionFeatures`, our own
module with that file's layout (torchvision's Inception blocks, patched as the TF graph computes: average
pools that ignore padding, a max pool in the last block). Nothing is downloaded.

Features: the 2048-d pool3 output of images resized to 299×299 (PyTorch bilinear, not TF1's resize — FID
values can differ from torch-fidelity's by a small amount; compare FIDs computed with the same code).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception as tv

__all__ = ["InceptionFeatures", "load_inception", "frechet_distance", "kernel_inception_distance", "FIDKIDMetric"]


def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _A(tv.InceptionA):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b1, b5, b3, self.branch_pool(_avg_pool_no_pad(x))], 1)


class _C(tv.InceptionC):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for m in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = m(bd)
        return torch.cat([b1, b7, bd, self.branch_pool(_avg_pool_no_pad(x))], 1)


class _E(tv.InceptionE):
    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pool = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool_no_pad(x)
        return torch.cat([b1, b3, bd, self.branch_pool(pool)], 1)


class InceptionFeatures(nn.Module):
    """The FID Inception-v3 (torch-fidelity's parameter names). ``forward(uint8 [N, 3, H, W]) -> [N, 2048]``."""

    def __init__(self):
        super().__init__()
        B = tv.BasicConv2d
        self.Conv2d_1a_3x3 = B(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = B(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = B(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = B(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = B(80, 192, kernel_size=3)
        self.Mixed_5b = _A(192, pool_features=32)
        self.Mixed_5c = _A(256, pool_features=64)
        self.Mixed_5d = _A(288, pool_features=64)
        self.Mixed_6a = tv.InceptionB(288)
        self.Mixed_6b = _C(768, channels_7x7=128)
        self.Mixed_6c = _C(768, channels_7x7=160)
        self.Mixed_6d = _C(768, channels_7x7=160)
        self.Mixed_6e = _C(768, channels_7x7=192)
        self.Mixed_7a = tv.InceptionD(768)
        self.Mixed_7b = _E(1280, max_pool=False)
        self.Mixed_7c = _E(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = 1e-3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.uint8 and x.ndim == 4 and x.shape[1] == 3, "expects uint8 RGB [N, 3, H, W]"
        x = F.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False)
        x = (x - 128) / 128
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def load_inception(path: str | Path) -> InceptionFeatures:
    """:class:`InceptionFeatures` with the weights of ``path`` (strict; a clear error names the file)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"metrics.inception: file not found: {p} (nothing is downloaded; give a local "
                                "copy of weights-inception-2015-12-05-6726825d.pth or set metrics.inception=null)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"metrics.inception: {p} is not a readable weights file ({e})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    net = InceptionFeatures()
    own = net.state_dict()
    if not isinstance(state, dict):
        raise ValueError(f"metrics.inception: {p} does not hold a state dict")
    state = dict(state)
    for k in own:  # BatchNorm counters are not weights; converted files may omit them
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = own[k]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or bad:
        raise ValueError(f"metrics.inception: {p} is not torch-fidelity's Inception-v3 layout: missing "
                         f"{missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {bad[:5]}")
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``||mu1 - mu2||² + tr(S1 + S2 - 2 (S1 S2)^½)`` (float64)."""
    import scipy.linalg

    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(covmean).all():
        off = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + off) @ (sigma2 + off))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def kernel_inception_distance(f1: np.ndarray, f2: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD² with the cubic polynomial kernel ``(x·y / d + 1)³``, mean and std over random subsets."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(f1), len(f2))
    d = f1.shape[1]
    vals = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        vals.append(mmd)
    return float(np.mean(vals)), float(np.std(vals))


class FIDKIDMetric:
    """Real features computed once; ``__call__(fake uint8 [N, 3, H, W])`` → ``{'fid', 'kid', 'kid_std'}``."""

    wants_uint8 = True

    def __init__(self, weights: str | Path, reals_uint8: torch.Tensor, batch_size: int = 32, kid_subsets: int = 100,
                 kid_subset_size: int = 1000, seed: int = 0, net: nn.Module | None = None):
        self.net = net if net is not None else load_inception(weights)
        self.batch_size, self.kid_subsets, self.kid_subset_size, self.seed = batch_size, kid_subsets, kid_subset_size, seed
        self.real = self.features(reals_uint8)
        self.mu_r, self.sigma_r = self.real.mean(0), np.cov(self.real, rowvar=False)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        dev = next(self.net.parameters()).device
        out = [self.net(images[i:i + self.batch_size].to(dev)).double().cpu()
               for i in range(0, images.shape[0], self.batch_size)]
        return torch.cat(out).numpy()

    def __call__(self, fakes_uint8: torch.Tensor) -> dict[str, float]:
        f = self.features(fakes_uint8)
        fid = frechet_distance(self.mu_r, self.sigma_r, f.mean(0), np.cov(f, rowvar=False))
        kid, kid_std = kernel_inception_distance(self.real, f, self.kid_subsets, self.kid_subset_size, self.seed)
        return {"fid": fid, "kid": kid, "kid_std": kid_std}
