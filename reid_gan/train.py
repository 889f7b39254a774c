"""Re-ID training stage: ``python -m reid_gan.train [reid=resnet50] [aug.persons=40] ...``.

Trains the re-ID network with cross-entropy on the training split (+ generated images, ``aug``),
evaluates on query/gallery (Market-1501 protocol) every ``reid.val_every_n_epochs`` and after training,
writes ``metrics.json`` in the run's folder and returns ``optimized_metric`` (``val/mAP``) to sweepers.
The parts: :mod:`reid_gan.reid.training` (data, model, trainer, run record), :mod:`reid_gan.reid.augment`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
import hydra
from omegaconf import DictConfig, OmegaConf

from reid_gan.reid.training import (build_datamodule, build_model, build_trainer, eval_loader, final_metrics,
                                    resolve_ckpt_path, start_line, study_point, write_run_record)
from reid_gan.utils.config import plain_config
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    import pytorch_lightning as pl

    from reid_gan.reid.augment import apply_augmentation, resolve_source
    from reid_gan.utils.instantiate import log_hyperparameters

    source = resolve_source(cfg.aug, cfg.paths.artifacts)
    point = study_point(cfg, source)
    log.info(start_line(point))
    pl.seed_everything(int(cfg.seed), workers=True)
    dm = build_datamodule(cfg)
    aug = apply_augmentation(dm, {**OmegaConf.to_container(cfg.aug, resolve=True), "source": source},
                             cfg.paths.artifacts)  # checks the generated set before any training
    num_real = int(dm.dataset.num_train_pids)
    lsro = aug.label == "lsro" and aug.images > 0
    num_classes = num_real if lsro else int(dm.num_classes)
    log.info("Training classes: %d real%s; %d training images", num_real,
             f" + {num_classes - num_real} synthetic" if num_classes > num_real else
             (" (synthetic images with LSRO labels)" if lsro else ""), len(dm.train_items))

    model = build_model(cfg, num_classes, num_real if lsro else None)
    trainer, ckpt_cb, loggers = build_trainer(cfg)
    extra = {"model/params": sum(p.numel() for p in model.net.parameters()), "train/num_classes": num_classes,
             "train/num_images": len(dm.train_items), **aug.as_dict()}
    # the study point as plain top-level keys; the rest of the config nested (its aug node is in the point)
    hp = {k: v for k, v in plain_config(cfg).items() if k not in ("aug", "seed")}
    log_hyperparameters(loggers, OmegaConf.create(hp), {**point, **extra})

    val_loader = eval_loader(dm)
    trainer.fit(model, train_dataloaders=dm.train_dataloader(), val_dataloaders=val_loader,
                ckpt_path=resolve_ckpt_path(cfg.get("ckpt_path"), cfg), weights_only=True)
    metrics = {**final_metrics(cfg, trainer, model, val_loader, ckpt_cb), **extra}
    objects: dict[str, Any] = {"model": model, "datamodule": dm, "trainer": trainer, "aug": aug}
    if trainer.is_global_zero:
        fig = write_run_record(cfg, metrics, point, model, dm, Path(str(cfg.paths.output_dir)))
        if fig is not None:
            objects["ranked_png"] = fig
    if ckpt_cb is not None:
        objects["best_ckpt"], objects["last_ckpt"] = ckpt_cb.best_model_path, ckpt_cb.last_model_path
    return metrics, objects


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, train)


if __name__ == "__main__":
    import sys

    from reid_gan.utils.sweep import expand_ellipsis

    sys.argv[1:] = expand_ellipsis(sys.argv[1:])  # the thesis's aug.persons=10,20,...,320, as typed
    main()
