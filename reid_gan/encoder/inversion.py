"""Inverting real people with a trained encoder (what the ``invert`` stage is built from): which images,
the generator the encoder was trained for, the ReStyle pass over a loader with its quality measures, one
code per identity, the identity score of the reconstructions, and the files ``invert`` writes.

``codes.pt`` (format :data:`CODES_FORMAT`, read with ``weights_only=True``)::

    {'format', 'pids': LongTensor[M], 'camids': LongTensor[M], 'files': [str] * M, 'ws': [M, num_ws, w_dim],
     'generator_sha256': str}

``latents.pt`` is the real-person latents file of :mod:`reid_gan.data.generated` (its one owner).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["CODES_FORMAT", "choose_images", "generator_for", "Inversion", "run_inversion", "person_codes",
           "write_inversion", "identity_summary"]

CODES_FORMAT = "reid_gan.invert.codes/1"


def choose_images(samples: list, k: int | None, seed: int = 0) -> list:
    """All samples (``k=None``) or ``k`` per identity (a seeded choice per pid; all of a pid with fewer)."""
    if k is None:
        return list(samples)
    by_pid: dict[int, list] = defaultdict(list)
    for s in samples:
        by_pid[int(s.pid)].append(s)
    out = []
    for pid in sorted(by_pid):
        group = sorted(by_pid[pid], key=lambda s: s.path)
        rng = np.random.default_rng([int(seed), pid])
        pick = sorted(rng.permutation(len(group))[:k].tolist())
        out += [group[i] for i in pick]
    return out


def generator_for(cfg: DictConfig, meta: dict[str, Any]) -> tuple[torch.nn.Module, str, str]:
    """The generator: ``invert.ckpt``, else the one ``encoder.pt`` records (its sha256 checked)."""
    from reid_gan.encoder.build import load_G

    node = OmegaConf.create({"ckpt": cfg.invert.ckpt or (meta.get("generator") if meta.get("generator") !=
                                                                    "random-init" else None),
                             "random_init": OmegaConf.select(cfg, "encoder.random_init", default=None)})
    G, sha, desc = load_G(node, int(cfg.seed), key="invert.ckpt")
    want = meta.get("generator_sha256")
    if want and sha != want:
        raise ValueError(f"invert.ckpt: {desc} (sha256 {sha[:12]}…) is not the generator the encoder was trained "
                         f"for ({meta.get('generator')}, sha256 {want[:12]}…)")
    return G, sha, desc


@dataclass
class Inversion:
    """Per inverted image: its code, perceptual distance, SSIM and (with a re-ID model) the cosine similarity
    of the embeddings of image and reconstruction with both embeddings; ``grid``: (real, reconstruction)
    pairs of the first 16 images."""

    ws: torch.Tensor
    perceptual: torch.Tensor
    ssim: torch.Tensor
    identity: torch.Tensor | None
    q_feat: list
    g_feat: list
    grid: list


@torch.no_grad()
def run_inversion(psp, loss, identity, ds, batch_size: int) -> Inversion:
    """The ReStyle loop's last pass over every image of ``ds`` (an :class:`EncoderImages`), in order."""
    from reid_gan.encoder.module import batch_ssim

    ws, perc, ssim, ident, q_feat, g_feat, grid = [], [], [], [], [], [], []
    for x_in, x_g, _, _, _ in torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False):
        latent, img = psp(x_in)[-1]
        ws.append(latent.cpu())
        perc.append(loss.perceptual(img, x_g).cpu())
        ssim.append(batch_ssim(x_g, img))
        if identity is not None:
            fq, fg = identity.features(img).cpu(), identity.features(x_g).cpu()
            q_feat.append(fq)
            g_feat.append(fg)
            ident.append((fq * fg).sum(1))
        if len(grid) < 16:
            for j in range(min(16 - len(grid), x_in.shape[0])):
                grid.append((x_g[j], img[j]))
    return Inversion(torch.cat(ws), torch.cat(perc), torch.cat(ssim), torch.cat(ident) if ident else None,
                     q_feat, g_feat, grid)


