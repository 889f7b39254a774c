"""Filter calibration on real images (thesis figs. 5.3 and 5.4): rejection rate vs threshold, score
histograms, and the threshold that rejects a target share of real images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reid_gan.filters.chain import ChainResult
from reid_gan.utils.io import atomic_path, atomic_write_text
from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["pick_threshold", "rejection_curve", "write_calibration"]


def pick_threshold(scores: np.ndarray, target: float) -> tuple[float, float]:
    """The largest threshold whose real rejection rate (share of scores < threshold) is <= ``target``;
    returns (threshold, achieved rate)."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    k = int(np.floor(target * len(s) + 1e-9))
    if k >= len(s):
        return 1.0, float(np.mean(s < 1.0))
    thr = float(s[k])
    return thr, float(np.mean(s < thr))


def rejection_curve(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    return np.array([float(np.mean(s < t)) for t in thresholds])


def write_calibration(result: ChainResult, fcfg: Any, root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Share of the real images of ``result`` each threshold would reject (CSV, curve, histograms, report in
    ``filter.report_dir``); with ``filter.calibrate_target`` also the threshold that rejects that share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reid_gan.report.document import Report

    image_set = result.image_set
    out_dir = Path(fcfg.report_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = np.round(np.linspace(0, 1, 101), 2)
    curves = {f.name: rejection_curve(result.scores[f.name], grid) for f in result.filters}
    df = pd.DataFrame({"threshold": grid, **{f"rejected_{k}_%": np.round(100 * v, 3) for k, v in curves.items()}})
    atomic_write_text(out_dir / "calibration.csv", df.to_csv(index=False))

    metrics: dict[str, Any] = {"calibrate/images": len(image_set.items)}
    rows = []
    for f in result.filters:
        rate = float(np.mean(~result.passes[f.name]))
        metrics[f"calibrate/{f.name}_rejected_at_threshold"] = rate
        row = {"filter": f.name, "threshold": f.threshold, "real_rejected_%": round(100 * rate, 2)}
        if fcfg.calibrate_target is not None:
            thr, achieved = pick_threshold(result.scores[f.name], float(fcfg.calibrate_target))
            row.update({"target_%": round(100 * float(fcfg.calibrate_target), 2), "picked_threshold": round(thr, 4),
                        "picked_rejected_%": round(100 * achieved, 2)})
            metrics[f"calibrate/{f.name}_picked_threshold"] = thr
            metrics[f"calibrate/{f.name}_picked_rejected"] = achieved
        rows.append(row)
    table = pd.DataFrame(rows)
    atomic_write_text(out_dir / "calibration_summary.csv", table.to_csv(index=False))

    fig, ax = plt.subplots(figsize=(6, 4))
    for f in result.filters:
        ax.plot(grid, 100 * curves[f.name], label=f"{f.name}")
        ax.axvline(f.threshold, ls=":", color=ax.lines[-1].get_color())
    if fcfg.calibrate_target is not None:
        ax.axhline(100 * float(fcfg.calibrate_target), ls="--", color="grey", label="target")
    ax.set_xlabel("threshold")
    ax.set_ylabel("real images rejected (%)")
    ax.set_title(f"Rejection of real images vs threshold ({len(image_set.items)} images)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    curve_png = out_dir / "calibration_rejection.png"
    with atomic_path(curve_png) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)

    hist_pngs = {}
    for f in result.filters:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist(result.scores[f.name], bins=50, range=(min(0.0, float(np.min(result.scores[f.name]))), 1.0))
        ax.axvline(f.threshold, color="red", ls="--", label=f"threshold {f.threshold:g}")
        ax.set_xlabel(f.score_name)
        ax.set_ylabel("images")
        ax.set_title(f"{f.name} scores of real images")
        ax.legend()
        fig.tight_layout()
        p = out_dir / f"calibration_hist_{f.name}.png"
        with atomic_path(p) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
        hist_pngs[f.name] = p

    rep = Report("Filter calibration on real images")
    rep.para(f"Real set: `{root}` ({', '.join(fcfg.calibrate_splits)}; {len(image_set.items)} images). "
             "A real image is 'rejected' when its score is below the threshold.")
    for f in result.filters:
        rep.para(f"- {f.describe()}")
    rep.table(table, caption="share of real images rejected at the configured threshold"
              + (" and the threshold picked for the target rate" if fcfg.calibrate_target is not None else ""))
    rep.image(curve_png, caption="real images rejected (%) vs threshold (cf. thesis fig. 5.3)")
    for name, p in hist_pngs.items():
        rep.image(p, caption=f"histogram of {name} scores (cf. thesis fig. 5.4 for SSIM)")
    md, _ = rep.save(out_dir, stem="calibration_report")
    log.info("calibration report: %s", md)
    objects = {"report_md": md, "curve_png": curve_png, **{f"hist_{k}": v for k, v in hist_pngs.items()},
               "result": result}
    return metrics, objects
