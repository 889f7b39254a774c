"""The study's own command as a researcher types it (issue 12):
``python -m reid_gan.train reid=resnet50 'aug.persons=range(0,330,10)' -m`` from any folder.

One test per defect found at commit 961d352 (each failed there): a multirun could not resolve
``hydra.sweep.dir``; a preset overrode a group option chosen on the command line; ``aug.persons=N`` alone
trained the baseline; ``aug.source`` pointed at a folder nothing writes. Sweeps run as subprocesses from a
temporary working folder with no ``hydra.sweep.dir`` or ``paths.*`` override.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from reid_gan.config import ConfigError, validate_config
from tests.helpers import CONF_DIR, REPO, compose_stage, make_generated_set

PRESETS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
FAST = ["print_config=false", "callbacks=none", "reid.ranked_queries=0"]


def _compose_plain(overrides: list[str]):
    """The config exactly as the command line composes it (no location override), hydra node included."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="1", WANDB_MODE="offline", WANDB_SILENT="true",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("REID_GAN_ROOT", None)
    return env


def run_cli(args: list[str], cwd: Path, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m reid_gan.<stage> ...`` in ``cwd``, as a user types it."""
    r = subprocess.run([sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return r


def only_sweep(cwd: Path, task: str = "train") -> Path:
    sweeps = sorted((cwd / "logs" / task / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def wandb_records(run_dir: Path) -> list:
    """The records of an offline W&B run file (LevelDB log format: 32 KiB blocks, 7-byte record headers
    after a 7-byte file header), parsed with W&B's own protobuf schema."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    pos, buf, out, block = 7, b"", [], 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        if kind == 0 and n == 0:
            break
        buf += data[pos:pos + n]
        pos += n
        if kind in (1, 4):  # FULL or LAST
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
            buf = b""
    return out


# ------------------------------------------------------------------ defect 1: -m without hydra.sweep.dir
@pytest.mark.parametrize("launcher", [None, "joblib", "slurm", "submitit_local"])
def test_sweep_dir_and_launcher_resolve_before_hydra_sets_its_config(launcher, tmp_path, monkeypatch):
    """What a launcher does first: resolve hydra.sweep.dir (and its own config) while HydraConfig is not
    set yet. At 961d352 this raised InterpolationResolutionError (paths.root_dir used ${hydra:runtime.cwd})."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REID_GAN_ROOT", raising=False)
    cfg = _compose_plain([*([f"hydra/launcher={launcher}"] if launcher else [])])
    HydraConfig.instance().cfg = None  # as in a fresh process before the first job
    assert not HydraConfig.initialized()
    sweep_dir = Path(str(cfg.hydra.sweep.dir))
    assert sweep_dir.parent == tmp_path / "logs" / "train" / "multiruns"
    OmegaConf.to_container(cfg.hydra.launcher, resolve=True)  # e.g. submitit_folder: ${hydra.sweep.dir}/...
    assert Path(str(cfg.paths.artifacts)) == tmp_path / "artifacts"


# ------------------------------------------------ defect 2: a preset never overrides a command-line choice
def test_reid_resnet50_on_the_command_line_trains_a_resnet50():
    """At 961d352 `python -m reid_gan.train reid=resnet50` composed arch resnet18 (the quickstart preset)."""
    assert _compose_plain(["reid=resnet50"]).reid.net.arch == "resnet50"
    assert _compose_plain([]).reid.net.arch == "resnet18"  # what common.yaml lists is what runs


# the keys that tell one option of a group from another: a preset may choose the option, never set these
IDENTITY = {"reid": ["net.arch"], "gan": ["name", "G.conv_kernel", "G.use_radial_filters"], "data": ["name"],
            "detector": ["_target_"], "logger": ["wandb", "csv"]}


def test_every_group_option_chosen_on_the_command_line_wins_over_every_preset(tmp_path):
    """For each preset and group: the command line picks an option other than the preset's, and the
    composed config has that option's identity (as composed with no preset at all)."""
    def ident(cfg, group):
        node = cfg.filter.detector if group == "detector" else cfg[group]
        return {k: (OmegaConf.select(node, k) is not None) if group == "logger" else OmegaConf.select(node, k)
                for k in IDENTITY[group]}

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        def comp(overrides):
            return compose(config_name="train", overrides=[f"paths.root_dir={tmp_path}", *overrides])

        plain = {g: {o: ident(comp([f"{g}={o}", "~experiment"]), g)
                     for o in sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml"))} for g in IDENTITY}
        checked = 0
        for preset in PRESETS:
            chosen = comp([f"experiment={preset}"])
            for group, options in plain.items():
                other = next(o for o, idt in options.items() if idt != ident(chosen, group))
                cfg = comp([f"experiment={preset}", f"{group}={other}"])
                assert ident(cfg, group) == options[other], (preset, group, other)
                checked += 1
    assert checked == len(PRESETS) * len(IDENTITY)


def test_thesis_presets_share_thesis_base_and_thresholds_are_stated_once():
    for name in ("thesis_persons", "thesis_variants", "thesis_gan"):
        text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
        assert "- thesis_base" in text, name
    for p in (CONF_DIR / "experiment").glob("*.yaml"):
        body = [ln for ln in p.read_text().splitlines() if not ln.lstrip().startswith("#")]
        assert not any(ln.strip() in ("threshold: 0.6", "threshold: 0.75") for ln in body), p.name
    flt = (CONF_DIR / "filter" / "default.yaml").read_text()
    assert "threshold: 0.6" in flt and "threshold: 0.75" in flt


def test_every_stage_declares_its_start_line():
    """Each stage logs the resolved choices that decide its result in one line at start: the keys its
    primary config lists in log_at_start (train logs its own derived line, tested above and below)."""
    import yaml

    for p in sorted(CONF_DIR.glob("*.yaml")):
        if p.stem in ("common", "train"):
            continue
        keys = yaml.safe_load(p.read_text()).get("log_at_start")
        assert keys and all(isinstance(k, str) for k in keys), p.name


# --------------------------------------------------------- defect 3: aug.persons=N alone adds N persons
@pytest.fixture(scope="module")
def smoke_set(tmp_path_factory):
    """The smoke dataset rendered under a root folder, and a hand-made kept set of 2 synthetic persons."""
    from reid_gan.data import build_dataset

    root = tmp_path_factory.mktemp("root")
    ds = build_dataset(compose_stage("train", root).data)
    kept = make_generated_set(root / "kept", ds.train, n_persons=2, per_person=3)
    return root, ds, kept


def test_aug_persons_alone_selects_the_persons_arm(smoke_set, tmp_path):
    """At 961d352 `aug.persons=2` without `aug=persons` trained the baseline (aug.name stayed none)."""
    from reid_gan.train import train

    root, ds, kept = smoke_set
    cfg = compose_stage("train", tmp_path, [f"paths.root_dir={root}", "aug.persons=2", f"aug.source={kept}",
                                            "logger=csv", *FAST])
    validate_config(cfg)
    m, objs = train(cfg)
    assert m["aug/name"] == "persons" and m["aug/persons"] == 2 and m["aug/images"] == 6
    assert m["train/num_classes"] == ds.num_train_pids + 2
    assert objs["model"].net.classifier.out_features == ds.num_train_pids + 2
    with pytest.raises(ConfigError, match=r"aug\.persons=2 and aug\.images_per_person=3: give one of them"):
        validate_config(compose_stage("train", tmp_path, ["aug.persons=2", "aug.images_per_person=3"]))


# ---------------------------------------------- defect 4: aug.source defaults to the newest study's kept set
def test_aug_source_without_a_study_says_to_run_the_pipeline(tmp_path):
    """At 961d352 the default was artifacts/filter/kept, which nothing writes."""
    from reid_gan.reid.augment import AugError, resolve_source

    cfg = compose_stage("train", tmp_path, ["aug.persons=3"])
    with pytest.raises(AugError, match=r"aug\.persons=3 needs a generated set .*no complete study.*"
                                       r"python -m reid_gan\.pipeline.*aug\.source=DIR"):
        resolve_source(cfg.aug, cfg.paths.artifacts)
    assert resolve_source(compose_stage("train", tmp_path, ["aug.persons=0"]).aug, cfg.paths.artifacts) is None


def test_aug_source_follows_the_pointer_the_pipeline_writes(tmp_path):
    from reid_gan.reid.augment import resolve_source
    from reid_gan.utils.artifacts import read_latest, write_latest

    cfg = compose_stage("train", tmp_path, ["aug.persons=3"])
    write_latest(cfg.paths.artifacts, {"kept": "/a/filter/k1/kept"})
    write_latest(cfg.paths.artifacts, {"kept": "/a/filter/k2/kept"})  # the newer study replaces it
    assert resolve_source(cfg.aug, cfg.paths.artifacts) == "/a/filter/k2/kept"
    assert sorted(p.name for p in Path(cfg.paths.artifacts).iterdir()) == ["latest.json"]  # no temp left
    assert read_latest(tmp_path / "nowhere") is None


# -------------------------------------------- a sweep from a fresh folder: failures, report, W&B, summary
def test_sweep_from_a_fresh_folder_failed_job_report_and_wandb(smoke_set):
    """`-m` from the folder the data lives in, no location override: N=1 trains, N=5 (> 2 persons in the
    set) fails alone naming both numbers; the report lists it; the jobs form one W&B group whose configs
    hold the study point as plain keys; the end of the sweep prints the `wandb sync` command."""
    root, ds, kept = smoke_set
    r = run_cli(["-m", "reid_gan.train", "experiment=smoke", "logger=default", f"aug.source={kept}",
                 "aug.persons=1,5", *FAST, "-m"], cwd=root, check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]  # a job failed: the sweep says so in its exit status
    sweep = only_sweep(root)
    assert "Sweep finished: 2 jobs" in out and "1 finished, 1 failed" in out, out[-3000:]
    assert f"aug.persons=5 but aug.source={kept} holds only 2 synthetic persons" in out
    assert f"wandb sync {sweep}/*/wandb/offline-run-*" in out
    assert "train: resnet18 from scratch at 64x32, 1 epochs | aug=persons N=1 label=new_class source=" in out
    rec = json.loads((sweep / "0" / "metrics.json").read_text())
    assert rec["metrics"]["aug/persons"] == 1 and rec["point"]["aug.persons"] == 1
    failed = json.loads((sweep / "1" / "FAILED.json").read_text())
    assert failed["error"] == "AugError" and "aug.persons=5" in failed["overrides"]

    runs = sorted(sweep.glob("*/wandb/offline-run-*"))
    assert len(runs) == 1  # the failed job stopped before its logger
    recs = wandb_records(runs[0])
    run = next(x.run for x in recs if x.WhichOneof("record_type") == "run")
    assert run.run_group == f"train-{sweep.name}"
    config = {i.key: json.loads(i.value_json) for x in recs for i in
              (x.run.config.update if x.WhichOneof("record_type") == "run" else
               x.config.update if x.WhichOneof("record_type") == "config" else [])}
    assert config["aug.persons"] == 1 and config["aug.images_per_person"] == 0 and config["seed"] == 0
    assert config["arch"] == "resnet18" and config["input_size"] == "64x32"

    run_cli(["-m", "reid_gan.report", f"sweep_dir={sweep}", "print_config=false"], cwd=root)
    md = (sweep / "report" / "sweep_table.md").read_text()
    assert "| persons N=1 | 1 | 3 | 1 |" in md
    assert "1 job(s) failed" in md and "aug.persons=5 but" in md and "holds only 2 synthetic persons" in md
    failed_csv = pd.read_csv(sweep / "report" / "sweep_failed.csv")
    assert list(failed_csv["job"]) == [1]


# ----------------------------------------------------------------- the other launchers, for real (slow)
@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_sweep_with_launcher_from_a_fresh_folder(launcher, smoke_set, tmp_path):
    """joblib (processes) and Hydra's submitit_local launcher (the cluster route short of a cluster: the
    jobs are pickled, run by submitit in their own processes, results collected from disk)."""
    root, _, kept = smoke_set
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "data").symlink_to(root / "data")
    extra = ["hydra.launcher.timeout_min=15"] if launcher == "submitit_local" else ["hydra.launcher.n_jobs=2"]
    run_cli(["-m", "reid_gan.train", "experiment=smoke", f"aug.source={kept}", "aug.persons=0,2", *FAST,
             f"hydra/launcher={launcher}", *extra, "-m"], cwd=cwd)
    sweep = only_sweep(cwd)
    recs = [json.loads(f.read_text()) for f in sorted(sweep.glob("*/metrics.json"))]
    assert sorted(r["metrics"]["aug/persons"] for r in recs) == [0, 2]
    if launcher == "submitit_local":
        assert list((sweep / ".submitit").iterdir())  # submitit's own job folders


def test_thesis_ellipsis_notation_is_written_out():
    from reid_gan.utils.sweep import expand_ellipsis

    assert expand_ellipsis(["reid=resnet50", "aug.persons=10,20,...,320", "-m"]) == [
        "reid=resnet50", "aug.persons=" + ",".join(str(n) for n in range(10, 330, 10)), "-m"]
    assert expand_ellipsis(["aug.persons=0,10,20,...,40", "seed=1,2,3", "'x=range(0,3)'"]) == [
        "aug.persons=0,10,20,30,40", "seed=1,2,3", "'x=range(0,3)'"]
    for bad, why in (("aug.persons=10,25,...,320", "step evenly"), ("aug.persons=10,...,320", "two values"),
                     ("aug.persons=a,b,...,c", "whole numbers"), ("aug.persons=10,20,...,5", "reach 5")):
        with pytest.raises(SystemExit, match=why):
            expand_ellipsis([bad])


def test_thesis_ellipsis_reaches_hydra_from_the_command_line(tmp_path):
    """As typed: the train entry writes the ellipsis out before Hydra parses it (Hydra alone fails on '...');
    a bad one stops at once naming the override."""
    r = run_cli(["-m", "reid_gan.train", "experiment=smoke", "aug.persons=10,25,...,320", "-m"], cwd=tmp_path,
                check=False)
    assert r.returncode != 0 and "aug.persons=10,25,...,320: the values before the '...' must step evenly" in r.stderr
    assert not (tmp_path / "logs").exists()  # nothing ran


# -------------------------------------------------------------------- the done-when, end to end
@pytest.mark.slow
def test_signature_command_after_the_smoke_pipeline(tmp_path):
    """In a fresh folder: `python -m reid_gan.pipeline experiment=smoke`, then
    `python -m reid_gan.train reid=resnet50 experiment=smoke aug.persons=0,1,...,2 -m` (the thesis's
    notation, unquoted; nothing else: aug.source comes from the study's pointer) runs 3 ResNet50 jobs with
    0, 1, 2 synthetic persons, and
    `python -m reid_gan.report sweep_dir=...` gives the table."""
    run_cli(["-m", "reid_gan.pipeline", "experiment=smoke"], cwd=tmp_path)
    latest = json.loads((tmp_path / "artifacts" / "latest.json").read_text())
    assert Path(latest["kept"]).parent.parent == tmp_path / "artifacts" / "filter"
    r = run_cli(["-m", "reid_gan.train", "reid=resnet50", "experiment=smoke", "aug.persons=0,1,...,2", "-m"],
                cwd=tmp_path)
    sweep = only_sweep(tmp_path)
    recs = sorted((json.loads(f.read_text()) for f in sweep.glob("*/metrics.json")),
                  key=lambda x: x["point"]["aug.persons"])
    assert [x["point"]["aug.persons"] for x in recs] == [0, 1, 2]
    assert all(x["point"]["arch"] == "resnet50" and x["point"]["input_size"] == "64x32" for x in recs)
    assert [x["metrics"]["aug/persons"] for x in recs] == [0, 1, 2]
    assert all(x["metrics"]["aug/source"] == latest["kept"] for x in recs[1:])
    assert "train: resnet50 from scratch at 64x32, 1 epochs | aug=persons N=2" in r.stdout + r.stderr
    run_cli(["-m", "reid_gan.report", f"sweep_dir={sweep}"], cwd=tmp_path)
    table = pd.read_csv(sweep / "report" / "sweep_table.csv")
    assert list(table["N"]) == [0, 1, 2] and list(table["seeds"]) == [1, 1, 1]
    md = (sweep / "report" / "sweep_table.md").read_text()
    assert "| baseline | 0 | 0 | 1 |" in md and "| persons N=2 | 2 |" in md
