"""``python -m reid_gan.train_encoder``: the pSp (ReStyle) encoder for a frozen StyleGAN3.

Trains on the leakage-guarded ``bounding_box_train`` of ``data`` minus ``encoder.val_ids`` held-out
identities (the validation set). Writes under ``encoder.out_dir``:

* ``checkpoints/last.ckpt`` — the encoder and optimiser state, rewritten at every validation
  (``encoder.resume=auto`` continues from it after a kill);
* ``encoder.pt`` — the trained encoder (:mod:`reid_gan.encoder.build`), what ``invert`` reads;
* ``summary.json`` — the losses that ran (names), the re-ID model, first and last validation metrics;
* ``metrics.jsonl`` / ``metrics.csv`` — every validation's ``val/…`` metrics and the last ``train/…`` ones;
* ``grids/val-<step>.png`` — validation inputs (left) and their reconstruction after each pass.

The parts: :mod:`reid_gan.encoder.build` (networks, losses, the file), :mod:`reid_gan.encoder.training`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)

__all__ = ["train_encoder", "main"]


def train_encoder(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    import pytorch_lightning as pl

    from reid_gan.encoder.build import ENCODER_FILE, build_encoder, build_losses, load_G, save_encoder
    from reid_gan.encoder.module import ReStyleModule
    from reid_gan.encoder.networks import ReStylePSP
    from reid_gan.encoder.training import build_loaders, build_trainer, resume_path, write_summary
    from reid_gan.utils.io import clean_run_folder, read_jsonl

    e = cfg.encoder
    pl.seed_everything(int(cfg.seed), workers=True)
    out_dir = Path(str(e.out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    G, gsha, gdesc = load_G(e, int(cfg.seed))
    enc = build_encoder(e, G)
    psp = ReStylePSP(enc, G, int(e.iterations))
    loss, identity, desc = build_losses(cfg)
    module = ReStyleModule(psp, loss, hydra.utils.instantiate(e.optimizer), identity, int(e.grid_images))
    bs = int(e.batch_size)
    train_loader, val_loader, train_s, val_s = build_loaders(cfg, enc.input_size, psp.g_size,
                                                             position=lambda: module.global_step * bs)

    ckpt_path = resume_path(e, out_dir)
    clean_run_folder(out_dir, from_scratch=ckpt_path is None)  # what a killed run left half-done
    trainer = build_trainer(cfg, out_dir)
    t0 = time.time()
    if ckpt_path is None:
        trainer.validate(module, dataloaders=val_loader, verbose=False)  # step 0: the untrained encoder
    if int(e.max_steps) > 0:
        trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader,
                    ckpt_path=str(ckpt_path) if ckpt_path else None, weights_only=True)
    hist = read_jsonl(out_dir / "metrics.jsonl")
    if not hist or hist[-1].get("step") != int(trainer.global_step):
        trainer.validate(module, dataloaders=val_loader, verbose=False)  # the final state, always
        hist = read_jsonl(out_dir / "metrics.jsonl")
    seconds = time.time() - t0
    first, last = hist[0], hist[-1]
    step = int(trainer.global_step)
    save_encoder(out_dir / ENCODER_FILE, enc, int(e.iterations), {
        "generator": gdesc, "generator_sha256": gsha, "g_size": list(psp.g_size), "step": step,
        **desc, "val": {k: v for k, v in last.items() if k.startswith("val/")}})
    write_summary(out_dir, hist, step, seconds, gdesc, int(e.iterations), desc,
                  {"train_images": len(train_loader.dataset), "val_images": len(val_loader.dataset),
                   "val_identities": len({s.pid for s in val_s})})
    grids = sorted((out_dir / "grids").glob("val-*.png"))
    metrics: dict[str, Any] = {k: v for k, v in last.items() if k.startswith(("val/", "train/")) and v is not None}
    metrics.update({"train/steps": step, "train/seconds": seconds})
    log.info("Encoder trained for %d steps in %.1f s: val/loss/l2 %.4f -> %.4f; encoder at %s", step, seconds,
             first.get("val/loss/l2", math.nan), last.get("val/loss/l2", math.nan), out_dir / ENCODER_FILE)
    return metrics, {"out_dir": str(out_dir), "encoder": str(out_dir / ENCODER_FILE),
                     "grid": str(grids[-1]) if grids else "", "module": module, "history": hist, **desc}


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_encoder")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, train_encoder)


if __name__ == "__main__":
    main()
