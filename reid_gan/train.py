"""Re-ID training stage: ``python -m reid_gan.train [reid=resnet50] [aug.persons=40] ...``.

Trains the re-ID network with cross-entropy on the training split (+ generated images, ``aug``),
evaluates on query/gallery (Market-1501 protocol) every ``reid.val_every_n_epochs`` and after training,
writes ``metrics.json`` in the run's folder and returns ``optimized_metric`` (``val/mAP``) to sweepers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
import hydra
from omegaconf import DictConfig, OmegaConf

from reid_gan.reid.training import (
    build_datamodule,
    build_loggers,
    eval_loader,
    resolve_ckpt_path,
    save_ranked,
    start_line,
    study_point,
    uses_gpu,
)
from reid_gan.utils.config import plain_config
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)

METRIC_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    import pytorch_lightning as pl

    from reid_gan.reid.augment import apply_augmentation, resolve_source
    from reid_gan.reid.module import ReIDModule
    from reid_gan.utils.callbacks import AtomicCheckpointIO, FiniteLossGuard, LastCheckpointEveryEpoch
    from reid_gan.utils.instantiate import instantiate_callbacks, log_hyperparameters
    from reid_gan.utils.io import atomic_write_json

    source = resolve_source(cfg.aug, cfg.paths.artifacts)
    point = study_point(cfg, source)
    log.info(start_line(point))
    pl.seed_everything(int(cfg.seed), workers=True)
    out_dir = Path(str(cfg.paths.output_dir))
    dm = build_datamodule(cfg)
    aug = apply_augmentation(dm, {**OmegaConf.to_container(cfg.aug, resolve=True), "source": source},
                             cfg.paths.artifacts)  # checks the generated set before any training
    num_real = int(dm.dataset.num_train_pids)
    lsro = aug.label == "lsro" and aug.images > 0
    num_classes = num_real if lsro else int(dm.num_classes)
    log.info("Training classes: %d real%s; %d training images", num_real,
             f" + {num_classes - num_real} synthetic" if num_classes > num_real else
             (" (synthetic images with LSRO labels)" if lsro else ""), len(dm.train_items))

    net = hydra.utils.instantiate(cfg.reid.net, num_classes=num_classes)
    model = ReIDModule(net=net, optimizer=hydra.utils.instantiate(cfg.reid.optimizer),
                       scheduler=hydra.utils.instantiate(cfg.reid.scheduler) if cfg.reid.get("scheduler") else None,
                       label_smoothing=float(cfg.reid.label_smoothing), lsro_from=num_real if lsro else None,
                       backbone_lr_mult=float(cfg.reid.backbone_lr_mult), distance=str(cfg.reid.distance))
    callbacks = [*instantiate_callbacks(cfg.get("callbacks")), FiniteLossGuard()]  # NaN/inf loss: stop, name the step
    ckpt_cb = hydra.utils.instantiate(cfg.reid.checkpoint) if cfg.reid.get("checkpoint") else None
    if ckpt_cb is not None:
        callbacks += [LastCheckpointEveryEpoch(ckpt_cb), ckpt_cb]  # last.ckpt: every epoch, not only improved ones
    loggers = build_loggers(cfg)
    trainer_kw = {}
    if cfg.trainer.get("sync_batchnorm") and not uses_gpu(cfg.trainer):
        log.warning("trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm): off for this CPU run")
        trainer_kw["sync_batchnorm"] = False
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **trainer_kw,
                                      plugins=[AtomicCheckpointIO()],  # a full disk never truncates last.ckpt
                                      max_epochs=int(cfg.reid.max_epochs),
                                      check_val_every_n_epoch=int(cfg.reid.val_every_n_epochs),
                                      enable_checkpointing=ckpt_cb is not None)
    extra = {"model/params": sum(p.numel() for p in net.parameters()), "train/num_classes": num_classes,
             "train/num_images": len(dm.train_items), **aug.as_dict()}
    # the study point as plain top-level keys; the rest of the config nested (its aug node is in the point)
    hp = {k: v for k, v in plain_config(cfg).items() if k not in ("aug", "seed")}
    log_hyperparameters(loggers, OmegaConf.create(hp), {**point, **extra})

    val_loader = eval_loader(dm)
    trainer.fit(model, train_dataloaders=dm.train_dataloader(), val_dataloaders=val_loader,
                ckpt_path=resolve_ckpt_path(cfg.get("ckpt_path"), cfg), weights_only=True)

    # final query/gallery evaluation (the numbers a sweep reports)
    eval_ckpt = None
    if cfg.reid.eval_ckpt == "best" and ckpt_cb is not None and ckpt_cb.best_model_path:
        eval_ckpt = ckpt_cb.best_model_path
    res = trainer.validate(model, dataloaders=val_loader, ckpt_path=eval_ckpt, verbose=False, weights_only=True)
    metrics: dict[str, Any] = {k: float(v) for k, v in res[0].items() if k.startswith("val/")}
    metrics.update({"seed": int(cfg.seed), "epochs": int(trainer.current_epoch),
                    "eval_weights": eval_ckpt or "last", **extra})
    objects: dict[str, Any] = {"model": model, "datamodule": dm, "trainer": trainer, "aug": aug}
    if trainer.is_global_zero:
        overrides = []
        try:
            from hydra.core.hydra_config import HydraConfig

            overrides = list(HydraConfig.get().overrides.task)
        except Exception:  # noqa: BLE001
            pass
        record = {"metrics": metrics, "point": point, "overrides": overrides, "config": plain_config(cfg)}
        atomic_write_json(out_dir / "metrics.json", record)
        fig = save_ranked(cfg, model, dm, out_dir)
        if fig is not None:
            log.info("Ranked lists: %s", fig)
            objects["ranked_png"] = fig
        log.info("Query/gallery: %s", json.dumps({k: round(metrics[f"val/{k}"], 4) for k in METRIC_KEYS
                                                  if f"val/{k}" in metrics}))
    if ckpt_cb is not None:
        objects["best_ckpt"], objects["last_ckpt"] = ckpt_cb.best_model_path, ckpt_cb.last_model_path
    return metrics, objects


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, train)


if __name__ == "__main__":
    main()
