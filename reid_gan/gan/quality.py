"""How good a generator's people are, measured against the real training images (what
``benchmarks/gan_hog_pass.py`` prints and the fine-tune test checks).

Every function takes uint8 RGB tensors ``[N, 3, H, W]`` at the generator's resolution (real images are
brought there with :func:`reid_gan.gan.images.load_images`, as the GAN's training set is).

* :func:`hog_scores` — OpenCV's HOG people detector, calibrated score (≥ 0.6 = the filter keeps it).
* :func:`blurred` — the real images blurred with a Gaussian of standard deviation ``sigma`` pixels
  (OpenCV, reflected borders): the "blurred real" reference a generator's distance is compared with.
* :func:`swd_to` — sliced Wasserstein distance (``reid_gan.metrics.swd``, ×1e3, lower is better).
* :func:`pixel_diversity` — the per-pixel standard deviation over a set, averaged over pixels and
  channels (in [0, 255] units): one average person gives ~0, a set as varied as the data gives its value.
* :func:`nearest_neighbours` — for each image, the smallest RMS pixel distance (in [0, 255] units) to a
  reference set and its mirror images, optionally only among references of another identity.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["generate_uint8", "hog_scores", "blurred", "swd_to", "pixel_diversity", "nearest_neighbours",
           "to_bgr_list"]


@torch.no_grad()
def generate_uint8(G: torch.nn.Module, n: int, psi: float = 1.0, seed: int = 0, batch: int = 32,
                   c: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` images of ``G`` (latents ``torch.randn`` with ``seed``, constant noise) as uint8 ``[n, 3, H, W]``.

    ``c``: labels ``[n, c_dim]`` for a conditional generator (default: zeros, i.e. no label)."""
    from reid_gan.utils.image import to_uint8

    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(int(seed)))
    if c is None:
        c = torch.zeros(n, int(getattr(G, "c_dim", 0) or 0))
    out = [G(z[i:i + batch], c[i:i + batch], truncation_psi=psi, noise_mode="const") for i in range(0, n, batch)]
    return to_uint8(torch.cat(out))


def to_bgr_list(images: torch.Tensor) -> list[np.ndarray]:
    """uint8 RGB ``[N, 3, H, W]`` → list of contiguous BGR ``H×W×3`` arrays (what OpenCV's detectors take)."""
    arr = images.permute(0, 2, 3, 1).cpu().numpy()[:, :, :, ::-1]
    return [np.ascontiguousarray(a) for a in arr]


def hog_scores(images: torch.Tensor, detector=None) -> np.ndarray:
    """Calibrated HOG person score per image (``reid_gan.filters.hog.HOGDetector``, resize mode)."""
    if detector is None:
        from reid_gan.filters.hog import HOGDetector

        detector = HOGDetector()
    return np.asarray(detector.score(to_bgr_list(images)), dtype=np.float64)


def blurred(images: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Each image blurred with a Gaussian of standard deviation ``sigma`` px (kernel size from sigma)."""
    import cv2

    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([cv2.GaussianBlur(a, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma),
                                     borderType=cv2.BORDER_REFLECT) for a in arr])
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def swd_to(reference: torch.Tensor, images: torch.Tensor, min_res: int = 8, per_image: int = 64,
           num_dirs: int = 256, num_repeats: int = 2, seed: int = 0) -> dict[str, float]:
    """:func:`reid_gan.metrics.swd.swd` between two uint8 sets (mapped to [-1, 1]); ``swd`` is the mean level."""
    from reid_gan.metrics.swd import swd

    def f(x: torch.Tensor) -> torch.Tensor:
        return x.float() / 127.5 - 1

    return swd(f(reference), f(images), min_res=min_res, per_image=per_image, num_dirs=num_dirs,
               num_repeats=num_repeats, seed=seed)


def pixel_diversity(images: torch.Tensor) -> float:
    """Mean over pixels and channels of the standard deviation across the set ([0, 255] units)."""
    return float(images.double().std(dim=0).mean())


def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, query_pids: Sequence[int] | None = None,
                       reference_pids: Sequence[int] | None = None, mirror: bool = True,
                       chunk: int = 256) -> np.ndarray:
    """Per query, the smallest RMS pixel distance ([0, 255] units) to ``reference`` (and its mirror images).

    With ``query_pids`` and ``reference_pids``, references of the query's own identity are left out, so the
    value is the distance to the nearest *other* person (the scale at which two different people look alike).
    """
    q = queries.flatten(1).double()
    refs = [reference]
    if mirror:
        refs.append(reference.flip(-1))
    r = torch.cat(refs).flatten(1).double()
    r_pids = None
    if query_pids is not None or reference_pids is not None:
        if query_pids is None or reference_pids is None:
            raise ValueError("nearest_neighbours: give both query_pids and reference_pids, or neither")
        if len(query_pids) != len(q) or len(reference_pids) != len(reference):
            raise ValueError("nearest_neighbours: one pid per image is needed")
        r_pids = torch.as_tensor(list(reference_pids) * len(refs))
        q_pids = torch.as_tensor(list(query_pids))
    d = q.shape[1]
    r_sq = r.square().sum(1)
    out = torch.empty(len(q), dtype=torch.float64)
    for i in range(0, len(q), chunk):
        qi = q[i:i + chunk]
        d2 = (qi.square().sum(1, keepdim=True) + r_sq[None] - 2 * qi @ r.T).clamp_min(0) / d
        if r_pids is not None:
            d2 = d2.masked_fill(q_pids[i:i + chunk, None] == r_pids[None], float("inf"))
        out[i:i + chunk] = d2.min(1).values.sqrt()
    return out.numpy()
