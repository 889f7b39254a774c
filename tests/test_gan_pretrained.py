"""The packed pretrained GAN (reid_gan.gan.embed, gan.resume=<packed file>) and conditional training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from reid_gan.gan.embed import MAX_BYTES, PROVENANCE_KEYS, pack, read_bundle
from tests.helpers import compose_stage

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _train_smoke(tmp_path: Path, extra: list[str] = ()):
    from reid_gan.train_gan import train_gan

    torch.set_num_threads(1)
    cfg = compose_stage("train_gan", tmp_path, ["logger=csv", "callbacks=none", *extra])
    metrics, obj = train_gan(cfg)
    return cfg, metrics, obj


def _hydra_record(cfg, folder: Path, overrides: list[str]) -> Path:
    """What Hydra writes for a run (.hydra/config.yaml + overrides.yaml), for pack() to read."""
    folder.mkdir(parents=True, exist_ok=True)
    plain = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.save(plain, folder / "config.yaml", resolve=True)
    OmegaConf.save(OmegaConf.create(overrides), folder / "overrides.yaml")
    return folder


def test_pack_round_trip_and_resume_loads_D(tmp_path):
    from reid_gan.train_gan import build_module, build_networks, transfer_weights

    cfg, _, obj = _train_smoke(tmp_path / "run")
    run_dir = Path(cfg.gan.out_dir)
    hydra = _hydra_record(cfg, tmp_path / "hydra", ["experiment=smoke"])
    out = pack(run_dir, tmp_path / "bundle.pt", commit="0" * 40, command=None, hydra_dir=hydra)
    b = read_bundle(out)
    assert out.stat().st_size <= MAX_BYTES
    assert set(PROVENANCE_KEYS) <= set(b["provenance"])
    assert b["provenance"]["command"] == "python -m reid_gan.train_gan experiment=smoke"
    assert b["provenance"]["commit"] == "0" * 40
    assert b["kimg"] == pytest.approx(cfg.gan.kimg) and len(b["metrics"]) == len(obj["history"])
    # the smoke render's training identities, from its plan
    assert b["data"]["train_pids"] == sorted({int(p.name[:4]) for p in
                                              (Path(cfg.data.root) / "bounding_box_train").glob("*.jpg")})
    m = obj["module"]
    for net in ("G", "G_ema", "D"):
        for k, v in getattr(m, net).state_dict().items():
            assert torch.equal(b[net]["state_dict"][k], v), (net, k)

    # gan.resume=<bundle>: G, G_ema and D all start from the file (D too: a .pt snapshot would not)
    cfg2 = compose_stage("train_gan", tmp_path / "ft", ["logger=csv", "callbacks=none", f"gan.resume={out}"])
    G, D, kw, cls = build_networks(cfg2)
    fresh = build_module(cfg2, G, D, kw, cls)
    assert not all(torch.equal(a, b) for a, b in zip(fresh.D.state_dict().values(), m.D.state_dict().values()))
    transfer_weights(fresh, out, cfg2)
    for net in ("G", "G_ema", "D"):
        for k, v in getattr(m, net).state_dict().items():
            assert torch.equal(getattr(fresh, net).state_dict()[k], v), (net, k)

    # other network settings: the error names the key and both values
    cfg3 = compose_stage("train_gan", tmp_path / "bad", ["logger=csv", "callbacks=none", f"gan.resume={out}",
                                                         "gan.G.channel_max=16", "gan.D.channel_max=16"])
    G, D, kw, cls = build_networks(cfg3)
    with pytest.raises(ValueError, match=r"gan.G.channel_max: config 16, bundle.pt 32"):
        transfer_weights(build_module(cfg3, G, D, kw, cls), out, cfg3)


def test_pack_refuses_without_commit_or_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="--commit is required"):
        pack(tmp_path, tmp_path / "b.pt", commit=None, command="x")
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*last.ckpt"):
        pack(tmp_path, tmp_path / "b.pt", commit="abc", command="x")


def test_conditional_training_uses_identity_labels(tmp_path):
    from reid_gan.gan.checkpoint import load_generator

    cfg, metrics, obj = _train_smoke(tmp_path, ["gan.conditional=true"])
    m = obj["module"]
    pids = sorted({int(p.name[:4]) for p in (Path(cfg.data.root) / "bounding_box_train").glob("*.jpg")})
    assert m.c_dim == len(pids) == m.G.c_dim == m.D.c_dim and m.c_pids == pids
    assert m.label_pool.shape == (sum(1 for _ in (Path(cfg.data.root) / "bounding_box_train").glob("*.jpg")), len(pids))
    assert torch.equal(m.label_pool.sum(1), torch.ones(len(m.label_pool)))  # one-hot
    ckpt = torch.load(Path(cfg.gan.out_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan"]["c_pids"] == pids
    G = load_generator(Path(cfg.gan.out_dir))
    c = torch.zeros(2, len(pids))
    c[0, 0] = c[1, 1] = 1
    z = torch.randn(1, G.z_dim).repeat(2, 1)
    img = G(z, c, noise_mode="const")
    assert img.shape[0] == 2 and not torch.allclose(img[0], img[1])  # the label changes the image
    # the discriminator takes labels: a batch without them is refused
    with pytest.raises(ValueError, match="conditional"):
        m.D(img, None)


def test_c_dim_without_conditional_is_rejected(tmp_path):
    from reid_gan.config import ConfigError, validate_config

    cfg = compose_stage("train_gan", tmp_path, ["gan.G.c_dim=5"])
    with pytest.raises(ConfigError, match=r"gan.G.c_dim: must be 0 unless gan.conditional=true"):
        validate_config(cfg)


def test_resume_stamp_follows_the_file_content(tmp_path):
    """The pipeline keys train_gan on the content of the gan.resume file, so a repacked file retrains."""
    from reid_gan.gan.embed import resume_stamp

    p = tmp_path / "a.pt"
    p.write_bytes(b"one")
    s1 = resume_stamp(str(p))
    p.write_bytes(b"two")
    assert s1 and resume_stamp(str(p)) != s1
    assert resume_stamp(None) == [] and resume_stamp("auto") == []
