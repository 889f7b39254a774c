"""The filter stage's report: the thesis's Tables 4 and 6 (images discarded per filter, per person), the
per-image scores (JSON lines and CSV) and grids of discarded examples, as Markdown/HTML."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reid_gan.filters.chain import ChainResult
from reid_gan.report.grids import save_grid
from reid_gan.utils.image import read_bgr
from reid_gan.utils.io import atomic_write_text, jsonl_text

__all__ = ["summary_tables", "discarded_grids", "write_report"]


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
    """A PNG grid of BGR images with captions (small crops drawn twice their size)."""
    return save_grid(path, images, nrow=nrow, captions=captions, scale=2 if images[0].shape[0] <= 64 else 1)


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
