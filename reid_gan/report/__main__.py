"""``python -m reid_gan.report sweep_dir=...``: tables (Markdown, CSV) and plots (PNG) of a sweep."""

from __future__ import annotations

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
import hydra
from omegaconf import DictConfig

from reid_gan.report.stage import report
from reid_gan.utils.task import run_stage


@hydra.main(version_base="1.3", config_path="../../conf", config_name="report")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, report)


if __name__ == "__main__":
    main()
