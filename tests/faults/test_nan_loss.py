"""Fault 6: NaN or inf in a loss (GAN: loss_G / loss_D; re-ID: the cross-entropy; encoder: its total
loss). The run stops at that step with an error naming the step and the loss term; the last good
checkpoint is kept (finite, from before the bad step) and the run resumes from it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from reid_gan.config import validate_config
from reid_gan.utils.callbacks import NonFiniteLossError
from tests.helpers import compose_stage
from tests.test_gan_train import STANDIN, _write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

GAN = ["gan.batch_size=4", "gan.kimg=0.04", "gan.tick_kimg=0.008", "gan.snap=100", "gan.resume=auto",
       "gan.G.z_dim=8", "gan.G.w_dim=8"]


def _gan_cfg(tmp_path: Path):
    ds = _write_dataset(tmp_path / "ds")
    cfg = compose_stage("train_gan", tmp_path, [*STANDIN, "data.name=folder", f"data.root={ds}", *GAN])
    validate_config(cfg)
    return cfg


@pytest.mark.parametrize("term,value", [("loss_G", math.nan), ("loss_D", math.inf)])
def test_gan_stops_at_the_bad_step_keeps_the_last_good_checkpoint_and_resumes(term, value, tmp_path, monkeypatch):
    from reid_gan.gan.losses import StyleGAN3Loss
    from reid_gan.train_gan import train_gan

    calls = {"n": 0}
    if term == "loss_G":
        real = StyleGAN3Loss.generator_loss

        def poisoned(self, *a, **k):
            calls["n"] += 1
            out = real(self, *a, **k)
            return out * value if calls["n"] == 4 else out   # the 4th iteration's G loss
    else:
        real = StyleGAN3Loss.discriminator_loss

        def poisoned(self, *a, **k):
            calls["n"] += 1
            loss, logits = real(self, *a, **k)
            return (loss * value if calls["n"] == 4 else loss), logits
    monkeypatch.setattr(StyleGAN3Loss, "generator_loss" if term == "loss_G" else "discriminator_loss", poisoned)

    cfg = _gan_cfg(tmp_path)
    last = Path(cfg.gan.out_dir) / "checkpoints" / "last.ckpt"
    with pytest.raises(NonFiniteLossError, match=rf"training step 4 .*train/{term} = (nan|inf).*{last.name}.* is kept"):
        train_gan(cfg)
    ck = torch.load(last, map_location="cpu", weights_only=True)
    # ticks end after iterations 1 and 3 (4 and 12 images): the checkpoint is iteration 3's, all finite
    assert ck["gan"]["iteration"] == 3 and ck["gan"]["cur_nimg"] == 12
    assert all(bool(torch.isfinite(v).all()) for v in ck["state_dict"].values() if v.is_floating_point())

    monkeypatch.setattr(StyleGAN3Loss, "generator_loss" if term == "loss_G" else "discriminator_loss", real)
    metrics, obj = train_gan(_gan_cfg(tmp_path))  # resume=auto from the kept checkpoint
    assert obj["module"].iteration == 10 and metrics["train/kimg"] == pytest.approx(0.04)


REID = ["logger=csv", "callbacks=none", "reid.ranked_queries=0", "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=2"]


def test_reid_stops_at_the_bad_step_keeps_the_last_checkpoint_and_resumes(smoke_data, tmp_path, monkeypatch):
    import reid_gan.reid.module as M
    from reid_gan.train import train

    real = M.lsro_cross_entropy
    calls = {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        out = real(*a, **k)
        return out * math.nan if calls["n"] == 3 else out   # the first step of epoch 2

    monkeypatch.setattr(M, "lsro_cross_entropy", poisoned)
    cfg = compose_stage("train", tmp_path, [*REID, "data.name=folder", f"data.root={smoke_data}", "reid.max_epochs=2"])
    validate_config(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    with pytest.raises(NonFiniteLossError, match=rf"training step 3 \(epoch 1, batch 0\): train/loss = nan.*last\.ckpt.* is kept"):
        train(cfg)
    ck = torch.load(last, map_location="cpu", weights_only=True)
    assert ck["epoch"] == 0 and ck["global_step"] == 2
    assert all(bool(torch.isfinite(v).all()) for v in ck["state_dict"].values() if v.is_floating_point())

    monkeypatch.setattr(M, "lsro_cross_entropy", real)
    cfg2 = compose_stage("train", tmp_path / "resumed", [*REID, "data.name=folder", f"data.root={smoke_data}",
                                                         "reid.max_epochs=2", f"ckpt_path={last}"])
    metrics, _ = train(cfg2)
    assert metrics["epochs"] == 2 and math.isfinite(metrics["val/mAP"])


def test_guard_reads_returned_loss_and_gan_stats():
    from types import SimpleNamespace

    from reid_gan.utils.callbacks import FiniteLossGuard

    g = FiniteLossGuard()
    trainer = SimpleNamespace(global_step=7, current_epoch=0, checkpoint_callback=None)
    g.on_train_batch_end(trainer, SimpleNamespace(), {"loss": torch.tensor(1.0)}, None, 0)  # finite: nothing
    with pytest.raises(NonFiniteLossError, match=r"step 7 .*train/loss = inf.*no checkpoint had been written"):
        g.on_train_batch_end(trainer, SimpleNamespace(), torch.tensor(math.inf), None, 0)
    gan = SimpleNamespace(iteration=12, last_stats={"train/loss_G": 0.5, "train/r1": math.nan, "train/ada_p": math.nan})
    with pytest.raises(NonFiniteLossError, match=r"step 12 .*train/r1 = nan$|step 12 .*train/r1 = nan;"):
        g.on_train_batch_end(trainer, gan, None, None, 0)


ENC = ["logger=none", "trainer=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
       "encoder.max_steps=6", "encoder.val_every=2", "encoder.resume=auto"]


def test_encoder_stops_at_the_bad_step_keeps_the_last_good_checkpoint_and_resumes(tmp_path, monkeypatch):
    from reid_gan.encoder.module import ReStyleModule
    from reid_gan.train_encoder import train_encoder

    real = ReStyleModule.training_step
    calls = {"n": 0}

    def poisoned(self, batch, batch_idx):
        calls["n"] += 1
        out = real(self, batch, batch_idx)
        if calls["n"] == 4:  # the 4th step's l2 term (reported, as the module reports it, after the step)
            self.last_stats = {**self.last_stats, "train/loss/l2": math.nan, "train/loss": math.nan}
            return out * math.nan
        return out

    monkeypatch.setattr(ReStyleModule, "training_step", poisoned)
    cfg = compose_stage("train_encoder", tmp_path, ENC)
    validate_config(cfg)
    last = Path(cfg.encoder.out_dir) / "checkpoints" / "last.ckpt"
    with pytest.raises(NonFiniteLossError, match=r"training step 4 .*train/loss/l2 = nan.*last\.ckpt.* is kept"):
        train_encoder(cfg)
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2
    monkeypatch.setattr(ReStyleModule, "training_step", real)
    metrics, _ = train_encoder(compose_stage("train_encoder", tmp_path, ENC))
    assert metrics["train/steps"] == 6
