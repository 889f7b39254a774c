"""Re-ID training stage: ``python -m reid_gan.train [reid=resnet50] [aug.persons=40] ...``.

Trains the re-ID network with cross-entropy on the training split (+ generated images, ``aug``),
evaluates on query/gallery (Market-1501 protocol) every ``reid.val_every_n_epochs`` and after training,
writes ``metrics.json`` in the run's folder and returns ``optimized_metric`` (``val/mAP``) to sweepers.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)

METRIC_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")


class IndexedDataset:
    """Wraps a dataset so that each item also carries its index (lets the metric undo a distributed
    sampler's padding and interleaving)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return (*self.dataset[i], i)


def eval_loader(dm: Any):
    from torch.utils.data import DataLoader

    base = dm.eval_dataloader()
    return DataLoader(IndexedDataset(base.dataset), batch_size=base.batch_size, shuffle=False,
                      num_workers=base.num_workers, pin_memory=dm.pin_memory,
                      persistent_workers=base.num_workers > 0)


def build_datamodule(cfg: DictConfig):
    """The ReIDDataModule for ``cfg.data``, at ``reid.height x reid.width`` when those are set."""
    from reid_gan.data.datamodule import ReIDDataModule

    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    reid = cfg.get("reid") or {}
    if reid.get("height"):
        data_cfg["height"] = int(reid.height)
    if reid.get("width"):
        data_cfg["width"] = int(reid.width)
    return ReIDDataModule.from_config(data_cfg, seed=int(cfg.seed))


def resolve_ckpt_path(ckpt_path: Any, cfg: DictConfig, stage: str = "train") -> str | None:
    """``None`` → ``None``; ``"last"`` → the newest ``last.ckpt`` of ``stage`` under ``paths.log_dir``;
    anything else must be an existing file."""
    if ckpt_path in (None, "", "null"):
        return None
    if str(ckpt_path) == "last":
        pattern = os.path.join(str(cfg.paths.log_dir), stage, "**", "checkpoints", "last.ckpt")
        found = sorted(glob.glob(pattern, recursive=True), key=os.path.getmtime)
        if not found:
            raise FileNotFoundError(f"ckpt_path=last: no last.ckpt found under {cfg.paths.log_dir}/{stage}/ "
                                    f"(pattern {pattern})")
        log.info("ckpt_path=last → %s", found[-1])
        return found[-1]
    p = Path(str(ckpt_path)).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: file not found")
    return str(p)


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without the ``hydra`` node (for metrics.json)."""
    out: dict[str, Any] = {}
    for k in cfg:
        if k == "hydra":
            continue
        v = cfg[k]
        out[str(k)] = OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
    return out


def study_point(cfg: DictConfig, source: str | None) -> dict[str, Any]:
    """The resolved choices that decide a run's result, as flat keys: logged in one line at start, sent
    to the loggers as plain config keys (W&B's table and parallel-coordinates views compare sweep points by
    them) and written to metrics.json."""
    from reid_gan.config.reid import aug_arm

    arm = aug_arm(cfg.aug.persons, cfg.aug.images_per_person)
    h = int(cfg.reid.height or cfg.data.height)
    w = int(cfg.reid.width or cfg.data.width)
    return {"arch": str(cfg.reid.net.arch), "input_size": f"{h}x{w}", "epochs": int(cfg.reid.max_epochs),
            "pretrained": bool(cfg.reid.get("pretrained")), "aug.arm": arm,
            "aug.persons": int(cfg.aug.persons or 0), "aug.images_per_person": int(cfg.aug.images_per_person or 0),
            "aug.label": str(cfg.aug.label), "aug.source": source, "seed": int(cfg.seed),
            "data": f"{cfg.data.name}:{cfg.data.root}"}


def _start_line(point: dict[str, Any]) -> str:
    arm = point["aug.arm"]
    n = (f" N={point['aug.persons']}" + (" (the baseline)" if point["aug.persons"] == 0 else "") if arm == "persons" else
         f" K={point['aug.images_per_person']}" if arm == "real_variants" else "")
    label = f" label={point['aug.label']}" if arm != "none" else ""
    return (f"train: {point['arch']} {'pretrained' if point['pretrained'] else 'from scratch'} at "
            f"{point['input_size']}, {point['epochs']} epochs | aug={arm}{n}{label} source={point['aug.source']} | "
            f"seed={point['seed']} | data={point['data']}")


def _loggers(cfg: DictConfig) -> list[Any]:
    from reid_gan.utils.instantiate import instantiate_loggers

    lcfg = cfg.get("logger")
    if lcfg and lcfg.get("wandb") and "wandb_group" not in cfg:
        from reid_gan.utils.sweep import wandb_group

        group = wandb_group(str(cfg.task_name))
        if group:
            lcfg = OmegaConf.create(OmegaConf.to_container(lcfg, resolve=True))
            lcfg.wandb.group = group
    return instantiate_loggers(lcfg)


def _save_ranked(cfg: DictConfig, model: Any, dm: Any, out_dir: Path) -> Path | None:
    n = int(cfg.reid.get("ranked_queries", 0))
    last = getattr(model.val_metric, "last_eval", None)
    if n <= 0 or last is None:
        return None
    from reid_gan.report.ranked import save_ranked_figure

    q, g = dm.query_items, dm.gallery_items
    return save_ranked_figure(out_dir / "ranked_lists.png", last["dist"], [i.path for i in q], [i.pid for i in q],
                              [i.camid for i in q], [i.path for i in g], [i.pid for i in g], [i.camid for i in g],
                              num_queries=n)


def _uses_gpu(trainer_cfg: Any) -> bool:
    import torch

    acc = str(trainer_cfg.get("accelerator", "auto"))
    return acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available())


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    import pytorch_lightning as pl

    from reid_gan.reid.augment import apply_augmentation, resolve_source
    from reid_gan.reid.module import ReIDModule
    from reid_gan.utils.instantiate import instantiate_callbacks, log_hyperparameters
    from reid_gan.utils.io import atomic_write_json

    source = resolve_source(cfg.aug, cfg.paths.artifacts)
    point = study_point(cfg, source)
    log.info(_start_line(point))
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
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    ckpt_cb = hydra.utils.instantiate(cfg.reid.checkpoint) if cfg.reid.get("checkpoint") else None
    if ckpt_cb is not None:
        callbacks.append(ckpt_cb)
    loggers = _loggers(cfg)
    trainer_kw = {}
    if cfg.trainer.get("sync_batchnorm") and not _uses_gpu(cfg.trainer):
        log.warning("trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm): off for this CPU run")
        trainer_kw["sync_batchnorm"] = False
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **trainer_kw,
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
                ckpt_path=resolve_ckpt_path(cfg.get("ckpt_path"), cfg))

    # final query/gallery evaluation (the numbers a sweep reports)
    eval_ckpt = None
    if cfg.reid.eval_ckpt == "best" and ckpt_cb is not None and ckpt_cb.best_model_path:
        eval_ckpt = ckpt_cb.best_model_path
    res = trainer.validate(model, dataloaders=val_loader, ckpt_path=eval_ckpt, verbose=False)
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
        fig = _save_ranked(cfg, model, dm, out_dir)
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
