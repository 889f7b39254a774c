"""Fault 4 and 8: ``kill -9`` of a real ``python -m reid_gan.<stage>`` process at several seeded moments,
then the same command again; and two pipelines started at once on one artifacts root.

Each kill waits for a seeded amount of the stage's own progress (files written, checkpoints rewritten,
cache lines, artifacts completed), sends SIGKILL, and re-runs. The re-run must finish; nothing is
half-written (no temporary file left, every manifest line names a file and the reverse); complete work
is not redone; where the stage is deterministic the result equals an uninterrupted run's (hashes).
The in-process kill cells of train_gan, generate and the renderer are in test_gan_train.py,
test_generate.py and test_synthetic.py; the cheap pipeline cell (a stage dying mid-way) is below.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from reid_gan.utils.io import read_jsonl
from tests.helpers import REPO

SEEDS = (0, 1, 2)


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="1", WANDB_MODE="offline",
                PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _cmd(stage: str, root: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", f"reid_gan.{stage}", "experiment=smoke", f"paths.root_dir={root}",
            "print_config=false", "logger=csv", *extra]


def _run(stage: str, root: Path, extra: list[str], timeout: float = 900) -> str:
    p = subprocess.run(_cmd(stage, root, extra), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{stage} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout + p.stderr


def _kill_when(stage: str, root: Path, extra: list[str], ready: Callable[[], bool], timeout: float = 600,
               log: Path | None = None) -> None:
    """Start the stage, SIGKILL it as soon as ``ready()`` holds (fails if it finishes first). Its output goes
    to ``log`` (default: a file under ``root``), which ``ready`` may read."""
    log = log or root / f"{stage}.killed.out"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(_cmd(stage, root, extra), cwd=REPO, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if ready():
                proc.send_signal(signal.SIGKILL)  # only the process this test started
                proc.wait(60)
                return
            if proc.poll() is not None:
                pytest.fail(f"{stage} finished before the kill point:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.02)
        pytest.fail(f"{stage}: kill point not reached in {timeout} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)


def _tree(root: Path, skip=(".lock", "_COMPLETE.json", ".log", "config_tree.yaml")) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(skip) and ".hydra" not in p.parts}


def _no_temp_files(root: Path) -> None:
    temps = [p for p in root.rglob("*") if p.is_file() and ".tmp" in p.name]
    assert not temps, f"temporary files left: {temps}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs of the deterministic stages (smoke preset), one root."""
    root = tmp_path_factory.mktemp("reference")
    _run("make_dataset", root, [])
    _run("generate", root, ["generate.persons=4", "generate.figures.enabled=false"])
    _run("filter", root, ["filter.progress=false", f"filter.out={root}/kept", f"filter.report_dir={root}/report"])
    return root