def person_codes(pids: torch.Tensor, perceptual: torch.Tensor) -> tuple[list[int], list[int]]:
    """One code per identity for generate: the identity's best reconstruction (lowest perceptual distance).
    Returns ``(sorted pids, the row of each one's code)``."""
    best: dict[int, int] = {}
    for i, pid in enumerate(pids.tolist()):
        if pid not in best or perceptual[i] < perceptual[best[pid]]:
            best[pid] = i
    order = sorted(best)
    return order, [best[p] for p in order]


def write_inversion(out: Path, inv: Inversion, pids: torch.Tensor, cams: torch.Tensor, files: list[str],
                    order: list[int], rows: list[int], gsha: str) -> None:
    """``latents.pt`` (one code per person, for generate), ``codes.pt`` (every code), ``manifest.jsonl`` and
    ``reconstructions.png`` (real | reconstruction); first the temporary files of a killed run are removed."""
    from reid_gan.data.generated import save_latents_file
    from reid_gan.report.grids import save_grid
    from reid_gan.utils.image import to_uint8
    from reid_gan.utils.io import atomic_torch_save, atomic_write_bytes, remove_temp_files

    for p in remove_temp_files(out):  # what a killed run was writing: every output is rewritten below
        log.info("invert: removed %s, left by a killed run", p)
    save_latents_file(out / "latents.pt", torch.tensor(order), inv.ws[rows], files=[files[i] for i in rows],
                      camids=cams[rows], generator_sha256=gsha)
    atomic_torch_save({"format": CODES_FORMAT, "pids": pids, "camids": cams, "files": files, "ws": inv.ws,
                       "generator_sha256": gsha}, out / "codes.pt")
    chosen = set(rows)
    lines = []
    for i in range(len(files)):
        lines.append(json.dumps({"file": files[i], "pid": int(pids[i]), "camid": int(cams[i]), "code": i,
                                 "perceptual": round(float(inv.perceptual[i]), 6),
                                 "ssim": round(float(inv.ssim[i]), 6),
                                 "identity": None if inv.identity is None else round(float(inv.identity[i]), 6),
                                 "person_code": i in chosen}, sort_keys=True))
    atomic_write_bytes(out / "manifest.jsonl", ("\n".join(lines) + "\n").encode())
    if inv.grid:
        save_grid(out / "reconstructions.png", to_uint8(torch.stack([im for pair in inv.grid for im in pair])), 8,
                  png_compression=None)


@torch.no_grad()
def identity_summary(inv: Inversion, identity, pids, cams, all_samples: list | None, input_size, g_size,
                     batch_size: int) -> dict[str, Any]:
    """Rank@1/mAP of the reconstructions (queries) against real images: the inverted images themselves
    (``all_samples=None``: every image was inverted), else every real training image of the inverted persons
    among ``all_samples`` (with K per identity, the other images too; with K = 1 the inverted images alone
    would leave each query no valid match)."""
    from reid_gan.encoder.data import EncoderImages
    from reid_gan.encoder.module import identity_score

    g_feat, g_pids, g_cams = inv.g_feat, pids, cams
    if all_samples is not None:
        chosen = set(pids.tolist())
        gallery = EncoderImages([s for s in all_samples if int(s.pid) in chosen], input_size, g_size)
        g_feat = [identity.features(x_g).cpu() for _, x_g, _, _, _ in
                  torch.utils.data.DataLoader(gallery, batch_size=batch_size, shuffle=False)]
        g_pids, g_cams = gallery.pids, gallery.camids
    s = identity_score(torch.cat(inv.q_feat), pids, cams, torch.cat(g_feat), g_pids, g_cams)
    return {"identity_rank1": s["rank1"], "identity_mAP": s["mAP"], "identity_valid_queries": s["valid_queries"]}
