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

The parts: :mod:`reid_gan.encoder.inversion`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.config import ConfigError
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)

__all__ = ["invert", "main"]


@torch.no_grad()
def invert(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    from reid_gan.data.leakage import generation_images_from_config
    from reid_gan.encoder.build import build_losses, load_encoder
    from reid_gan.encoder.data import EncoderImages
    from reid_gan.encoder.inversion import (choose_images, generator_for, identity_summary, person_codes,
                                            run_inversion, write_inversion)
    from reid_gan.encoder.networks import ReStylePSP
    from reid_gan.utils.io import atomic_write_json

    ic = cfg.invert
    if not ic.source:
        raise ConfigError("invert.source: not set — the train_encoder output folder (or its encoder.pt)")
    enc, meta = load_encoder(ic.source)
    G, gsha, gdesc = generator_for(cfg, meta)
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
    t0 = time.perf_counter()
    inv = run_inversion(psp, loss, identity, ds, int(ic.batch_size))
    seconds, pids, cams = time.perf_counter() - t0, ds.pids, ds.camids
    order, rows = person_codes(pids, inv.perceptual)
    write_inversion(out, inv, pids, cams, [str(s.path) for s in samples], order, rows, gsha)
    summary: dict[str, Any] = {
        "images": len(samples), "persons": len(order), "perceptual_metric": desc["perceptual"],
        "perceptual_mean": float(inv.perceptual.mean()), "ssim_mean": float(inv.ssim.mean()),
        "identity_cosine_mean": None if inv.identity is None else float(inv.identity.mean()),
        "identity_model": desc["identity_model"], "encoder": str(ic.source), "generator": gdesc,
        "generator_sha256": gsha, "iterations": psp.iterations, "seconds": round(seconds, 3)}
    if identity is not None:
        summary.update(identity_summary(inv, identity, pids, cams, None if ic.images_per_identity is None else
                                        all_samples, enc.input_size, psp.g_size, int(ic.batch_size)))
    atomic_write_json(out / "summary.json", summary)
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
