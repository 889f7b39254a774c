"""``python -m reid_gan.filter``: remove generated images that are noise or not a person.

Reads a set in Market-1501 layout (``filter.source``: a generated set with ``manifest.jsonl``, or any
Market-layout folder), scores every image with each filter of ``filter.chain`` in ``filter.order``
(pedestrian detector ≥ 0.6, SSIM to the person's reference ≥ 0.75, optional identity consistency),
and writes

* ``filter.out``: the kept set in the same layout (hard links to the source's files, copies where a
  link fails) + ``manifest.jsonl`` (the source's records of the kept images, each with its ``scores``);
  nothing in the source set is modified or deleted;
* ``filter.report_dir``: ``filter_report.md``/``.html`` (the thesis's Tables 4 and 6: images discarded
  per filter, %, total, per person), ``filter_summary.csv``, ``filter_per_person.csv``, ``scores.jsonl``
  and ``scores.csv`` (every image with every score), PNG grids of discarded examples per filter.

Scores are cached (``filter.cache``) by image hash + filter config, so another threshold recomputes
nothing. ``calibrate=true`` scores a *real* set instead (``filter.calibrate_source``) and plots the share
of real images each threshold would reject (thesis fig. 5.3) and the SSIM histogram (fig. 5.4); with
``filter.calibrate_target=0.0645`` it also picks the detector threshold that rejects that share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.data import source_folder
from reid_gan.filters.chain import build_chain, chain_metrics, load_image_set, write_kept
from reid_gan.report.calibration import write_calibration
from reid_gan.report.filters import summary_tables, write_report
from reid_gan.utils.io import atomic_write_json
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)


def calibrate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """``calibrate=true``: score a real set (``filter.calibrate_source``) and report the rejection rates."""
    fcfg = cfg.filter
    root = source_folder(fcfg.calibrate_source, cfg.get("data"))
    image_set = load_image_set(root, list(fcfg.calibrate_splits), key="filter.calibrate_source",
                               on_bad_image=str(fcfg.on_bad_image))
    if fcfg.calibrate_max_images and len(image_set.items) > fcfg.calibrate_max_images:
        keep = np.linspace(0, len(image_set.items) - 1, fcfg.calibrate_max_images).round().astype(int)
        image_set.items = [image_set.items[i] for i in sorted(set(keep))]
    result = build_chain(fcfg).run(image_set)
    return write_calibration(result, fcfg, root)


def filter(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:  # noqa: A001 - the stage's name
    """The filter stage's task function (see the module docstring)."""
    if cfg.get("calibrate", False):
        return calibrate(cfg)
    fcfg = cfg.filter
    source = source_folder(fcfg.source, cfg.get("data"))
    image_set = load_image_set(source, list(fcfg.splits), key="filter.source", on_bad_image=str(fcfg.on_bad_image))
    if not image_set.has_manifest:
        log.info("filter.source=%s has no manifest.jsonl: pids from file names, SSIM reference = first image",
                 source)
    result = build_chain(fcfg).run(image_set)
    out = write_kept(result, fcfg.out, fcfg.link)
    paths = write_report(result, fcfg.report_dir, int(fcfg.grid_examples), source, out)
    metrics = chain_metrics(result)
    atomic_write_json(Path(fcfg.report_dir) / "metrics.json", metrics)
    summary, _ = summary_tables(result)
    log.info("filter summary:\n%s", summary.to_markdown(index=False))
    return metrics, {"kept_dir": out, "result": result, **paths}


@hydra.main(version_base="1.3", config_path="../conf", config_name="filter")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, filter)


if __name__ == "__main__":
    main()