# ---------------------------------------------------------------------------------- per stage
@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_make_dataset_killed_then_rerun_equals_uninterrupted(seed, reference, tmp_path):
    data = tmp_path / "data" / "smoke" / "synthetic-market"
    total = sum(1 for p in (reference / "data" / "smoke" / "synthetic-market").rglob("*.jpg"))
    at = random.Random(seed).randint(1, total - 1)
    _kill_when("make_dataset", tmp_path, [], lambda: data.is_dir() and sum(1 for _ in data.rglob("*.jpg")) >= at)
    _run("make_dataset", tmp_path, [])
    _no_temp_files(data)
    assert _tree(data) == _tree(reference / "data" / "smoke" / "synthetic-market")


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_generate_killed_then_rerun_equals_uninterrupted(seed, reference, tmp_path):
    out = tmp_path / "artifacts" / "generated"
    n_total = len(read_jsonl(reference / "artifacts" / "generated" / "manifest.jsonl"))
    at = random.Random(seed).randint(1, n_total - 2)
    extra = ["generate.persons=4", "generate.figures.enabled=false", "generate.batch_persons=1"]
    env_throttle = os.environ.get("REID_GAN_GENERATE_THROTTLE_S")
    os.environ["REID_GAN_GENERATE_THROTTLE_S"] = "0.5"
    try:
        _kill_when("generate", tmp_path, extra,
                   lambda: (out / "manifest.jsonl").is_file() and len(read_jsonl(out / "manifest.jsonl")) >= at)
    finally:
        if env_throttle is None:
            os.environ.pop("REID_GAN_GENERATE_THROTTLE_S", None)
        else:
            os.environ["REID_GAN_GENERATE_THROTTLE_S"] = env_throttle
    _run("generate", tmp_path, extra)
    _no_temp_files(out)
    recs = read_jsonl(out / "manifest.jsonl")
    assert len(recs) == n_total == len({r["file"] for r in recs})
    ref = reference / "artifacts" / "generated"
    assert {k: v for k, v in _tree(out).items() if "bounding_box_train" in k or "latents" in k} == \
        {k: v for k, v in _tree(ref).items() if "bounding_box_train" in k or "latents" in k}


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_filter_killed_then_rerun_equals_uninterrupted(seed, reference, tmp_path):
    import shutil

    src = tmp_path / "gen"
    shutil.copytree(reference / "artifacts" / "generated", src)
    cache = tmp_path / "cache.jsonl"
    n = len(read_jsonl(src / "manifest.jsonl"))
    at = random.Random(seed).randint(1, n - 1)
    extra = ["filter.progress=false", f"filter.source={src}", f"filter.cache={cache}", f"filter.out={tmp_path}/kept",
             f"filter.report_dir={tmp_path}/report", "data.name=folder",
             f"data.root={reference}/data/smoke/synthetic-market"]
    _kill_when("filter", tmp_path, extra, lambda: cache.is_file() and len(cache.read_text().splitlines()) >= at)
    _run("filter", tmp_path, extra)
    _no_temp_files(tmp_path / "kept")
    got, want = _tree(tmp_path / "kept"), _tree(reference / "kept")
    assert got.keys() == want.keys() and {k: v for k, v in got.items() if k != "kept_set.json"} == \
        {k: v for k, v in want.items() if k != "kept_set.json"}
    # kept_set.json records the set's source folder (here a copy of the reference's): equal but for that
    record = lambda root: {k: v for k, v in json.loads((root / "kept" / "kept_set.json").read_text()).items()  # noqa: E731
                           if k != "source"}
    assert record(tmp_path) == record(reference)
    m = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert sum(v for k, v in m.items() if k.startswith("filter/cached_")) >= at  # scores from before the kill reused


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_train_gan_killed_then_resumed_completes(seed, tmp_path):
    run_dir = tmp_path / "artifacts" / "gan" / "stylegan3-t"
    last = run_dir / "checkpoints" / "last.ckpt"
    extra = ["gan.resume=auto", "gan.kimg=0.064", "gan.tick_kimg=0.008"]
    k = random.Random(seed).randint(1, 5)  # how many checkpoint rewrites before the kill
    _kill_when("train_gan", tmp_path, extra, _steps_of_checkpoints(last, k))
    import torch

    before = torch.load(last, map_location="cpu", weights_only=True)["gan"]["cur_nimg"]
    assert before < 64
    out = _run("train_gan", tmp_path, extra)
    assert "continuing from" in out
    after = torch.load(last, map_location="cpu", weights_only=True)["gan"]
    assert after["cur_nimg"] == 64
    _no_temp_files(run_dir)
    hist = read_jsonl(run_dir / "metrics.jsonl")
    assert hist[-1]["kimg"] == pytest.approx(0.064) and len({h["snapshot"] for h in hist}) == len(hist)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_train_killed_then_rerun_equals_uninterrupted(seed, reference, tmp_path):
    """A killed re-ID run leaves no metrics.json; re-running (from scratch, deterministic on CPU) gives
    the uninterrupted run's numbers."""
    data = f"data.root={reference}/data/smoke/synthetic-market"
    extra = ["data.name=folder", data, "callbacks=none", "reid.max_epochs=2", "trainer.deterministic=true",
             "reid.ranked_queries=0"]
    ref_out = tmp_path / "ref"
    _run("train", tmp_path, [*extra, f"hydra.run.dir={ref_out}"])
    ref = json.loads((ref_out / "metrics.json").read_text())["metrics"]
    out = tmp_path / "killed"
    delay = random.Random(seed).uniform(0.2, 0.9)
    t0: list[float] = []

    def ready() -> bool:  # a seeded fraction into training: after the first checkpoint or the first log
        started = (out / "checkpoints").is_dir() or (out / "csv").is_dir()
        if started and not t0:
            t0.append(time.time())
        return bool(t0) and time.time() - t0[0] >= delay * 5

    _kill_when("train", tmp_path, [*extra, f"hydra.run.dir={out}"], ready)
    assert not (out / "metrics.json").exists()
    _run("train", tmp_path, [*extra, f"hydra.run.dir={out}"])
    got = json.loads((out / "metrics.json").read_text())["metrics"]
    for k in ("val/rank1", "val/mAP"):
        assert got[k] == ref[k], k


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_pipeline_killed_then_rerun_completes_without_redoing_finished_stages(seed, tmp_path):
    arts = tmp_path / "artifacts"
    stages = ["make_dataset", "train_gan", "generate", "filter"]
    after = random.Random(seed).choice(stages)  # kill once this stage's artifact is complete
    extra = ["pipeline.sweep.persons=[0,1]", "logger=csv"]

    def ready() -> bool:
        d = arts / after
        return d.is_dir() and any((p / "_COMPLETE.json").is_file() for p in d.iterdir() if p.is_dir())

    _kill_when("pipeline", tmp_path, extra, ready)
    done_before = {s for s in stages if (arts / s).is_dir()
                   and any((p / "_COMPLETE.json").is_file() for p in (arts / s).iterdir() if p.is_dir())}
    out = _run("pipeline", tmp_path, extra)
    assert done_before, "the kill came before any stage completed"
    for s in done_before:  # complete stages are not redone
        assert f"[pipeline] {s:<22} skipped" in out and f"[pipeline] {s:<22} running" not in out, s
    for s in stages:
        assert any((p / "_COMPLETE.json").is_file() for p in (arts / s).iterdir() if p.is_dir()), s
    _no_temp_files(arts)


