"""``python -m reid_gan.generate``: layout, manifest, determinism, resume after a kill, real variants, remake."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from reid_gan.config import ConfigError, validate_config
from reid_gan.data.market1501 import NAME_PATTERN as NAME_RE
from reid_gan.data.market1501 import FolderDataset
from reid_gan.gan import sampling
from reid_gan.generate import generate
from reid_gan.generation import Person, method_counts, plan_person, remake, remake_bytes
from reid_gan.utils.io import read_jsonl
from tests.helpers import REPO, compose_stage

# The generator of these tests: experiment=smoke's randomly initialised tiny reid_gan.gan.networks.Generator
# (32×16, 4 layers → num_ws = 6; see conf/experiment/smoke.yaml).
G_OVERRIDES: list[str] = []
BASE = [*G_OVERRIDES, "generate.persons=3", "generate.images_per_person=7", "generate.synthesis_batch=3"]


def _cfg(tmp_path: Path, extra: list[str] = ()):  # noqa: B006
    cfg = compose_stage("generate", tmp_path, [*BASE, *extra])
    validate_config(cfg)
    return cfg


def _hashes(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted((root / "bounding_box_train").iterdir()):
        out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    for p in sorted((root / "latents").iterdir()):
        out["latents/" + p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    out["manifest"] = hashlib.sha256((root / "manifest.jsonl").read_bytes()).hexdigest()
    return out


def _make_G(cfg):
    from reid_gan.generation import random_generator

    return random_generator(cfg.generate.random_init, cfg.seed)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run: 3 persons × 7 images (base + 3 style mix + 2 interpolation + 1 transform)."""
    tmp = tmp_path_factory.mktemp("ref")
    cfg = _cfg(tmp)
    metrics, objects = generate(cfg)
    return cfg, Path(cfg.generate.out), metrics, objects


# ---------------------------------------------------------------------------------------------- sampling


def test_layer_ranges_and_style_mix():
    assert sampling.layer_range("coarse", 16) == (0, 4)
    assert sampling.layer_range("middle", 16) == (4, 8)
    assert sampling.layer_range("fine", 16) == (8, 16)
    assert sampling.layer_range([2, 5], 16) == (2, 5)
    assert [sampling.layer_range(r, 6) for r in ("coarse", "middle", "fine")] == [(0, 2), (2, 3), (3, 6)]
    for bad in ([5, 5], [0, 17], [-1, 3], "top"):
        with pytest.raises(ValueError):
            sampling.layer_range(bad, 16)
    a, b = torch.randn(2, 16, 8), torch.randn(2, 16, 8)
    m = sampling.style_mix(a, b, 4, 8)
    assert torch.equal(m[:, 4:8], b[:, 4:8]) and torch.equal(m[:, :4], a[:, :4]) and torch.equal(m[:, 8:], a[:, 8:])


def test_seeds_and_interpolation():
    z = sampling.z_from_seeds([3, 7], 12)
    assert np.array_equal(z[1].numpy(), np.random.RandomState(7).randn(12).astype(np.float32))
    a, b = z[0:1], z[1:2]
    assert torch.allclose(sampling.slerp(a, b, 0.0), a, atol=1e-6)
    assert torch.allclose(sampling.slerp(a, b, 1.0), b, atol=1e-5)
    mid = sampling.slerp(a, b, 0.5)
    assert torch.isclose(mid.norm(), (a.norm() + b.norm()) / 2, atol=1e-5)
    assert torch.allclose(sampling.lerp(a, b, 0.25), a + 0.25 * (b - a))


