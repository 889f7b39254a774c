"""The train_gan stage's Lightning callback: acts on the GAN module's tick events."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from reid_gan.gan.checkpoint import save_snapshot, snapshot_name
from reid_gan.report.grids import save_grid
from reid_gan.utils.image import to_uint8
from reid_gan.utils.io import atomic_path, atomic_write_text, jsonl_text, read_jsonl
from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["GANTickCallback"]


class GANTickCallback(pl.Callback):
    """Acts on the module's tick events: progress line, ``last.ckpt``, snapshots, metric, sample grids."""

    def __init__(self, out_dir: Path, metric, fake_z: torch.Tensor, grid_z: torch.Tensor, grid_cols: int,
                 metric_batch: int, fake_c: torch.Tensor | None = None, grid_c: torch.Tensor | None = None):
        self.out_dir, self.metric = Path(out_dir), metric
        self.fake_z, self.grid_z, self.grid_cols, self.metric_batch = fake_z, grid_z, grid_cols, metric_batch
        self.fake_c, self.grid_c = fake_c, grid_c  # fixed labels (conditional runs), else None
        self.tick_time = time.time()
        self.history: list[dict] = []

    def _generate(self, pl_module, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        out = []
        for i in range(0, z.shape[0], self.metric_batch):
            ci = None if c is None else c[i:i + self.metric_batch].to(pl_module.device)
            out.append(pl_module.generate(z[i:i + self.metric_batch].to(pl_module.device), c=ci).cpu())
        return torch.cat(out)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        ev = pl_module.tick_event
        if ev is None:
            return
        # nothing done here draws from the training's random stream (a snapshot's metric or grid, or not, must
        # not change the batches after it), and last.ckpt holds that stream's state as the next step finds it
        from reid_gan.utils.resumable import rng_state

        pl_module.rng_at_tick = rng_state()
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                self._tick(trainer, pl_module, ev)
        finally:
            pl_module.rng_at_tick = None

    def _tick(self, trainer, pl_module, ev) -> None:
        now = time.time()
        s = pl_module.last_stats
        log.info("tick %d  kimg %.3f  sec/tick %.1f  loss_G %.3f  loss_D %.3f  ada_p %.3f",
                 ev["tick"], ev["cur_nimg"] / 1000, now - self.tick_time, s.get("train/loss_G", math.nan),
                 s.get("train/loss_D", math.nan), s.get("train/ada_p", 0.0))
        self.tick_time = now
        if ev["snapshot"]:
            kimg = ev["cur_nimg"] / 1000
            snap = save_snapshot(pl_module.G_ema, pl_module.G_init_kwargs,
                                 self.out_dir / snapshot_name(ev["cur_nimg"]), pl_module.G_class,
                                 ev["cur_nimg"])
            t0 = time.time()
            fakes = self._generate(pl_module, self.fake_z, self.fake_c)
            values = self.metric(fakes)
            rec = {"tick": ev["tick"], "kimg": kimg, "cur_nimg": ev["cur_nimg"], "snapshot": snap.name,
                   "metric_seconds": round(time.time() - t0, 3),
                   **{f"metric/{k}": float(v) for k, v in values.items()}}
            # the whole file rewritten under a temporary name (a kill never leaves a half line); a tick redone
            # after a resume (killed between its line and its checkpoint) replaces its earlier line
            rows = [r for r in read_jsonl(self.out_dir / "metrics.jsonl") if r.get("cur_nimg") != ev["cur_nimg"]]
            rows.append(rec)
            atomic_write_text(self.out_dir / "metrics.jsonl", jsonl_text(rows))
            keys = sorted({k for r in rows for k in r})
            csv = ",".join(keys) + "\n" + "".join(",".join(str(r.get(k, "")) for k in keys) + "\n" for r in rows)
            atomic_write_text(self.out_dir / "metrics.csv", csv)
            grid = to_uint8(self._generate(pl_module, self.grid_z, self.grid_c))
            save_grid(self.out_dir / "grids" / f"fakes-{kimg:010.3f}.png", grid, self.grid_cols, png_compression=None)
            main = {k: v for k, v in rec.items() if k.startswith("metric/")}
            log.info("snapshot %s  %s", snap.name, "  ".join(f"{k} {v:.4f}" for k, v in main.items()))
            for lg in trainer.loggers:
                lg.log_metrics({**main, "train/kimg": kimg}, step=pl_module.iteration)
            self.history.append(rec)
        ckpt = self.out_dir / "checkpoints" / "last.ckpt"
        with atomic_path(ckpt) as tmp:
            trainer.save_checkpoint(str(tmp), weights_only=False)  # full state: resumable
        if ev["done"]:
            trainer.should_stop = True
