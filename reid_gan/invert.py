"""``python -m reid_gan.invert``: real training people → W+ codes with a trained pSp encoder.

Encodes the leakage-guarded ``bounding_box_train`` images of ``data`` (all, or ``invert.images_per_identity``
= K per identity, chosen with ``invert.seed``) through the ReStyle loop of ``invert.source`` into the
generator it was trained for. Writes under ``invert.out``:

* ``latents.pt`` — the file ``generate`` reads in real-variants mode (``generate.latents=<out>/latents.pt``;
  format: :func:`reid_gan.data.generated.save_latents_file`): one code per identity — the identity's best
  reconstructed image (lowest perceptual distance) — with its real ``pids``, ``camids`` and source
  ``files`` (the real image: the SSIM filter's reference with ``filter.chain.ssim.reference=real``);
* ``codes.pt`` — every inverted image's code: ``pids``, ``camids``, ``files``, ``ws [M, num_ws, w_dim]``;
* ``manifest.jsonl`` — one line per inverted image: ``file`` (source), ``pid``, ``camid``, ``code`` (row of
  ``codes.pt``), reconstruction quality ``perceptual`` (its metric name in ``summary.json``), ``ssim``,
  ``identity`` (cosine similarity of re-ID embeddings of the image and its reconstruction; null without
  a re-ID model), and ``person_code`` (true for the code written to ``latents.pt``);
* ``summary.json`` (means, the identity Rank@1/mAP of reconstructions against the real images) and
  ``reconstructions.png`` (real | reconstruction).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.config import ConfigError
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)

__all__ = ["invert", "main", "choose_images"]

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


def _generator(cfg: DictConfig, meta: dict[str, Any]) -> tuple[torch.nn.Module, str, str]:
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


@torch.no_grad()
def invert(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    from reid_gan.data.leakage import generation_images_from_config
    from reid_gan.encoder.build import build_losses, load_encoder
    from reid_gan.encoder.data import EncoderImages
    from reid_gan.encoder.module import batch_ssim, identity_score
    from reid_gan.encoder.networks import ReStylePSP
    from reid_gan.data.generated import save_latents_file
    from reid_gan.report.grids import save_grid
    from reid_gan.utils.image import to_uint8
    from reid_gan.utils.io import atomic_torch_save, atomic_write_bytes, atomic_write_json

    ic = cfg.invert
    if not ic.source:
        raise ConfigError("invert.source: not set — the train_encoder output folder (or its encoder.pt)")
    enc, meta = load_encoder(ic.source)
    G, gsha, gdesc = _generator(cfg, meta)
    psp = ReStylePSP(enc, G, int(meta["iterations"])).eval()
    loss, identity, desc = build_losses(cfg)
    if desc["perceptual"] != meta.get("perceptual"):
        log.info("Reconstruction quality uses %s (the encoder was trained with %s)", desc["perceptual"],
                 meta.get("perceptual"))
    out = Path(str(ic.out))
    out.mkdir(parents=True, exist_ok=True)

    all_samples = generation_images_from_config(cfg.data)
    samples = choose_images(all_samples, ic.images_per_identity, int(ic.seed))
    ds = EncoderImages(samples, enc.input_size, psp.g_size)
    log.info("Inverting %d real training images of %d identities (%s per identity) with %s, %d passes",
             len(ds), len({s.pid for s in samples}), ic.images_per_identity or "all", ic.source, psp.iterations)
    loader = torch.utils.data.DataLoader(ds, batch_size=int(ic.batch_size), shuffle=False)
    t0 = time.perf_counter()
    ws, perc, ssim, ident, q_feat, g_feat, grid = [], [], [], [], [], [], []
    for x_in, x_g, _, _, _ in loader:
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
    seconds = time.perf_counter() - t0
    ws_all = torch.cat(ws)
    perc_all, ssim_all = torch.cat(perc), torch.cat(ssim)
    ident_all = torch.cat(ident) if ident else None
    pids, cams = ds.pids, ds.camids

    # one code per identity for generate: the identity's best reconstruction (lowest perceptual distance)
    best: dict[int, int] = {}
    for i, pid in enumerate(pids.tolist()):
        if pid not in best or perc_all[i] < perc_all[best[pid]]:
            best[pid] = i
    order = sorted(best)
    rows = [best[p] for p in order]
    files = [str(samples[i].path) for i in range(len(samples))]
    save_latents_file(out / "latents.pt", torch.tensor(order), ws_all[rows], files=[files[i] for i in rows],
                      camids=cams[rows], generator_sha256=gsha)
    atomic_torch_save({"format": CODES_FORMAT, "pids": pids, "camids": cams, "files": files, "ws": ws_all,
                       "generator_sha256": gsha}, out / "codes.pt")
    chosen = set(rows)
    lines = []
    for i in range(len(samples)):
        lines.append(json.dumps({"file": files[i], "pid": int(pids[i]), "camid": int(cams[i]), "code": i,
                                 "perceptual": round(float(perc_all[i]), 6), "ssim": round(float(ssim_all[i]), 6),
                                 "identity": None if ident_all is None else round(float(ident_all[i]), 6),
                                 "person_code": i in chosen}, sort_keys=True))
    atomic_write_bytes(out / "manifest.jsonl", ("\n".join(lines) + "\n").encode())
    summary: dict[str, Any] = {
        "images": len(samples), "persons": len(order), "perceptual_metric": desc["perceptual"],
        "perceptual_mean": float(perc_all.mean()), "ssim_mean": float(ssim_all.mean()),
        "identity_cosine_mean": None if ident_all is None else float(ident_all.mean()),
        "identity_model": desc["identity_model"], "encoder": str(ic.source), "generator": gdesc,
        "generator_sha256": gsha, "iterations": psp.iterations, "seconds": round(seconds, 3)}
    if identity is not None:
        # the gallery: every real training image of the inverted persons (with K per identity, the other
        # images too; with K = 1 the inverted images alone would leave each query no valid match)
        g_pids, g_cams = pids, cams
        if ic.images_per_identity is not None:
            chosen_pids = set(pids.tolist())
            gallery = EncoderImages([s for s in all_samples if int(s.pid) in chosen_pids], enc.input_size, psp.g_size)
            g_feat = [identity.features(x_g).cpu() for _, x_g, _, _, _ in
                      torch.utils.data.DataLoader(gallery, batch_size=int(ic.batch_size), shuffle=False)]
            g_pids, g_cams = gallery.pids, gallery.camids
        s = identity_score(torch.cat(q_feat), pids, cams, torch.cat(g_feat), g_pids, g_cams)
        summary.update({"identity_rank1": s["rank1"], "identity_mAP": s["mAP"], "identity_valid_queries": s["valid_queries"]})
    atomic_write_json(out / "summary.json", summary)
    if grid:
        save_grid(out / "reconstructions.png", to_uint8(torch.stack([im for pair in grid for im in pair])), 8,
                  png_compression=None)
    log.info("Inverted %d images (%d persons) in %.1f s: %s %.4f, SSIM %.4f%s; latents for generate: %s",
             len(samples), len(order), seconds, desc["perceptual"], summary["perceptual_mean"], summary["ssim_mean"],
             "" if identity is None else f", identity Rank@1 {summary['identity_rank1']:.4f} mAP {summary['identity_mAP']:.4f}",
             out / "latents.pt")
    metrics = {f"invert/{k}": v for k, v in summary.items() if isinstance(v, (int, float)) and v is not None}
    return metrics, {"out": str(out), "latents": str(out / "latents.pt"), "manifest": str(out / "manifest.jsonl"),
                     "grid": str(out / "reconstructions.png")}


@hydra.main(version_base="1.3", config_path="../conf", config_name="invert")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, invert)


if __name__ == "__main__":
    main()
