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

import os
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.data import generated
from reid_gan.filters.chain import ChainResult, FilterChain, ImageFilter, filter_identity, load_image_set, read_bgr
from reid_gan.utils.io import atomic_path, atomic_write_json, atomic_write_text, jsonl_text
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)

HOG_TARGET = "reid_gan.filters.hog.HOGDetector"


def _instantiate(node: Any, key: str) -> Any:
    """``hydra.utils.instantiate`` that re-raises our own errors (which name the key) unwrapped."""
    from reid_gan.config import ConfigError
    from reid_gan.utils.weights import WeightsError

    try:
        return hydra.utils.instantiate(node)
    except Exception as e:  # noqa: BLE001
        cause = e.__cause__ or e.__context__
        if isinstance(cause, (WeightsError, ConfigError, FileNotFoundError, ValueError, TypeError)):
            raise cause from None
        if isinstance(cause, ImportError):
            raise ImportError(f"{key}._target_: cannot import {OmegaConf.select(node, '_target_')} ({cause})") from None
        raise


def build_chain(fcfg: DictConfig, progress: bool | None = None) -> FilterChain:
    """The enabled filters of ``filter.chain`` in ``filter.order``, each with its cache identity."""
    import reid_gan

    filters: list[ImageFilter] = []
    for name in fcfg.order:
        node = fcfg.chain[name]
        if not node.get("enabled", True):
            log.info("filter %s: disabled", name)
            continue
        det = OmegaConf.select(node, "detector", default=None)
        if det is not None:
            target = str(det.get("_target_", ""))
            if target == HOG_TARGET:
                log.info("filter %s: OpenCV's HOG people detector, the embedded substitute for the thesis's "
                         "YOLOv4-tiny (use detector=yolov4_tiny filter.detector.cfg=PATH "
                         "filter.detector.weights=PATH for the real one)", name)
        flt = _instantiate(node, f"filter.chain.{name}")
        if not isinstance(flt, ImageFilter):
            raise TypeError(f"filter.chain.{name}._target_ must build a reid_gan.filters.chain.ImageFilter, "
                            f"got {type(flt).__name__}")
        flt.name = name
        plain = OmegaConf.to_container(node, resolve=True)
        plain["__version__"] = reid_gan.__version__  # a new release may score differently
        flt.identity = filter_identity(plain)[:24]
        log.info("filter %d: %s", len(filters) + 1, flt.describe())
        filters.append(flt)
    if not filters:
        raise ValueError("filter.order: every filter is disabled; nothing to do")
    return FilterChain(filters, fcfg.cache, progress=fcfg.progress if progress is None else progress)


# ------------------------------------------------------------------------------------------ outputs
def write_kept_set(result: ChainResult, out: str | os.PathLike, link: str = "hardlink") -> Path:
    """Links (or copies) of the kept images in the source's layout + ``manifest.jsonl`` with scores."""
    records = [r for r in result.records() if r["kept"]]
    return generated.write_kept_set(result.image_set.root, records, out, link,
                                    marker={"filters": [f.describe() for f in result.filters]})


def summary_tables(result: ChainResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per filter, per person) tables like the thesis's Tables 4 and 6."""
    n = len(result.image_set.items)
    rows = []
    for f in result.filters:
        first = sum(1 for d in result.discarded_by if d == f.name)
        alone = int((~result.passes[f.name]).sum())
        rows.append({"filter": f.name, "rule": f"{f.score_name} >= {f.threshold:g}",
                     "discarded": first, "discarded_%": round(100.0 * first / n, 2),
                     "fails_alone": alone, "fails_alone_%": round(100.0 * alone / n, 2)})
    total = sum(1 for d in result.discarded_by if d is not None)
    rows.append({"filter": "total", "rule": "any filter", "discarded": total,
                 "discarded_%": round(100.0 * total / n, 2), "fails_alone": total,
                 "fails_alone_%": round(100.0 * total / n, 2)})
    rows.append({"filter": "kept", "rule": "all filters", "discarded": n - total,
                 "discarded_%": round(100.0 * (n - total) / n, 2), "fails_alone": n - total,
                 "fails_alone_%": round(100.0 * (n - total) / n, 2)})
    summary = pd.DataFrame(rows)
    per = []
    for pid, idx in sorted(result.image_set.by_pid().items()):
        row: dict[str, Any] = {"pid": pid, "images": len(idx)}
        for f in result.filters:
            row[f"discarded_{f.name}"] = sum(1 for i in idx if result.discarded_by[i] == f.name)
        kept = sum(1 for i in idx if result.discarded_by[i] is None)
        row["kept"] = kept
        row["kept_%"] = round(100.0 * kept / len(idx), 2)
        per.append(row)
    return summary, pd.DataFrame(per)


