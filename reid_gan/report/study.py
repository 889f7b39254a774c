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
from reid_gan.report.sweep import collect_runs, markdown_paired, markdown_table, markdown_table_variants, plot, summarise
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

    # Re-ID sweep: Table 7 (synthetic persons) and Table 8 (variants of real persons), side by side
    result: dict[str, Any] = {"report_md": None}
    runs = index.get("runs", [])
    summary = runs_df = None
    if runs:
        sweep = collect_sweep(index, out / "sweep")
        runs_df = collect_runs(sweep)
        summary = summarise(runs_df)
        summary.to_csv(out / "sweep_table.csv", index=False)
        persons = summary[summary["aug"].isin(["none", "persons"])]
        variants = summary[summary["aug"].isin(["none", "real_variants"])]
        rep.heading("Re-ID with synthetic persons (thesis Table 7)")
        rep.para(markdown_table(persons))
        if (paired := markdown_paired(runs_df, ("persons",))):
            rep.para(paired)
        has_persons = bool((summary["aug"] == "persons").any())
        has_variants = bool((summary["aug"] == "real_variants").any())
        if not has_persons:
            # a lone baseline point is no plot; the variants arm draws its own in its section
            rep.para("This study ran no synthetic-persons point: the table has the baseline alone.")
        else:
            figures["sweep_plot"] = plot(persons, out / "sweep_plot.png", "Rank@1 and mAP against added persons")
        if has_variants:
            figures["variants_plot"] = plot(variants, out / "variants_plot.png",
                                            "Rank@1 and mAP against variants per real person (K)")
        if has_persons and has_variants:
            figures["arms_plot"] = _side_by_side(figures["sweep_plot"], figures["variants_plot"], out / "arms_plot.png")
            rep.image(figures["arms_plot"], "Left: Table 7, Rank@1 and mAP against the synthetic persons added (N). "
                                            "Right: Table 8, against the generated variants per real person (K).")
        elif has_persons:
            rep.image(figures["sweep_plot"], "Rank@1 and mAP against the number of synthetic persons added.")
        rep.para(HOW_TO_READ["reid"])
    for miss in index.get("not_run", []):
        what = (f"images_per_person={miss['images_per_person']}" if "images_per_person" in miss
                else f"persons={miss['persons']}")
        rep.para(f"Sweep point {what} was not run: {miss['reason']}.")
    _variants_section(rep, index, dirs, summary, runs_df, figures)
    if runs:
        rep.image(Path(runs[0]["dir"]) / "ranked_lists.png",
                  "Ranked lists of the baseline: query, then its top-10 gallery (green: match, red: not).")
        result["summary"] = summary
    md, html = rep.save(out)
    result.update(report_md=md, report_html=html, figures=figures, out_dir=out)
    log.info("Study report: %s (and .html)", md)
    return result


def _side_by_side(left: Path, right: Path, path: Path) -> Path:
    """Two plots in one PNG, left | right (heights matched)."""
    import cv2
    import numpy as np

    a, b = cv2.imread(str(left)), cv2.imread(str(right))
    h = max(a.shape[0], b.shape[0])
    pad = lambda im: np.pad(im, ((0, h - im.shape[0]), (0, 0), (0, 0)), constant_values=255)  # noqa: E731
    ok, buf = cv2.imencode(".png", np.hstack([pad(a), pad(b)]))
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buf.tobytes())
    return path


def _fmt_metric(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and v != v) else (f"{v:.4f}" if isinstance(v, float) else str(v))