def test_input_transform_is_applied_and_restored():
    from reid_gan.gan.networks import Generator

    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=[32, 16], img_channels=3,
                  mapping_kwargs={"num_layers": 2}, channel_base=256, channel_max=32, num_layers=4,
                  num_critical=1).eval()
    before = G.synthesis.input.transform.clone()
    ws = sampling.seeds_to_ws(G, [1], 0.7)
    plain = sampling.synthesize(G, ws)
    T = sampling.make_transform((0.1, -0.05), 8.0)
    moved = sampling.synthesize(G, ws, transform=T)
    assert torch.equal(G.synthesis.input.transform, before)
    assert (moved - plain).abs().max() > 1e-2  # the transform changes the image
    with pytest.raises(RuntimeError):
        with sampling.input_transform(G, T) as used:
            assert torch.allclose(used.double(), torch.from_numpy(np.linalg.inv(T)), atol=1e-6)
            raise RuntimeError("boom")
    assert torch.equal(G.synthesis.input.transform, before)  # restored after an exception too


def test_method_counts_thesis_split():
    assert method_counts(51, {"style_mix": 20, "interpolate": 20, "transform": 10}) == \
        {"style_mix": 20, "interpolate": 20, "transform": 10}
    # 6 non-base images: exact shares 2.4 / 2.4 / 1.2 → 2 / 2 / 1, the remaining one to the first tied method
    assert method_counts(7, {"style_mix": 20, "interpolate": 20, "transform": 10}) == \
        {"style_mix": 3, "interpolate": 2, "transform": 1}
    assert method_counts(5, {"style_mix": 1, "interpolate": 3, "transform": 0}) == \
        {"style_mix": 1, "interpolate": 3, "transform": 0}
    assert method_counts(1, {"style_mix": 1, "interpolate": 1, "transform": 1}) == \
        {"style_mix": 0, "interpolate": 0, "transform": 0}
    with pytest.raises(ConfigError):
        method_counts(3, {"style_mix": 0, "interpolate": 0, "transform": 0})


def test_plan_independent_of_other_persons(tmp_path):
    cfg = _cfg(tmp_path)
    g = cfg.generate
    p1 = plan_person(Person(0, 10000, "seed", 0), g, 16)
    p2 = plan_person(Person(5, 10005, "seed", 0), g, 16)  # same seed at another index → same plan
    assert [(p.method, p.params) for p in p1] == [(p.method, p.params) for p in p2]
    p3 = plan_person(Person(1, 10001, "seed", 1), g, 16)
    assert [p.params for p in p1] != [p.params for p in p3]
    for p in p1:
        if p.method == "interpolate":
            assert g.methods.interpolate.min_alpha <= p.params["alpha"] <= g.methods.interpolate.max_alpha
        if p.method == "style_mix":
            assert p.params["donor_seed"] >= g.partner_seed_min


# ---------------------------------------------------------------------------------------------- the set


