"""Latents → images for a generated person, and re-making any image of a set from its manifest line.

Every person is computed on its own, in synthesis calls that depend only on the person's plan (the
non-transformed images in chunks of ``synthesis_batch``; each transformed image alone, since the input
transform is one buffer shared by a batch), so the bytes do not depend on how persons are batched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch

from reid_gan.data.generated import frame_of, load_person_latents
from reid_gan.gan import sampling
from reid_gan.generation.plan import ImagePlan, Person
from reid_gan.utils.image import encode_image, to_uint8_hwc

__all__ = ["person_latents", "synthesis_calls", "render", "resize", "encode", "remake", "remake_bytes"]


@torch.no_grad()
def person_latents(G: torch.nn.Module, person: Person, plans: list[ImagePlan], psi: float,
                   truncation_cutoff: int | None, synthesis_batch: int) -> dict[str, torch.Tensor]:
    """``ws [K, num_ws, w_dim]``, image transforms ``[K, 3, 3]`` and synthesis call ids ``[K]`` of one person.

    All mapping is done in one call whose composition depends only on the plan (deterministic).
    """
    seeds: list[int] = []
    zs_extra: list[torch.Tensor] = []
    if person.source == "seed":
        seeds.append(int(person.seed))
    for p in plans:
        if p.method == "style_mix":
            seeds.append(p.params["donor_seed"])
        elif p.method == "interpolate":
            seeds.append(p.params["partner_seed"])
    z = sampling.z_from_seeds(seeds, G.z_dim)
    if person.source == "seed":
        for p in plans:  # slerp in Z: the interpolated z goes through the same mapping call
            if p.method == "interpolate" and p.params["space"] == "z":
                zp = sampling.z_from_seeds([p.params["partner_seed"]], G.z_dim)
                zs_extra.append(sampling.slerp(z[0:1], zp, p.params["alpha"]))
    z_all = torch.cat([z, *zs_extra], 0) if zs_extra else z
    ws_all = sampling.z_to_ws(G, z_all, psi, truncation_cutoff).float() if z_all.shape[0] else None
    cursor = 0
    if person.source == "seed":
        base, cursor = ws_all[0], 1
    else:
        assert person.ws is not None
        base = person.ws.to(next(G.parameters()).device).float()
    extra_cursor = len(seeds)
    out_ws, transforms = [], []
    for p in plans:
        T = np.eye(3)
        if p.method == "base":
            w = base
        elif p.method == "style_mix":
            start, end = p.params["layers"]
            w = sampling.style_mix(base, ws_all[cursor], start, end)
            cursor += 1
        elif p.method == "interpolate":
            if p.params["space"] == "z":
                w = ws_all[extra_cursor]
                extra_cursor += 1
            else:
                w = sampling.lerp(base, ws_all[cursor], p.params["alpha"])
            cursor += 1
        elif p.method == "transform":
            w = base
            T = sampling.make_transform(p.params["translate"], p.params["angle"])
        else:  # pragma: no cover
            raise ValueError(p.method)
        out_ws.append(w)
        transforms.append(T)
    ws = torch.stack(out_ws, 0).cpu()
    tf = torch.from_numpy(np.stack(transforms, 0))
    calls = synthesis_calls(plans, synthesis_batch)
    return {"ws": ws, "transforms": tf, "calls": torch.tensor(calls, dtype=torch.long)}


def synthesis_calls(plans: Sequence[ImagePlan], synthesis_batch: int) -> list[int]:
    """Call id of each image: untransformed images in chunks of ``synthesis_batch`` (in frame order), then
    one call per transformed image (the input transform is a buffer shared by the whole batch)."""
    calls = [0] * len(plans)
    plain = [i for i, p in enumerate(plans) if p.method != "transform"]
    for j, i in enumerate(plain):
        calls[i] = j // synthesis_batch
    nxt = (len(plain) + synthesis_batch - 1) // synthesis_batch
    for i, p in enumerate(plans):
        if p.method == "transform":
            calls[i] = nxt
            nxt += 1
    return calls


@torch.no_grad()
def render(G: torch.nn.Module, ws: torch.Tensor, transforms: torch.Tensor, calls: torch.Tensor,
           noise_mode: str, size: tuple[int, int] | None, only: Iterable[int] | None = None) -> dict[int, np.ndarray]:
    """RGB uint8 images (after resizing) by image index, made call by call; ``only`` restricts to some images
    (their whole calls are still synthesised, so the result does not depend on ``only``)."""
    want = set(range(ws.shape[0])) if only is None else set(only)
    out: dict[int, np.ndarray] = {}
    for call in sorted({int(calls[i]) for i in want}):
        idx = [i for i in range(ws.shape[0]) if int(calls[i]) == call]
        T = transforms[idx[0]].numpy()
        assert all(torch.equal(transforms[i], transforms[idx[0]]) for i in idx), "one transform per call"
        imgs = to_uint8_hwc(sampling.synthesize(G, ws[idx], noise_mode, None if np.allclose(T, np.eye(3), 0, 0) else T))
        for j, i in enumerate(idx):
            if i in want:
                out[i] = resize(imgs[j], size)
    return out


def resize(rgb: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if size is None or tuple(rgb.shape[:2]) == tuple(size):
        return np.ascontiguousarray(rgb)
    h, w = size
    shrink = h <= rgb.shape[0] and w <= rgb.shape[1]
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def encode(rgb: np.ndarray, fmt: str, quality: int) -> bytes:
    """JPEG (``quality``, baseline, 4:2:0) or PNG bytes of an RGB uint8 image (:func:`reid_gan.utils.image.encode_image`)."""
    return encode_image(np.ascontiguousarray(rgb[:, :, ::-1]), fmt, quality)


def remake(record: dict, G: torch.nn.Module, root: str | Path) -> np.ndarray:
    """Re-make one image of a generated set from its manifest line: the RGB uint8 array that was encoded.

    Uses the person's ``latents/<pid>.pt`` (exact ``ws``, transform and synthesis call of every image), so
    with the same generator on the same device type the result equals the written image before encoding.
    """
    data = load_person_latents(root, record)
    frame = frame_of(record)
    frames = [int(f) for f in data["frames"].tolist()]
    if frame not in frames:
        raise KeyError(f"frame {frame} of pid {record['pid']} is not in its latents file")
    i = frames.index(frame)
    sha = data.get("generator_sha256")
    if sha and record.get("generator_sha256") and sha != record["generator_sha256"]:
        raise ValueError(f"pid {record['pid']}: latents made by generator {sha[:12]}…, manifest says "
                         f"{record['generator_sha256'][:12]}…")
    size = tuple(data["size"]) if data.get("size") is not None else None
    G = G.eval()
    return render(G, data["ws"], data["transforms"], data["calls"], data["noise_mode"], size, only=[i])[i]


def remake_bytes(record: dict, G: torch.nn.Module, root: str | Path) -> bytes:
    """:func:`remake` encoded as the set was (format and quality from the latents file)."""
    data = load_person_latents(root, record)
    return encode(remake(record, G, root), data["format_ext"], int(data["quality"]))


# ----------------------------------------------------------------------------------------------------------
# Inputs: the generator and the persons
# ----------------------------------------------------------------------------------------------------------
