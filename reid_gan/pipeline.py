"""``python -m reid_gan.pipeline``: the whole study, one command.

make_dataset → train_gan → generate → filter → train (baseline + ``aug.persons`` sweep × seeds) → report.

Every stage is composed exactly as ``python -m reid_gan.<stage> <the same overrides>`` would compose it,
then wired to its upstream artifacts and run in this process. Its output goes to
``paths.artifacts/<stage>/<key>`` where ``key`` hashes the config that affects the stage plus its
upstream keys (:mod:`reid_gan.utils.artifacts`): a stage whose artifact is complete is skipped and says
so; a killed or changed stage, and everything after it, is redone. A file lock per artifact lets
parallel pipeline jobs (``-m``) share upstream work without building anything twice.
"""

from __future__ import annotations

import importlib
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import hydra
from omegaconf import DictConfig, OmegaConf

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.config import validate_config
from reid_gan.data.generated import persons_in
from reid_gan.utils.artifacts import (
    artifact_lock,
    config_key,
    is_complete,
    mark_complete,
    read_complete,
    write_latest,
)
from reid_gan.utils.io import atomic_write_json
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage, task_wrapper

log = get_logger(__name__)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@dataclass
class StageRun:
    """One stage invocation inside the pipeline."""

    stage: str                      # module name under reid_gan (and primary config name)
    name: str                       # artifact folder name (stage, or stage + variant)
    fields: list[str]               # config keys that affect the output
    upstream: list[str] = field(default_factory=list)   # keys of the artifacts it reads
    # extra overrides (wiring, sweep point); "{out}" stands for this stage's artifact folder
    overrides: list[str] = field(default_factory=list)
    # the upstream artifact folders it reads: if one was rebuilt since, this stage is redone too
    inputs: list[Path] = field(default_factory=list)


def user_overrides(cfg: DictConfig) -> list[str]:
    """The overrides the pipeline was called with, minus pipeline/hydra-only ones."""
    task = OmegaConf.select(cfg, "hydra.overrides.task", default=None)
    if task is None:
        try:
            from hydra.core.hydra_config import HydraConfig

            task = HydraConfig.get().overrides.task
        except ValueError:
            task = []
    keep = []
    for o in task:
        key = o.lstrip("+~").split("=", 1)[0]
        if key.startswith(("pipeline", "hydra")) or key in ("task_name", "optimized_metric"):
            continue
        keep.append(o)
    return keep


def compose_for(stage: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<stage>.yaml`` with these overrides (inside or outside a running Hydra app)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    ctx = (nullcontext() if GlobalHydra.instance().is_initialized()
           else initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)))
    with ctx:
        return compose(config_name=stage, overrides=overrides)


# stages whose task function does not live at reid_gan.<stage>.<stage>
TASKS = {"report": "reid_gan.report.stage:report"}


def stage_function(stage: str) -> Callable[[DictConfig], Any]:
    if stage in TASKS:
        module_name, _, attr = TASKS[stage].partition(":")
        return getattr(importlib.import_module(module_name), attr)
    module = importlib.import_module(f"reid_gan.{stage}")
    fn = getattr(module, stage, None)
    if fn is None:
        raise AttributeError(f"reid_gan.{stage} has no task function {stage}(cfg)")
    return fn


class Pipeline:
    """Runs stage invocations with skip/lock/marker logic and keeps an index of what ran."""

    def __init__(self, cfg: DictConfig):
        self.base_overrides = user_overrides(cfg)
        self.artifacts = Path(cfg.paths.artifacts)
        self.force = set(OmegaConf.select(cfg, "pipeline.force", default=[]) or [])
        self.index: list[dict[str, Any]] = []

    def folder(self, name: str, key: str) -> Path:
        return self.artifacts / name / key

    def run(self, sr: StageRun) -> tuple[str, Path, dict[str, Any]]:
        """Run (or skip) one stage. Returns (key, artifact folder, info stored in its marker)."""
        overrides = [*self.base_overrides, *sr.overrides]
        # The key must not depend on where things go: overrides naming the artifact folder ("{out}") are
        # left out of the probe, and the output dir is a fixed placeholder there.
        probe = compose_for(sr.stage, [*(o for o in overrides if "{out}" not in o),
                                       "paths.output_dir=/artifact"])
        key = config_key(probe, sr.fields, sr.upstream)
        out = self.folder(sr.name, key)
        overrides = [o.replace("{out}", str(out)) for o in overrides]
        stamps = [read_complete(f).get("stamp") for f in sr.inputs]
        with artifact_lock(out):
            done = read_complete(out) if is_complete(out) else None
            stale = done is not None and done.get("input_stamps") != stamps
            if stale:
                log.info("[pipeline] %-22s an input was rebuilt since %s was made: redoing it", sr.name, out)
            if done is not None and not stale and sr.stage not in self.force and sr.name not in self.force:
                info = done
                log.info("[pipeline] %-22s skipped: artifact %s is complete", sr.name, out)
                self.index.append({"stage": sr.name, "key": key, "dir": str(out), "skipped": True,
                                   "seconds": 0.0, "metrics": info.get("metrics", {})})
                return key, out, info
            log.info("[pipeline] %-22s running → %s", sr.name, out)
            out.mkdir(parents=True, exist_ok=True)
            cfg = compose_for(sr.stage, [*overrides, f"paths.output_dir={out}", "print_config=false"])
            validate_config(cfg)
            t0 = time.perf_counter()
            metrics, objects = task_wrapper(stage_function(sr.stage))(cfg)
            seconds = time.perf_counter() - t0
            info = {
                "stage": sr.stage, "name": sr.name, "key": key, "upstream": sr.upstream,
                "inputs": [str(f) for f in sr.inputs], "input_stamps": stamps,
                "overrides": overrides, "seconds": round(seconds, 2),
                "metrics": _plain_metrics(metrics),
                "outputs": {k: str(v) for k, v in (objects or {}).items() if isinstance(v, (str, Path))},
                "config": OmegaConf.to_container(cfg, resolve=True),
            }
            mark_complete(out, info)
            self.index.append({"stage": sr.name, "key": key, "dir": str(out), "skipped": False,
                               "seconds": info["seconds"], "metrics": info["metrics"]})
            return key, out, info


