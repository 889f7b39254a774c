"""SSIM: equality with scikit-image's Gaussian-weighted (Wang et al. 2004) setting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from reid_gan.metrics.ssim import gaussian_window_1d, ssim


def sk_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255) -> float:
    return structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=data_range)


def to_nchw(batch: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)


def structured_pairs(rng: np.random.Generator, n: int, h: int = 128, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Smooth gradients + stripes + blocks, and their noisy / shifted / darkened / blurred variants."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.empty((n, h, w, 3), np.uint8)
    b = np.empty_like(a)
    for i in range(n):
        base = np.stack([
            128 + 100 * np.sin(xx / (3 + i) + c) * np.cos(yy / (5 + 2 * c)) for c in range(3)], -1)
        base[h // 4: h // 2, w // 4: 3 * w // 4] = rng.integers(0, 256, 3)
        a[i] = np.clip(base, 0, 255).astype(np.uint8)
        kind = i % 4
        if kind == 0:
            v = base + rng.normal(0, 5 + 10 * i, base.shape)
        elif kind == 1:
            v = np.roll(base, shift=(i % 7, 2), axis=(0, 1))
        elif kind == 2:
            v = 0.5 * base + 20
        else:
            k = np.ones(5) / 5
            v = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), 0, base)
        b[i] = np.clip(v, 0, 255).astype(np.uint8)
    return a, b


def test_window_is_11_taps_sigma_1_5():
    g = gaussian_window_1d(1.5, 3.5)
    assert g.numel() == 11  # skimage: radius int(3.5 * 1.5 + 0.5) = 5
    assert g.sum().item() == pytest.approx(1.0)
    assert torch.argmax(g).item() == 5


def test_equals_skimage_on_random_pairs():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (5, 128, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-60, 61, a.shape), 0, 255).astype(np.uint8)
    b[0] = rng.integers(0, 256, b[0].shape)  # unrelated pair
    ours = ssim(to_nchw(a), to_nchw(b)).numpy()
    ref = np.array([sk_ssim(a[i], b[i]) for i in range(len(a))])
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    assert ref.min() < 0.2 and ref.max() > 0.3  # the pairs span a real range


def test_equals_skimage_on_structured_pairs_any_size_and_chunking():
    rng = np.random.default_rng(1)
    a, b = structured_pairs(rng, 8, h=40, w=23)
    ref = np.array([sk_ssim(a[i], b[i]) for i in range(len(a))])
    for kwargs in ({}, {"block": 4, "chunk": 3}, {"dtype": torch.float64}):
        ours = ssim(to_nchw(a), to_nchw(b), **kwargs).numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    assert ref.min() < 0.75 < ref.max()


def test_float_images_data_range_and_minimal_size():
    rng = np.random.default_rng(2)
    a = rng.random((3, 11, 15, 2))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ref = np.array([sk_ssim(a[i], b[i], data_range=1.0) for i in range(3)])
    ours = ssim(to_nchw(a), to_nchw(b), data_range=1.0).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


def test_identical_images_give_one():
    rng = np.random.default_rng(3)
    a = to_nchw(rng.integers(0, 256, (4, 128, 64, 3), dtype=np.uint8))
    np.testing.assert_allclose(ssim(a, a.clone()).numpy(), 1.0, atol=1e-6)


def test_bad_shapes_are_named():
    x = torch.zeros(1, 3, 128, 64)
    with pytest.raises(ValueError, match="same shape"):
        ssim(x, torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="window"):
        ssim(torch.zeros(1, 3, 10, 64), torch.zeros(1, 3, 10, 64))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        ssim(torch.zeros(3, 128, 64), torch.zeros(3, 128, 64))
