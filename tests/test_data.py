"""Market-1501 data layer: parsing, clear errors, relabelling, leakage guard, DataModule, schema."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from reid_gan.config import ConfigError, validate_config
from reid_gan.data import (
    BadImageError,
    DatasetError,
    DukeMTMCreID,
    FolderDataset,
    Market1501,
    build_dataset,
)
from reid_gan.data.leakage import LeakageError, training_images_for_generation
from tests.helpers import compose_stage
from tests.market_tree import GALLERY, QUERY, TRAIN, write_generated_set, write_image, write_market_tree


@pytest.fixture
def market(tmp_path) -> Path:
    return write_market_tree(tmp_path / "Market-1501-v15.09.15", extra_files=[
        ("bounding_box_test/Thumbs.db", b"not an image, ignored"), ("readme.txt", b"hello")])


def _names(samples):
    return [Path(s.path).name for s in samples]


# ------------------------------------------------------------------------------------------ parser
def test_parser_splits_junk_distractors_camids(market):
    ds = Market1501(market)
    assert ds.root == market
    # train: junk dropped, sorted by file name
    assert _names(ds.train) == sorted(n for n in TRAIN if not n.startswith("-1"))
    assert ds.train_orig_pids == [2, 2, 2, 7, 7, 12, 12]
    assert [s.camid for s in ds.train] == [0, 1, 1, 0, 2, 3, 5]  # c1→0 … c6→5
    # query untouched, original pids
    assert [(s.pid, s.camid) for s in ds.query] == [(1, 0), (5, 1)]
    # gallery: junk dropped, distractors (pid 0) kept, original pids
    assert sorted(_names(ds.gallery)) == sorted(n for n in GALLERY if not n.startswith("-1"))
    assert sorted(s.pid for s in ds.gallery) == [0, 0, 1, 1, 1, 5, 5]
    assert ds.dropped["gallery"]["junk"] == 2 and ds.dropped["train"]["junk"] == 1
    assert all(Path(s.path).is_file() and Path(s.path).is_absolute() for s in ds.train + ds.query + ds.gallery)
    assert ds.stats() == {"train": (3, 7, 5), "query": (2, 2, 2), "gallery": (3, 7, 5)}
    assert ds.test_pids() == {1, 5}


def test_train_pids_relabelled_with_original_kept(market):
    ds = Market1501(market)
    assert [s.pid for s in ds.train] == [0, 0, 0, 1, 1, 2, 2]
    assert ds.pid2label == {2: 0, 7: 1, 12: 2} and ds.label2pid == [2, 7, 12]
    assert ds.num_train_pids == 3
    for s, orig in zip(ds.train, ds.train_orig_pids):
        assert ds.label2pid[s.pid] == orig
        assert Path(s.path).name.startswith(f"{orig:04d}_")


def test_distractor_outside_gallery_is_dropped(tmp_path):
    root = write_market_tree(tmp_path / "m", train=TRAIN + ["0000_c1s1_000001_00.jpg"],
                             query=QUERY + ["0000_c2s1_000001_00.jpg"])
    ds = Market1501(root)
    assert 0 not in ds.train_orig_pids and 0 not in {s.pid for s in ds.query}
    assert ds.dropped["train"]["distractor"] == 1 and ds.dropped["query"]["distractor"] == 1


@pytest.mark.parametrize("layout", ["itself", "parent", "torchreid"])
def test_parent_folder_resolution(tmp_path, layout):
    base = {"itself": tmp_path / "Market-1501-v15.09.15", "parent": tmp_path / "Market-1501-v15.09.15",
            "torchreid": tmp_path / "market1501" / "Market-1501-v15.09.15"}[layout]
    write_market_tree(base)
    root = base if layout == "itself" else tmp_path
    assert Market1501(root).root == base
    assert len(Market1501(str(root)).train) == 7


def test_summary_table_prints(market):
    from rich.console import Console

    console = Console(record=True, width=120)
    Market1501(market).print_summary(console)
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]]
            for line in console.export_text().splitlines() if line.startswith("│")}
    assert rows == {"train": ["3", "7", "5"], "query": ["2", "2", "2"], "gallery": ["3", "7", "5"]}


def test_dukemtmc_naming(tmp_path):
    root = tmp_path / "DukeMTMC-reID"
    for folder, names in {"bounding_box_train": ["0001_c2_f0046182.jpg", "0003_c8_f0001234.jpg"],
                          "query": ["0005_c1_f0000001.jpg"],
                          "bounding_box_test": ["0005_c3_f0000002.jpg", "0009_c7_f0000003.jpg"]}.items():
        for n in names:
            write_image(root / folder / n, int(n[:4]))
    ds = DukeMTMCreID(tmp_path)  # parent folder
    assert ds.root == root
    assert [(s.pid, s.camid) for s in ds.train] == [(0, 1), (1, 7)] and ds.train_orig_pids == [1, 3]
    assert [(s.pid, s.camid) for s in ds.gallery] == [(5, 2), (9, 6)]
    # a Market name is not a Duke name
    write_image(root / "query" / "0005_c1s1_000001_00.jpg", 5)
    with pytest.raises(DatasetError, match=r"0005_c1s1_000001_00\.jpg.*PPPP_cC_fFFFFFFF"):
        DukeMTMCreID(root)


def test_folder_dataset_generated_set(tmp_path):
    gen = write_generated_set(tmp_path / "gen", pids=(10000, 10003), per_person=2)
    ds = FolderDataset(gen)
    assert ds.query == [] and ds.gallery == [] and not ds.has_test
    assert ds.train_orig_pids == [10000, 10000, 10003, 10003]
    assert [s.pid for s in ds.train] == [0, 0, 1, 1]
    assert {s.camid for s in ds.train} == {6}  # camera 7 → camid 6
    rec = ds.manifest_record(ds.train[0].path)
    assert rec is not None and rec["pid"] == 10000 and rec["source"] == "seed"
    # Market1501 itself is strict: 5-digit pids / camera 7 are not Market-1501 names
    write_market_tree(gen, train=[])
    with pytest.raises(DatasetError, match="10000_c7s1_000000_00.jpg"):
        Market1501(gen)
    with pytest.raises(DatasetError, match="query"):
        FolderDataset(write_generated_set(tmp_path / "gen2"), require_test=True)


# ------------------------------------------------------------------------------------ clear errors
def test_error_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=f"{tmp_path / 'nope'}.*does not exist"):
        Market1501(tmp_path / "nope")


def test_error_no_layout_names_where_it_looked(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no bounding_box_train/ folder found under .*empty.*Market-1501-v15\.09\.15"):
        Market1501(tmp_path / "empty")


def test_error_missing_split_folder(market):
    shutil.rmtree(market / "query")
    with pytest.raises(DatasetError, match=f"{market / 'query'} does not exist"):
        Market1501(market)


def test_error_empty_split(market):
    for p in (market / "query").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match=f"split 'query' is empty.*{market / 'query'}"):
        Market1501(market)


def test_error_split_of_only_junk_is_empty(tmp_path):
    root = write_market_tree(tmp_path / "m", train=["-1_c1s1_000001_00.jpg"])
    with pytest.raises(DatasetError, match="split 'train' is empty.*1 dropped"):
        Market1501(root)


def test_error_malformed_names_listed(market):
    for bad in ("0003_c1_000451_03.jpg", "person.jpg", "0002_c9s1_000451_03.jpg", "12_c1s1_000451_03.jpg",
                "0001_c1s1_000001_00 (copy).jpg", "0004_c1s1_000001_00.JPG", "9999_c1s1_000001_00.jpg"):
        write_image(market / "bounding_box_train" / bad, 3)
    with pytest.raises(DatasetError) as e:
        Market1501(market)
    msg = str(e.value)
    assert str(market / "bounding_box_train") in msg and "7 file(s)" in msg
    assert "0002_c9s1_000451_03.jpg (camera 9 outside 1..6)" in msg
    assert "(and 2 more)" in msg  # five offenders named, the rest counted


def test_error_corrupt_and_truncated_jpeg(market):
    good = (market / "bounding_box_train" / "0002_c1s1_000451_03.jpg").read_bytes()
    (market / "bounding_box_train" / "0002_c1s1_009999_00.jpg").write_bytes(good[: len(good) // 2])
    (market / "bounding_box_test" / "0001_c4s1_009999_00.jpg").write_bytes(b"garbage, not a jpeg" * 10)
    with pytest.raises(BadImageError, match=r"0002_c1s1_009999_00\.jpg \[truncated JPEG"):
        Market1501(market)
    with pytest.raises(BadImageError, match="on_bad_image=skip"):
        Market1501(market, verify_images="decode")


def test_bad_images_skipped_with_warning_and_count(market, caplog):
    good = (market / "bounding_box_train" / "0002_c1s1_000451_03.jpg").read_bytes()
    (market / "bounding_box_train" / "0002_c1s1_009999_00.jpg").write_bytes(good[:100])
    (market / "bounding_box_test" / "0001_c4s1_009999_00.jpg").write_bytes(b"garbage" * 10)
    (market / "query" / "0005_c4s1_009999_00.jpg").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        ds = Market1501(market, on_bad_image="skip")
    assert len(ds.bad_images) == 3
    assert {Path(p).name: r for p, r in ds.bad_images} == {
        "0002_c1s1_009999_00.jpg": "truncated JPEG (no end-of-image marker)",
        "0001_c4s1_009999_00.jpg": "not a JPEG or PNG file (bad signature)",
        "0005_c4s1_009999_00.jpg": "empty file"}
    assert len(ds.train) == 7 and len(ds.gallery) == 7 and len(ds.query) == 2
    assert "skipped 3 bad image(s)" in caplog.text


def test_verify_none_defers_to_load_time(market):
    (market / "bounding_box_train" / "0002_c1s1_009999_00.jpg").write_bytes(b"garbage")
    ds = Market1501(market, verify_images="none")
    assert len(ds.train) == 8


def test_test_split_folder_refused_as_root(market):
    with pytest.raises(DatasetError, match="test split folder"):
        FolderDataset(market / "query")


# ---------------------------------------------------------------------------------- leakage guard
def test_generation_source_is_train_split_only(market):
    ds = Market1501(market)
    samples = training_images_for_generation(ds)
    assert [Path(s.path).parent.name for s in samples] == ["bounding_box_train"] * 7
    assert sorted({s.pid for s in samples}) == [2, 7, 12]  # original pids, not labels
    assert training_images_for_generation(str(market)) == samples


def test_generation_source_with_test_identity_refused(tmp_path):
    # a folder whose train split contains query/gallery people (train and test merged)
    root = write_market_tree(tmp_path / "merged", train=TRAIN + ["0005_c3s1_000999_00.jpg"])
    with pytest.raises(LeakageError, match=r"pids 5\b"):
        training_images_for_generation(FolderDataset(root))
    # a train-only folder checked against the evaluation dataset
    market = Market1501(write_market_tree(tmp_path / "market"))
    user = write_market_tree(tmp_path / "user", train=["0001_c1s1_000001_00.jpg", "0042_c1s1_000001_00.jpg"],
                             query=[], gallery=[])
    assert len(training_images_for_generation(FolderDataset(user))) == 2  # nothing to compare with
    with pytest.raises(LeakageError, match=r"query/gallery identities of .*market.*pids 1\b"):
        training_images_for_generation(FolderDataset(user), eval_dataset=market)
    # a generated set derived (manifest source) from a test identity
    gen = write_generated_set(tmp_path / "gen", pids=(5,), source="real")
    with pytest.raises(LeakageError, match="pids 5"):
        training_images_for_generation(FolderDataset(gen), eval_dataset=market)
    with pytest.raises(DatasetError, match="test split"):
        training_images_for_generation(tmp_path / "market" / "bounding_box_test")


# ----------------------------------------------------------------------------- build_dataset + schema
def test_build_dataset_from_config(market, tmp_path):
    cfg = compose_stage("make_dataset", tmp_path, ["data=market1501", f"data.root={market.parent}"])
    validate_config(cfg)
    ds = build_dataset(cfg.data)
    assert isinstance(ds, Market1501) and ds.root == market
    cfg = compose_stage("make_dataset", tmp_path, ["data=folder", f"data.root={market}"])
    assert type(build_dataset(cfg.data)) is FolderDataset
    cfg = compose_stage("make_dataset", tmp_path, ["data=dukemtmc", f"data.root={tmp_path / 'none'}"])
    with pytest.raises(DatasetError, match="DukeMTMC-reID.*does not exist"):
        build_dataset(cfg.data)


@pytest.mark.parametrize("override,key", [
    ("data.on_bad_image=maybe", "data.on_bad_image"),
    ("data.verify_images=sometimes", "data.verify_images"),
    ("data.flip_p=1.5", "data.flip_p"),
    ("data.pad=-1", "data.pad"),
    ("data.random_erasing_p=-0.1", "data.random_erasing_p"),
    ("data.name=imagenet", "data.name"),
    ("data.std=[0.2,0.2,0.0]", "data.std"),
    ("data.eval_batch_size=0", "data.eval_batch_size"),
])
def test_schema_rejects_bad_values(tmp_path, override, key):
    cfg = compose_stage("make_dataset", tmp_path, [override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(cfg)


def test_folder_option_requires_root(tmp_path):
    cfg = compose_stage("make_dataset", tmp_path, ["data=folder"])
    with pytest.raises(ConfigError, match="root"):
        validate_config(cfg)


# ------------------------------------------------------------------------------------- DataModule
def _dm(root_or_ds, **kw):
    from reid_gan.data.datamodule import ReIDDataModule

    ds = root_or_ds if not isinstance(root_or_ds, Path) else Market1501(root_or_ds)
    kw.setdefault("height", 32)
    kw.setdefault("width", 16)
    kw.setdefault("pad", 2)
    return ReIDDataModule(ds, **kw)


def test_datamodule_batches_and_eval_flags(market):
    import torch

    dm = _dm(market, batch_size=4, eval_batch_size=5, random_erasing=True)
    dm.setup()
    dm.setup("fit")  # idempotent
    assert dm.num_classes == 3 and len(dm.train_items) == 7
    imgs, labels, camids = next(iter(dm.train_dataloader()))
    assert imgs.shape == (4, 3, 32, 16) and imgs.dtype == torch.float32
    assert labels.dtype == torch.int64 and set(labels.tolist()) <= {0, 1, 2}
    assert len(dm.train_dataloader()) == 1  # 7 images, batch 4, drop_last
    batches = list(dm.val_dataloader())
    pids = torch.cat([b[1] for b in batches]).tolist()
    is_q = torch.cat([b[3] for b in batches]).tolist()
    assert batches[0][0].shape == (5, 3, 32, 16)
    assert is_q == [True] * 2 + [False] * 7
    assert pids[:2] == [1, 5] and sorted(pids[2:]) == [0, 0, 1, 1, 1, 5, 5]  # original pids, distractors kept
    q = next(iter(dm.query_dataloader()))
    assert q[3].tolist() == [True, True] and q[2].tolist() == [0, 1]


def test_eval_transform_is_resize_and_imagenet_normalisation(market):
    import cv2
    import numpy as np
    import torch

    dm = _dm(market, height=64, width=32)
    img, pid, camid, is_q = dm.query_dataloader().dataset[0]
    path = dm.dataset.query[0].path
    from PIL import Image

    # the reference: PIL's bilinear resize of the RGB file (what the transform is documented to do), then
    # ImageNet normalisation written out; compared tightly
    ref = np.asarray(Image.open(path).convert("RGB").resize((32, 64), Image.BILINEAR)).astype(np.float32) / 255
    ref = (ref - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    ref = torch.from_numpy(ref.transpose(2, 0, 1)).float()
    assert img.shape == (3, 64, 32)
    assert torch.allclose(img, ref, atol=1e-5), (img - ref).abs().max()
    # and against OpenCV's resize (another resampler): only rounding differs
    cv = cv2.resize(cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB), (32, 64), interpolation=cv2.INTER_LINEAR)
    cv = (cv.astype(np.float32) / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert torch.allclose(img, torch.from_numpy(cv.transpose(2, 0, 1)).float(), atol=0.1)
    assert (pid, camid, is_q) == (1, 0, True)


def test_datamodule_deterministic_with_seed(market):
    import torch

    def first_batches(seed):
        torch.manual_seed(123)  # what seed_everything does for the transforms
        dm = _dm(market, batch_size=3, seed=seed, random_erasing=True)
        return [b for b in dm.train_dataloader()]

    a, b, c = first_batches(0), first_batches(0), first_batches(1)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    order = lambda bs: [tuple(x[1].tolist()) for x in bs]  # noqa: E731
    assert order(a) != order(c)  # the seed changes the training order


def test_extra_train_sets_offset_and_never_in_query_gallery(market, tmp_path):
    import torch

    gen = write_generated_set(tmp_path / "gen", pids=(10000, 10001), per_person=2)
    variants = write_generated_set(tmp_path / "variants", pids=(7, 12), per_person=2, source="real")
    dm = _dm(market, batch_size=4, extra_train_sets=[gen])  # queued before setup
    assert dm.num_classes == 5  # 3 real + 2 new
    rec = dm.add_train_set(variants, label_mode="real", name="variants")
    assert rec.pid2label == {7: 1, 12: 2} and rec.num_new_classes == 0 and dm.num_classes == 5
    rec2 = dm.add_train_set(FolderDataset(gen), label_mode="new", name="gen-again")
    assert rec2.pid2label == {10000: 5, 10001: 6} and dm.num_classes == 7  # never merged with the first set
    items = dm.train_items
    assert len(items) == 7 + 4 + 4 + 4
    by_source = {}
    for it in items:
        by_source.setdefault(it.source, set()).add((it.pid, it.label))
    assert by_source["real"] == {(2, 0), (7, 1), (12, 2)}
    assert by_source[str(gen)] == {(10000, 3), (10001, 4)}
    assert by_source["variants"] == {(7, 1), (12, 2)}
    # labels cover exactly 0..num_classes-1, the loader yields them
    assert {it.label for it in items} == set(range(dm.num_classes))
    labels = torch.cat([b[1] for b in dm.train_dataloader()]).tolist()
    assert max(labels) < dm.num_classes
    # query/gallery untouched
    eval_paths = {it.path for it in dm.query_items + dm.gallery_items}
    assert eval_paths == {s.path for s in dm.dataset.query + dm.dataset.gallery}
    assert not any("gen" in p or "variants" in p for p in eval_paths)
    assert sum(b[0].shape[0] for b in dm.val_dataloader()) == 9


def test_extra_train_set_leakage_refused(market, tmp_path):
    dm = _dm(market)
    with pytest.raises(LeakageError, match=r"label_mode=real.*pids \[5\]"):
        dm.add_train_samples([(str(tmp_path / "x.jpg"), 5, 6)], label_mode="real", name="bad")
    with pytest.raises(DatasetError, match=r"pids \[99\] are not training identities"):
        dm.add_train_samples([(str(tmp_path / "x.jpg"), 99, 6)], label_mode="real")
    q = dm.dataset.query[0]
    with pytest.raises(LeakageError, match="contains query/gallery images"):
        dm.add_train_samples([(q.path, 20000, 0)], label_mode="new")
    derived = write_generated_set(tmp_path / "derived", pids=(1,), source="real")  # from query person 1
    with pytest.raises(LeakageError, match="derived from query/gallery identities"):
        dm.add_train_set(derived, label_mode="new")
    with pytest.raises(ValueError, match="label_mode"):
        dm.add_train_samples([(q.path, 1, 0)], label_mode="both")
    assert dm.num_classes == 3 and len(dm.train_items) == 7  # nothing was added


def test_datamodule_from_config(market, tmp_path):
    from reid_gan.data.datamodule import ReIDDataModule

    cfg = compose_stage("make_dataset", tmp_path, ["data=market1501", f"data.root={market}", "data.height=32",
                                                   "data.width=16", "data.batch_size=2", "data.num_workers=0"])
    validate_config(cfg)
    dm = ReIDDataModule.from_config(cfg.data, seed=cfg.seed)
    assert dm.dataset is None  # indexed in setup, not before
    assert dm.num_classes == 3
    assert next(iter(dm.train_dataloader()))[0].shape == (2, 3, 32, 16)


def test_bad_image_at_load_time_names_the_file(market):
    (market / "bounding_box_train" / "0002_c1s1_009999_00.jpg").write_bytes(b"\xff\xd8\xff garbage \xff\xd9")
    ds = Market1501(market, verify_images="header")  # markers look fine: only decoding finds it
    dm = _dm(ds, batch_size=8, drop_last=False)
    with pytest.raises(BadImageError, match="0002_c1s1_009999_00.jpg"):
        list(dm.train_dataloader())
    with pytest.raises(BadImageError, match="0002_c1s1_009999_00.jpg"):
        Market1501(market, verify_images="decode")


def test_synthetic_is_rendered_first_then_loaded(tmp_path, monkeypatch):
    import sys
    import types

    calls = []

    def fake_ensure_rendered(root, render_cfg):
        calls.append((str(root), render_cfg))
        return Path(root) if (Path(root) / "bounding_box_train").exists() else write_market_tree(Path(root))

    monkeypatch.setitem(sys.modules, "reid_gan.data.synthetic",
                        types.SimpleNamespace(ensure_rendered=fake_ensure_rendered))
    cfg = compose_stage("make_dataset", tmp_path, ["data=synthetic"])
    ds = build_dataset(cfg.data)
    assert calls == [(str(tmp_path / "data" / "smoke" / "synthetic-market"), cfg.data.render)]
    assert type(ds) is FolderDataset and ds.has_test and len(ds.train) == 7
    assert ds.display_name == "synthetic dataset"
    shutil.rmtree(tmp_path / "data" / "smoke" / "synthetic-market" / "query")  # test splits are required
    with pytest.raises(DatasetError, match="synthetic dataset: split folder .*query does not exist"):
        build_dataset(cfg.data)


def test_cli_prints_summary(market, capsys):
    from reid_gan.data.__main__ import main

    assert main([str(market.parent), "--format", "market1501"]) == 0
    assert "gallery" in capsys.readouterr().out
    assert main([str(market / "nothing")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_manifest_must_agree_with_file_names(tmp_path, caplog):
    import json

    gen = write_generated_set(tmp_path / "gen", pids=(10000,), per_person=2)
    lines = [json.loads(x) for x in (gen / "manifest.jsonl").read_text().splitlines()]
    FolderDataset(gen)
    lines.append({**lines[0], "file": "bounding_box_train/10000_c7s1_000099_00.jpg"})  # no such file
    (gen / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    with pytest.raises(DatasetError, match=r"1 line\(s\) name images.*10000_c7s1_000099_00\.jpg"):
        FolderDataset(gen)
    lines.pop()
    lines[1]["pid"] = 10005
    (gen / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    with pytest.raises(DatasetError, match=r"manifest\.jsonl disagrees.*10000_c7s1_000001_00\.jpg.*manifest pid 10005"):
        FolderDataset(gen)


def test_datamodule_with_workers_and_lightning_fit(market, tmp_path):
    import pytorch_lightning as pl
    import torch

    class Tiny(pl.LightningModule):
        def __init__(self, n):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 16, n))
            self.seen = {"val_q": 0, "val_g": 0}

        def training_step(self, batch, _):
            x, y, _cam = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch, _):
            _x, _pid, _cam, is_q = batch
            self.seen["val_q"] += int(is_q.sum())
            self.seen["val_g"] += int((~is_q).sum())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    dm = _dm(market, batch_size=2, num_workers=1)
    model = Tiny(dm.num_classes)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 3  # 7 images, batch 2, drop_last
    assert model.seen == {"val_q": 2, "val_g": 7}
    torch.manual_seed(0)
    a = [b[1].tolist() for b in _dm(market, batch_size=2, num_workers=1, seed=3).train_dataloader()]
    b = [b[1].tolist() for b in _dm(market, batch_size=2, num_workers=1, seed=3).train_dataloader()]
    assert a == b


# ------------------------------------------------------------------------- training augmentations
def _norm(x):
    import torch

    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return (x.float() / 255 - mean) / std


def _pil(seed=0, h=16, w=8):
    import numpy as np
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    import torch

    return Image.fromarray(arr), torch.from_numpy(arr).permute(2, 0, 1)


def test_train_flip_is_a_mirror_image():
    import torch

    from reid_gan.data.transforms import build_train_transform

    img, x = _pil()
    tf = build_train_transform(16, 8, flip_p=1.0, pad=0)
    assert torch.allclose(tf(img), _norm(x.flip(-1)), atol=1e-6)
    tf = build_train_transform(16, 8, flip_p=0.5, pad=0)
    torch.manual_seed(0)
    outs = [tf(img) for _ in range(20)]
    flipped = [torch.allclose(o, _norm(x.flip(-1)), atol=1e-6) for o in outs]
    same = [torch.allclose(o, _norm(x), atol=1e-6) for o in outs]
    assert all(f != s for f, s in zip(flipped, same)) and 3 <= sum(flipped) <= 17


def test_train_pad_crop_is_a_shifted_window_of_the_zero_padded_image():
    import torch

    from reid_gan.data.transforms import build_train_transform

    img, x = _pil(1)
    pad = 2
    padded = torch.nn.functional.pad(x, [pad] * 4)  # zeros (black), as the transform pads
    tf = build_train_transform(16, 8, flip_p=0.0, pad=pad)
    torch.manual_seed(1)
    offsets = set()
    for _ in range(12):
        y = tf(img)
        hits = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                if torch.allclose(y, _norm(padded[:, dy:dy + 16, dx:dx + 8]), atol=1e-6)]
        assert len(hits) == 1, hits
        offsets.add(hits[0])
    assert len(offsets) >= 3


def test_train_random_erasing_zeroes_one_rectangle():
    import torch

    from reid_gan.data.transforms import build_train_transform

    img, x = _pil(2, 32, 16)
    ref = _norm(x)
    tf = build_train_transform(32, 16, flip_p=0.0, pad=0, random_erasing=True, random_erasing_p=1.0)
    torch.manual_seed(2)
    for _ in range(5):
        y = tf(img)
        changed = (y - ref).abs().amax(0) > 1e-6
        assert changed.any()
        rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
        box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        assert torch.all(y[:, box[0], box[1]] == 0)  # erased to value 0 (after normalisation)
        outside = torch.ones_like(changed)
        outside[box] = False
        assert torch.allclose(y[:, outside], ref[:, outside], atol=1e-6)
    tf = build_train_transform(32, 16, flip_p=0.0, pad=0, random_erasing=False)
    assert torch.allclose(tf(img), ref, atol=1e-6)