def _plain_metrics(metrics: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (metrics or {}).items():
        if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
            v = v.item()
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
    return out


# ------------------------------------------------------------------------------------------------------
# The study


def _data_wiring(p: Pipeline, cfg: DictConfig) -> tuple[str, list[str], list[Path]]:
    """make_dataset (synthetic only) → (data key, overrides that point later stages at the data)."""
    if cfg.data.name == "synthetic":
        key, out, _ = p.run(StageRun("make_dataset", "make_dataset", ["data.name", "data.render"],
                                     overrides=["data.root={out}"]))
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


TRAIN_FIELDS = ["reid", "aug", "data", "seed", "trainer.max_epochs", "trainer.max_steps",
                "trainer.limit_train_batches", "trainer.precision"]


def pipeline(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
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
        gan_key, gan_dir, _ = p.run(StageRun("train_gan", "train_gan", ["gan", "metrics", "seed"], gan_up,
                                             overrides=[*data_ovr, "gan.out_dir={out}"], inputs=data_in))
    if needs_generated and gan_dir is not None:
        gen_key, gen_art, _ = p.run(StageRun("generate", "generate", ["generate"], [gan_key],
                                             overrides=[*data_ovr, f"generate.ckpt={gan_dir}",
                                                        "generate.out={out}/set"], inputs=[gan_dir]))
        gen_dir = gen_art / "set"
        if "filter" in stages:
            flt_key, flt_art, _ = p.run(StageRun("filter", "filter", ["filter"], [gen_key],
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
                    "train", f"train", TRAIN_FIELDS, [data_key, *(upstream_aug if n else [])],
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

    from reid_gan.utils.io import read_jsonl

    return dict(Counter(int(r["pid"]) for r in read_jsonl(Path(folder) / "manifest.jsonl")))


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
        "train_encoder", "train_encoder", ["encoder", "seed"], [data_key, gan_key, *reid_up],
        overrides=[*data_ovr, f"encoder.ckpt={gan_dir}", "encoder.out_dir={out}", *reid_ovr],
        inputs=[*data_in, gan_dir, *reid_in]))
    stages = list(cfg.pipeline.stages)
    out: dict[str, Any] = {"encoder": str(enc_dir), "runs": [], "not_run": [],
                           "encoder_metrics": enc_info.get("metrics", {})}
    if "invert" not in stages:
        return out
    inv_key, inv_dir, inv_info = p.run(StageRun(
        "invert", "invert", ["invert", "encoder.lpips", "encoder.id_loss", "encoder.moco", "seed"], [enc_key, *reid_up],
        overrides=[*data_ovr, f"invert.source={enc_dir}", "invert.out={out}", *reid_ovr], inputs=[enc_dir, *reid_in]))
    out["invert"] = str(inv_dir)
    # each person: its base image (the reconstruction) + max(K) variants, as the thesis's 136 for K <= 135
    gen_key, gen_art, _ = p.run(StageRun(
        "generate", "generate_variants", ["generate"], [gan_key, inv_key],
        overrides=[*data_ovr, f"generate.ckpt={gan_dir}", f"generate.latents={inv_dir}/latents.pt",
                   "generate.persons=null", f"generate.images_per_person={max(ks) + 1}", "generate.out={out}/set"],
        inputs=[gan_dir, inv_dir]))
    src_dir, src_key, src_in = gen_art / "set", gen_key, gen_art
    if "filter" in stages:
        flt_key, flt_art, _ = p.run(StageRun(
            "filter", "filter_variants", ["filter"], [gen_key],
            overrides=[*data_ovr, f"filter.source={gen_art}/set", "filter.out={out}/kept",
                       "filter.report_dir={out}/report", "filter.chain.ssim.reference=real"], inputs=[gen_art]))
        src_dir, src_key, src_in = flt_art / "kept", flt_key, flt_art
    out["kept"] = str(src_dir)
    per_person = _variants_per_person(src_dir) if (src_dir / "manifest.jsonl").is_file() else {}
    fewest = min(per_person.values()) if per_person else 0
    for k in ks:
        if not per_person or fewest < k:
            short = sum(1 for v in per_person.values() if v < k)
            why = (f"asks for {k} variants per real person; {len(per_person)} persons have kept variants in {src_dir}, "
                   f"the fewest {fewest} ({short} persons have fewer than {k})")
            log.warning("[pipeline] sweep point images_per_person=%d not run: %s", k, why)
            out["not_run"].append({"images_per_person": k, "reason": why})
            continue
        for seed in cfg.pipeline.sweep.seeds:
            seed = int(seed)
            key, rdir, info = p.run(StageRun(
                "train", "train", TRAIN_FIELDS, [data_key, src_key],
                overrides=[*data_ovr, f"aug.images_per_person={k}", f"aug.source={src_dir}",
                           f"seed={seed}"], inputs=[*data_in, src_in]))
            out["runs"].append({"persons": 0, "images_per_person": k, "seed": seed, "dir": str(rdir), "key": key,
                                **info.get("metrics", {})})
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="pipeline")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, pipeline)


if __name__ == "__main__":
    main()
