"""Fault 1: a zero-byte, truncated or corrupt JPEG in a dataset, a generated set or a kept set, in every
stage that reads images, with ``on_bad_image=error`` (a clear error naming the file, before any training
or scoring) and ``on_bad_image=skip`` (a warning naming each file, a final count, the run finishes)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reid_gan.config import validate_config
from reid_gan.data import BadImageError
from tests.faults.conftest import DAMAGE, corrupt, truncated, zero_byte
from tests.helpers import compose_stage, make_generated_set

pytestmark = pytest.mark.usefixtures("one_thread")

KINDS = sorted(DAMAGE)
REID_FAST = ["logger=csv", "callbacks=none", "reid.ranked_queries=0", "trainer.limit_train_batches=2",
             "trainer.limit_val_batches=4"]


def _train_images(root: Path) -> list[Path]:
    return sorted(p for p in (root / "bounding_box_train").iterdir() if p.suffix == ".jpg" and not p.name.startswith("-1"))


def _damage_three(root: Path, folder: str = "bounding_box_train") -> list[Path]:
    """One file of each kind, in different persons."""
    files = sorted(p for p in (root / folder).iterdir() if p.suffix == ".jpg" and not p.name.startswith(("-1", "0000")))
    picks = [files[0], files[len(files) // 2], files[-1]]
    for fn, p in zip((zero_byte, truncated, corrupt), picks):
        fn(p)
    return picks


def _assert_skip_log(caplog, files: list[Path], count_text: str) -> None:
    for p in files:
        assert p.name in caplog.text, f"{p.name} not named in the warnings"
    assert count_text in caplog.text


# --------------------------------------------------------------------------------------- train_gan
GAN = ["gan.kimg=0.008", "gan.tick_kimg=0.004", "gan.G.z_dim=8", "gan.G.w_dim=8", "logger=csv", "callbacks=none"]


@pytest.mark.parametrize("kind", KINDS)
def test_train_gan_error_names_the_file_before_training(kind, data_copy, tmp_path):
    from reid_gan.train_gan import train_gan

    bad = DAMAGE[kind](_train_images(data_copy)[3])
    cfg = compose_stage("train_gan", tmp_path, [*GAN, "data.name=folder", f"data.root={data_copy}"])
    validate_config(cfg)
    with pytest.raises(BadImageError, match=bad.name):
        train_gan(cfg)
    assert not (Path(cfg.gan.out_dir) / "checkpoints" / "last.ckpt").exists()  # nothing trained


def test_train_gan_skip_warns_counts_and_finishes(data_copy, tmp_path, caplog):
    from reid_gan.train_gan import train_gan

    bad = _damage_three(data_copy)
    cfg = compose_stage("train_gan", tmp_path, [*GAN, "data.name=folder", f"data.root={data_copy}",
                                                "data.on_bad_image=skip"])
    validate_config(cfg)
    with caplog.at_level(logging.WARNING):
        metrics, _ = train_gan(cfg)
    assert metrics["train/kimg"] == pytest.approx(0.008)
    _assert_skip_log(caplog, bad, "skipped 3 bad image(s)")


# ------------------------------------------------------------------------------------------ filter
def _gen_set(data_copy: Path, out: Path) -> Path:
    from reid_gan.data import FolderDataset

    ds = FolderDataset(data_copy)
    return make_generated_set(out, [(s.path, pid, s.camid) for s, pid in zip(ds.train, ds.train_orig_pids)],
                              n_persons=4, per_person=3)


FILTER = ["filter.progress=false", "filter.grid_examples=2"]


@pytest.mark.parametrize("kind", KINDS)
def test_filter_error_names_the_file_before_scoring(kind, data_copy, tmp_path):
    from reid_gan.filter import filter as run_filter

    gen = _gen_set(data_copy, tmp_path / "gen")
    bad = DAMAGE[kind](sorted((gen / "bounding_box_train").iterdir())[4])
    cfg = compose_stage("filter", tmp_path, [*FILTER, f"filter.source={gen}"])
    validate_config(cfg)
    with pytest.raises(BadImageError, match=bad.name):
        run_filter(cfg)
    assert not Path(cfg.filter.cache).exists()  # nothing scored


def test_filter_skip_warns_counts_and_finishes(data_copy, tmp_path, caplog):
    from reid_gan.filter import filter as run_filter

    gen = _gen_set(data_copy, tmp_path / "gen")
    bad = _damage_three(gen)
    cfg = compose_stage("filter", tmp_path, [*FILTER, f"filter.source={gen}", "filter.on_bad_image=skip"])
    validate_config(cfg)
    with caplog.at_level(logging.WARNING):
        metrics, _ = run_filter(cfg)
    assert metrics["filter/images"] == 12 - 3
    _assert_skip_log(caplog, bad, "skipped 3 bad image(s)")


def test_filter_on_bad_image_follows_data_on_bad_image(tmp_path):
    cfg = compose_stage("filter", tmp_path, ["data.on_bad_image=skip"])
    assert cfg.filter.on_bad_image == "skip"


# ------------------------------------------------------------------------------------- train (re-ID)
@pytest.mark.parametrize("kind", KINDS)
def test_train_error_names_the_file_before_training(kind, data_copy, tmp_path):
    """zero-byte and truncated files fail the cheap header check while indexing; a corrupt file (valid
    markers) with verify_images=decode. Either way before any training step."""
    from reid_gan.train import train

    bad = DAMAGE[kind](_train_images(data_copy)[5])
    verify = ["data.verify_images=decode"] if kind == "corrupt" else []
    cfg = compose_stage("train", tmp_path, [*REID_FAST, "data.name=folder", f"data.root={data_copy}", *verify])
    validate_config(cfg)
    with pytest.raises(BadImageError, match=bad.name):
        train(cfg)
    assert not list(Path(cfg.paths.output_dir).rglob("*.ckpt"))


def test_train_corrupt_with_header_check_is_named_at_load_time(data_copy, tmp_path):
    """The default header check cannot see inside a complete file: the loader names it when it reaches it."""
    from reid_gan.train import train

    bad = corrupt(_train_images(data_copy)[5])
    cfg = compose_stage("train", tmp_path, [*REID_FAST, "trainer.limit_train_batches=null", "data.name=folder",
                                            f"data.root={data_copy}"])
    validate_config(cfg)
    with pytest.raises(BadImageError, match=bad.name):
        train(cfg)


def test_train_skip_in_dataset_and_kept_set_warns_counts_and_finishes(data_copy, tmp_path, caplog):
    """One run: three bad images in the real training split and three in the kept (aug) set."""
    from reid_gan.train import train

    kept = _gen_set(data_copy, tmp_path / "kept")
    bad_kept = _damage_three(kept)
    bad_real = _damage_three(data_copy)
    cfg = compose_stage("train", tmp_path, [*REID_FAST, "data.name=folder", f"data.root={data_copy}",
                                            "data.on_bad_image=skip", f"aug.source={kept}",
                                            "aug.persons=2"])
    validate_config(cfg)
    with caplog.at_level(logging.WARNING):
        metrics, _ = train(cfg)
    assert "val/mAP" in metrics
    _assert_skip_log(caplog, bad_real + bad_kept, "skipped 3 bad image(s)")
    assert caplog.text.count("skipped 3 bad image(s)") >= 2  # the real split and the kept set


@pytest.mark.parametrize("kind", KINDS)
def test_train_error_in_kept_set_names_the_file(kind, data_copy, tmp_path):
    from reid_gan.reid.augment import AugError
    from reid_gan.train import train

    kept = _gen_set(data_copy, tmp_path / "kept")
    bad = DAMAGE[kind](sorted((kept / "bounding_box_train").iterdir())[1])
    verify = ["data.verify_images=decode"] if kind == "corrupt" else []
    cfg = compose_stage("train", tmp_path, [*REID_FAST, "data.name=folder", f"data.root={data_copy}", *verify,
                                            f"aug.source={kept}", "aug.persons=2"])
    validate_config(cfg)
    with pytest.raises(AugError, match=bad.name):
        train(cfg)


# ---------------------------------------------------------------------------------------- evaluate
@pytest.fixture(scope="module")
def reid_ckpt(smoke_data, tmp_path_factory) -> Path:
    from reid_gan.train import train

    tmp = tmp_path_factory.mktemp("ckpt")
    cfg = compose_stage("train", tmp, [*REID_FAST, "data.name=folder", f"data.root={smoke_data}"])
    _, objs = train(cfg)
    return Path(objs["last_ckpt"])


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_error_names_the_file(kind, reid_ckpt, data_copy, tmp_path):
    from reid_gan.evaluate import evaluate

    gallery = sorted(p for p in (data_copy / "bounding_box_test").iterdir() if not p.name.startswith(("-1", "0000")))
    bad = DAMAGE[kind](gallery[2])
    verify = ["data.verify_images=decode"] if kind == "corrupt" else []
    cfg = compose_stage("evaluate", tmp_path, ["logger=csv", "data.name=folder", f"data.root={data_copy}", *verify,
                                               f"ckpt_path={reid_ckpt}"])
    validate_config(cfg)
    with pytest.raises(BadImageError, match=bad.name):
        evaluate(cfg)


def test_evaluate_skip_warns_counts_and_finishes(reid_ckpt, data_copy, tmp_path, caplog):
    from reid_gan.evaluate import evaluate

    bad = _damage_three(data_copy, "bounding_box_test")
    cfg = compose_stage("evaluate", tmp_path, ["logger=csv", "data.name=folder", f"data.root={data_copy}",
                                               "data.on_bad_image=skip", f"ckpt_path={reid_ckpt}"])
    validate_config(cfg)
    with caplog.at_level(logging.WARNING):
        metrics, _ = evaluate(cfg)
    assert "test/mAP" in metrics
    _assert_skip_log(caplog, bad, "skipped 3 bad image(s)")


# ----------------------------------------------------------------------- encoder stages (pSp, invert)
# Both read the leakage-guarded bounding_box_train through the dataset classes (indexing: the header check,
# or decode with skip) and then decode every image into memory before any step (reid_gan.encoder.data).
ENC = ["logger=none", "trainer=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
       "encoder.val_max_images=64"]


@pytest.mark.parametrize("kind", KINDS)
def test_train_encoder_error_names_the_file_before_training(kind, data_copy, tmp_path):
    """zero-byte/truncated: at indexing; corrupt (valid markers): when the images are decoded into memory,
    still before the first step."""
    from reid_gan.train_encoder import train_encoder

    bad = DAMAGE[kind](_train_images(data_copy)[3])
    cfg = compose_stage("train_encoder", tmp_path, [*ENC, "data.name=folder", f"data.root={data_copy}"])
    validate_config(cfg)
    with pytest.raises(BadImageError, match=bad.name):
        train_encoder(cfg)
    out = Path(cfg.encoder.out_dir)
    assert not (out / "checkpoints").exists() and not (out / "metrics.jsonl").exists()  # no step, no validation
    assert not (out / "encoder.pt").exists()


def test_train_encoder_skip_warns_counts_and_finishes(data_copy, tmp_path, caplog):
    from reid_gan.train_encoder import train_encoder

    bad = _damage_three(data_copy)
    cfg = compose_stage("train_encoder", tmp_path, [*ENC, "data.name=folder", f"data.root={data_copy}",
                                                    "data.on_bad_image=skip", "encoder.max_steps=2"])
    validate_config(cfg)
    with caplog.at_level(logging.WARNING):
        metrics, objs = train_encoder(cfg)
    assert metrics["train/steps"] == 2 and Path(objs["encoder"]).is_file()
    _assert_skip_log(caplog, bad, "skipped 3 bad image(s)")
    summary = __import__("json").loads((Path(cfg.encoder.out_dir) / "summary.json").read_text())
    n_train = len([p for p in _train_images(data_copy) if not p.name.startswith("0000")])
    assert summary["train_images"] + summary["val_images"] == n_train - 3  # every image but the bad ones


@pytest.fixture(scope="module")
def encoder_dir(smoke_data, tmp_path_factory) -> Path:
    """A smoke encoder (no training step: the untrained network is enough to invert with)."""
    from reid_gan.train_encoder import train_encoder

    tmp = tmp_path_factory.mktemp("encoder")
    cfg = compose_stage("train_encoder", tmp, [*ENC, "data.name=folder", f"data.root={smoke_data}",
                                               "encoder.max_steps=0"])
    _, objs = train_encoder(cfg)
    return Path(objs["out_dir"])


@pytest.mark.parametrize("kind", KINDS)
def test_invert_error_names_the_file_before_any_output(kind, encoder_dir, data_copy, tmp_path):
    from reid_gan.invert import invert

    bad = DAMAGE[kind](_train_images(data_copy)[4])
    cfg = compose_stage("invert", tmp_path, ["logger=none", "data.name=folder", f"data.root={data_copy}",
                                             f"invert.source={encoder_dir}"])
    validate_config(cfg)
    with pytest.raises(BadImageError, match=bad.name):
        invert(cfg)
    assert not list(Path(cfg.invert.out).iterdir())  # no latents.pt, codes.pt or manifest


def test_invert_skip_warns_counts_and_inverts_the_rest(encoder_dir, data_copy, tmp_path, caplog):
    from reid_gan.invert import invert
    from reid_gan.utils.io import read_jsonl

    bad = _damage_three(data_copy)
    cfg = compose_stage("invert", tmp_path, ["logger=none", "data.name=folder", f"data.root={data_copy}",
                                             f"invert.source={encoder_dir}", "data.on_bad_image=skip"])
    validate_config(cfg)
    with caplog.at_level(logging.WARNING):
        metrics, objs = invert(cfg)
    _assert_skip_log(caplog, bad, "skipped 3 bad image(s)")
    files = {Path(r["file"]).name for r in read_jsonl(Path(objs["manifest"]))}
    n_train = len([p for p in _train_images(data_copy) if not p.name.startswith("0000")])
    assert metrics["invert/images"] == len(files) == n_train - 3 and not files & {p.name for p in bad}
