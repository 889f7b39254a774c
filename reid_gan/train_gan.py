"""``python -m reid_gan.train_gan``: StyleGAN3 on the leakage-guarded ``bounding_box_train`` of ``data``.

Writes under ``gan.out_dir`` (``${paths.artifacts}/gan/${gan.run_name}``; stable across runs so that
``gan.resume=auto`` finds it):

* ``checkpoints/last.ckpt`` — Lightning checkpoint, rewritten at every tick (resume after a kill);
* ``network-snapshot-<kimg>.pt`` — G_ema snapshots every ``gan.snap`` ticks and at the end
  (``{'init_kwargs', 'state_dict', ...}``, read with ``reid_gan.gan.load_generator``);
* ``metrics.jsonl`` / ``metrics.csv`` — the metric history (``metric/swd``, or ``metric/fid`` + ``metric/kid``);
* ``grids/fakes-<kimg>.png`` (fixed seeds) and ``grids/reals.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.gan.callbacks import GANTickCallback
from reid_gan.gan.training import (
    ImageSet,
    MetricOnUint8,
    build_metric,
    build_module,
    build_networks,
    identity_labels,
    set_c_dim,
    transfer_weights,
)
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)


def train_gan(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    import pytorch_lightning as pl

    from reid_gan.gan.images import load_images
    from reid_gan.report.grids import save_grid
    from reid_gan.utils.callbacks import AtomicCheckpointIO, FiniteLossGuard
    from reid_gan.utils.instantiate import instantiate_callbacks, instantiate_loggers
    from reid_gan.utils.io import read_jsonl

    g = cfg.gan
    pl.seed_everything(int(cfg.seed), workers=True)
    out_dir = Path(g.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = (int(v) for v in g.resolution)

    # Where to start from.
    last = out_dir / "checkpoints" / "last.ckpt"
    ckpt_path = None
    transfer = None
    if g.resume == "auto":
        if last.exists():
            ckpt_path = last
            log.info("gan.resume=auto: continuing from %s", last)
        else:
            log.info("gan.resume=auto: no checkpoint at %s, starting from scratch", last)
    elif g.resume:
        from reid_gan.gan.embed import resolve_resume

        rp = resolve_resume(str(g.resume))
        if not rp.exists():
            raise FileNotFoundError(f"gan.resume: file not found: {rp}")
        if rp.suffix == ".ckpt":
            ckpt_path = rp
        elif rp.suffix in (".pkl", ".pt"):
            transfer = rp
        else:
            raise ValueError(f"gan.resume: {rp} is neither a .ckpt, a snapshot .pt nor an NVIDIA .pkl")
    if ckpt_path is not None:
        try:  # weights-only: a checkpoint from elsewhere cannot run code here
            meta = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised naming the file
            raise ValueError(f"gan.resume: {ckpt_path} cannot be read as a weights-only checkpoint ({e})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("gan"), dict):
            raise ValueError(f"gan.resume: {ckpt_path} is not a train_gan checkpoint (no 'gan' record)")
        meta = meta["gan"]
        if meta.get("cur_nimg", 0) >= g.kimg * 1000:
            log.info("%s already reached %.3f kimg (gan.kimg=%s): nothing to train", ckpt_path,
                     meta["cur_nimg"] / 1000, g.kimg)
            hist = read_jsonl(out_dir / "metrics.jsonl")
            metrics = {k: v for k, v in (hist[-1] if hist else {}).items() if k.startswith("metric/")}
            metrics["train/kimg"] = meta["cur_nimg"] / 1000
            return metrics, {"out_dir": out_dir, "history": hist}

    # Data: bounding_box_train only (through the leakage guard), in memory at the GAN resolution.
    from reid_gan.data.leakage import generation_images_from_config

    samples = generation_images_from_config(cfg.data)
    if g.max_images is not None and g.max_images > 0:
        samples = samples[: g.max_images]
    kept: list[int] = []
    images = load_images([str(s.path) for s in samples], height, width, on_bad_image=str(cfg.data.on_bad_image),
                         kept=kept)
    samples = [samples[i] for i in kept]  # without any skipped image (labels stay aligned with images)
    log.info("GAN training set: %d images at %dx%d from %s", images.shape[0], height, width, cfg.data.root)
    save_grid(out_dir / "grids" / "reals.png", images[: g.grid.rows * g.grid.cols], g.grid.cols, png_compression=None)
    labels = c_pids = None
    if g.conditional:
        labels, c_pids = identity_labels([int(s.pid) for s in samples])
        set_c_dim(cfg, len(c_pids))
        log.info("Conditional GAN (gan.conditional=true): c_dim = %d one-hot identity labels", len(c_pids))
    ds = ImageSet(images, bool(g.mirror), labels)
    if len(ds) >= g.batch_size:
        sampler = torch.utils.data.RandomSampler(ds)
    else:
        sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=g.batch_size)
    loader = torch.utils.data.DataLoader(ds, batch_size=g.batch_size, sampler=sampler, drop_last=True,
                                         num_workers=int(cfg.data.num_workers),
                                         persistent_workers=int(cfg.data.num_workers) > 0)

    # Networks and the system.
    G, D, G_kwargs, G_class = build_networks(cfg)
    module = build_module(cfg, G, D, G_kwargs, G_class, label_pool=labels)
    module.c_pids = c_pids
    if transfer is not None:
        transfer_weights(module, transfer, cfg)
    n_g = sum(p.numel() for p in G.parameters())
    n_d = sum(p.numel() for p in D.parameters())
    log.info("G: %s (%.2f M parameters), D: %s (%.2f M parameters)", G_class, n_g / 1e6, g.D._target_, n_d / 1e6)

    # Metric + fixed latents (the same every snapshot).
    metric = MetricOnUint8(build_metric(cfg, images))
    gen = torch.Generator().manual_seed(int(cfg.metrics.seed))
    fake_z = torch.randn(int(cfg.metrics.num_images), module.z_dim, generator=gen)
    grid_z = torch.randn(g.grid.rows * g.grid.cols, module.z_dim,
                         generator=torch.Generator().manual_seed(int(g.grid.seed)))
    fake_c = grid_c = None
    if labels is not None:  # fixed labels drawn from the data, the same every snapshot
        fake_c = module._c(fake_z.shape[0], torch.Generator().manual_seed(int(cfg.metrics.seed)))
        grid_c = module._c(grid_z.shape[0], torch.Generator().manual_seed(int(g.grid.seed)))
    tick_cb = GANTickCallback(out_dir, metric, fake_z, grid_z, int(g.grid.cols), int(cfg.metrics.batch_size),
                              fake_c, grid_c)

    loggers = instantiate_loggers(cfg.get("logger"))
    # The NaN/inf guard runs before the tick callback, so a bad step is never written to last.ckpt.
    guard = FiniteLossGuard(last_checkpoint=out_dir / "checkpoints" / "last.ckpt")
    callbacks = instantiate_callbacks(cfg.get("callbacks")) + [guard, tick_cb]
    trainer = hydra.utils.instantiate(cfg.trainer, max_epochs=-1, max_steps=-1, enable_checkpointing=False,
                                      logger=loggers or False, callbacks=callbacks, plugins=[AtomicCheckpointIO()],
                                      _convert_="all")
    t0 = time.time()
    # weights_only: a checkpoint is read as tensors and plain values only, never unpickled code.
    trainer.fit(module, train_dataloaders=loader, ckpt_path=str(ckpt_path) if ckpt_path else None,
                weights_only=True)
    seconds = time.time() - t0

    hist = read_jsonl(out_dir / "metrics.jsonl")
    metrics: dict[str, Any] = {k: v for k, v in (hist[-1] if hist else {}).items() if k.startswith("metric/")}
    metrics["train/kimg"] = module.cur_nimg / 1000
    metrics["train/seconds"] = seconds
    log.info("Finished at %.3f kimg in %.1f s; output in %s", module.cur_nimg / 1000, seconds, out_dir)
    return metrics, {"module": module, "trainer": trainer, "out_dir": out_dir, "history": hist}


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_gan")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, train_gan)


if __name__ == "__main__":
    main()