# ------------------------------------------------------------------------------ encoder stages
ENC = ["trainer=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
       "encoder.max_steps=8", "encoder.val_every=2", "encoder.resume=auto"]


@pytest.fixture(scope="module")
def encoder_reference(tmp_path_factory):
    """Uninterrupted smoke runs of train_encoder (8 steps, a validation and a checkpoint every 2) and of
    invert on its encoder, one root."""
    root = tmp_path_factory.mktemp("encoder_reference")
    _run("train_encoder", root, ENC)
    _run("invert", root, ["invert.batch_size=1"])  # the killed runs' batch size: batching changes the float sums
    return root


def _steps_of_checkpoints(last: Path, k: int) -> Callable[[], bool]:
    """``ready()``: true once ``last`` has been (re)written ``k`` times."""
    seen: list[int] = []

    def ready() -> bool:
        if last.is_file():
            m = last.stat().st_mtime_ns
            if not seen or seen[-1] != m:
                seen.append(m)
        return len(seen) >= k

    return ready


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_train_encoder_killed_then_resumed_completes_keeping_what_was_written(seed, encoder_reference, tmp_path):
    """Killed after 0-3 checkpoint rewrites (0: right after the step-0 validation), resumed with
    encoder.resume=auto: the run reaches max_steps with one metrics line per validation, the lines up to the
    kill's checkpoint are kept as written (and equal the uninterrupted run's: the same seed on CPU), and
    every grid is there. The resumed part is not bit-identical to an uninterrupted run: the data order
    after a resume is drawn afresh (Lightning does not restore a RandomSampler's position)."""
    import torch

    from reid_gan.encoder.build import load_encoder

    out = tmp_path / "artifacts" / "encoder" / "default"
    ref = encoder_reference / "artifacts" / "encoder" / "default"
    last = out / "checkpoints" / "last.ckpt"
    k = random.Random(seed).randint(0, 3)
    ready = (lambda: bool(read_jsonl(out / "metrics.jsonl"))) if k == 0 else _steps_of_checkpoints(last, k)
    _kill_when("train_encoder", tmp_path, ENC, ready)
    at = torch.load(last, map_location="cpu", weights_only=True)["global_step"] if last.is_file() else None
    written = [r for r in read_jsonl(out / "metrics.jsonl") if at is not None and r["step"] <= at]
    grids_before = {g: h for g, h in (_tree(out / "grids") if (out / "grids").is_dir() else {}).items()
                    if ".tmp" not in g}  # a grid the kill caught mid-write: its temporary file (removed by the rerun)

    log = _run("train_encoder", tmp_path, ENC)
    assert ("continuing from" in log) == (at is not None), log[-2000:]
    rows, ref_rows = read_jsonl(out / "metrics.jsonl"), read_jsonl(ref / "metrics.jsonl")
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows] == [0, 2, 4, 6, 8]
    assert rows[: len(written)] == written == ref_rows[: len(written)]  # nothing written before the kill lost
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + len(rows)
    grids = _tree(out / "grids")
    assert sorted(grids) == sorted(_tree(ref / "grids"))
    assert all(grids[g] == h for g, h in grids_before.items() if int(g[4:10]) <= (at or 0))  # old grids kept
    _, meta = load_encoder(out)
    assert meta["step"] == 8 and json.loads((out / "summary.json").read_text())["steps"] == 8
    _no_temp_files(out)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_invert_killed_then_rerun_equals_uninterrupted(seed, encoder_reference, tmp_path):
    """Killed a seeded moment into the inversion (one image per batch), into an empty folder (seed 0, 2)
    or over a complete earlier result (seed 1): no temporary file, the earlier result intact, and the rerun
    writes the uninterrupted run's files byte for byte (summary.json: all but its timing)."""
    import shutil

    ref = encoder_reference / "artifacts" / "invert" / "default"
    out = tmp_path / "inv"
    if seed == 1:
        shutil.copytree(ref, out)
    extra = [f"invert.source={encoder_reference}/artifacts/encoder/default", f"invert.out={out}", "invert.batch_size=1",
             "data.name=folder", f"data.root={encoder_reference}/data/smoke/synthetic-market"]
    delay = random.Random(seed).uniform(0.0, 1.0)
    log = tmp_path / "invert.out"
    t0: list[float] = []

    def ready() -> bool:  # a seeded moment after the inversion loop starts
        if not t0 and log.is_file() and "Inverting" in log.read_text(errors="replace"):
            t0.append(time.time())
        return bool(t0) and time.time() - t0[0] >= delay

    _kill_when("invert", tmp_path, extra, ready, log=log)
    _no_temp_files(out)
    if seed == 1:
        assert _tree(out) == _tree(ref)
    _run("invert", tmp_path, extra)
    _no_temp_files(out)
    got, want = _tree(out), _tree(ref)
    for name in ("latents.pt", "codes.pt", "manifest.jsonl", "reconstructions.png"):
        assert got[name] == want[name], name
    strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k != "seconds"}  # noqa: E731
    assert strip(out / "summary.json") == strip(ref / "summary.json")