def save_grid_png(path: Path, images: list[np.ndarray], captions: list[str], nrow: int = 8) -> Path:
    """A PNG grid (the report module's grid when available, else a plain one)."""
    try:
        from reid_gan.report.grids import save_grid
    except ImportError:
        save_grid = None
    if save_grid is not None:
        return save_grid(path, images, nrow=nrow, captions=captions, scale=2 if images[0].shape[0] <= 64 else 1)
    import cv2

    h, w = images[0].shape[:2]
    rows = (len(images) + nrow - 1) // nrow
    grid = np.full((rows * (h + 16) + 2, nrow * (w + 2) + 2, 3), 255, np.uint8)
    for k, (im, cap) in enumerate(zip(images, captions)):
        r, c = divmod(k, nrow)
        y, x = 2 + r * (h + 16), 2 + c * (w + 2)
        grid[y:y + h, x:x + w] = cv2.resize(im, (w, h))
        cv2.putText(grid, cap, (x, y + h + 11), cv2.FONT_HERSHEY_PLAIN, 0.7, (0, 0, 0), 1, cv2.LINE_AA)
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp), grid)
    return path


def discarded_grids(result: ChainResult, out_dir: Path, n_examples: int) -> dict[str, Path]:
    """Per filter: a grid of up to ``n_examples`` images it discarded, evenly spread from the lowest
    score to the highest (captions: the score)."""
    grids: dict[str, Path] = {}
    if n_examples <= 0:
        return grids
    for f in result.filters:
        idx = [i for i, d in enumerate(result.discarded_by) if d == f.name]
        if not idx:
            continue
        idx.sort(key=lambda i: result.scores[f.name][i])
        pick = sorted(set(np.linspace(0, len(idx) - 1, min(n_examples, len(idx))).round().astype(int)))
        chosen = [idx[k] for k in pick]
        imgs = [read_bgr(result.image_set.items[i].path) for i in chosen]
        caps = [f"{result.scores[f.name][i]:.2f}" for i in chosen]
        grids[f.name] = save_grid_png(out_dir / f"discarded_{f.name}.png", imgs, caps)
    return grids


def write_report(result: ChainResult, report_dir: str | os.PathLike, n_examples: int,
                 source: Path, out: Path) -> dict[str, Path]:
    from reid_gan.metrics.ssim import SSIM_SETTING
    from reid_gan.report.document import Report

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    summary, per_person = summary_tables(result)
    paths = {"summary_csv": report_dir / "filter_summary.csv", "per_person_csv": report_dir / "filter_per_person.csv",
             "scores_jsonl": report_dir / "scores.jsonl", "scores_csv": report_dir / "scores.csv"}
    atomic_write_text(paths["summary_csv"], summary.to_csv(index=False))
    atomic_write_text(paths["per_person_csv"], per_person.to_csv(index=False))
    records = result.records()
    atomic_write_text(paths["scores_jsonl"], jsonl_text(records))
    flat = pd.DataFrame([{"file": r["file"], "pid": r["pid"], **{f"score_{k}": v for k, v in r["scores"].items()},
                          "kept": r["kept"], "discarded_by": r["discarded_by"] or ""} for r in records])
    atomic_write_text(paths["scores_csv"], flat.to_csv(index=False))
    grids = discarded_grids(result, report_dir, n_examples)

    n = len(records)
    rep = Report("Filtering generated images")
    rep.para(f"Source set: `{source}` ({n} images, {len(per_person)} persons). Kept set: `{out}` "
             f"({int(result.kept.sum())} images).")
    rep.heading("Filters (applied in this order)")
    for i, f in enumerate(result.filters, 1):
        rep.para(f"{i}. {f.describe()}")
    if any(f.name == "ssim" for f in result.filters):
        rep.para(f"SSIM setting: {SSIM_SETTING}.")
    rep.para("An image is kept when score >= threshold for every filter. 'discarded' counts each "
             "discarded image once, under the first filter in the order that rejects it (as the thesis's "
             "Tables 4 and 6); 'fails_alone' is how many images that filter alone would reject.")
    rep.heading("Images discarded per filter")
    rep.table(summary, caption=f"{n} images; % of all images")
    rep.heading("Per person")
    rep.table(per_person, caption="images per person and how many each filter discarded")
    for name, p in grids.items():
        rep.heading(f"Discarded by {name}", level=3)
        rep.image(p, caption=f"images discarded by {name} (caption: score), lowest to highest score")
    md, html = rep.save(report_dir, stem="filter_report")
    paths.update({"report_md": md, "report_html": html, **{f"grid_{k}": v for k, v in grids.items()}})
    return paths


