"""``python -m reid_gan.make_dataset``: render the embedded synthetic dataset (Market-1501 layout).

Writes to ``data.root`` (default ``${paths.data_dir}/synthetic-market``); nothing is done when a complete
render of the same ``data.render`` parameters is already there, a partial one is resumed. Then measures
the share of images on which OpenCV's HOG people detector fires (calibrated score >= ``hog_threshold``)
on ``hog_check_images`` images spread over the dataset, and writes it to ``<root>/hog_check.json`` and
the stage's metrics.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.config import ConfigError
from reid_gan.utils.io import atomic_write_json
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)


def hog_pass_rate(root: str | Path, n_images: int, threshold: float = 0.6) -> dict[str, Any]:
    """HOG detector pass rates on up to ``n_images`` person images (pid > 0) and on all images.

    The images are taken evenly spaced over the sorted file list of each split (deterministic).
    """
    import cv2

    from reid_gan.data.market1501 import parse_name
    from reid_gan.data.synthetic import SPLITS
    from reid_gan.filters.hog import HOGDetector

    root = Path(root)
    files = sorted(p for s in SPLITS for p in (root / s).glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"{root}: no images in {', '.join(SPLITS)}")
    idx = np.unique(np.linspace(0, len(files) - 1, min(n_images, len(files))).round().astype(int))
    sel = [files[i] for i in idx]
    imgs = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sel]
    bad = [str(p) for p, im in zip(sel, imgs) if im is None]
    if bad:
        raise OSError(f"unreadable image(s): {bad[:5]}")
    det = HOGDetector()
    scores = det.score(imgs)
    pids = np.array([parse_name(p.name)[0] for p in sel])
    person = pids > 0
    ok = scores >= threshold
    return {
        "threshold": threshold,
        "images": int(len(sel)),
        "person_images": int(person.sum()),
        "pass_rate_person": float(ok[person].mean()) if person.any() else float("nan"),
        "pass_rate_all": float(ok.mean()),
        "pass_rate_distractor_junk": float(ok[~person].mean()) if (~person).any() else float("nan"),
        "median_score_person": float(np.median(scores[person])) if person.any() else float("nan"),
    }


def make_dataset(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    from reid_gan.data.synthetic import MARKER, RenderParams, ensure_rendered, is_rendered

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
    import json

    info = json.loads((root / MARKER).read_text())
    stats = info["stats"]
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
        hog = hog_pass_rate(root, n_check, thr)
        hog["fingerprint"] = params.fingerprint()
        atomic_write_json(root / "hog_check.json", hog)
        metrics["data/hog_pass_rate_person"] = hog["pass_rate_person"]
        metrics["data/hog_pass_rate_all"] = hog["pass_rate_all"]
        log.info("HOG people detector (score >= %.2f): %.1f %% of %d person images, %.1f %% of all %d checked",
                 thr, 100 * hog["pass_rate_person"], hog["person_images"], 100 * hog["pass_rate_all"],
                 hog["images"])
    return metrics, {"root": str(root), "grid": str(root / "sample_grid.png")}


@hydra.main(version_base="1.3", config_path="../conf", config_name="make_dataset")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, make_dataset)


if __name__ == "__main__":
    main()
