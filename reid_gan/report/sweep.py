"""Tables and plots of a re-ID sweep (the thesis's Table 7: persons, images, Rank@1/5/10, mAP).

A sweep folder is a Hydra multirun of ``reid_gan.train``: one subfolder per job, each with the
``metrics.json`` the train stage writes (metrics + the job's full config). Jobs are grouped by the
augmentation setting (``aug.name`` and ``aug.persons`` / ``aug.images_per_person``, ``aug.label``) and the
metrics are reported as mean ± sample standard deviation over the seeds of a group. A failed job (its
folder holds ``FAILED.json``, :mod:`reid_gan.utils.sweep`) is listed as failed with its reason, in the log
and in the report; a job folder with neither file is listed as unfinished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reid_gan.utils.io import atomic_path, atomic_write_text
from reid_gan.utils.logging import get_logger
from reid_gan.utils.sweep import FAILED, job_status

log = get_logger(__name__)

__all__ = ["collect_failed", "collect_runs", "summarise", "write_sweep_report", "markdown_table_variants",
           "paired_changes", "markdown_paired", "METRICS"]

METRICS = [("val/rank1", "Rank@1"), ("val/rank5", "Rank@5"), ("val/rank10", "Rank@10"), ("val/mAP", "mAP")]


def _sel(d: dict, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return default
        d = d[part]
    return d


def collect_runs(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per finished job: its setting, seed and metrics."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"sweep_dir={sweep_dir}: folder not found")
    files = sorted(root.rglob("metrics.json"))
    rows = []
    for f in files:
        rec = json.loads(f.read_text())
        m, cfg = rec.get("metrics", {}), rec.get("config", {})
        if "val/mAP" not in m:
            continue
        name = m.get("aug/name", _sel(cfg, "aug.name", "none"))
        if name == "persons":
            x = m.get("aug/persons", _sel(cfg, "aug.persons", 0))
        elif name == "real_variants":
            x = _sel(cfg, "aug.images_per_person", 0)
        else:
            x = 0
        if name != "none" and int(m.get("aug/images", 0) or 0) == 0:
            name, x = "none", 0  # N = 0 (or K = 0) adds nothing: the baseline
        rows.append({"job": str(f.parent.relative_to(root)), "aug": name, "label": _sel(cfg, "aug.label", "new_class"),
                     "x": int(x or 0), "persons": int(m.get("aug/persons", 0) or 0),
                     "images": int(m.get("aug/images", 0) or 0), "train_images": m.get("train/num_images"),
                     "short": m.get("aug/short"), "short_persons": int(m.get("aug/short_persons", 0) or 0),
                     "seed": m.get("seed", _sel(cfg, "seed")), **{k: float(m[k]) for k, _ in METRICS if k in m},
                     "val/mINP": m.get("val/mINP")})
    failed = collect_failed(root)
    for f in failed:
        log.warning("sweep %s: job %s failed: %s: %s", root, f["job"], f["error"], f["reason"])
    unfinished = [p.name for p in job_status(root)["unfinished"]]
    if unfinished:
        log.warning("sweep %s: %d job folder(s) with neither metrics.json nor %s (unfinished): %s", root,
                    len(unfinished), FAILED, ", ".join(unfinished[:10]))
    if not rows:
        why = f"; {len(failed)} job(s) failed, e.g. job {failed[0]['job']}: {failed[0]['reason']}" if failed else ""
        raise FileNotFoundError(f"sweep_dir={sweep_dir}: no metrics.json of a finished reid_gan.train job found{why}")
    return pd.DataFrame(rows).sort_values(["aug", "label", "x", "seed"]).reset_index(drop=True)


def collect_failed(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The failed jobs of a sweep: job number, overrides, error type and reason (from FAILED.json)."""
    return [{"job": f["job"], "overrides": " ".join(f["overrides"]), "error": f["error"], "reason": f["reason"]}
            for f in job_status(sweep_dir)["failed"]]