def _variants_section(rep: Report, index: dict[str, Any], dirs: dict[str, list[Path]], summary: Any, runs_df: Any,
                      figures: dict[str, Path]) -> None:
    """The second arm: the encoder (reconstruction grid, losses, identity score), the inversion, Table 8."""
    if "train_encoder" not in dirs:
        return
    enc = dirs["train_encoder"][0]
    rep.heading("Variants of real persons: pSp encoder, inversion (thesis Table 8)")
    sfile = enc / "summary.json"
    if sfile.is_file():
        s = json.loads(sfile.read_text())
        last, first = s.get("last", {}), s.get("first", {})
        perc = s.get("perceptual")
        rows = [("val/loss/l2", "L2"), (f"val/loss/{perc}", f"perceptual ({perc})"),
                (f"val/loss/{s.get('similarity')}", f"similarity ({s.get('similarity')})"), ("val/loss/w_norm", "w-norm"),
                ("val/ssim", "SSIM"), ("val/identity_rank1", "identity Rank@1"), ("val/identity_mAP", "identity mAP"),
                ("val/identity_rank1_real", "Rank@1 of the real images (same gallery)")]
        table = ["| metric (held-out identities) | untrained | trained |", "|---|---:|---:|"]
        table += [f"| {name} | {_fmt_metric(first.get(k))} | {_fmt_metric(last.get(k))} |" for k, name in rows
                  if k in last or k in first]
        rep.para(f"Encoder: {s.get('steps')} steps, {s.get('iterations')} ReStyle passes, {s.get('train_images')} "
                 f"training images; {s.get('val_images')} validation images of {s.get('val_identities')} held-out "
                 f"identities. Perceptual term: {perc}" + ("" if str(perc).startswith("lpips") else
                                                         " (not LPIPS: no ImageNet trunk was given)") +
                 f"; similarity term: {s.get('similarity') or 'none (0)'}. Identity score: the reconstructions as "
                 f"queries against the held-out people's real images, with the re-ID model "
                 f"{s.get('identity_model') or '(none: not computed)'}" +
                 (" — the same model as the similarity loss's." if s.get("identity_same_as_similarity") else "."))
        rep.para("\n".join(table) + "\n")
    grids = sorted((enc / "grids").glob("val-*.png"))
    if grids:
        figures["reconstruction_grid"] = grids[-1]
        rep.image(grids[-1], "Reconstructions of held-out people: input, then the reconstruction after each pass.")
    if "invert" in dirs:
        inv = dirs["invert"][0]
        if (inv / "summary.json").is_file():
            s = json.loads((inv / "summary.json").read_text())
            rep.para(f"Inversion: {s.get('images')} real training images of {s.get('persons')} persons; mean "
                     f"{s.get('perceptual_metric')} {_fmt_metric(s.get('perceptual_mean'))}, SSIM "
                     f"{_fmt_metric(s.get('ssim_mean'))}, identity Rank@1 {_fmt_metric(s.get('identity_rank1'))} / mAP "
                     f"{_fmt_metric(s.get('identity_mAP'))} (reconstructions against the real images).")
        rep.image(inv / "reconstructions.png", "Inverted training people: real | reconstruction.")
    rules = ""
    if "filter_variants" in dirs:
        r = dirs["filter_variants"][0] / "report"
        if (r / "filter_summary.csv").is_file():
            fs = pd.read_csv(r / "filter_summary.csv")
            rep.table(fs, "Variants discarded per filter (SSIM against the person's real image).")
            kept = fs[~fs["filter"].isin(["total", "kept"])]
            rules = " and ".join(f"{f} {rule}" for f, rule in zip(kept["filter"], kept["rule"]))
    if summary is not None and (summary["aug"] == "real_variants").any():
        rep.para("Re-ID with K generated variants of each real person (thesis Table 8)" +
                 (f"; a variant was kept when {rules} (the thesis: detector >= 0.6, SSIM >= 0.75)" if rules else "") +
                 ". Persons: the real identities that got variants.")
        rep.para(markdown_table_variants(summary[summary["aug"].isin(["none", "real_variants"])]))
        if runs_df is not None and (paired := markdown_paired(runs_df, ("real_variants",))):
            rep.para(paired)
        if "variants_plot" in figures:
            rep.image(figures["variants_plot"], "Rank@1 and mAP against K (variants added per real person).")


def log_to_wandb(cfg: Any, result: dict[str, Any]) -> None:
    """The sweep table and the figures as a W&B table and images, when the W&B logger is configured
    (offline by default: nothing leaves the machine until ``wandb sync``)."""
    from omegaconf import OmegaConf

    node = OmegaConf.select(cfg, "logger.wandb", default=None)
    if not node:
        return
    try:
        _log_to_wandb(node, cfg, result)
    except Exception as e:  # noqa: BLE001 - a W&B failure never fails the report
        log.warning("W&B: logging the study report failed (%s: %s); the report files are complete",
                    type(e).__name__, e)


def _log_to_wandb(node: Any, cfg: Any, result: dict[str, Any]) -> None:
    from omegaconf import OmegaConf

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
