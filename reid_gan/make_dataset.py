"""``python -m reid_gan.make_dataset``: render the embedded synthetic dataset (Market-1501 layout).

Writes to ``data.root`` (default ``${paths.data_dir}/synthetic-market``); nothing is done when a complete
render of the same ``data.render`` parameters is already there, a partial one is resumed
(:mod:`reid_gan.data.synthetic`). Then measures the share of images on which OpenCV's HOG people detector
fires (calibrated score >= ``hog_threshold``) on ``hog_check_images`` images spread over the dataset, and
writes it to ``<root>/hog_check.json`` (:mod:`reid_gan.data.synthetic.hog_check`) and the stage's metrics.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.config import ConfigError
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)


def make_dataset(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    from reid_gan.data.synthetic import GRID_NAME, MARKER, RenderParams, ensure_rendered, is_rendered
    from reid_gan.data.synthetic.hog_check import write_hog_check

    if cfg.data.name != "synthetic":
        raise ConfigError(f"data.name: make_dataset renders the synthetic dataset only (got {cfg.data.name!r}; "
                          f"use data=synthetic)")
    if cfg.data.get("render") is None:
        raise ConfigError("data.render: missing (the renderer's parameters; see conf/data/synthetic.yaml)")
    n_check = int(cfg.get("hog_check_images", 0))
    thr = float(cfg.get("hog_threshold", 0.6))
    if n_check < 0:
        raise ConfigError(f"hog_check_images: must be >= 0 (got {n_check})")
    if not 0.0 <= thr <= 1.0:
        raise ConfigError(f"hog_threshold: must be in [0, 1] (got {thr})")

    root = Path(cfg.data.root)
    params = RenderParams.from_config(cfg.data.render)
    existed = is_rendered(root, params)
    t0 = time.perf_counter()
    ensure_rendered(root, params, progress=bool(cfg.get("progress", True)))
    seconds = time.perf_counter() - t0
    stats = json.loads((root / MARKER).read_text())["stats"]
    metrics: dict[str, Any] = {
        "data/images": stats["total_images"],
        "data/train_ids": stats["splits"]["bounding_box_train"]["identities"],
        "data/test_ids": stats["test_identities"],
        "data/render_seconds": 0.0 if existed else round(seconds, 2),
    }
    if existed:
        log.info("%s already holds this render (fingerprint %s): nothing to do", root, params.fingerprint())
    else:
        log.info("Rendered %d images into %s in %.1f s", stats["total_images"], root, seconds)
    if n_check > 0:
        hog = write_hog_check(root, n_check, thr, params.fingerprint())
        metrics["data/hog_pass_rate_person"] = hog["pass_rate_person"]
        metrics["data/hog_pass_rate_all"] = hog["pass_rate_all"]
        log.info("HOG people detector (score >= %.2f): %.1f %% of %d person images, %.1f %% of all %d checked",
                 thr, 100 * hog["pass_rate_person"], hog["person_images"], 100 * hog["pass_rate_all"],
                 hog["images"])
    return metrics, {"root": str(root), "grid": str(root / GRID_NAME)}


@hydra.main(version_base="1.3", config_path="../conf", config_name="make_dataset")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, make_dataset)


if __name__ == "__main__":
    main()