def test_layout_manifest_and_loader(reference):
    cfg, out, metrics, objects = reference
    K, N = 7, 3
    files = sorted(p.name for p in (out / "bounding_box_train").iterdir())
    assert len(files) == N * K and metrics["generate/images"] == N * K
    assert not [f for f in os.listdir(out / "bounding_box_train") if f.startswith(".")]
    for f in files:
        m = NAME_RE.match(f)
        assert m and m["cam"] == "7" and m["ext"] == "jpg", f
    ds = FolderDataset(out, verify_images="decode")
    assert ds.num_train_pids == N
    assert sorted(set(ds.train_orig_pids)) == [10000, 10001, 10002]
    assert {s.camid for s in ds.train} == {6}
    recs = read_jsonl(out / "manifest.jsonl")
    assert len(recs) == N * K and len({r["file"] for r in recs}) == N * K
    assert set(ds.manifest) == {f"bounding_box_train/{f}" for f in files}
    keys = {"file", "pid", "source", "seed", "method", "params", "psi", "generator_sha256", "frame", "latent"}
    shas = {r["generator_sha256"] for r in recs}
    assert len(shas) == 1 and len(next(iter(shas))) == 64
    for r in recs:
        assert keys <= set(r)
        m = NAME_RE.match(Path(r["file"]).name)
        assert int(m["pid"]) == r["pid"] and int(m["frame"]) == r["frame"]
        assert r["source"] == "seed" and r["seed"] == r["pid"] - 10000 and r["psi"] == 0.7
        assert (out / r["latent"]).is_file()
    per = {}
    for r in recs:
        per.setdefault(r["pid"], []).append(r)
    for pid, rs in per.items():
        assert [r["frame"] for r in rs] == list(range(K))  # canonical order
        methods = [r["method"] for r in rs]
        assert methods[0] == "base" and methods.count("base") == 1
        assert methods == ["base"] + ["style_mix"] * 3 + ["interpolate"] * 2 + ["transform"]
        sm = [r["params"] for r in rs if r["method"] == "style_mix"]
        assert [p["range"] for p in sm] == ["coarse", "middle", "coarse"]  # the ranges are cycled
        assert [p["layers"] for p in sm] == [[0, 2], [2, 3], [0, 2]]  # num_ws = 6: coarse [0,2), middle [2,3)
        tr = [r["params"] for r in rs if r["method"] == "transform"][0]
        assert abs(tr["angle"]) <= 10 and max(abs(v) for v in tr["translate"]) <= 0.1
    # images have the generator's size (stand-in: 32×16)
    img = cv2.imread(str(out / "bounding_box_train" / files[0]))
    assert img.shape == (32, 16, 3)
    # a person's images differ from one another (the methods change the image)
    imgs = [cv2.imread(str(out / r["file"])).astype(int) for r in per[10000]]
    assert all(np.abs(imgs[0] - im).mean() > 0.5 for im in imgs[1:])
    for name in ("style_mixing.png", "interpolation.png"):
        fig = cv2.imread(str(out / name))
        assert fig is not None and fig.shape[0] > 32 and fig.shape[1] > 16
    settings = json.loads((out / "generate.json").read_text())
    assert settings["settings"]["images_per_person"] == K and settings["generator"] == "random-init"


def test_deterministic_across_batch_sizes(reference, tmp_path):
    _, ref_out, _, _ = reference
    cfg = _cfg(tmp_path, ["generate.batch_persons=1"])
    generate(cfg)
    assert _hashes(Path(cfg.generate.out)) == _hashes(ref_out)


def test_remake_reproduces_every_image(reference):
    cfg, out, _, _ = reference
    G = _make_G(cfg)
    for r in read_jsonl(out / "manifest.jsonl"):
        assert remake_bytes(r, G, out) == (out / r["file"]).read_bytes(), r["file"]
    r = read_jsonl(out / "manifest.jsonl")[3]
    rgb = remake(r, G, out)
    assert rgb.dtype == np.uint8 and rgb.shape == (32, 16, 3)


def test_resume_repairs_damage_and_equals_reference(reference, tmp_path):
    cfg_ref, ref_out, _, _ = reference
    cfg = _cfg(tmp_path)
    out = Path(cfg.generate.out)
    shutil.copytree(ref_out, out)  # a finished set (the settings do not include the folder's path)
    # damage as a kill could leave it: an image with no manifest line, a temp file, a half-written
    # last manifest line, a line whose image is gone
    lines = (out / "manifest.jsonl").read_text().splitlines(keepends=True)
    keep, dropped = lines[:10], lines[10:]
    gone = json.loads(lines[5])["file"]
    (out / gone).unlink()
    (out / "manifest.jsonl").write_text("".join(keep) + dropped[0][:25])
    (out / "bounding_box_train" / ".10001_c7s1_000003_00.abc.tmp.jpg").write_bytes(b"\xff\xd8partial")
    for line in dropped[2:]:  # some later persons' images lost entirely
        (out / json.loads(line)["file"]).unlink()
    metrics, _ = generate(cfg)
    assert metrics["generate/written"] == len(dropped) + 1
    assert _hashes(out) == _hashes(ref_out)
    assert not [f for f in os.listdir(out / "bounding_box_train") if f.startswith(".")]


