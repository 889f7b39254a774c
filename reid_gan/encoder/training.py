"""What the train_encoder stage is built from beyond the networks and losses (:mod:`reid_gan.encoder.build`):
where a run continues from, the train/validation loaders of held-out identities, the validation callback
(metrics lines, grids, ``last.ckpt``), the trainer, and the run's ``summary.json``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["save_recon_grid", "EncoderValCallback", "resume_path", "build_loaders", "build_trainer",
           "write_summary"]


def save_recon_grid(rows: list[list[torch.Tensor]], path: Path) -> Path:
    """PNG: one row per input — the input, then the reconstruction after each pass (``[3, H, W]`` in [-1, 1])."""
    from reid_gan.report.grids import save_grid
    from reid_gan.utils.image import to_uint8

    cols = len(rows[0])
    imgs = torch.stack([im for row in rows for im in row])
    return save_grid(path, to_uint8(imgs), cols, png_compression=None)


class EncoderValCallback(pl.Callback):
    """After each validation: metrics line (jsonl/csv), grid PNG, ``last.ckpt``; logs one line."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)

    def on_train_start(self, trainer, pl_module):
        # After a resume (global_step restored): the lines of validations past the checkpoint (a run killed
        # between a validation's line and its checkpoint) are redone, so drop them; every line up to the
        # checkpoint is kept as written.
        from reid_gan.utils.io import jsonl_text, read_jsonl

        path = self.out_dir / "metrics.jsonl"
        if not path.exists():
            return
        rows, seen, keep = read_jsonl(path), set(), []
        for r in rows:
            if int(r.get("step", -1)) <= int(trainer.global_step) and r.get("step") not in seen:
                seen.add(r.get("step"))
                keep.append(r)
        if jsonl_text(keep) != path.read_text(encoding="utf-8"):
            log.info("encoder: %s holds %d line(s) past the resumed step %d (or a half line); they are redone",
                     path, len(rows) - len(keep), int(trainer.global_step))
            self._write(keep)

    def _write(self, rows: list[dict]) -> None:
        from reid_gan.utils.io import atomic_write_text, jsonl_text

        atomic_write_text(self.out_dir / "metrics.jsonl", jsonl_text(rows))
        keys = sorted({k for r in rows for k in r})
        csv = ",".join(keys) + "\n" + "".join(",".join("" if r.get(k) is None else str(r.get(k)) for k in keys)
                                             + "\n" for r in rows)
        atomic_write_text(self.out_dir / "metrics.csv", csv)

    def on_validation_end(self, trainer, pl_module):
        from reid_gan.utils.io import atomic_path, read_jsonl

        if trainer.sanity_checking or not pl_module.last_val:
            return
        step = int(trainer.global_step)
        rec = {"step": step, **pl_module.last_val, **pl_module.last_train}
        rec = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
        # the whole file rewritten under a temporary name: a kill never leaves a half line
        self._write([*(r for r in read_jsonl(self.out_dir / "metrics.jsonl") if r.get("step") != step), rec])
        if pl_module.grid_rows:
            save_recon_grid(pl_module.grid_rows, self.out_dir / "grids" / f"val-{step:06d}.png")
        log.info("step %d  %s", step, "  ".join(f"{k} {v:.4f}" for k, v in pl_module.last_val.items()
                                                if isinstance(v, float) and not math.isnan(v)))
        if step > 0:
            with atomic_path(self.out_dir / "checkpoints" / "last.ckpt") as tmp:
                trainer.save_checkpoint(str(tmp), weights_only=False)


def resume_path(e: DictConfig, out_dir: Path) -> Path | None:
    """The checkpoint ``encoder.resume`` names (``auto``: ``<out_dir>/checkpoints/last.ckpt`` if there), or None."""
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


def build_loaders(cfg: DictConfig, input_size, g_size, position=lambda: 0) -> tuple[Any, Any, list, list]:
    """``(train loader, validation loader, train samples, validation samples)``: ``bounding_box_train`` of
    ``data`` (through the leakage guard) minus ``encoder.val_ids`` held-out identities, which validate.
    The training batches are an endless seeded stream that starts at ``position()`` images (the restored
    step × batch size), so a resumed run sees the batches the uninterrupted run would have seen."""
    from reid_gan.utils.resumable import StreamSampler

    from reid_gan.data.leakage import generation_images_from_config
    from reid_gan.encoder.data import EncoderImages, split_identities

    e = cfg.encoder
    samples = generation_images_from_config(cfg.data)
    train_s, val_s = split_identities(samples, int(e.val_ids), int(cfg.seed))
    if e.max_images:
        train_s = train_s[: int(e.max_images)]
    if e.val_max_images:
        val_s = val_s[: int(e.val_max_images)]
    train_ds = EncoderImages(train_s, input_size, g_size, bool(e.mirror))
    val_ds = EncoderImages(val_s, input_size, g_size)
    log.info("Encoder data: %d training images of %d identities, %d validation images of %d held-out identities "
             "(bounding_box_train of %s)", len(train_ds), len({s.pid for s in train_s}), len(val_ds),
             len({s.pid for s in val_s}), cfg.data.root)
    bs = int(e.batch_size)
    sampler = StreamSampler(len(train_ds), int(cfg.seed), bool(e.mirror), position)
    # own generators: making an iterator (every validation, and after a resume) draws a worker seed, and it
    # must not come from the global generator the training's draws come from
    train_loader = torch.utils.data.DataLoader(train_ds, batch_size=bs, sampler=sampler, drop_last=True,
                                               generator=torch.Generator().manual_seed(int(cfg.seed)))
    val_loader = torch.utils.data.DataLoader(val_ds, batch_size=bs, shuffle=False,
                                             generator=torch.Generator().manual_seed(int(cfg.seed)))
    return train_loader, val_loader, train_s, val_s


def build_trainer(cfg: DictConfig, out_dir: Path):
    """Step-based training validated every ``encoder.val_every`` steps; the NaN/inf guard stops a bad step
    before the next ``last.ckpt`` is written; atomic checkpoint writes."""
    from reid_gan.utils.callbacks import AtomicCheckpointIO, FiniteLossGuard
    from reid_gan.utils.instantiate import instantiate_loggers

    e = cfg.encoder
    loggers = instantiate_loggers(cfg.get("logger"))
    return hydra.utils.instantiate(cfg.trainer, max_epochs=-1, max_steps=int(e.max_steps),
                                   check_val_every_n_epoch=None, val_check_interval=int(e.val_every),
                                   enable_checkpointing=False, logger=loggers or False,
                                   callbacks=[FiniteLossGuard(last_checkpoint=out_dir / "checkpoints" / "last.ckpt"),
                                              EncoderValCallback(out_dir)],
                                   plugins=[AtomicCheckpointIO()],
                                   num_sanity_val_steps=0, _convert_="all")


def write_summary(out_dir: Path, hist: list[dict], step: int, seconds: float, gdesc: str, iterations: int,
                  desc: dict[str, Any], data: dict[str, int]) -> None:
    """``<out_dir>/summary.json``: steps, time, generator, the losses that ran, ``data`` (``train_images``,
    ``val_images``, ``val_identities``), first and last validation metrics."""
    from reid_gan.utils.io import atomic_write_json

    last = hist[-1]
    atomic_write_json(out_dir / "summary.json", {
        "steps": step, "seconds": round(seconds, 3), "generator": gdesc, "iterations": iterations, **desc,
        **data,
        "first": {k: v for k, v in hist[0].items() if k.startswith("val/")},
        "last": {k: v for k, v in last.items() if k.startswith(("val/", "train/"))}})
