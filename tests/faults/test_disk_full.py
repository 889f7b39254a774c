"""Fault 5: the disk fills (``ENOSPC``) while an artifact or a checkpoint is written. A clear error; the
previous artifact/checkpoint stays intact and loadable; no temporary file is left; a partial artifact
gets no ``_COMPLETE`` marker; the run resumes once there is space.

The simulated disk: every Python ``open(..., "w"/"a")`` of a file under the full folder writes at most a
few bytes and then raises ``OSError(ENOSPC)``; renames between folders fail with ``EXDEV`` (the system
temporary folder is on another file system, so nothing can be staged there and moved in for free)."""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import json
import os
from pathlib import Path

import pytest
import torch

from reid_gan.config import validate_config
from tests.helpers import compose_stage

pytestmark = pytest.mark.usefixtures("one_thread")


class _FullFile:
    def __init__(self, f, budget: int):
        self._f, self._budget = f, budget

    def write(self, data):
        n = min(len(data), self._budget)
        if n:
            self._f.write(data[:n])
            self._budget -= n
        if n < len(data):
            raise OSError(errno.ENOSPC, "No space left on device (simulated)", getattr(self._f, "name", None))
        return n

    def fileno(self):  # no zero-copy path around write() (shutil's sendfile)
        raise io.UnsupportedOperation("fileno (simulated full disk)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
        return False

    def __getattr__(self, k):
        return getattr(self._f, k)


class DiskFull:
    """``with DiskFull(folder):`` makes ``folder``'s file system full; ``.armed`` switches it on/off."""

    def __init__(self, folder: Path, budget: int = 16, armed: bool = True):
        self.folder, self.budget, self.armed, self.hits = Path(folder).resolve(), budget, armed, []
        self._stack = contextlib.ExitStack()

    def _inside(self, p) -> bool:
        try:
            return self.folder in Path(os.fspath(p)).resolve().parents
        except TypeError:
            return False

    def __enter__(self):
        real_open, real_rename, real_replace = builtins.open, os.rename, os.replace

        def fake_open(file, mode="r", *a, **k):
            f = real_open(file, mode, *a, **k)
            if self.armed and isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+") \
                    and self._inside(file):
                self.hits.append(str(file))
                return _FullFile(f, self.budget)
            return f

        def cross_fs(real):
            def rename(src, dst, *a, **k):
                if Path(os.fspath(src)).resolve().parent != Path(os.fspath(dst)).resolve().parent \
                        and self._inside(dst) != self._inside(src):
                    raise OSError(errno.EXDEV, "Invalid cross-device link (simulated)", str(src))
                return real(src, dst, *a, **k)
            return rename

        mp = pytest.MonkeyPatch()
        self._stack.callback(mp.undo)
        mp.setattr(builtins, "open", fake_open)
        mp.setattr(os, "rename", cross_fs(real_rename))
        mp.setattr(os, "replace", cross_fs(real_replace))
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


# ------------------------------------------------------------------------------------ atomic files
def test_atomic_writes_keep_the_old_file_and_leave_no_temp(tmp_path):
    from reid_gan.utils.io import atomic_torch_save, atomic_write_json

    atomic_write_json(tmp_path / "a.json", {"v": 1})
    atomic_torch_save({"w": torch.ones(3)}, tmp_path / "w.pt")
    with DiskFull(tmp_path) as full:
        with pytest.raises(OSError) as e1:
            atomic_write_json(tmp_path / "a.json", {"v": 2, "pad": "x" * 100})
        with pytest.raises(OSError) as e2:
            atomic_torch_save({"w": torch.zeros(1000)}, tmp_path / "w.pt")
    assert full.hits and e1.value.errno == errno.ENOSPC and e2.value.errno == errno.ENOSPC
    assert json.loads((tmp_path / "a.json").read_text()) == {"v": 1}
    assert torch.equal(torch.load(tmp_path / "w.pt", weights_only=True)["w"], torch.ones(3))
    assert not _temps(tmp_path)


def test_pipeline_stage_that_hits_a_full_disk_gets_no_marker_and_is_redone(tmp_path, monkeypatch):
    from reid_gan.study import runner as pl
    from reid_gan.utils.artifacts import is_complete
    from reid_gan.utils.io import atomic_write_json

    full = {"on": True}

    def stage(cfg):
        out = Path(cfg.paths.output_dir)
        atomic_write_json(out / "part1.json", {"ok": 1})
        if full["on"]:
            with DiskFull(out):
                atomic_write_json(out / "part2.json", {"ok": 2, "pad": "x" * 100})
        else:
            atomic_write_json(out / "part2.json", {"ok": 2})
        return {"m": 1.0}, {}

    monkeypatch.setattr(pl, "stage_function", lambda s: stage)
    p = pl.Pipeline(compose_stage("make_dataset", tmp_path))
    sr = pl.StageRun("make_dataset", "make_dataset", ["data"])
    with pytest.raises(OSError, match="No space left"):
        p.run(sr)
    out = next(p for p in (tmp_path / "artifacts" / "make_dataset").iterdir() if p.is_dir())
    assert out.is_dir() and not is_complete(out) and not (out / "part2.json").exists() and not _temps(out)
    full["on"] = False
    _, out2, _ = p.run(sr)  # space again: the stage is redone and completed
    assert out2 == out and is_complete(out) and json.loads((out / "part2.json").read_text()) == {"ok": 2}


# ------------------------------------------------------------------------------------- checkpoints
def test_train_gan_checkpoint_write_fails_keeps_the_previous_and_resumes(tmp_path):
    import pytorch_lightning as pl

    from reid_gan.train_gan import train_gan
    from tests.faults.test_nan_loss import _gan_cfg

    cfg = _gan_cfg(tmp_path)
    ckdir = Path(cfg.gan.out_dir) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    full = DiskFull(ckdir, armed=False)

    class FillAt(pl.Callback):  # before the tick callback (it runs after the config's callbacks)
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            full.armed = pl_module.iteration >= 3  # iteration 3 ends a tick: its last.ckpt hits the full disk

    from reid_gan.utils import instantiate as inst
    real = inst.instantiate_callbacks
    inst.instantiate_callbacks = lambda c: [*real(c), FillAt()]
    try:
        with full, pytest.raises(OSError, match="No space left"):
            train_gan(cfg)
    finally:
        inst.instantiate_callbacks = real
    assert full.hits
    ck = torch.load(ckdir / "last.ckpt", weights_only=True)  # the previous one, intact
    assert ck["gan"]["iteration"] == 1 and not _temps(ckdir)
    metrics, obj = train_gan(_gan_cfg(tmp_path))
    assert obj["module"].iteration == 10


def test_train_checkpoint_write_fails_keeps_the_previous_and_resumes(smoke_data, tmp_path):
    import pytorch_lightning as pl

    from reid_gan.train import train

    base = ["logger=none", "callbacks=none", "reid.ranked_queries=0", "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=2", "data.name=folder", f"data.root={smoke_data}"]
    cfg = compose_stage("train", tmp_path, [*base, "reid.max_epochs=2"])
    validate_config(cfg)
    ckdir = Path(cfg.paths.output_dir) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    full = DiskFull(ckdir, armed=False)

    class FillAt(pl.Callback):  # runs before ModelCheckpoint (Lightning puts checkpoint callbacks last)
        def on_validation_end(self, trainer, pl_module):
            full.armed = trainer.current_epoch >= 1

    from reid_gan.utils import instantiate as inst
    real = inst.instantiate_callbacks
    inst.instantiate_callbacks = lambda c: [*real(c), FillAt()]
    try:
        with full, pytest.raises(OSError, match="No space left"):
            train(cfg)
    finally:
        inst.instantiate_callbacks = real
    assert full.hits
    ck = torch.load(ckdir / "last.ckpt", weights_only=True)  # epoch 0's, intact and loadable
    assert ck["epoch"] == 0 and not _temps(ckdir)
    cfg2 = compose_stage("train", tmp_path / "resumed", [*base, "reid.max_epochs=2", f"ckpt_path={ckdir / 'last.ckpt'}"])
    metrics, _ = train(cfg2)
    assert metrics["epochs"] == 2


# ------------------------------------------------------------------------------------- generate
def test_generate_image_write_fails_then_resumes_to_the_same_set(tmp_path):
    from reid_gan.generate import generate
    from tests.test_generate import BASE, _hashes

    def cfg(root):
        c = compose_stage("generate", root, [*BASE, "generate.figures.enabled=false"])
        validate_config(c)
        return c

    ref_cfg = cfg(tmp_path / "ref")
    generate(ref_cfg)
    c = cfg(tmp_path / "run")
    out = Path(c.generate.out)
    with DiskFull(out / "bounding_box_train"), pytest.raises(OSError, match="No space left"):
        generate(c)
    assert not _temps(out) and not (out / "summary.json").exists()
    generate(cfg(tmp_path / "run"))
    assert _hashes(out) == _hashes(Path(ref_cfg.generate.out))