def test_refuses_other_settings_and_foreign_folder(reference, tmp_path):
    _, ref_out, _, _ = reference
    shutil.copytree(ref_out, tmp_path / "artifacts" / "generated")
    other = _cfg(tmp_path, ["generate.psi=0.5"])
    with pytest.raises(ConfigError, match=r"psi: 0\.7 in the folder, 0\.5 now"):
        generate(other)
    foreign = tmp_path / "foreign"
    (foreign / "bounding_box_train").mkdir(parents=True)
    (foreign / "bounding_box_train" / "0001_c1s1_000001_00.jpg").write_bytes(b"x")
    with pytest.raises(ConfigError, match="not a generated set"):
        generate(_cfg(tmp_path, [f"generate.out={foreign}"]))


def test_resize_and_png(tmp_path):
    cfg = _cfg(tmp_path, ["generate.persons=1", "generate.images_per_person=3", "generate.height=48",
                          "generate.width=24", "generate.format=png", "generate.figures.enabled=false"])
    generate(cfg)
    out = Path(cfg.generate.out)
    files = sorted((out / "bounding_box_train").iterdir())
    assert [f.suffix for f in files] == [".png"] * 3
    assert cv2.imread(str(files[0])).shape == (48, 24, 3)
    G = _make_G(cfg)
    r = read_jsonl(out / "manifest.jsonl")[2]
    assert np.array_equal(remake(r, G, out), cv2.imread(str(out / r["file"]))[:, :, ::-1])
    with pytest.raises(ConfigError, match="generate.height"):
        _cfg(tmp_path, ["generate.height=48"])


def test_real_person_variants(tmp_path):
    cfg = _cfg(tmp_path, ["generate.persons=null", "generate.images_per_person=4", "generate.figures.persons=2"])
    G = _make_G(cfg)
    ws = sampling.seeds_to_ws(G, [11, 12], 1.0) + 0.05 * torch.randn(2, G.num_ws, G.w_dim)
    lat = tmp_path / "latents.pt"
    torch.save({"pids": torch.tensor([3, 17]), "ws": ws}, lat)
    cfg.generate.latents = str(lat)
    generate(cfg)
    out = Path(cfg.generate.out)
    recs = read_jsonl(out / "manifest.jsonl")
    assert len(recs) == 8
    assert {r["pid"] for r in recs} == {3, 17} and all(r["source"] == r["pid"] and r["seed"] is None for r in recs)
    assert sorted(p.name for p in (out / "bounding_box_train").iterdir())[0] == "0003_c7s1_000000_00.jpg"
    ds = FolderDataset(out)
    assert sorted(set(ds.train_orig_pids)) == [3, 17]
    # the base image is the latent itself
    data = torch.load(out / "latents" / "17.pt", weights_only=True)
    assert torch.equal(data["ws"][0], ws[1])
    assert remake_bytes(recs[-1], G, out) == (out / recs[-1]["file"]).read_bytes()
    # errors name the file/key
    bad = tmp_path / "bad.pt"
    torch.save({"pids": torch.tensor([3]), "ws": torch.zeros(1, 5, 3)}, bad)
    cfg2 = _cfg(tmp_path / "b", ["generate.persons=null"])
    cfg2.generate.latents = str(bad)
    with pytest.raises(ValueError, match="generate.latents=.*bad.pt.*'ws' must be"):
        generate(cfg2)
    cfg3 = _cfg(tmp_path / "c", ["generate.persons=null", "generate.methods.interpolate.space=z"])
    cfg3.generate.latents = str(lat)
    with pytest.raises(ConfigError, match="interpolate.space"):
        generate(cfg3)