# ---------------------------------------------------------------------------------------- calibrate
def ensure_dataset(cfg: DictConfig, path: str) -> Path:
    """``path`` itself, except when it is ``data.root``: then the configured dataset is built first
    (the embedded synthetic dataset is rendered if missing; a Market-1501 parent folder is resolved)."""
    if str(path) == str(OmegaConf.select(cfg, "data.root", default="")):
        from reid_gan.data import build_dataset

        ds = build_dataset(cfg.data)
        return Path(getattr(ds, "root", path))
    return Path(path)


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


def calibrate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reid_gan.report.document import Report

    fcfg = cfg.filter
    root = ensure_dataset(cfg, fcfg.calibrate_source)
    image_set = load_image_set(root, list(fcfg.calibrate_splits), key="filter.calibrate_source")
    if fcfg.calibrate_max_images and len(image_set.items) > fcfg.calibrate_max_images:
        keep = np.linspace(0, len(image_set.items) - 1, fcfg.calibrate_max_images).round().astype(int)
        image_set.items = [image_set.items[i] for i in sorted(set(keep))]
    chain = build_chain(fcfg)
    result = chain.run(image_set)
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


# --------------------------------------------------------------------------------------------- stage
def filter(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:  # noqa: A001 - the stage's name
    """The filter stage's task function (see the module docstring)."""
    if cfg.get("calibrate", False):
        return calibrate(cfg)
    fcfg = cfg.filter
    source = ensure_dataset(cfg, fcfg.source)
    image_set = load_image_set(source, list(fcfg.splits), key="filter.source")
    if not image_set.has_manifest:
        log.info("filter.source=%s has no manifest.jsonl: pids from file names, SSIM reference = first image",
                 source)
    chain = build_chain(fcfg)
    result = chain.run(image_set)
    out = write_kept_set(result, fcfg.out, fcfg.link)
    paths = write_report(result, fcfg.report_dir, int(fcfg.grid_examples), source, out)
    n = len(image_set.items)
    kept = int(result.kept.sum())
    metrics: dict[str, Any] = {"filter/images": n, "filter/kept": kept, "filter/kept_fraction": kept / n,
                               "filter/discarded": n - kept}
    for f in result.filters:
        d = sum(1 for x in result.discarded_by if x == f.name)
        metrics[f"filter/discarded_{f.name}"] = d
        metrics[f"filter/discarded_{f.name}_fraction"] = d / n
        metrics[f"filter/computed_{f.name}"] = result.computed.get(f.name, 0)
        metrics[f"filter/cached_{f.name}"] = result.cached.get(f.name, 0)
    atomic_write_json(Path(fcfg.report_dir) / "metrics.json", metrics)
    summary, _ = summary_tables(result)
    log.info("filter summary:\n%s", summary.to_markdown(index=False))
    return metrics, {"kept_dir": out, "result": result, **paths}


@hydra.main(version_base="1.3", config_path="../conf", config_name="filter")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, filter)


if __name__ == "__main__":
    main()
