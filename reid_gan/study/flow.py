"""The study the pipeline runs: make_dataset → train_gan → generate → filter → train (baseline + the
``aug.persons`` sweep × seeds) → report, each stage through :class:`reid_gan.study.runner.Pipeline`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from reid_gan.data.generated import MANIFEST, persons_in, read_manifest
from reid_gan.study.runner import Pipeline, StageRun
from reid_gan.utils.artifacts import artifact_lock, config_key, is_complete, mark_complete, write_latest
from reid_gan.utils.io import atomic_write_json
from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["run_study"]


def _data_wiring(p: Pipeline, cfg: DictConfig) -> tuple[str, list[str], list[Path]]:
    """make_dataset (synthetic only) → (data key, overrides that point later stages at the data)."""
    if cfg.data.name == "synthetic":
        key, out, _ = p.run(StageRun("make_dataset", "make_dataset", overrides=["data.root={out}"]))
        return key, [f"data.root={out}"], [out]
    # A real dataset is read in place: its identity is its name and resolved folder.
    root = Path(str(cfg.data.root)).expanduser().resolve()
    key = config_key(OmegaConf.create({"name": str(cfg.data.name), "where": str(root)}), ["name", "where"])
    log.info("[pipeline] %-22s skipped: data=%s is read from %s", "make_dataset", cfg.data.name, root)
    return key, [f"data.root={root}"], []


def _report(p: Pipeline, cfg: DictConfig, index: dict[str, Any]) -> Path:
    """The study report as an artifact of its own: keyed by every artifact it reads, so a re-run with
    nothing changed reuses it. Returns the report's Markdown file."""
    from reid_gan.report.study import build_study_report, log_to_wandb

    stamps = [s["key"] for s in index["stages"]]
    key = config_key(OmegaConf.create({"k": stamps}), ["k"])
    out = p.folder("report", key)
    with artifact_lock(out):
        if is_complete(out) and "report" not in p.force:
            log.info("[pipeline] %-22s skipped: artifact %s is complete", "report", out)
            return out / "report" / "report.md"
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "study.json", index)
        res = build_study_report(out)
        log_to_wandb(cfg, res)
        mark_complete(out, {"stage": "report", "key": key, "report": str(res["report_md"])})
    log.info("[pipeline] report: %s", res["report_md"])
    return Path(res["report_md"])


