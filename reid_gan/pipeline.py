"""``python -m reid_gan.pipeline``: the whole study, one command.

make_dataset → train_gan → generate → filter → train (baseline + ``aug.persons`` sweep × seeds) → report.

Each stage's output goes to ``paths.artifacts/<stage>/<key>``; the key hashes the config fields listed
for the stage in ``pipeline.keys`` (``conf/pipeline.yaml``) plus its upstream keys, so a complete
artifact is skipped and a changed setting redoes only what depends on it. The runner and the stage
registry: :mod:`reid_gan.study.runner`; the study's order and wiring: :mod:`reid_gan.study.flow`.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.study.flow import run_study
from reid_gan.utils.task import run_stage


def pipeline(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the study; returns the sweep's metrics and the index of artifacts."""
    return run_study(cfg)


@hydra.main(version_base="1.3", config_path="../conf", config_name="pipeline")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, pipeline)


if __name__ == "__main__":
    main()