def _run_cli(tmp: Path, extra: list[str], env_extra: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="1", **(env_extra or {}))
    cmd = [sys.executable, "-m", "reid_gan.generate", "experiment=smoke", f"paths.root_dir={tmp}",
           *BASE, "print_config=false", *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def test_kill_mid_run_then_resume(reference, tmp_path):
    """A real SIGKILL of `python -m reid_gan.generate` part-way, then a re-run: complete, no duplicates,
    byte-identical to the uninterrupted reference set."""
    _, ref_out, _, _ = reference
    out = tmp_path / "artifacts" / "generated"
    proc = _run_cli(tmp_path, [], {"REID_GAN_GENERATE_THROTTLE_S": "1.0"})
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            m = out / "manifest.jsonl"
            if m.exists() and len(read_jsonl(m)) >= 7:  # first person done, the rest pending
                break
            if proc.poll() is not None:
                pytest.fail("generate finished before it could be killed:\n" + proc.stdout.read().decode())
            time.sleep(0.05)
        else:
            pytest.fail("no progress within 120 s")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    n_before = len(read_jsonl(out / "manifest.jsonl"))
    assert 7 <= n_before < 21
    assert not (out / "summary.json").exists()
    metrics, _ = generate(_cfg(tmp_path))  # the same settings as the killed command, run in-process
    assert metrics["generate/written"] == 21 - n_before
    recs = read_jsonl(out / "manifest.jsonl")
    assert len(recs) == 21 and len({r["file"] for r in recs}) == 21
    assert _hashes(out) == _hashes(ref_out)


@pytest.mark.slow
def test_end_to_end_from_train_gan_smoke_checkpoint(tmp_path):
    """train_gan's smoke preset writes snapshots; generate reads the folder (newest snapshot) and the set is
    remade byte for byte from the loaded generator; generator_sha256 is the snapshot file's hash."""
    from reid_gan.gan.checkpoint import latest_snapshot, load_generator
    from reid_gan.train_gan import train_gan
    from reid_gan.utils.io import file_sha256

    gcfg = compose_stage("train_gan", tmp_path)
    validate_config(gcfg)
    train_gan(gcfg)
    snaps = Path(gcfg.gan.out_dir)
    snap = latest_snapshot(snaps)
    assert snap is not None
    cfg = _cfg(tmp_path, [f"generate.ckpt={snaps}", "generate.persons=2", "generate.images_per_person=5"])
    generate(cfg)
    out = Path(cfg.generate.out)
    recs = read_jsonl(out / "manifest.jsonl")
    assert len(recs) == 10 and {r["generator_sha256"] for r in recs} == {file_sha256(snap)}
    assert json.loads((out / "generate.json").read_text())["generator"] == str(snap)
    G = load_generator(snap)
    for r in recs:
        assert remake_bytes(r, G, out) == (out / r["file"]).read_bytes()
    assert len(FolderDataset(out).train) == 10


def test_stored_latents_mean_what_the_manifest_says(reference):
    """Each frame's stored ws is what its method means, recomputed here from the seeds with G.mapping:
    base = the person's seed; style mix = base with layers [start, end) from the donor seed; W
    interpolation = base + alpha (partner - base) with the planned alpha (Z: the mapping of the spherical
    interpolation of the two seeds' z); transform = base with the planned matrix. The base image is the
    synthesis of the person's seed."""
    from reid_gan.data.generated import load_person_latents

    cfg, out, _, _ = reference
    G = _make_G(cfg).eval()
    psi = float(cfg.generate.psi)

    def w_of(z):
        with torch.no_grad():
            return G.mapping(z, torch.zeros(z.shape[0], 0), truncation_psi=psi)[0]

    def z_of(seed):
        return torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()

    seen = set()
    for r in read_jsonl(out / "manifest.jsonl"):
        data = load_person_latents(out, r)
        i = [int(f) for f in data["frames"].tolist()].index(r["frame"])
        ws, T = data["ws"][i].float(), data["transforms"][i].double()
        base = w_of(z_of(r["seed"]))
        p = r["params"]
        if r["method"] == "base":
            expect = base
        elif r["method"] == "style_mix":
            start, end = p["layers"]
            donor = w_of(z_of(p["donor_seed"]))
            expect = base.clone()
            expect[start:end] = donor[start:end]
            assert not torch.allclose(expect, base)
        elif r["method"] == "interpolate":
            assert cfg.generate.methods.interpolate.min_alpha <= p["alpha"] <= cfg.generate.methods.interpolate.max_alpha
            if p["space"] == "w":
                expect = base + p["alpha"] * (w_of(z_of(p["partner_seed"])) - base)
            else:
                a, b = z_of(r["seed"]).double(), z_of(p["partner_seed"]).double()
                om = torch.acos((a / a.norm() * b / b.norm()).sum().clamp(-1, 1))
                d = (torch.sin((1 - p["alpha"]) * om) * a / a.norm() + torch.sin(p["alpha"] * om) * b / b.norm())
                z = d / d.norm() * (a.norm() + p["alpha"] * (b.norm() - a.norm()))
                expect = w_of(z.float())
        else:
            assert r["method"] == "transform"
            expect = base
            assert not torch.allclose(T, torch.eye(3, dtype=T.dtype))
            assert torch.allclose(T, torch.from_numpy(sampling.make_transform(p["translate"], p["angle"])))
        if r["method"] != "transform":
            assert torch.allclose(T, torch.eye(3, dtype=T.dtype))
        assert torch.allclose(ws, expect, atol=1e-5), (r["file"], (ws - expect).abs().max())
        seen.add(r["method"])
        if r["method"] == "base":  # the image is the synthesis of the person's seed
            with torch.no_grad():
                img = G.synthesis(base[None], noise_mode=data["noise_mode"])
            rgb = ((img[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8)).numpy()
            made = remake(r, G, out)
            assert np.abs(made.astype(int) - rgb.astype(int)).max() <= 1
    assert seen == {"base", "style_mix", "interpolate", "transform"}


def test_remake_from_a_trained_snapshot_small(tmp_path):
    """The slow end-to-end test at its smallest: one train_gan iteration of the smoke networks writes a
    snapshot; generate reads the folder (newest snapshot) and every image is remade byte for byte from
    the loaded, trained generator; generator_sha256 is the snapshot's hash."""
    from reid_gan.gan.checkpoint import latest_snapshot, load_generator
    from reid_gan.train_gan import train_gan
    from reid_gan.utils.io import file_sha256

    torch.set_num_threads(1)
    gcfg = compose_stage("train_gan", tmp_path, ["logger=csv", "callbacks=none", "gan.kimg=0.004",
                                                 "metrics.num_images=8", "metrics.num_real=8"])
    validate_config(gcfg)
    _, gobj = train_gan(gcfg)
    snaps = Path(gcfg.gan.out_dir)
    snap = latest_snapshot(snaps)
    assert snap is not None
    cfg = _cfg(tmp_path, [f"generate.ckpt={snaps}", "generate.persons=1", "generate.images_per_person=3"])
    generate(cfg)
    out = Path(cfg.generate.out)
    recs = read_jsonl(out / "manifest.jsonl")
    assert len(recs) == 3 and {r["generator_sha256"] for r in recs} == {file_sha256(snap)}
    G = load_generator(snap)
    # the loaded generator is the trained one: train_gan's G_ema, buffers included (the running mean of w,
    # which truncation uses, has moved from its zero start)
    trained = gobj["module"].G_ema.state_dict()
    assert set(G.state_dict()) == set(trained)
    for k, v in G.state_dict().items():
        assert torch.equal(v, trained[k].cpu()), k
    assert float(G.mapping.w_avg.abs().max()) > 0 and float(cfg.generate.psi) != 1.0
    for r in recs:
        assert remake_bytes(r, G, out) == (out / r["file"]).read_bytes()
    other = load_generator(snap)
    with torch.no_grad():
        for p in other.synthesis.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert remake_bytes(recs[0], other, out) != (out / recs[0]["file"]).read_bytes()  # another G does not remake it
