"""The pipeline's runner: runs (or skips) stage invocations over content-addressed artifacts.

Every stage is composed exactly as ``python -m reid_gan.<stage> <the same overrides>`` would compose it,
then wired to its upstream artifacts and run in this process. Its output goes to
``paths.artifacts/<stage>/<key>`` where ``key`` hashes the config fields that affect the stage
(``pipeline.keys.<stage>`` in ``conf/pipeline.yaml``) plus its upstream keys
(:mod:`reid_gan.utils.artifacts`): a stage whose artifact is complete is skipped and says so; a killed or
changed stage, and everything after it, is redone. A file lock per artifact lets parallel pipeline jobs
(``-m``) share upstream work without building anything twice.
"""

from __future__ import annotations

import importlib
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from reid_gan.config import validate_config
from reid_gan.utils.artifacts import artifact_lock, config_key, is_complete, mark_complete, read_complete
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import task_wrapper

log = get_logger(__name__)

__all__ = ["CONF_DIR", "STAGE_TASKS", "StageRun", "Pipeline", "compose_for", "stage_function", "user_overrides",
           "plain_metrics"]

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


@dataclass
class StageRun:
    """One stage invocation inside the pipeline."""

    stage: str                      # registered stage name (and primary config name)
    name: str                       # artifact folder name (stage, or stage + variant)
    fields: list[str] | None = None  # the config fields that key it (None: pipeline.keys.<stage>)
    upstream: list[str] = field(default_factory=list)   # keys of the artifacts it reads
    # extra overrides (wiring, sweep point); "{out}" stands for this stage's artifact folder
    overrides: list[str] = field(default_factory=list)
    # the upstream artifact folders it reads: if one was rebuilt since, this stage is redone too
    inputs: list[Path] = field(default_factory=list)


def user_overrides(cfg: DictConfig) -> list[str]:
    """The overrides the pipeline was called with, minus pipeline/hydra-only ones."""
    task = OmegaConf.select(cfg, "hydra.overrides.task", default=None)
    if task is None:
        try:
            from hydra.core.hydra_config import HydraConfig

            task = HydraConfig.get().overrides.task
        except ValueError:
            task = []
    keep = []
    for o in task:
        key = o.lstrip("+~").split("=", 1)[0]
        if key.startswith(("pipeline", "hydra")) or key in ("task_name", "optimized_metric"):
            continue
        keep.append(o)
    return keep


def compose_for(stage: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<stage>.yaml`` with these overrides (inside or outside a running Hydra app)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    ctx = (nullcontext() if GlobalHydra.instance().is_initialized()
           else initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)))
    with ctx:
        return compose(config_name=stage, overrides=overrides)


#: The stage registry: stage name → its task function ``module:function`` (``python -m <module>`` runs it;
#: its primary config is ``conf/<stage>.yaml``). The pipeline's runner is the only importer of stage entries.
STAGE_TASKS = {
    "make_dataset": "reid_gan.make_dataset:make_dataset",
    "train_gan": "reid_gan.train_gan:train_gan",
    "generate": "reid_gan.generate:generate",
    "filter": "reid_gan.filter:filter",
    "train": "reid_gan.train:train",
    "train_encoder": "reid_gan.train_encoder:train_encoder",
    "invert": "reid_gan.invert:invert",
    "evaluate": "reid_gan.evaluate:evaluate",
    "report": "reid_gan.report.stage:report",
}


def stage_function(stage: str) -> Callable[[DictConfig], Any]:
    """The task function of a registered stage."""
    if stage not in STAGE_TASKS:
        raise KeyError(f"unknown stage {stage!r}; registered: {', '.join(STAGE_TASKS)}")
    module_name, _, attr = STAGE_TASKS[stage].partition(":")
    fn = getattr(importlib.import_module(module_name), attr, None)
    if fn is None:
        raise AttributeError(f"{module_name} has no task function {attr}(cfg)")
    return fn


class Pipeline:
    """Runs stage invocations with skip/lock/marker logic and keeps an index of what ran."""

    def __init__(self, cfg: DictConfig):
        self.base_overrides = user_overrides(cfg)
        self.artifacts = Path(cfg.paths.artifacts)
        self.force = set(OmegaConf.select(cfg, "pipeline.force", default=[]) or [])
        self.keys = {str(k): [str(f) for f in v] for k, v in (OmegaConf.select(cfg, "pipeline.keys") or {}).items()}
        self.index: list[dict[str, Any]] = []

    def fields(self, stage: str) -> list[str]:
        """The config fields that key ``stage``'s artifact (``pipeline.keys.<stage>``)."""
        if stage not in self.keys:
            raise KeyError(f"pipeline.keys.{stage}: not set; list the config fields that affect its output")
        return self.keys[stage]

    def folder(self, name: str, key: str) -> Path:
        return self.artifacts / name / key

    def run(self, sr: StageRun) -> tuple[str, Path, dict[str, Any]]:
        """Run (or skip) one stage. Returns (key, artifact folder, info stored in its marker)."""
        overrides = [*self.base_overrides, *sr.overrides]
        # The key must not depend on where things go: overrides naming the artifact folder ("{out}") are
        # left out of the probe, and the output dir is a fixed placeholder there.
        probe = compose_for(sr.stage, [*(o for o in overrides if "{out}" not in o),
                                       "paths.output_dir=/artifact"])
        key = config_key(probe, sr.fields if sr.fields is not None else self.fields(sr.stage), sr.upstream)
        out = self.folder(sr.name, key)
        overrides = [o.replace("{out}", str(out)) for o in overrides]
        stamps = [read_complete(f).get("stamp") for f in sr.inputs]
        with artifact_lock(out):
            done = read_complete(out) if is_complete(out) else None
            stale = done is not None and done.get("input_stamps") != stamps
            if stale:
                log.info("[pipeline] %-22s an input was rebuilt since %s was made: redoing it", sr.name, out)
            if done is not None and not stale and sr.stage not in self.force and sr.name not in self.force:
                info = done
                log.info("[pipeline] %-22s skipped: artifact %s is complete", sr.name, out)
                self.index.append({"stage": sr.name, "key": key, "dir": str(out), "skipped": True,
                                   "seconds": 0.0, "metrics": info.get("metrics", {})})
                return key, out, info
            log.info("[pipeline] %-22s running → %s", sr.name, out)
            out.mkdir(parents=True, exist_ok=True)
            cfg = compose_for(sr.stage, [*overrides, f"paths.output_dir={out}", "print_config=false"])
            validate_config(cfg)
            t0 = time.perf_counter()
            metrics, objects = task_wrapper(stage_function(sr.stage))(cfg)
            seconds = time.perf_counter() - t0
            info = {
                "stage": sr.stage, "name": sr.name, "key": key, "upstream": sr.upstream,
                "inputs": [str(f) for f in sr.inputs], "input_stamps": stamps,
                "overrides": overrides, "seconds": round(seconds, 2),
                "metrics": plain_metrics(metrics),
                "outputs": {k: str(v) for k, v in (objects or {}).items() if isinstance(v, (str, Path))},
                "config": OmegaConf.to_container(cfg, resolve=True),
            }
            mark_complete(out, info)
            self.index.append({"stage": sr.name, "key": key, "dir": str(out), "skipped": False,
                               "seconds": info["seconds"], "metrics": info["metrics"]})
            return key, out, info


def plain_metrics(metrics: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (metrics or {}).items():
        if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
            v = v.item()
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
    return out
