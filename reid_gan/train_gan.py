"""``python -m reid_gan.train_gan``: StyleGAN3 on the leakage-guarded ``bounding_box_train`` of ``data``.

Writes under ``gan.out_dir`` (``${paths.artifacts}/gan/${gan.run_name}``; stable across runs so that
``gan.resume=auto`` finds it):

* ``checkpoints/last.ckpt`` — Lightning checkpoint, rewritten at every tick (resume after a kill);
* ``network-snapshot-<kimg>.pt`` — G_ema snapshots every ``gan.snap`` ticks and at the end
  (``{'init_kwargs', 'state_dict', ...}``, read with ``reid_gan.gan.load_generator``);
* ``metrics.jsonl`` / ``metrics.csv`` — the metric history (``metric/swd``, or ``metric/fid`` + ``metric/kid``);
* ``grids/fakes-<kimg>.png`` (fixed seeds) and ``grids/reals.png``.

The parts: :mod:`reid_gan.gan.training`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.gan.training import (build_loader, build_module, build_networks, build_tick_callback, build_trainer,
                                   history_metrics, reached_kimg, resume_source, training_set, transfer_weights)
from reid_gan.utils.io import clean_run_folder
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)


def train_gan(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    import pytorch_lightning as pl

    g = cfg.gan
    pl.seed_everything(int(cfg.seed), workers=True)
    out_dir = Path(g.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, transfer = resume_source(g, out_dir)
    from reid_gan.gan.embed import LINEAGE, record_transfer

    # what a killed run left half-done; from scratch, also an earlier run's history and lineage
    clean_run_folder(out_dir, from_scratch=ckpt_path is None, stale=("metrics.jsonl", "metrics.csv", LINEAGE))
    if ckpt_path is not None and (kimg := reached_kimg(ckpt_path, g)) is not None:
        run_dir = ckpt_path.parent.parent  # <run>/checkpoints/last.ckpt: that run's metric history
        metrics, hist = history_metrics(run_dir, kimg)
        if run_dir.resolve() != out_dir.resolve() and not hist:
            raise ValueError(
                f"gan.resume={g.resume}: that checkpoint already reached {kimg:.3f} kimg >= gan.kimg={g.kimg}, so a "
                "run from it has nothing to train, and its run's metrics.jsonl is not beside it. A .ckpt is "
                "continued, not fine-tuned: to fine-tune from it, pack its run first (python -m "
                "reid_gan.gan.embed RUN_DIR --commit HASH --out FILE.pt) and pass gan.resume=FILE.pt; to go on "
                "training it, raise gan.kimg")
        return metrics, {"out_dir": out_dir, "history": hist}

    images, labels, c_pids = training_set(cfg, out_dir)
    G, D = build_networks(cfg)
    module = build_module(cfg, G, D, label_pool=labels)
    # the data stream starts where the (restored) module's counter says: a resume draws the same batches
    loader = build_loader(cfg, images, labels, position=lambda: module.iteration * int(g.batch_size))
    module.c_pids = c_pids
    if transfer is not None:
        transfer_weights(module, transfer, cfg)
        record_transfer(out_dir, transfer)  # a packed file's lineage, for the next pack of this run
    n_g = sum(p.numel() for p in G.parameters())
    n_d = sum(p.numel() for p in D.parameters())
    log.info("G: %s (%.2f M parameters), D: %s (%.2f M parameters)", module.G_class, n_g / 1e6, module.D_class,
             n_d / 1e6)

    trainer = build_trainer(cfg, out_dir, build_tick_callback(cfg, module, images, out_dir, labels is not None))
    t0 = time.time()
    # weights_only: a checkpoint is read as tensors and plain values only, never unpickled code.
    trainer.fit(module, train_dataloaders=loader, ckpt_path=str(ckpt_path) if ckpt_path else None,
                weights_only=True)
    seconds = time.time() - t0
    metrics, hist = history_metrics(out_dir, module.cur_nimg / 1000)
    metrics["train/seconds"] = seconds
    log.info("Finished at %.3f kimg in %.1f s; output in %s", module.cur_nimg / 1000, seconds, out_dir)
    return metrics, {"module": module, "trainer": trainer, "out_dir": out_dir, "history": hist}


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_gan")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, train_gan)


if __name__ == "__main__":
    main()