def _fmt(mean: float, std: float, n: int) -> str:
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per setting: persons, images, seeds, and mean / std (ddof=1) of each metric."""
    out = []
    for (aug, label, x), g in runs.groupby(["aug", "label", "x"], sort=True):
        row: dict[str, Any] = {"aug": aug, "label": label, "N": x, "persons": int(g["persons"].iloc[0]),
                               "images": int(g["images"].iloc[0]), "seeds": len(g)}
        if "short_persons" in g:
            row["short"], row["short_persons"] = g["short"].iloc[0], int(g["short_persons"].iloc[0])
        for key, name in METRICS + [("val/mINP", "mINP")]:
            vals = g[key].astype(float).to_numpy() if key in g else np.array([])
            row[f"{name} mean"] = float(vals.mean()) if vals.size else float("nan")
            row[f"{name} std"] = float(vals.std(ddof=1)) if vals.size > 1 else float("nan")
        out.append(row)
    return pd.DataFrame(out)


def markdown_table(summary: pd.DataFrame) -> str:
    """The Table-7 layout: persons, images, Rank@1/5/10, mAP (mean ± std over seeds)."""
    cols = ["Setting", "Persons", "Images", "Seeds", "Rank@1", "Rank@5", "Rank@10", "mAP"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    for _, r in summary.iterrows():
        setting = "baseline" if r["aug"] == "none" or r["images"] == 0 else f"{r['aug']} N={r['N']}" + (
            " (LSRO)" if r["label"] == "lsro" else "")
        n = int(r["seeds"])
        cells = [setting, str(r["persons"]), str(r["images"]), str(n)] + [
            _fmt(r[f"{name} mean"], r[f"{name} std"], n) for _, name in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_table_variants(summary: pd.DataFrame) -> str:
    """The Table-8 layout: K (generated variants per real person), the real persons that got variants, images
    added, Rank@1/5/10, mAP; under it, for each K where some persons had fewer than K kept variants, how
    many and what the run did with them (``aug.short``)."""
    cols = ["K", "Persons", "Images added", "Seeds", "Rank@1", "Rank@5", "Rank@10", "mAP"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    notes = []
    for _, r in summary.sort_values("N").iterrows():
        n = int(r["seeds"])
        base = r["aug"] == "none"
        k = "0 (baseline)" if base else str(r["N"])
        cells = [k, "0" if base else str(r["persons"]), str(r["images"]), str(n)] + [
            _fmt(r[f"{name} mean"], r[f"{name} std"], n) for _, name in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
        short = 0 if base else int(r.get("short_persons", 0) or 0)
        if short:
            did = {"skip": "were left out (aug.short=skip)", "fewer": "got the ones they had (aug.short=fewer)"}.get(
                str(r.get("short")), f"(aug.short={r.get('short')})")
            notes.append(f"K = {r['N']}: {short} real persons had fewer than {r['N']} kept variants and {did}.")
    table = "\n".join(lines) + "\n"
    return table + ("\n" + " ".join(notes) + "\n" if notes else "")


def _setting_name(aug: str, label: str, x: int) -> str:
    if aug == "real_variants":
        return f"K={x}"
    return f"{aug} N={x}" + (" (LSRO)" if label == "lsro" else "")


def paired_changes(runs: pd.DataFrame, augs: tuple[str, ...] = ("persons", "real_variants")) -> pd.DataFrame:
    """Each setting against the baseline *of the same seed*: per setting, the seeds both ran, the per-seed
    change of Rank@1 and mAP, their mean and sample std, how many seeds went down, and the paired t-test
    (two-sided, ``scipy.stats.ttest_rel``; NaN with fewer than 2 paired seeds or no spread). A change over
    seeds is only worth stating when it is large against the seed-to-seed spread of these differences."""
    base = runs[runs["aug"] == "none"].groupby("seed")[["val/rank1", "val/mAP"]].mean()
    rows = []
    for (aug, label, x), g in runs[runs["aug"].isin(augs)].groupby(["aug", "label", "x"], sort=True):
        g = g.groupby("seed")[["val/rank1", "val/mAP"]].mean()
        seeds = [sd for sd in g.index if sd in base.index]
        if not seeds:
            continue
        row: dict[str, Any] = {"aug": aug, "label": label, "N": int(x), "setting": _setting_name(aug, label, x),
                               "seeds": seeds}
        for key, name in (("val/rank1", "Rank@1"), ("val/mAP", "mAP")):
            d = g.loc[seeds, key].to_numpy(float) - base.loc[seeds, key].to_numpy(float)
            row[f"d_{name}"] = d.tolist()
            row[f"d_{name} mean"] = float(d.mean())
            row[f"d_{name} std"] = float(d.std(ddof=1)) if d.size > 1 else float("nan")
            row[f"{name} lower"] = int((d < 0).sum())
            if d.size > 1 and float(d.std(ddof=1)) > 0:
                from scipy import stats

                t = stats.ttest_1samp(d, 0.0)  # = ttest_rel(setting, baseline): the paired t-test
                row[f"{name} t"], row[f"{name} p"] = float(t.statistic), float(t.pvalue)
            else:
                row[f"{name} t"], row[f"{name} p"] = float("nan"), float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_paired(runs: pd.DataFrame, augs: tuple[str, ...] = ("persons", "real_variants")) -> str:
    """The change against the baseline, paired by seed (:func:`paired_changes`), as a Markdown table with a
    line on how to read it; empty when no setting shares a seed with a baseline."""
    pc = paired_changes(runs, augs)
    if pc.empty:
        return ""
    cols = ["Setting", "Seeds", "Δ Rank@1", "Δ mAP", "Δ mAP per seed", "mAP lower in", "paired t (p)"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    for _, r in pc.iterrows():
        n = len(r["seeds"])
        t = f"{r['mAP t']:.2f} (p {r['mAP p']:.3f})" if r["mAP t"] == r["mAP t"] else "n/a"
        per = ", ".join(f"{d:+.4f} (seed {s})" for s, d in zip(r["seeds"], r["d_mAP"]))
        cells = [r["setting"], str(n)] + [
            f"{r[f'd_{m} mean']:+.4f}" + (f" ± {r[f'd_{m} std']:.4f}" if n > 1 else "") for m in ("Rank@1", "mAP")
        ] + [per, f"{r['mAP lower']} of {n}", t]
        lines.append("| " + " | ".join(cells) + " |")
    said = []
    for _, r in pc.iterrows():
        n, d, p = len(r["seeds"]), r["d_mAP mean"], r["mAP p"]
        head = f"{r['setting']}: mAP {d:+.4f} against the baseline of the same seed"
        if n == 1:
            said.append(f"{head} (one seed: no test; it may be seed noise).")
        elif p != p:
            said.append(f"{head}, the same change in all {n} seeds (no spread: no t-test).")
        elif p < 0.05:
            said.append(f"{head} over {n} seeds, lower in {r['mAP lower']}: a {'gain' if d > 0 else 'loss'} "
                        f"beyond seed noise by the paired t-test (p {p:.3f}).")
        else:
            said.append(f"{head} over {n} seeds, lower in {r['mAP lower']}: not distinguishable from seed noise "
                        f"(paired t-test p {p:.3f}).")
    note = ("Change against the baseline trained with the same seed (setting − baseline), mean ± sample std over "
            "seeds; paired t: two-sided t-test of the per-seed differences (n − 1 degrees of freedom). With a "
            "single seed there is no test, and the change may be seed noise: run more seeds (seed=0,1,2 in a sweep, pipeline.sweep.seeds in a study).")
    return "\n".join(lines) + "\n\n" + " ".join(said) + "\n\n" + note + "\n"


def plot(summary: pd.DataFrame, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    # each augmented series starts at the baseline (N = 0: nothing added), so the line shows the change
    base = summary[summary["aug"] == "none"]
    series = [(k, g) for k, g in summary.groupby(["aug", "label"]) if k[0] != "none"]
    for (aug, label), g in series or [(("none", ""), base)]:
        g = (pd.concat([base, g]) if aug != "none" else g).sort_values("N")
        tag = "" if aug == "none" else f" ({aug}{', LSRO' if label == 'lsro' else ''})"
        for name, marker in (("Rank@1", "o"), ("mAP", "s")):
            err = g[f"{name} std"].fillna(0.0).to_numpy()
            ax.errorbar(g["N"], g[f"{name} mean"], yerr=err, marker=marker, capsize=3, label=f"{name}{tag}")
    if series and not base.empty:
        ax.axhline(float(base["mAP mean"].iloc[0]), color="grey", lw=0.6, ls=":")
        ax.axhline(float(base["Rank@1 mean"].iloc[0]), color="grey", lw=0.6, ls=":")
    # K only for the variants arm; a baseline alone is N = 0 of the persons sweep (the title says persons)
    xlabel = "generated images per person (K)" if (summary["aug"] == "real_variants").any() \
        else "synthetic persons added (N)"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("score (mean ± std over seeds)")
    ax.set_title(title or "Re-ID accuracy against augmentation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def write_sweep_report(sweep_dir: str | Path, report_dir: str | Path | None = None) -> dict[str, Path]:
    """Write ``sweep_runs.csv`` (every job), ``sweep_table.csv`` / ``sweep_table.md`` (per setting) and
    ``sweep_plot.png`` (Rank@1 and mAP against N) into ``report_dir`` (default ``<sweep_dir>/report``)."""
    runs = collect_runs(sweep_dir)
    summary = summarise(runs)
    out = Path(report_dir) if report_dir else Path(sweep_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    paths = {"runs_csv": out / "sweep_runs.csv", "table_csv": out / "sweep_table.csv",
             "table_md": out / "sweep_table.md", "plot_png": out / "sweep_plot.png",
             "failed_csv": out / "sweep_failed.csv"}
    atomic_write_text(paths["runs_csv"], runs.to_csv(index=False))
    atomic_write_text(paths["table_csv"], summary.to_csv(index=False))
    failed = collect_failed(sweep_dir)
    atomic_write_text(paths["failed_csv"], pd.DataFrame(failed, columns=["job", "overrides", "error", "reason"])
                      .to_csv(index=False))
    md = markdown_table(summary)
    paired = markdown_paired(runs)
    if paired:
        md += "\n" + paired
    if failed:
        md += f"\n{len(failed)} job(s) failed (not in the table):\n\n| Job | Overrides | Reason |\n|---|---|---|\n"
        md += "".join(f"| {f['job']} | `{f['overrides']}` | {f['error']}: {f['reason']} |\n" for f in failed)
    atomic_write_text(paths["table_md"], f"Sweep `{sweep_dir}`: {len(runs)} runs; mean ± std over seeds "
                                         f"(sample std).\n\n{md}")
    plot(summary, paths["plot_png"], title=f"Re-ID sweep ({len(runs)} runs)")
    log.info("Sweep report (%d runs) in %s\n%s", len(runs), out, md)
    return paths
