"""Evaluate a re-ID checkpoint: ``python -m reid_gan.evaluate ckpt_path=PATH|last [data=...]``.

Rebuilds the network from the checkpoint alone (``reid_net`` entry written by the train stage; read with
``torch.load(weights_only=True)``), extracts query/gallery features, reports Rank@1/5/10, mAP, mINP on
the Market-1501 protocol (``test/...``), writes ``metrics.json`` and a ranked-list PNG
(``ranked_lists.png``: query + top-10 gallery, green = correct, red = wrong).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
import hydra
from omegaconf import DictConfig, OmegaConf

from reid_gan.utils.logging import get_logger
from reid_gan.utils.runtime import pick_device
from reid_gan.utils.task import run_stage

log = get_logger(__name__)


def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    from reid_gan.metrics.rank_metric import RankMetrics
    from reid_gan.reid.checkpoint import load_reid_net
    from reid_gan.reid.training import build_datamodule, extract_features, resolve_ckpt_path
    from reid_gan.utils.io import atomic_write_json

    ckpt = resolve_ckpt_path(cfg.get("ckpt_path"), cfg, stage="train")
    if ckpt is None:
        raise ValueError("ckpt_path: give a checkpoint of reid_gan.train (or ckpt_path=last)")
    net, distance = load_reid_net(ckpt)
    if cfg.reid.get("distance") and OmegaConf.select(cfg, "reid.distance") != distance:
        log.info("Ranking with reid.distance=%s (the checkpoint was trained with %s)", cfg.reid.distance, distance)
        distance = str(cfg.reid.distance)
    dm = build_datamodule(cfg)
    dm.setup()
    device = pick_device("auto").type
    feats, pids, cams, isq = extract_features(net, dm.eval_dataloader(), device)
    metric = RankMetrics(distance=distance)
    metric.update(feats, pids, cams, isq)
    out = metric.compute()
    metrics = {f"test/{k}": float(v) for k, v in out.items() if k != "num_valid_q"}
    metrics["test/num_valid_q"] = int(out["num_valid_q"])
    metrics["ckpt_path"] = ckpt
    out_dir = Path(str(cfg.paths.output_dir))
    atomic_write_json(out_dir / "metrics.json", {"metrics": metrics})
    objects: dict[str, Any] = {"net": net}
    n = int(cfg.reid.get("ranked_queries", 6)) or 6
    from reid_gan.report.ranked import save_ranked_figure

    q, g = dm.query_items, dm.gallery_items
    objects["ranked_png"] = save_ranked_figure(
        out_dir / "ranked_lists.png", metric.last_eval["dist"], [i.path for i in q], [i.pid for i in q],
        [i.camid for i in q], [i.path for i in g], [i.pid for i in g], [i.camid for i in g], num_queries=n)
    log.info("%s: Rank@1 %.4f  Rank@5 %.4f  Rank@10 %.4f  mAP %.4f  mINP %.4f  (%s distance; ranked lists: %s)",
             ckpt, metrics["test/rank1"], metrics["test/rank5"], metrics["test/rank10"], metrics["test/mAP"],
             metrics["test/mINP"], distance, objects["ranked_png"])
    return metrics, objects


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, evaluate)


if __name__ == "__main__":
    main()
