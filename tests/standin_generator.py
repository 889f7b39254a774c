"""A tiny stand-in with the generator interface ``generate`` is written against (tests only).

Same API as NVIDIA's / our StyleGAN3 ``Generator``: ``z_dim``, ``c_dim``, ``w_dim``, ``num_ws``,
``img_resolution``, ``img_channels``, ``mapping(z, c, truncation_psi, truncation_cutoff, update_emas)`` with a
``w_avg`` buffer, ``synthesis(ws, noise_mode, update_emas)`` → ``[N, C, H, W]`` in [-1, 1], and
``synthesis.input.transform`` ([3, 3]) that transforms the coordinates of the input Fourier features —
so translation/rotation and every style input really change the image.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _Mapping(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_ws: int):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws = z_dim, w_dim, num_ws
        self.fc0 = nn.Linear(z_dim, w_dim)
        self.fc1 = nn.Linear(w_dim, w_dim)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        assert z.ndim == 2 and z.shape[1] == self.z_dim
        x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        x = torch.nn.functional.leaky_relu(self.fc0(x), 0.2)
        x = self.fc1(x)
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cut] = self.w_avg.lerp(ws[:, :cut], truncation_psi)
        return ws


class _Input(nn.Module):
    def __init__(self, w_dim: int, channels: int, size: tuple[int, int]):
        super().__init__()
        self.size = size
        self.freqs = nn.Parameter(torch.randn(channels, 2) * 3.0)
        self.phases = nn.Parameter(torch.rand(channels) - 0.5)
        self.affine = nn.Linear(w_dim, 4)
        self.register_buffer("transform", torch.eye(3))

    def forward(self, w):
        h, wd = self.size
        ys = torch.linspace(-0.5, 0.5, h, device=w.device)
        xs = torch.linspace(-0.5 * wd / h, 0.5 * wd / h, wd, device=w.device)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        coords = torch.stack([gx, gy, torch.ones_like(gx)], -1) @ self.transform.T  # [h, w, 3]
        t = self.affine(w)  # per-sample small rotation/translation of the features
        shift = t[:, :2].view(-1, 1, 1, 2) * 0.1
        x = coords[None, :, :, :2] + shift                                   # [N, h, w, 2]
        x = (x @ self.freqs.T + self.phases) * 2 * math.pi                   # [N, h, w, C]
        return torch.sin(x).permute(0, 3, 1, 2)


class _Synthesis(nn.Module):
    def __init__(self, w_dim: int, num_ws: int, size: tuple[int, int], channels: int = 8, img_channels: int = 3):
        super().__init__()
        self.w_dim, self.num_ws = w_dim, num_ws
        self.input = _Input(w_dim, channels, size)
        self.styles = nn.ModuleList([nn.Linear(w_dim, channels) for _ in range(num_ws - 1)])
        self.convs = nn.ModuleList([nn.Conv2d(channels, channels, 3, padding=1) for _ in range(num_ws - 2)])
        self.torgb = nn.Conv2d(channels, img_channels, 1)

    def forward(self, ws, noise_mode="const", update_emas=False, **kwargs):
        assert ws.ndim == 3 and ws.shape[1:] == (self.num_ws, self.w_dim), tuple(ws.shape)
        x = self.input(ws[:, 0])
        for i, conv in enumerate(self.convs):
            s = self.styles[i](ws[:, i + 1]).unsqueeze(-1).unsqueeze(-1)
            x = x * (1 + 0.5 * torch.tanh(s)) + 0.2 * torch.nn.functional.leaky_relu(conv(x), 0.2)
            x = x / (x.square().mean((1, 2, 3), keepdim=True) + 1e-8).sqrt()
        s = self.styles[-1](ws[:, -1]).unsqueeze(-1).unsqueeze(-1)
        return torch.tanh(2.0 * self.torgb(x * (1 + 0.5 * torch.tanh(s))))


class StandinGenerator(nn.Module):
    def __init__(self, z_dim: int = 16, c_dim: int = 0, w_dim: int = 16, img_resolution=(32, 16),
                 img_channels: int = 3, num_ws: int = 16, seed: int = 0, **_):
        super().__init__()
        if isinstance(img_resolution, int):
            img_resolution = (img_resolution, img_resolution)
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.img_resolution, self.img_channels = tuple(img_resolution), img_channels
        g = torch.random.fork_rng()
        with g:
            torch.manual_seed(seed)
            self.mapping = _Mapping(z_dim, w_dim, num_ws)
            self.synthesis = _Synthesis(w_dim, num_ws, tuple(img_resolution), img_channels=img_channels)
            with torch.no_grad():
                self.mapping.w_avg.copy_(torch.randn(w_dim) * 0.1)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, noise_mode="const", **kw):
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff), noise_mode=noise_mode)
