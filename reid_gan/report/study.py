"""The study report: one Markdown + HTML document from a pipeline run's ``study.json``.

Sections: the dataset (sample grid, HOG figure), the GAN (metric curve, sample grids per snapshot), the
generated set (style-mixing grid, interpolation strip), the filters (the thesis's Tables 4/6 and
discarded examples), the re-ID sweep (Table 7: mean ± std over seeds, and the plot against N) and a
ranked-list figure, each with a line on how to read its numbers. Everything is read from the
artifacts the stages wrote; nothing is recomputed here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from reid_gan.report.document import Report
from reid_gan.report.sweep import markdown_table, plot, summarise, collect_runs
from reid_gan.utils.io import atomic_path, read_jsonl
from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

HOW_TO_READ = {
    "dataset": "HOG pass rate: share of person images on which OpenCV's HOG people detector (linear SVM on "
               "the 64x128 window) fires at calibrated score >= 0.6 (margin >= 0).",
    "swd": "metric/swd: sliced Wasserstein distance between Laplacian-pyramid patches of real and generated "
           "images (Karras et al. 2018), x 1e3, lower is better. It is NOT FID: no Inception weights were "
           "given (metrics.inception).",
    "fid": "metric/fid: Frechet Inception distance with the Inception weights at metrics.inception "
           "(torch-fidelity format); lower is better.",
    "filter": "A generated image is kept when every filter's score >= its threshold. 'discarded' counts an "
              "image once, under the first filter that rejects it (thesis Tables 4 and 6). SSIM: Wang et "
              "al. 2004, 11x11 Gaussian window sigma 1.5, K1 0.01, K2 0.03 (= skimage with "
              "gaussian_weights=True, use_sample_covariance=False).",
    "reid": "Rank@k: share of queries whose first correct match is within the top k of the gallery; mAP: mean "
            "average precision; both on the Market-1501 protocol (same-id same-camera gallery images and "
            "junk ignored), cosine distance between features. Mean ± sample std over seeds (a single "
            "seed shows no std).",
}


def _stage_dirs(index: dict[str, Any]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for s in index.get("stages", []):
        out.setdefault(s["stage"], []).append(Path(s["dir"]))
    return out


def _gan_curve(gan_dir: Path, path: Path) -> tuple[Path | None, str | None]:
    hist = read_jsonl(gan_dir / "metrics.jsonl")
    if not hist:
        return None, None
    name = next((k for k in ("metric/fid", "metric/swd") if k in hist[-1]), None)
    if name is None:
        return None, None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot([h["kimg"] for h in hist], [h[name] for h in hist], "o-")
    ax.set_xlabel("kimg (thousands of real images shown to D)")
    ax.set_ylabel(name)
    ax.set_title(f"GAN: {name} per snapshot")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path, name


def collect_sweep(index: dict[str, Any], sweep_dir: Path) -> Path:
    """Copy each sweep job's ``metrics.json`` into ``sweep_dir/<i>/`` (a self-contained sweep folder)."""
    if sweep_dir.exists():
        shutil.rmtree(sweep_dir)
    for i, run in enumerate(index.get("runs", [])):
        src = Path(run["dir"]) / "metrics.json"
        if src.is_file():
            (sweep_dir / str(i)).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, sweep_dir / str(i) / "metrics.json")
    return sweep_dir


