"""Running a stage: validate → seed → run the task → always close the loggers.

Every ``reid_gan.<stage>`` module is a thin ``@hydra.main`` that calls :func:`run_stage` with its task
function. A task function takes the composed config and returns ``(metrics, objects)``; the wrapper
logs an exception with the output directory, finishes the W&B run whatever happens (so one failed job
does not break a multirun) and returns the metric named by ``optimized_metric`` for sweepers.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

TaskFn = Callable[[DictConfig], "tuple[dict[str, Any], dict[str, Any]]"]


def configure_environment() -> None:
    """Process-wide defaults: W&B offline and silent unless the user says otherwise (never a prompt)."""
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")


def finish_wandb() -> None:
    try:
        import wandb
    except ImportError:  # pragma: no cover
        return
    if wandb.run is not None:
        log.info("Closing the W&B run")
        try:
            wandb.finish()
        except Exception as e:  # noqa: BLE001 - a W&B failure never fails the run
            log.warning("Closing the W&B run failed (%s: %s); the run's own outputs are complete",
                        type(e).__name__, e)


def task_wrapper(task_func: TaskFn) -> TaskFn:
    """Log any exception (with where the output went), always finish W&B, then re-raise."""

    @functools.wraps(task_func)
    def wrap(cfg: DictConfig):
        try:
            log_start_line(cfg)
            return task_func(cfg)
        except Exception:
            log.exception("Stage %s failed", cfg.get("task_name", "?"))
            raise
        finally:
            out = OmegaConf.select(cfg, "paths.output_dir", default=None)
            if out is not None:
                log.info("Output dir: %s", out)
            finish_wandb()

    return wrap


def start_line(cfg: DictConfig) -> str | None:
    """``<stage>: key=value ...`` for the keys the stage's primary config lists in ``log_at_start``: the
    resolved choices that decide its result (the train stage logs its own, derived line)."""
    keys = cfg.get("log_at_start")
    if not keys:
        return None
    parts = []
    for k in keys:
        v = OmegaConf.select(cfg, str(k), default=None)
        if OmegaConf.is_config(v):
            v = OmegaConf.to_container(v, resolve=True)
        parts.append(f"{k}={v}")
    return f"{cfg.get('task_name', '?')}: " + " ".join(parts)


def log_start_line(cfg: DictConfig) -> None:
    line = start_line(cfg)
    if line:
        log.info(line)


def get_metric_value(metrics: dict[str, Any], name: str | None) -> float | None:
    """The value a sweep optimises; a clear error if the task did not produce it."""
    if not name:
        return None
    if name not in metrics:
        raise KeyError(
            f"optimized_metric={name!r} was not produced by this stage; it produced: {sorted(metrics)}"
        )
    value = metrics[name]
    return float(value.item() if hasattr(value, "item") else value)


def run_stage(cfg: DictConfig, task_func: TaskFn) -> float | None:
    """What every stage's ``main`` does. Validates the config before any work (first second)."""
    from reid_gan.config import validate_config

    from reid_gan.utils.sweep import in_multirun, record_failure

    configure_environment()
    try:
        validate_config(cfg)
        if cfg.get("ignore_warnings"):
            warnings.filterwarnings("ignore")
        if cfg.get("print_config", True):
            print_config_tree(cfg)
        metrics, _ = task_wrapper(task_func)(cfg)
        return get_metric_value(metrics, cfg.get("optimized_metric"))
    except Exception as e:
        if not in_multirun():
            raise
        # A job of a sweep fails alone: the reason goes to FAILED.json in its folder, the other jobs go
        # on, and the end-of-sweep summary (reid_gan.utils.sweep.SweepSummary) lists it and exits non-zero.
        where = record_failure(e)
        log.error("This job failed (%s: %s); the sweep goes on. Reason written to %s", type(e).__name__, e, where)
        return float("nan")


def print_config_tree(cfg: DictConfig) -> None:
    """Print the composed config (rich tree), and save it next to the run's outputs."""
    from rich import print as rprint
    from rich.syntax import Syntax
    from rich.tree import Tree

    from reid_gan.utils.io import atomic_write_text

    tree = Tree("CONFIG", guide_style="dim")
    for key in cfg:
        if key == "hydra":
            continue
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=False) if isinstance(node, DictConfig) else str(node)
        tree.add(str(key)).add(Syntax(text, "yaml"))
    rprint(tree)
    out = OmegaConf.select(cfg, "paths.output_dir", default=None)
    if out:
        atomic_write_text(os.path.join(out, "config_tree.yaml"), OmegaConf.to_yaml(cfg, resolve=False))
