"""Schemas of the groups every stage shares: paths, trainer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from reid_gan.config import check


@dataclass
class PathsSchema:
    root_dir: str = "."
    data_dir: str = "${paths.root_dir}/data"
    log_dir: str = "${paths.root_dir}/logs"
    artifacts: str = "${paths.root_dir}/artifacts"
    output_dir: str = "${hydra:runtime.output_dir}"
    work_dir: str = "${launch_dir:}"
    # Local pretrained files; null → the stage's named substitute runs and the log says so.
    weights_dir: str = "${paths.root_dir}/weights"


@dataclass
class TrainerSchema:
    """The subset of ``pytorch_lightning.Trainer`` arguments we configure (others: add them here)."""

    _target_: str = "pytorch_lightning.Trainer"
    default_root_dir: str = "${paths.output_dir}"
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    max_epochs: Optional[int] = None
    min_epochs: Optional[int] = None
    max_steps: int = -1
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    fast_dev_run: Any = False
    check_val_every_n_epoch: Optional[int] = 1
    val_check_interval: Any = None
    num_sanity_val_steps: Optional[int] = 0
    log_every_n_steps: int = 10
    deterministic: Any = False
    benchmark: Optional[bool] = None
    sync_batchnorm: bool = False
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    enable_checkpointing: Optional[bool] = None
    gradient_clip_val: Optional[float] = None
    accumulate_grad_batches: int = 1

    def __post_init__(self) -> None:
        check(self.accelerator in ("auto", "cpu", "gpu", "cuda", "mps", "tpu"), "accelerator",
              "must be one of auto, cpu, gpu, cuda, mps, tpu", self.accelerator)
        check(self.num_nodes >= 1, "num_nodes", "must be >= 1", self.num_nodes)
        check(self.max_epochs is None or self.max_epochs >= -1, "max_epochs", "must be >= -1", self.max_epochs)
        check(self.min_epochs is None or self.min_epochs >= 0, "min_epochs", "must be >= 0 or null", self.min_epochs)
        check(self.max_steps >= -1, "max_steps", "must be >= 0, or -1 (no limit)", self.max_steps)
        check(self.check_val_every_n_epoch is None or self.check_val_every_n_epoch >= 1, "check_val_every_n_epoch",
              "must be >= 1 or null", self.check_val_every_n_epoch)
        check(self.num_sanity_val_steps is None or self.num_sanity_val_steps >= -1, "num_sanity_val_steps",
              "must be >= 0, or -1 (all)", self.num_sanity_val_steps)
        check(self.gradient_clip_val is None or self.gradient_clip_val >= 0, "gradient_clip_val", "must be >= 0 or null",
              self.gradient_clip_val)
        check(self.log_every_n_steps >= 1, "log_every_n_steps", "must be >= 1", self.log_every_n_steps)
        check(self.accumulate_grad_batches >= 1, "accumulate_grad_batches", "must be >= 1",
              self.accumulate_grad_batches)


def register(cs: ConfigStore) -> None:
    cs.store(group="paths", name="paths_schema", node=PathsSchema)
    cs.store(group="trainer", name="trainer_schema", node=TrainerSchema)