def run_study(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the study; returns the sweep's metrics and the index of artifacts."""
    p = Pipeline(cfg)
    stages = list(cfg.pipeline.stages)
    t0 = time.perf_counter()

    data_key, data_ovr, data_in = _data_wiring(p, cfg)
    sweep = cfg.pipeline.sweep
    needs_generated = any(int(n) > 0 for n in sweep.persons)
    variants_k = [int(k) for k in (OmegaConf.select(cfg, "pipeline.sweep.images_per_person", default=None) or [])]
    needs_variants = bool(variants_k) and "train_encoder" in stages
    kept_dir = gen_dir = gan_dir = None
    gan_key = None
    upstream_aug: list[str] = []
    aug_in: list[Path] = []
    if (needs_generated or needs_variants) and "train_gan" in stages:
        from reid_gan.gan.embed import resume_stamp  # the key follows the content of a gan.resume file

        gan_up = [data_key, *resume_stamp(OmegaConf.select(cfg, "gan.resume", default=None))]
        gan_key, gan_dir, _ = p.run(StageRun("train_gan", "train_gan", upstream=gan_up,
                                             overrides=[*data_ovr, "gan.out_dir={out}"], inputs=data_in))
    if needs_generated and gan_dir is not None:
        gen_key, gen_art, _ = p.run(StageRun("generate", "generate", upstream=[gan_key],
                                             overrides=[*data_ovr, f"generate.ckpt={gan_dir}",
                                                        "generate.out={out}/set"], inputs=[gan_dir]))
        gen_dir = gen_art / "set"
        if "filter" in stages:
            flt_key, flt_art, _ = p.run(StageRun("filter", "filter", upstream=[gen_key],
                                                 overrides=[*data_ovr, f"filter.source={gen_dir}",
                                                            "filter.out={out}/kept",
                                                            "filter.report_dir={out}/report"],
                                                 inputs=[gen_art]))
            kept_dir, upstream_aug, aug_in = flt_art / "kept", [flt_key], [flt_art]
        else:
            kept_dir, upstream_aug, aug_in = gen_dir, [gen_key], [gen_art]

    runs: list[dict[str, Any]] = []
    skipped_points: list[dict[str, Any]] = []
    available = persons_in(kept_dir) if kept_dir is not None else 0
    if "train" in stages:
        for n in sweep.persons:
            n = int(n)
            if n > available:
                # The train stage would refuse this point (it never pads with fewer persons); the study
                # goes on with the others and the report lists the point as not run, with the reason.
                why = f"asks for {n} synthetic persons; {available} passed the filters in {kept_dir}"
                log.warning("[pipeline] sweep point persons=%d not run: %s", n, why)
                skipped_points.append({"persons": n, "reason": why})
                continue
            for seed in sweep.seeds:
                seed = int(seed)
                aug = [] if n == 0 else [f"aug.persons={n}", f"aug.source={kept_dir}"]  # 0: the baseline
                key, out, info = p.run(StageRun(
                    "train", "train", upstream=[data_key, *(upstream_aug if n else [])],
                    overrides=[*data_ovr, *aug, f"seed={seed}"], inputs=[*data_in, *(aug_in if n else [])]))
                runs.append({"persons": n, "seed": seed, "dir": str(out), "key": key, **info.get("metrics", {})})

    variants: dict[str, Any] = {}
    if needs_variants and gan_dir is not None and "train" in stages:
        variants = _variants_arm(p, cfg, variants_k, data_key, data_ovr, data_in, gan_key, gan_dir, runs)
        runs += variants.pop("runs")
        skipped_points += variants.pop("not_run")

    index = {"stages": p.index, "runs": runs, "not_run": skipped_points, "variants": variants, "data": data_ovr, "generated": str(gen_dir) if gen_dir else None,
             "kept": str(kept_dir) if kept_dir else None, "gan": str(gan_dir) if gan_dir else None,
             "seconds": round(time.perf_counter() - t0, 2)}
    if "report" in stages:
        index["report"] = str(_report(p, cfg, index))
    study = Path(cfg.paths.output_dir)
    atomic_write_json(study / "study.json", index)
    # the stable pointer to this (now newest) complete study: aug.source=null finds its kept set
    latest = write_latest(p.artifacts, {"study_dir": str(study), "kept": index["kept"], "generated": index["generated"],
                                        "gan": index["gan"], "data": data_ovr, "report": index.get("report"),
                                        "stages": {**{s["stage"]: s["dir"] for s in p.index if s["stage"] != "train"},
                                                   "train": [s["dir"] for s in p.index if s["stage"] == "train"]}})
    log.info("[pipeline] newest study: %s", latest)
    metrics = {f"{'persons_%d' % r['persons'] if 'images_per_person' not in r else 'variants_%d' % r['images_per_person']}"
               f"/seed_{r['seed']}/{k}": v for r in runs for k, v in r.items() if k.startswith("val/")}
    return metrics, {"index": index, "study_dir": str(study)}


def _variants_per_person(folder: Path) -> dict[int, int]:
    """Images per real pid in a kept real-variant set (from its manifest)."""
    from collections import Counter

    return dict(Counter(int(r["pid"]) for r in read_manifest(folder)))


def _variants_arm(p: Pipeline, cfg: DictConfig, ks: list[int], data_key: str, data_ovr: list[str],
                  data_in: list[Path], gan_key: str, gan_dir: Path, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The second arm (thesis Table 8): train_encoder → invert → generate (variants of each real person) →
    filter (SSIM to the person's real image) → train with ``aug.images_per_person=K`` for each K × seed.

    The encoder's re-ID model (similarity loss, identity score) is the baseline's (persons=0, first seed)
    when the sweep ran one; otherwise none (the encoder logs it)."""
    base = next((r for r in runs if r["persons"] == 0), None)
    reid_ckpt = Path(base["dir"]) / "checkpoints" / "last.ckpt" if base else None
    if reid_ckpt is not None and not reid_ckpt.is_file():
        log.warning("[pipeline] the baseline run %s has no checkpoints/last.ckpt: the encoder runs without a re-ID "
                    "model", base["dir"])
        reid_ckpt = None
    reid_ovr = [f"encoder.reid.ckpt={reid_ckpt}"] if reid_ckpt else []
    reid_up = [base["key"]] if reid_ckpt else []
    reid_in = [Path(base["dir"])] if reid_ckpt else []
    enc_key, enc_dir, enc_info = p.run(StageRun(
        "train_encoder", "train_encoder", upstream=[data_key, gan_key, *reid_up],
        overrides=[*data_ovr, f"encoder.ckpt={gan_dir}", "encoder.out_dir={out}", *reid_ovr],
        inputs=[*data_in, gan_dir, *reid_in]))
    stages = list(cfg.pipeline.stages)
    out: dict[str, Any] = {"encoder": str(enc_dir), "runs": [], "not_run": [],
                           "encoder_metrics": enc_info.get("metrics", {})}
    if "invert" not in stages:
        return out
    inv_key, inv_dir, inv_info = p.run(StageRun(
        "invert", "invert", upstream=[enc_key, *reid_up],
        overrides=[*data_ovr, f"invert.source={enc_dir}", "invert.out={out}", *reid_ovr], inputs=[enc_dir, *reid_in]))
    out["invert"] = str(inv_dir)
    # each person: its base image (the reconstruction) + max(K) variants, as the thesis's 136 for K <= 135
    gen_key, gen_art, _ = p.run(StageRun(
        "generate", "generate_variants", upstream=[gan_key, inv_key],
        overrides=[*data_ovr, f"generate.ckpt={gan_dir}", f"generate.latents={inv_dir}/latents.pt",
                   "generate.persons=null", f"generate.images_per_person={max(ks) + 1}", "generate.out={out}/set"],
        inputs=[gan_dir, inv_dir]))
    src_dir, src_key, src_in = gen_art / "set", gen_key, gen_art
    if "filter" in stages:
        flt_key, flt_art, _ = p.run(StageRun(
            "filter", "filter_variants", upstream=[gen_key],
            overrides=[*data_ovr, f"filter.source={gen_art}/set", "filter.out={out}/kept",
                       "filter.report_dir={out}/report", "filter.chain.ssim.reference=real"], inputs=[gen_art]))
        src_dir, src_key, src_in = flt_art / "kept", flt_key, flt_art
    out["kept"] = str(src_dir)
    per_person = _variants_per_person(src_dir) if (src_dir / MANIFEST).is_file() else {}
    rule = str(OmegaConf.select(cfg, "aug.short", default="skip") or "skip")
    for k in ks:
        # the train stage's rule for persons with fewer than K kept variants (aug.short): a point that it
        # would refuse is reported as not run, with the numbers
        short = sum(1 for v in per_person.values() if v < k)
        refused = not per_person or (rule == "error" and short) or (rule == "skip" and short == len(per_person))
        if refused:
            fewest = min(per_person.values()) if per_person else 0
            why = (f"asks for {k} variants per real person; {len(per_person)} persons have kept variants in {src_dir}, "
                   f"the fewest {fewest}, and {short} have fewer than {k} (aug.short={rule})")
            log.warning("[pipeline] sweep point images_per_person=%d not run: %s", k, why)
            out["not_run"].append({"images_per_person": k, "reason": why})
            continue
        if short:
            log.info("[pipeline] images_per_person=%d: %d of the %d persons with kept variants have fewer than %d (aug.short=%s)",
                     k, short, len(per_person), k, rule)
        for seed in cfg.pipeline.sweep.seeds:
            seed = int(seed)
            key, rdir, info = p.run(StageRun(
                "train", "train", upstream=[data_key, src_key],
                overrides=[*data_ovr, f"aug.images_per_person={k}", f"aug.source={src_dir}",
                           f"seed={seed}"], inputs=[*data_in, src_in]))
            out["runs"].append({"persons": 0, "images_per_person": k, "seed": seed, "dir": str(rdir), "key": key,
                                **info.get("metrics", {})})
    return out