# ------------------------------------------------------------------------------ two at once
@pytest.mark.slow
def test_two_pipelines_at_once_on_one_root_build_each_stage_once(tmp_path, no_network):
    """Also the network-block cell for every smoke stage as a child process: no attempt (fixture)."""
    procs = [subprocess.Popen(_cmd("pipeline", tmp_path, ["pipeline.sweep.persons=[0,1]"]), cwd=REPO, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=1800)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n\n".join(o[-3000:] for o in outs)
    text = "\n".join(outs)
    for stage in ("make_dataset", "train_gan", "generate", "filter"):
        assert text.count(f"[pipeline] {stage:<22} running") == 1, stage  # built once, the other job waited
    arts = tmp_path / "artifacts"
    for stage in ("make_dataset", "train_gan", "generate", "filter"):
        dirs = [p for p in (arts / stage).iterdir() if p.is_dir()]
        assert len(dirs) == 1 and (dirs[0] / "_COMPLETE.json").is_file(), stage
    runs = sorted((tmp_path / "logs" / "pipeline" / "runs").iterdir())
    assert len(runs) == 2, runs  # separate run folders, even when started in the same second
    _no_temp_files(arts)


# ------------------------------------------------------------------------- cheap, default run
def test_pipeline_stage_dying_midway_is_redone_alone(tmp_path, monkeypatch):
    """In-process: the second stage dies after writing part of its artifact; the re-run skips the first,
    redoes the second from the start, and no marker is left on the partial folder in between."""
    from reid_gan.study import runner as pl
    from reid_gan.utils.artifacts import is_complete
    from tests.helpers import compose_stage

    calls: list[str] = []
    die = {"on": True}

    def fake(cfg):
        out = Path(cfg.paths.output_dir)
        calls.append(cfg.task_name)
        (out / "part.txt").write_text("half")
        if cfg.task_name == "generate" and die["on"]:
            raise KeyboardInterrupt("killed")
        return {"m": 1.0}, {}

    monkeypatch.setattr(pl, "stage_function", lambda s: fake)
    p = pl.Pipeline(compose_stage("make_dataset", tmp_path))
    a = pl.StageRun("make_dataset", "make_dataset", ["data"])
    _, out_a, _ = p.run(a)
    b = pl.StageRun("generate", "generate", ["generate"], upstream=["x"], inputs=[out_a])
    with pytest.raises(KeyboardInterrupt):
        p.run(b)
    out_b = next(d for d in (tmp_path / "artifacts" / "generate").iterdir() if d.is_dir())
    assert not is_complete(out_b)
    die["on"] = False
    p.run(a)
    p.run(b)
    assert calls == ["make_dataset", "generate", "generate"] and is_complete(out_b)


def test_train_encoder_rerun_after_a_kill_keeps_its_metrics_consistent(tmp_path):
    """In-process, the two states a kill leaves: (1) a step-0 validation line and no checkpoint (killed
    before the first one): the rerun starts over without repeating step 0; (2) a checkpoint at step 2, then a
    validation line of step 4 written before its checkpoint, a half-written line, and a checkpoint's
    temporary file: the resume drops the line past its step (redone) and the half line, keeps the earlier
    lines as written, and removes the temporary file."""
    from reid_gan.train_encoder import train_encoder
    from tests.helpers import compose_stage

    fast = ["logger=none", "encoder.max_images=8", "encoder.val_max_images=4", "encoder.grid_images=1",
            *[o for o in ENC if not o.startswith("encoder.max_steps")]]
    out = Path(compose_stage("train_encoder", tmp_path, fast).encoder.out_dir)
    out.mkdir(parents=True)
    (out / "metrics.jsonl").write_text(json.dumps({"step": 0, "val/loss": -1.0}) + "\n")  # killed before a checkpoint
    train_encoder(compose_stage("train_encoder", tmp_path, [*fast, "encoder.max_steps=2"]))
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 2] and rows[0]["val/loss"] != -1.0

    before = (out / "metrics.jsonl").read_text()
    (out / "metrics.jsonl").write_text(before + json.dumps({"step": 4, "val/loss": -1.0}) + "\n" + '{"step": 6, "va')
    temp = out / "checkpoints" / ".last.x1y2.tmp.ckpt"
    temp.write_bytes(b"half a checkpoint")
    metrics, _ = train_encoder(compose_stage("train_encoder", tmp_path, [*fast, "encoder.max_steps=4"]))
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 2, 4] and rows[-1]["val/loss"] != -1.0
    assert (out / "metrics.jsonl").read_text().startswith(before)
    assert len((out / "metrics.csv").read_text().splitlines()) == 4
    assert not temp.exists() and metrics["train/steps"] == 4


