"""``python -m reid_gan.train_encoder``: the pSp (ReStyle) encoder for a frozen StyleGAN3.

Trains on the leakage-guarded ``bounding_box_train`` of ``data`` minus ``encoder.val_ids`` held-out
identities (the validation set). Writes under ``encoder.out_dir``:

* ``checkpoints/last.ckpt`` — the encoder and optimiser state, rewritten at every validation
  (``encoder.resume=auto`` continues from it after a kill);
* ``encoder.pt`` — the trained encoder (:mod:`reid_gan.encoder.build`), what ``invert`` reads;
* ``summary.json`` — the losses that ran (names), the re-ID model, first and last validation metrics;
* ``metrics.jsonl`` / ``metrics.csv`` — every validation's ``val/…`` metrics and the last ``train/…`` ones;
* ``grids/val-<step>.png`` — validation inputs (left) and their reconstruction after each pass.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)

__all__ = ["train_encoder", "main", "save_recon_grid"]


def save_recon_grid(rows: list[list[torch.Tensor]], path: Path) -> Path:
    """PNG: one row per input — the input, then the reconstruction after each pass (``[3, H, W]`` in [-1, 1])."""
    from reid_gan.report.grids import save_grid
    from reid_gan.utils.image import to_uint8

    cols = len(rows[0])
    imgs = torch.stack([im for row in rows for im in row])
    return save_grid(path, to_uint8(imgs), cols, png_compression=None)


class EncoderValCallback:
    """After each validation: metrics line (jsonl/csv), grid PNG, ``last.ckpt``; logs one line."""

    def __new__(cls, *args, **kwargs):
        import pytorch_lightning as pl

        class _CB(pl.Callback):
            def __init__(self, out_dir: Path):
                self.out_dir = Path(out_dir)

            def on_validation_end(self, trainer, pl_module):
                from reid_gan.utils.io import append_jsonl, atomic_path, atomic_write_text, read_jsonl

                if trainer.sanity_checking or not pl_module.last_val:
                    return
                step = int(trainer.global_step)
                rec = {"step": step, **pl_module.last_val, **pl_module.last_train}
                rec = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
                append_jsonl(self.out_dir / "metrics.jsonl", [rec])
                rows = read_jsonl(self.out_dir / "metrics.jsonl")
                keys = sorted({k for r in rows for k in r})
                csv = ",".join(keys) + "\n" + "".join(",".join("" if r.get(k) is None else str(r.get(k)) for k in keys)
                                                     + "\n" for r in rows)
                atomic_write_text(self.out_dir / "metrics.csv", csv)
                if pl_module.grid_rows:
                    save_recon_grid(pl_module.grid_rows, self.out_dir / "grids" / f"val-{step:06d}.png")
                log.info("step %d  %s", step, "  ".join(f"{k} {v:.4f}" for k, v in pl_module.last_val.items()
                                                        if isinstance(v, float) and not math.isnan(v)))
                if step > 0:
                    with atomic_path(self.out_dir / "checkpoints" / "last.ckpt") as tmp:
                        trainer.save_checkpoint(str(tmp), weights_only=False)

        return _CB(*args, **kwargs)


def _resume_path(e: DictConfig, out_dir: Path) -> Path | None:
    last = out_dir / "checkpoints" / "last.ckpt"
    if e.resume == "auto":
        if last.exists():
            log.info("encoder.resume=auto: continuing from %s", last)
            return last
        log.info("encoder.resume=auto: no checkpoint at %s, starting from scratch", last)
        return None
    if e.resume:
        p = Path(str(e.resume))
        if not p.is_file():
            raise FileNotFoundError(f"encoder.resume={p}: file not found")
        return p
    return None


def train_encoder(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    import pytorch_lightning as pl

    from reid_gan.data.leakage import generation_images_from_config
    from reid_gan.encoder.build import ENCODER_FILE, build_encoder, build_losses, load_G, save_encoder
    from reid_gan.encoder.data import EncoderImages, split_identities
    from reid_gan.encoder.module import ReStyleModule
    from reid_gan.encoder.networks import ReStylePSP
    from reid_gan.utils.callbacks import AtomicCheckpointIO, FiniteLossGuard
    from reid_gan.utils.instantiate import instantiate_loggers
    from reid_gan.utils.io import read_jsonl

    e = cfg.encoder
    pl.seed_everything(int(cfg.seed), workers=True)
    out_dir = Path(str(e.out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)

    G, gsha, gdesc = load_G(e, int(cfg.seed))
    enc = build_encoder(e, G)
    psp = ReStylePSP(enc, G, int(e.iterations))
    loss, identity, desc = build_losses(cfg)
    module = ReStyleModule(psp, loss, hydra.utils.instantiate(e.optimizer), identity, int(e.grid_images))

    samples = generation_images_from_config(cfg.data)
    train_s, val_s = split_identities(samples, int(e.val_ids), int(cfg.seed))
    if e.max_images:
        train_s = train_s[: int(e.max_images)]
    if e.val_max_images:
        val_s = val_s[: int(e.val_max_images)]
    train_ds = EncoderImages(train_s, enc.input_size, psp.g_size, bool(e.mirror))
    val_ds = EncoderImages(val_s, enc.input_size, psp.g_size)
    log.info("Encoder data: %d training images of %d identities, %d validation images of %d held-out identities "
             "(bounding_box_train of %s)", len(train_ds), len({s.pid for s in train_s}), len(val_ds),
             len({s.pid for s in val_s}), cfg.data.root)
    bs = int(e.batch_size)
    sampler = torch.utils.data.RandomSampler(train_ds, replacement=len(train_ds) < bs,
                                             num_samples=bs if len(train_ds) < bs else None)
    train_loader = torch.utils.data.DataLoader(train_ds, batch_size=bs, sampler=sampler, drop_last=True)
    val_loader = torch.utils.data.DataLoader(val_ds, batch_size=bs, shuffle=False)

    ckpt_path = _resume_path(e, out_dir)
    cb = EncoderValCallback(out_dir)
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer = hydra.utils.instantiate(cfg.trainer, max_epochs=-1, max_steps=int(e.max_steps),
                                      check_val_every_n_epoch=None, val_check_interval=int(e.val_every),
                                      enable_checkpointing=False, logger=loggers or False,
                                      # NaN/inf loss: stop at that step, before the next last.ckpt is written
                                      callbacks=[FiniteLossGuard(last_checkpoint=out_dir / "checkpoints" / "last.ckpt"),
                                                 cb],
                                      plugins=[AtomicCheckpointIO()],
                                      num_sanity_val_steps=0, _convert_="all")
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
    last = hist[-1]
    step = int(trainer.global_step)
    save_encoder(out_dir / ENCODER_FILE, enc, int(e.iterations), {
        "generator": gdesc, "generator_sha256": gsha, "g_size": list(psp.g_size), "step": step,
        **desc, "val": {k: v for k, v in last.items() if k.startswith("val/")}})
    from reid_gan.utils.io import atomic_write_json

    atomic_write_json(out_dir / "summary.json", {
        "steps": step, "seconds": round(seconds, 3), "generator": gdesc, "iterations": int(e.iterations), **desc,
        "train_images": len(train_ds), "val_images": len(val_ds), "val_identities": len({s.pid for s in val_s}),
        "first": {k: v for k, v in hist[0].items() if k.startswith("val/")},
        "last": {k: v for k, v in last.items() if k.startswith(("val/", "train/"))}})
    grids = sorted((out_dir / "grids").glob("val-*.png"))
    metrics: dict[str, Any] = {k: v for k, v in last.items() if k.startswith(("val/", "train/")) and v is not None}
    metrics.update({"train/steps": step, "train/seconds": seconds})
    first = hist[0]
    log.info("Encoder trained for %d steps in %.1f s: val/loss/l2 %.4f -> %.4f; encoder at %s", step, seconds,
             first.get("val/loss/l2", math.nan), last.get("val/loss/l2", math.nan), out_dir / ENCODER_FILE)
    return metrics, {"out_dir": str(out_dir), "encoder": str(out_dir / ENCODER_FILE),
                     "grid": str(grids[-1]) if grids else "", "module": module, "history": hist, **desc}


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_encoder")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, train_encoder)


if __name__ == "__main__":
    main()
