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