def test_an_append_after_a_killed_append_keeps_the_jsonl_file_valid(tmp_path):
    """A writer killed mid-append leaves a half last line; the next append cuts it off instead of joining
    it to the new record (a broken line in the middle, which read_jsonl refuses), and a complete record
    that only lacks its newline is kept."""
    from reid_gan.utils.io import append_jsonl

    p = tmp_path / "cache.jsonl"
    append_jsonl(p, [{"file": "a.jpg", "score": 1}])
    p.write_text(p.read_text() + '{"file": "b.jpg", "sc')
    append_jsonl(p, [{"file": "b.jpg", "score": 2}])
    assert read_jsonl(p) == [{"file": "a.jpg", "score": 1}, {"file": "b.jpg", "score": 2}]
    p.write_text(p.read_text() + '{"file": "c.jpg", "score": 3}')
    append_jsonl(p, [{"file": "d.jpg", "score": 4}])
    assert [r["file"] for r in read_jsonl(p)] == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]


def test_train_gan_resume_after_a_kill_between_a_tick_line_and_its_checkpoint(tmp_path):
    """In-process: a checkpoint at 8 images; then the line of the tick at 12 images was written before its
    checkpoint (and a half line after it), and a checkpoint's temporary file was left. The resume redoes
    that tick: its line replaced (one line per tick), the half line gone, the temporary file removed."""
    from reid_gan.train_gan import train_gan
    from tests.helpers import compose_stage
    from tests.test_gan_train import STANDIN, _write_dataset

    ds = _write_dataset(tmp_path / "ds")
    gan = [*STANDIN, "data.name=folder", f"data.root={ds}", "gan.tick_kimg=0.004", "gan.resume=auto",
           "gan.G.z_dim=8", "gan.G.w_dim=8"]
    _, obj = train_gan(compose_stage("train_gan", tmp_path, [*gan, "gan.kimg=0.008"]))
    out = Path(obj["out_dir"])
    before = (out / "metrics.jsonl").read_text()
    assert [r["cur_nimg"] for r in read_jsonl(out / "metrics.jsonl")] == [4, 8]
    (out / "metrics.jsonl").write_text(before + json.dumps({"cur_nimg": 12, "kimg": 0.012, "snapshot": "x"}) + "\n"
                                       + '{"cur_nimg": 16, "ki')
    temp = out / "checkpoints" / ".last.k1ll.tmp.ckpt"
    temp.write_bytes(b"half a checkpoint")
    train_gan(compose_stage("train_gan", tmp_path, [*gan, "gan.kimg=0.016"]))
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["cur_nimg"] for r in rows] == [4, 8, 12, 16] and rows[2]["snapshot"] != "x"
    assert (out / "metrics.jsonl").read_text().startswith(before) and not temp.exists()
