"""The report stage's task: tables and plots from a sweep folder (``python -m reid_gan.report``)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from reid_gan.report.sweep import summarise, collect_runs, write_sweep_report


def report(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    if cfg.get("study_dir"):
        from reid_gan.report.study import build_study_report, log_to_wandb

        res = build_study_report(cfg.study_dir, cfg.get("report_dir"))
        log_to_wandb(cfg, res)
        n = float(res["summary"]["seeds"].sum()) if "summary" in res else 0.0
        return {"report/runs": n}, res
    sweep_dir = cfg.get("sweep_dir")
    if not sweep_dir:
        raise ValueError("sweep_dir: give the multirun folder of a reid_gan.train sweep (or study_dir=, a "
                         "pipeline run's folder) "
                         "(e.g. sweep_dir=logs/train/multiruns/2026-01-01_12-00-00)")
    paths = write_sweep_report(sweep_dir, cfg.get("report_dir"))
    summary = summarise(collect_runs(sweep_dir))
    metrics = {"report/runs": float(summary["seeds"].sum()), "report/settings": float(len(summary))}
    return metrics, {"paths": paths, "summary": summary}
