"""Latent-space operations on a StyleGAN3 generator: seeds → z → w, style mixing, interpolation, input transforms.

Written against the generator interface only (NVIDIA's API, which ours keeps): ``G.z_dim``, ``G.c_dim``,
``G.w_dim``, ``G.num_ws``, ``G.mapping(z, c, truncation_psi, truncation_cutoff)`` → ``ws [N, num_ws, w_dim]``,
``G.synthesis(ws, noise_mode)`` → images ``[N, C, H, W]`` in [-1, 1], ``G.synthesis.input.transform``
(a ``[3, 3]`` buffer: the user transform of the input layer's Fourier-feature coordinates).

Seeds. ``z_from_seeds`` draws ``z`` exactly as NVIDIA's ``gen_images.py`` does —
``np.random.RandomState(seed).randn(1, z_dim)`` — so a seed names the same person in both code bases and
on every machine (numpy's legacy generator is stable across versions; torch's RNG is not used).

Style inputs and layer ranges. A StyleGAN3 synthesis network takes ``num_ws = num_layers + 2`` style
vectors (16 for the default 14 layers): input 0 drives the input layer's Fourier-feature transform,
inputs 1..14 the synthesis layers ``L0..L13`` (low to high resolution; the last ones are the
critically sampled layers) and input 15 the ToRGB layer. The named ranges, as half-open
``[start, end)`` over those inputs (for ``num_ws = 16``):

========  =========  ==================================================================
name      inputs     what it changes (empirically, as in StyleGAN2's coarse/middle/fine split)
========  =========  ==================================================================
coarse    [0, 4)     pose, body shape and framing (the input transform and lowest layers)
middle    [4, 8)     mid-level structure: silhouette details, clothing layout
fine      [8, 16)    colour scheme and texture (highest layers and ToRGB)
========  =========  ==================================================================

For another ``num_ws`` the same proportions are used: coarse = ``[0, round(n/4))``, middle =
``[round(n/4), n//2)``, fine = ``[n//2, n)``. An explicit range is a pair ``[start, end)`` with
``0 <= start < end <= num_ws``.

Input transforms. SG3's input layer maps its sampling grid through ``synthesis.input.transform``, so
translating/rotating the image means writing the *inverse* of the wanted image transform into that
buffer (as ``gen_images.py`` does). The buffer is one ``[3, 3]`` matrix shared by the whole batch, so
per-sample transforms are not possible in one call: callers group images by transform (``generate``
synthesises each transformed image in its own call). :func:`input_transform` is a context manager that
composes the transform with the buffer's current value and always restores the original afterwards
(also on an exception), so the module is never left mutated.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import numpy as np
import torch

__all__ = [
    "NAMED_RANGES",
    "layer_range",
    "z_from_seeds",
    "seeds_to_ws",
    "z_to_ws",
    "style_mix",
    "lerp",
    "slerp",
    "make_transform",
    "input_transform",
    "has_input_transform",
    "synthesize",
]

NAMED_RANGES = ("coarse", "middle", "fine")


def layer_range(spec: str | Sequence[int], num_ws: int) -> tuple[int, int]:
    """``[start, end)`` over the ``num_ws`` style inputs for ``coarse``/``middle``/``fine`` or ``[start, end)``."""
    if isinstance(spec, str):
        q, h = int(round(num_ws / 4)), num_ws // 2
        table = {"coarse": (0, q), "middle": (q, h), "fine": (h, num_ws)}
        if spec not in table:
            raise ValueError(f"layer range must be one of {', '.join(NAMED_RANGES)} or [start, end) (got {spec!r})")
        return table[spec]
    vals = list(spec)
    if len(vals) != 2 or not all(isinstance(v, (int, np.integer)) for v in vals):
        raise ValueError(f"an explicit layer range is a pair of integers [start, end) (got {spec!r})")
    start, end = int(vals[0]), int(vals[1])
    if not 0 <= start < end <= num_ws:
        raise ValueError(f"layer range [{start}, {end}) is not inside [0, {num_ws}) (num_ws = {num_ws})")
    return start, end


def z_from_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """``[len(seeds), z_dim]`` float32 latents; seed ``s`` → ``RandomState(s).randn(1, z_dim)`` (NVIDIA's convention)."""
    rows = []
    for s in seeds:
        s = int(s)
        if not 0 <= s < 2**32:
            raise ValueError(f"seed must be in [0, 2**32) (got {s})")
        rows.append(np.random.RandomState(s).randn(1, z_dim))
    if not rows:
        return torch.zeros(0, z_dim)
    return torch.from_numpy(np.concatenate(rows, 0)).float()


def _labels(G: torch.nn.Module, n: int, device: torch.device) -> torch.Tensor:
    if G.c_dim:
        raise ValueError(f"the generator is conditional (c_dim = {G.c_dim}); generate supports unconditional G only")
    return torch.zeros(n, 0, device=device)


def z_to_ws(G: torch.nn.Module, z: torch.Tensor, psi: float = 1.0, truncation_cutoff: int | None = None) -> torch.Tensor:
    """``G.mapping`` for unconditional ``G``: ``[N, z_dim]`` → ``[N, num_ws, w_dim]``."""
    device = next(G.parameters()).device
    z = z.to(device)
    assert z.ndim == 2 and z.shape[1] == G.z_dim, f"z must be [N, {G.z_dim}], got {tuple(z.shape)}"
    ws = G.mapping(z, _labels(G, z.shape[0], device), truncation_psi=psi, truncation_cutoff=truncation_cutoff)
    assert ws.shape[1:] == (G.num_ws, G.w_dim), f"mapping returned {tuple(ws.shape)}"
    return ws


def seeds_to_ws(G: torch.nn.Module, seeds: Sequence[int], psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
    """Seeds → z → w (one mapping call for all seeds): ``[len(seeds), num_ws, w_dim]``."""
    return z_to_ws(G, z_from_seeds(seeds, G.z_dim), psi, truncation_cutoff)


def style_mix(ws: torch.Tensor, donor: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """``ws`` with style inputs ``[start, end)`` taken from ``donor`` (both ``[..., num_ws, w_dim]``)."""
    assert ws.shape == donor.shape, f"ws {tuple(ws.shape)} and donor {tuple(donor.shape)} differ"
    assert 0 <= start < end <= ws.shape[-2], f"bad range [{start}, {end}) for num_ws = {ws.shape[-2]}"
    out = ws.clone()
    out[..., start:end, :] = donor[..., start:end, :]
    return out


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation ``a + t (b - a)`` (W space: ``t = 0`` is ``a``)."""
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation along the last dimension (Z space, where latents are Gaussian).

    The norm is interpolated linearly and the direction along the great circle; parallel vectors fall
    back to :func:`lerp`.
    """
    a64, b64 = a.double(), b.double()
    na, nb = a64.norm(dim=-1, keepdim=True), b64.norm(dim=-1, keepdim=True)
    ua, ub = a64 / na.clamp_min(eps), b64 / nb.clamp_min(eps)
    cos = (ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    small = so.abs() < 1e-6
    wa = torch.where(small, 1.0 - t, torch.sin((1.0 - t) * omega) / so.where(~small, torch.ones_like(so)))
    wb = torch.where(small, torch.full_like(so, t), torch.sin(t * omega) / so.where(~small, torch.ones_like(so)))
    direction = wa * ua + wb * ub
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(eps)
    norm = na + (nb - na) * t
    return (direction * norm).to(a.dtype)


def make_transform(translate: Sequence[float] = (0.0, 0.0), angle: float = 0.0) -> np.ndarray:
    """The image transform (rotation by ``angle`` degrees, then translation ``(tx, ty)``) as a 3×3 float64 matrix.

    Units are those of the input layer's coordinate grid, in which the image spans about 1 unit
    (``translate=(0.1, 0)`` shifts the content by about a tenth of the image). Same convention as
    ``gen_images.py``'s ``make_transform``; the *inverse* goes into ``synthesis.input.transform``.
    """
    a = math.radians(float(angle))
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, s, float(translate[0])], [-s, c, float(translate[1])], [0.0, 0.0, 1.0]], dtype=np.float64)


def has_input_transform(G: torch.nn.Module) -> bool:
    return isinstance(getattr(getattr(getattr(G, "synthesis", None), "input", None), "transform", None), torch.Tensor)


@contextlib.contextmanager
def input_transform(G: torch.nn.Module, matrix: np.ndarray | torch.Tensor | None) -> Iterator[torch.Tensor]:
    """Apply an image transform to ``G`` for the duration of the block, then restore the buffer exactly.

    ``matrix`` is the image transform (:func:`make_transform`); the buffer becomes
    ``original @ inverse(matrix)`` (for the usual identity original: NVIDIA's ``inv(m)``). ``None`` or
    the identity leaves the buffer untouched. Yields the buffer value in use.
    """
    if not has_input_transform(G):
        if matrix is None or np.allclose(np.asarray(matrix, dtype=np.float64), np.eye(3)):
            yield torch.eye(3)
            return
        raise ValueError("this generator has no synthesis.input.transform buffer: cannot translate/rotate")
    buf: torch.Tensor = G.synthesis.input.transform
    if matrix is None or np.allclose(np.asarray(matrix, dtype=np.float64), np.eye(3), atol=0.0, rtol=0.0):
        yield buf.detach().clone()
        return
    original = buf.detach().clone()
    inv = torch.from_numpy(np.linalg.inv(np.asarray(matrix, dtype=np.float64)))
    new = (original.double() @ inv.to(original.device)).to(buf.dtype)
    try:
        with torch.no_grad():
            buf.copy_(new)
        yield new.clone()
    finally:
        with torch.no_grad():
            buf.copy_(original)


@torch.no_grad()
def synthesize(G: torch.nn.Module, ws: torch.Tensor, noise_mode: str = "const",
               transform: np.ndarray | None = None) -> torch.Tensor:
    """``G.synthesis(ws)`` (optionally under an image transform) → float images ``[N, C, H, W]`` in [-1, 1]."""
    device = next(G.parameters()).device
    assert ws.ndim == 3 and ws.shape[1:] == (G.num_ws, G.w_dim), f"ws must be [N, {G.num_ws}, {G.w_dim}], got {tuple(ws.shape)}"
    with input_transform(G, transform):
        return G.synthesis(ws.to(device), noise_mode=noise_mode)
