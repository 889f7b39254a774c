"""Faults 9 and 10, with the network blocked (any connection to a non-local address fails the test):
a missing optional weights file (Inception, LPIPS trunk, MoCo/identity model, YOLO, ResNet) runs the named
substitute and the log and the metric names say so, with no download attempt and no hang; W&B with no
key and no network never prompts or blocks and writes its offline run folder; a W&B failure is a warning,
never a failed run."""

from __future__ import annotations

import builtins
import getpass
import logging
from pathlib import Path

import pytest

from reid_gan.config import validate_config
from tests.helpers import compose_stage

pytestmark = pytest.mark.usefixtures("one_thread")

REID = ["callbacks=none", "reid.ranked_queries=0", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2"]


@pytest.fixture
def no_prompt(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("something asked for input")

    monkeypatch.setattr(builtins, "input", refuse)
    monkeypatch.setattr(getpass, "getpass", refuse)


CHILD = """
import socket, urllib.request
for what, call in [("connect", lambda: socket.create_connection(("192.0.2.1", 80), timeout=5)),
                   ("dns", lambda: socket.getaddrinfo("example.com", 443)),
                   ("raw", lambda: socket.socket().connect(("198.51.100.7", 443))),
                   ("http", lambda: urllib.request.urlopen("https://example.com", timeout=5))]:
    try:
        call()
        print(what, "CONNECTED")
    except OSError as e:
        print(what, "refused:", e)
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
socket.create_connection(server.getsockname(), timeout=5).close()
print("local ok")
"""


def test_the_network_block_reaches_python_child_processes(no_network):
    """A child ``python`` is blocked like this process (connect, create_connection, name lookups, urllib
    through the dead proxy or not), every attempt reaches the fixture's log, and local sockets still work."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "CONNECTED" not in p.stdout and p.stdout.count("refused:") == 4 and "local ok" in p.stdout, p.stdout
    assert "network blocked by the test suite" in p.stdout
    seen = no_network.children()
    assert any("192.0.2.1" in a for a in seen) and any("example.com" in a for a in seen), seen
    assert any("198.51.100.7" in a for a in seen), seen
    no_network.clear()  # seen and checked: not a failure of this test


def test_missing_inception_weights_gan_reports_swd_not_fid(no_network, tmp_path, caplog):
    from reid_gan.train_gan import train_gan
    from tests.test_gan_train import STANDIN, _write_dataset

    ds = _write_dataset(tmp_path / "ds")
    cfg = compose_stage("train_gan", tmp_path, [*STANDIN, "data.name=folder", f"data.root={ds}", "gan.kimg=0.008",
                                                "gan.tick_kimg=0.004", "gan.G.z_dim=8", "gan.G.w_dim=8",
                                                "metrics.inception=null"])
    validate_config(cfg)
    with caplog.at_level(logging.INFO):
        metrics, _ = train_gan(cfg)
    assert "metric/swd" in metrics and not any("fid" in k or "kid" in k for k in metrics)
    assert "no Inception weights given" in caplog.text and "not FID" in caplog.text


def test_missing_resnet_weights_train_from_scratch_says_so(no_network, smoke_data, tmp_path, caplog):
    from reid_gan.train import train

    cfg = compose_stage("train", tmp_path, [*REID, "logger=csv", "data.name=folder", f"data.root={smoke_data}",
                                            "reid.pretrained=null"])
    validate_config(cfg)
    with caplog.at_level(logging.INFO):
        metrics, _ = train(cfg)
    assert "val/mAP" in metrics and "reid.pretrained not given" in caplog.text


def test_missing_yolo_weights_the_default_hog_detector_says_so(no_network, smoke_data, tmp_path, caplog):
    from reid_gan.filter import filter as run_filter
    from tests.faults.test_bad_images import _gen_set

    gen = _gen_set(smoke_data, tmp_path / "gen")
    cfg = compose_stage("filter", tmp_path, ["filter.progress=false", "filter.grid_examples=2", f"filter.source={gen}"])
    validate_config(cfg)
    with caplog.at_level(logging.INFO):
        metrics, _ = run_filter(cfg)
    assert "HOG people detector, the embedded substitute for the thesis's YOLOv4-tiny" in caplog.text
    assert "filter/discarded_detector" in metrics


def test_missing_lpips_trunk_and_identity_model_encoder_says_so(no_network, tmp_path, caplog):
    from reid_gan.encoder.build import build_losses

    cfg = compose_stage("train_encoder", tmp_path, ["encoder.lpips.trunk=null", "encoder.reid.ckpt=null"])
    validate_config(cfg)
    with caplog.at_level(logging.INFO):
        build_losses(cfg)
    assert "no LPIPS trunk given (encoder.lpips.trunk=null)" in caplog.text
    assert "encoder.reid.ckpt=null" in caplog.text


def test_wandb_without_key_or_network_writes_offline_run_and_never_prompts(no_network, no_prompt, smoke_data,
                                                                           tmp_path, monkeypatch):
    from reid_gan.train import train
    from reid_gan.utils.task import configure_environment, finish_wandb

    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc, no cached key
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    configure_environment()  # what every stage does first: offline unless told otherwise
    cfg = compose_stage("train", tmp_path, [*REID, "logger=default", "data.name=folder", f"data.root={smoke_data}"])
    validate_config(cfg)
    try:
        metrics, _ = train(cfg)
    finally:
        finish_wandb()
    assert "val/mAP" in metrics
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert runs and any(p.suffix == ".wandb" for p in runs[0].iterdir()), runs


def test_a_wandb_failure_never_fails_the_run(smoke_data, tmp_path, monkeypatch, caplog):
    import wandb

    from reid_gan.train import train

    def broken(*a, **k):
        raise RuntimeError("W&B service unreachable (simulated)")

    monkeypatch.setattr(wandb, "init", broken)
    cfg = compose_stage("train", tmp_path, [*REID, "logger=default", "data.name=folder", f"data.root={smoke_data}"])
    validate_config(cfg)
    with caplog.at_level(logging.WARNING):
        metrics, _ = train(cfg)
    assert "val/mAP" in metrics
    assert "W&B init failed (RuntimeError: W&B service unreachable (simulated))" in caplog.text
    assert list(Path(cfg.paths.output_dir).rglob("metrics.csv"))  # the CSV logs are complete


def test_a_failing_wandb_finish_is_a_warning(monkeypatch, caplog):
    import wandb

    from reid_gan.utils.task import finish_wandb

    class Run:
        pass

    monkeypatch.setattr(wandb, "run", Run())
    monkeypatch.setattr(wandb, "finish", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full (simulated)")))
    with caplog.at_level(logging.WARNING):
        finish_wandb()
    assert "Closing the W&B run failed (OSError: disk full (simulated))" in caplog.text
