"""What the re-ID stages (train, evaluate) are built from: the DataModule at the configured size, the eval
loader, checkpoint resolution, the model, the trainer and its loggers, the run record, features and the
ranked-lists figure."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["IndexedDataset", "eval_loader", "build_datamodule", "resolve_ckpt_path", "study_point", "start_line", "build_loggers",
           "build_model", "build_trainer", "final_metrics", "write_run_record", "save_ranked", "uses_gpu",
           "extract_features", "METRIC_KEYS"]

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

    import torch

    base = dm.eval_dataloader()
    # its own generator: starting an iterator draws a worker seed, and drawing it from the global generator
    # would make how often training is validated change the training's random augmentation afterwards
    return DataLoader(IndexedDataset(base.dataset), batch_size=base.batch_size, shuffle=False,
                      num_workers=base.num_workers, pin_memory=dm.pin_memory,
                      persistent_workers=base.num_workers > 0, generator=torch.Generator().manual_seed(0))


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


def start_line(point: dict[str, Any]) -> str:
    arm = point["aug.arm"]
    n = (f" N={point['aug.persons']}" + (" (the baseline)" if point["aug.persons"] == 0 else "") if arm == "persons" else
         f" K={point['aug.images_per_person']}" if arm == "real_variants" else "")
    label = f" label={point['aug.label']}" if arm != "none" else ""
    return (f"train: {point['arch']} {'pretrained' if point['pretrained'] else 'from scratch'} at "
            f"{point['input_size']}, {point['epochs']} epochs | aug={arm}{n}{label} source={point['aug.source']} | "
            f"seed={point['seed']} | data={point['data']}")


def build_loggers(cfg: DictConfig) -> list[Any]:
    from reid_gan.utils.instantiate import instantiate_loggers

    lcfg = cfg.get("logger")
    if lcfg and lcfg.get("wandb") and "wandb_group" not in cfg:
        from reid_gan.utils.sweep import wandb_group

        group = wandb_group(str(cfg.task_name))
        if group:
            lcfg = OmegaConf.create(OmegaConf.to_container(lcfg, resolve=True))
            lcfg.wandb.group = group
    return instantiate_loggers(lcfg)


def build_model(cfg: DictConfig, num_classes: int, lsro_from: int | None):
    """The :class:`ReIDModule` of ``reid.net`` (``num_classes`` outputs), its optimiser and scheduler;
    ``lsro_from``: the first synthetic class index with LSRO labels (else ``None``)."""
    import hydra

    from reid_gan.reid.module import ReIDModule

    net = hydra.utils.instantiate(cfg.reid.net, num_classes=num_classes)
    return ReIDModule(net=net, optimizer=hydra.utils.instantiate(cfg.reid.optimizer),
                      scheduler=hydra.utils.instantiate(cfg.reid.scheduler) if cfg.reid.get("scheduler") else None,
                      label_smoothing=float(cfg.reid.label_smoothing), lsro_from=lsro_from,
                      backbone_lr_mult=float(cfg.reid.backbone_lr_mult), distance=str(cfg.reid.distance))


def build_trainer(cfg: DictConfig) -> tuple[Any, Any, list[Any]]:
    """``(trainer, checkpoint callback or None, loggers)`` of the train stage: the configured callbacks plus
    the NaN/inf guard, ``last.ckpt`` every epoch, atomic checkpoint writes."""
    import hydra

    from reid_gan.utils.callbacks import AtomicCheckpointIO, FiniteLossGuard, LastCheckpointEveryEpoch
    from reid_gan.utils.instantiate import instantiate_callbacks

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
    return trainer, ckpt_cb, loggers


def final_metrics(cfg: DictConfig, trainer: Any, model: Any, val_loader: Any, ckpt_cb: Any) -> dict[str, Any]:
    """The final query/gallery evaluation (the numbers a sweep reports): ``val/…``, ``seed``, ``epochs`` and
    ``eval_weights`` (the best checkpoint with ``reid.eval_ckpt=best``, else the last weights)."""
    eval_ckpt = None
    if cfg.reid.eval_ckpt == "best" and ckpt_cb is not None and ckpt_cb.best_model_path:
        eval_ckpt = ckpt_cb.best_model_path
    last = getattr(model, "last_val", None)
    if eval_ckpt is None and last is not None and last["global_step"] == int(trainer.global_step) and last["metrics"]:
        # training ended right after a validation of these same weights: its numbers are the final ones
        # (evaluating again would give the same numbers: eval mode, a fixed query/gallery order)
        log.info("Final evaluation: the validation after step %d (the last weights)", last["global_step"])
        metrics: dict[str, Any] = dict(last["metrics"])
    else:
        res = trainer.validate(model, dataloaders=val_loader, ckpt_path=eval_ckpt, verbose=False, weights_only=True)
        metrics = {k: float(v) for k, v in res[0].items() if k.startswith("val/")}
    metrics.update({"seed": int(cfg.seed), "epochs": int(trainer.current_epoch), "eval_weights": eval_ckpt or "last"})
    return metrics


def write_run_record(cfg: DictConfig, metrics: dict[str, Any], point: dict[str, Any], model: Any, dm: Any,
                     out_dir: Path) -> Path | None:
    """``<out_dir>/metrics.json`` (metrics, study point, command-line overrides, config) and the ranked-lists
    figure; returns the figure's path (``None`` without one)."""
    import json

    from reid_gan.utils.config import plain_config
    from reid_gan.utils.io import atomic_write_json

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
    log.info("Query/gallery: %s", json.dumps({k: round(metrics[f"val/{k}"], 4) for k in METRIC_KEYS
                                              if f"val/{k}" in metrics}))
    return fig


def save_ranked(cfg: DictConfig, model: Any, dm: Any, out_dir: Path) -> Path | None:
    n = int(cfg.reid.get("ranked_queries", 0))
    last = getattr(model.val_metric, "last_eval", None)
    if n <= 0 or last is None:
        return None
    from reid_gan.report.ranked import save_ranked_figure

    q, g = dm.query_items, dm.gallery_items
    return save_ranked_figure(out_dir / "ranked_lists.png", last["dist"], [i.path for i in q], [i.pid for i in q],
                              [i.camid for i in q], [i.path for i in g], [i.pid for i in g], [i.camid for i in g],
                              num_queries=n)


def uses_gpu(trainer_cfg: Any) -> bool:
    import torch

    acc = str(trainer_cfg.get("accelerator", "auto"))
    return acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available())


def extract_features(net: Any, loader: Any, device: str = "cpu"):
    """``(features, pids, camids, is_query)`` for an eval loader of ``(img, pid, camid, is_query)``."""
    import torch

    feats, pids, cams, isq = [], [], [], []
    net = net.to(device).eval()
    with torch.no_grad():
        for batch in loader:
            feats.append(net(batch[0].to(device)).float().cpu())
            pids.append(batch[1])
            cams.append(batch[2])
            isq.append(batch[3])
    return torch.cat(feats), torch.cat(pids), torch.cat(cams), torch.cat(isq).bool()