def build_study_report(study_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Write ``report.md`` / ``report.html`` (+ ``img/``, ``sweep_table.csv``) for one study."""
    study_dir = Path(study_dir)
    index = json.loads((study_dir / "study.json").read_text())
    out = Path(out_dir) if out_dir else study_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    dirs = _stage_dirs(index)
    rep = Report("reid-gan study")
    ran = [f"{s['stage']} ({'reused' if s['skipped'] else '%.0f s' % s['seconds']})" for s in index.get("stages", [])]
    rep.para(f"Study folder: {study_dir}. Stages run or reused: {', '.join(ran)}.")
    figures: dict[str, Path] = {}

    # Dataset
    if "make_dataset" in dirs:
        d = dirs["make_dataset"][0]
        rep.heading("Dataset")
        hog = d / "hog_check.json"
        if hog.is_file():
            h = json.loads(hog.read_text())
            rep.para(f"HOG person detector pass rate on {h.get('images')} checked images: persons "
                     f"{100 * h.get('pass_rate_person', float('nan')):.1f} %, all images "
                     f"{100 * h.get('pass_rate_all', float('nan')):.1f} %. {HOW_TO_READ['dataset']}")
        rep.image(d / "sample_grid.png", "Sample of the dataset: rows are identities, columns their images.")

    # GAN
    if "train_gan" in dirs:
        g = dirs["train_gan"][0]
        rep.heading("GAN")
        curve, name = _gan_curve(g, out / "gan_metric.png")
        if curve:
            figures["gan_metric"] = curve
            rep.image(curve, f"{name} against training progress.")
            rep.para(HOW_TO_READ["fid" if name == "metric/fid" else "swd"])
        grids = sorted((g / "grids").glob("fakes-*.png"))
        for p in grids[:1] + grids[-1:] if len(grids) > 1 else grids:
            rep.image(p, f"Generated samples (fixed latents) at snapshot {p.stem.split('-', 1)[1]} kimg.")
        rep.image(g / "grids" / "reals.png", "Real training images at the GAN's resolution.")

    # Generated set
    if "generate" in dirs:
        s = dirs["generate"][0] / "set"
        rep.heading("Generated persons")
        summ = s / "summary.json"
        if summ.is_file():
            rep.para("Generated set: " + ", ".join(f"{k} {v}" for k, v in json.loads(summ.read_text()).items()
                                                   if isinstance(v, (int, float, str))) + ".")
        rep.image(s / "style_mixing.png", "Style mixing: rows are persons, columns donors per layer range.")
        rep.image(s / "interpolation.png", "Interpolation from a person toward another latent.")

    # Filters
    if "filter" in dirs:
        r = dirs["filter"][0] / "report"
        rep.heading("Filters")
        if (r / "filter_summary.csv").is_file():
            rep.table(pd.read_csv(r / "filter_summary.csv"), "Images discarded per filter (thesis Tables 4/6).")
        rep.para(HOW_TO_READ["filter"])
        for p in sorted(r.glob("discarded_*.png")):
            rep.image(p, f"Discarded by {p.stem.removeprefix('discarded_')}.")

    # Re-ID sweep
    result: dict[str, Any] = {"report_md": None}
    runs = index.get("runs", [])
    if runs:
        rep.heading("Re-ID with synthetic persons (thesis Table 7)")
        sweep = collect_sweep(index, out / "sweep")
        summary = summarise(collect_runs(sweep))
        summary.to_csv(out / "sweep_table.csv", index=False)
        rep.para(markdown_table(summary))
        figures["sweep_plot"] = plot(summary, out / "sweep_plot.png", "Rank@1 and mAP against added persons")
        rep.image(figures["sweep_plot"], "Rank@1 and mAP against the number of synthetic persons added.")
        rep.para(HOW_TO_READ["reid"])
        rep.image(Path(runs[0]["dir"]) / "ranked_lists.png",
                  "Ranked lists of the baseline: query, then its top-10 gallery (green: match, red: not).")
        result["summary"] = summary
    md, html = rep.save(out)
    result.update(report_md=md, report_html=html, figures=figures, out_dir=out)
    log.info("Study report: %s (and .html)", md)
    return result


def log_to_wandb(cfg: Any, result: dict[str, Any]) -> None:
    """The sweep table and the figures as a W&B table and images, when the W&B logger is configured
    (offline by default: nothing leaves the machine until ``wandb sync``)."""
    from omegaconf import OmegaConf

    node = OmegaConf.select(cfg, "logger.wandb", default=None)
    if not node:
        return
    import wandb

    run = wandb.init(project=node.get("project", "reid-gan"), name="study-report", job_type="report",
                     dir=str(result["out_dir"]), mode="offline" if node.get("offline", True) else None,
                     group=OmegaConf.select(cfg, "logger.wandb.group", default=None), reinit=True)
    try:
        if "summary" in result:
            run.log({"study/sweep_table": wandb.Table(dataframe=result["summary"])})
        run.log({f"study/{k}": wandb.Image(str(v)) for k, v in result.get("figures", {}).items()})
    finally:
        run.finish()
