"""The embedded synthetic dataset (layout, protocol properties, determinism, resume) and the HOG detector."""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from reid_gan.data import synthetic as S
from reid_gan.filters.hog import HOGDetector, margin_to_score, score_to_margin

NAME = re.compile(r"^(-1|\d{4})_c([1-6])s(\d)_(\d{6})_(\d{2})\.jpg$")
SMALL = dict(num_train_ids=8, num_test_ids=8, images_per_id=(4, 6), num_distractors=6, num_junk=4,
             grid_ids=3, grid_cols=5, num_workers=0)


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def index(root: Path) -> dict[str, list[tuple[int, int, str]]]:
    out = {}
    for split in S.SPLITS:
        rows = []
        for p in sorted((root / split).iterdir()):
            m = NAME.match(p.name)
            assert m, f"{split}/{p.name} does not follow PPPP_cCsS_FFFFFF_NN.jpg"
            rows.append((int(m.group(1)), int(m.group(2)), p.name))
        out[split] = rows
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "ds"
    S.render_dataset(root, progress=False, **SMALL)
    return root


# ----------------------------------------------------------------------------- layout and protocol
def test_layout_naming_and_image_format(small):
    idx = index(small)
    info = json.loads((small / "DATASET.json").read_text())
    for split in S.SPLITS:
        assert len(idx[split]) == info["file_counts"][split] > 0
    for split, rows in idx.items():
        for pid, cam, name in rows[:: max(1, len(rows) // 15)]:
            img = cv2.imread(str(small / split / name), cv2.IMREAD_UNCHANGED)
            assert img is not None and img.shape == (128, 64, 3) and img.dtype == np.uint8
            assert (small / split / name).read_bytes()[:2] == b"\xff\xd8"  # JPEG
    # distractors and junk only in the gallery, with the configured counts
    assert sum(pid == 0 for pid, _, _ in idx["bounding_box_test"]) == SMALL["num_distractors"]
    assert sum(pid == -1 for pid, _, _ in idx["bounding_box_test"]) == SMALL["num_junk"]
    for split in ("bounding_box_train", "query"):
        assert all(pid > 0 for pid, _, _ in idx[split])
    assert (small / "sample_grid.png").is_file() and (small / "README.md").is_file()
    grid = cv2.imread(str(small / "sample_grid.png"))
    assert grid.shape[0] > 3 * 128 and grid.shape[1] > 5 * 64


def test_train_test_disjoint_and_sizes(small):
    idx = index(small)
    train = {pid for pid, _, _ in idx["bounding_box_train"]}
    test = {pid for pid, _, _ in idx["bounding_box_test"] + idx["query"] if pid > 0}
    assert len(train) == SMALL["num_train_ids"] and len(test) == SMALL["num_test_ids"]
    assert not train & test
    per_id = defaultdict(int)
    for split in S.SPLITS:
        for pid, _, _ in idx[split]:
            if pid > 0:
                per_id[pid] += 1
    lo, hi = SMALL["images_per_id"]
    assert all(lo <= n <= hi for n in per_id.values()), per_id


def test_every_query_has_a_cross_camera_gallery_match(small):
    idx = index(small)
    gallery = defaultdict(set)
    for pid, cam, _ in idx["bounding_box_test"]:
        gallery[pid].add(cam)
    assert idx["query"]
    for pid, cam, name in idx["query"]:
        assert gallery[pid] - {cam}, f"query {name} has no gallery image of pid {pid} from another camera"
    # every test identity has at least one query
    assert {pid for pid, _, _ in idx["query"]} == {p for p in gallery if p > 0}


def test_each_identity_seen_by_two_or_more_cameras(small):
    idx = index(small)
    cams = defaultdict(set)
    for split in S.SPLITS:
        for pid, cam, _ in idx[split]:
            if pid > 0:
                cams[pid].add(cam)
    assert min(len(c) for c in cams.values()) >= 2
    assert set().union(*cams.values()) <= set(range(1, 7))


def test_colour_twins_share_colours_but_differ_in_pattern_build_or_bag():
    params = S.RenderParams(num_train_ids=40, num_test_ids=40, shared_colour_prob=0.5)
    _, scheme_of = S.plan_dataset(params)
    twins = [(p, s) for p, s in scheme_of.items() if p != s]
    assert len(twins) >= 10
    for pid, src in twins:
        a, b = S.make_identity(pid, params.seed, src), S.make_identity(src, params.seed, src)
        assert (a.upper, a.upper2, a.lower) == (b.upper, b.upper2, b.lower)
        assert a.pattern != b.pattern or abs(a.girth - b.girth) > 0.2 or a.bag != b.bag


# ----------------------------------------------------------------------------- determinism, resume
def test_same_seed_byte_identical_other_seed_different(small, tmp_path):
    again = tmp_path / "again"
    S.render_dataset(again, progress=False, **SMALL)
    assert tree_hashes(again) == tree_hashes(small)
    other = tmp_path / "other"
    S.render_dataset(other, progress=False, **{**SMALL, "seed": 1})
    h_other = tree_hashes(other)
    assert h_other != tree_hashes(small)
    common = set(h_other) & set(tree_hashes(small))
    assert not any(h_other[k] == tree_hashes(small)[k] for k in common if k.endswith(".jpg"))


def test_worker_count_does_not_change_the_files(small, tmp_path, monkeypatch):
    monkeypatch.setattr(S.writer, "_PARALLEL_MIN", 0)  # parallel even for this small render
    par = tmp_path / "par"
    S.render_dataset(par, progress=False, **{**SMALL, "num_workers": 2})
    assert tree_hashes(par) == tree_hashes(small)


def test_resume_after_a_killed_render(small, tmp_path, monkeypatch):
    root = tmp_path / "ds"
    real = S.writer._render_chunk
    calls = {"n": 0}

    def dying(root_, specs, params, scheme_of):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real(root_, specs, params, scheme_of)

    monkeypatch.setattr(S.writer, "_render_chunk", dying)
    with pytest.raises(KeyboardInterrupt):
        S.render_dataset(root, progress=False, **SMALL)
    monkeypatch.setattr(S.writer, "_render_chunk", real)
    assert not S.is_rendered(root) and (root / S.IN_PROGRESS).is_file()
    n_before = sum(1 for _ in root.rglob("*.jpg"))
    assert 0 < n_before < sum(json.loads((small / "DATASET.json").read_text())["file_counts"].values())
    (root / "query" / ".stray.jpg.tmp").write_bytes(b"half")  # a temp file of the killed writer
    rendered = []
    monkeypatch.setattr(S.writer, "_render_chunk", lambda r, sp, p, s: rendered.append(len(sp)) or real(r, sp, p, s))
    S.ensure_rendered(root, dict(SMALL), progress=False)
    assert S.is_rendered(root)
    assert sum(rendered) == sum(1 for _ in root.rglob("*.jpg")) - n_before  # only the missing ones
    assert tree_hashes(root) == tree_hashes(small)
    # complete: nothing more is rendered
    rendered.clear()
    S.ensure_rendered(root, dict(SMALL), progress=False)
    assert rendered == []


def test_other_parameters_rerender_and_foreign_folder_is_refused(tmp_path):
    root = tmp_path / "ds"
    S.ensure_rendered(root, {**SMALL, "num_junk": 0, "num_distractors": 0, "grid_ids": 0}, progress=False)
    S.ensure_rendered(root, {**SMALL, "num_junk": 2, "num_distractors": 0, "grid_ids": 0}, progress=False)
    assert S.is_rendered(root, S.RenderParams.from_config({**SMALL, "num_junk": 2, "num_distractors": 0,
                                                           "grid_ids": 0}))
    assert sum(1 for p in (root / "bounding_box_test").iterdir() if p.name.startswith("-1_")) == 2
    foreign = tmp_path / "market"
    (foreign / "bounding_box_train").mkdir(parents=True)
    (foreign / "bounding_box_train" / "0002_c1s1_000451_03.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="market"):
        S.ensure_rendered(foreign, SMALL, progress=False)
    assert (foreign / "bounding_box_train" / "0002_c1s1_000451_03.jpg").read_bytes() == b"x"


def test_bad_render_parameters_are_rejected():
    with pytest.raises(ValueError, match="render.images_per_id"):
        S.RenderParams.from_config({"images_per_id": [1, 3]})
    with pytest.raises(ValueError, match="render: unknown"):
        S.RenderParams.from_config({"num_ids": 3})


# ----------------------------------------------------------------------------- HOG detector
def test_hog_margin_equals_opencv_detect_and_calibration():
    det = HOGDetector()
    rng = np.random.default_rng(0)
    params = S.RenderParams(num_train_ids=3, num_test_ids=2)
    specs, scheme = S.plan_dataset(params)
    imgs = [S.render_image(s, params, scheme)[0] for s in specs[:: max(1, len(specs) // 12)]]
    imgs.append(cv2.GaussianBlur((rng.random((128, 64, 3)) * 255).astype(np.uint8), (5, 5), 1.5))
    ours = det.margin(imgs)
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    for img, m in zip(imgs, ours):
        loc, w = hog.detect(img, hitThreshold=-100.0, winStride=(8, 8), padding=(0, 0))
        assert len(w) == 1 and tuple(loc[0]) == (0, 0)
        assert abs(float(w[0][0] if np.ndim(w[0]) else w[0]) - m) < 1e-3
        loc0, _ = hog.detect(img, hitThreshold=0.0, winStride=(8, 8), padding=(0, 0))
        assert (len(loc0) == 1) == (m >= 0.0)  # OpenCV's own decision
    assert (ours >= 0).any() and (ours < 0).any()  # both decisions were exercised
    s = det.score(imgs)
    assert np.all((s >= 0) & (s <= 1))
    assert np.array_equal(s >= 0.6, ours >= 0.0)
    assert margin_to_score(0.0) == pytest.approx(0.6)
    assert score_to_margin(margin_to_score(np.array([-2.0, 0.3, 1.5]))) == pytest.approx([-2.0, 0.3, 1.5])
    # other sizes are resized to the window: a 2× upscaled crop scores like the crop
    big = cv2.resize(imgs[0], (128, 256), interpolation=cv2.INTER_CUBIC)
    assert abs(det.margin([big])[0] - ours[0]) < 1.0
    assert np.isfinite(HOGDetector(mode="search").margin([big, imgs[0]])).all()


def test_hog_pass_rate_on_rendered_persons_and_separation_from_background(tmp_path):
    params = dict(num_train_ids=30, num_test_ids=2, images_per_id=(4, 6), num_distractors=0, num_junk=0,
                  grid_ids=0, num_workers=0, seed=3)
    root = tmp_path / "ds"
    S.render_dataset(root, progress=False, **params)
    files = sorted((root / "bounding_box_train").glob("*.jpg"))
    persons = [cv2.imread(str(p)) for p in files]
    det = HOGDetector()
    sp = det.score(persons)
    assert len(sp) >= 100
    rate = float(np.mean(sp >= 0.6))
    assert rate >= 0.9, f"HOG finds a person in only {rate:.1%} of {len(sp)} rendered images"
    # background-only crops of the same cameras and pure noise: the detector must not fire on them
    rp = S.RenderParams.from_config(params)
    rng = np.random.default_rng(0)
    negatives = []
    for i in range(60):
        cam = S.make_camera(1 + i % 6, rp.seed)
        bg = S._draw_scene(cam, np.random.default_rng(i), 256, 128)
        negatives.append(np.clip(cv2.resize(bg, (64, 128), interpolation=cv2.INTER_AREA), 0, 255).astype(np.uint8))
    for _ in range(20):
        negatives.append(cv2.GaussianBlur((rng.random((128, 64, 3)) * 255).astype(np.uint8), (0, 0), 1.0))
    sn = det.score(negatives)
    assert float(np.mean(sn >= 0.6)) <= 0.05
    # ranking quality: a random person outscores a random negative in >= 95 % of pairs (ROC AUC)
    auc = float(np.mean(sp[:, None] > sn[None, :]))
    assert auc >= 0.95, auc


def test_hog_rejects_bad_input():
    det = HOGDetector()
    with pytest.raises(TypeError, match="image 0"):
        det.score([np.zeros((128, 64, 3), np.float32)])
    with pytest.raises(ValueError, match="mode"):
        HOGDetector(mode="yolo")


# ----------------------------------------------------------------------------- the stage
def test_make_dataset_stage(tmp_path):
    from reid_gan.config import ConfigError, validate_config
    from reid_gan.make_dataset import make_dataset
    from tests.helpers import compose_stage

    cfg = compose_stage("make_dataset", tmp_path, ["progress=false", "hog_check_images=60"])
    validate_config(cfg)
    metrics, objects = make_dataset(cfg)
    root = Path(objects["root"])
    assert root == tmp_path / "data" / "smoke" / "synthetic-market"
    assert S.is_rendered(root, S.RenderParams.from_config(cfg.data.render))
    assert metrics["data/train_ids"] == 8 and metrics["data/test_ids"] == 8
    check = json.loads((root / "hog_check.json").read_text())
    assert check["images"] == 60 and metrics["data/hog_pass_rate_person"] == check["pass_rate_person"]
    assert Path(objects["grid"]).is_file()
    before = tree_hashes(root)
    metrics2, _ = make_dataset(cfg)  # complete: nothing re-rendered
    assert metrics2["data/render_seconds"] == 0.0
    assert {k: v for k, v in tree_hashes(root).items() if not k.startswith("hog")} == \
        {k: v for k, v in before.items() if not k.startswith("hog")}

    bad = compose_stage("make_dataset", tmp_path, ["data.render.images_per_id=[1,3]"])
    with pytest.raises(ConfigError, match=r"data\.render\.images_per_id"):
        validate_config(bad)
    bad = compose_stage("make_dataset", tmp_path, ["data.render.blur_prob=1.5"])
    with pytest.raises(ConfigError, match=r"data\.render\.blur_prob"):
        validate_config(bad)


def test_quickstart_preset_size(tmp_path):
    from tests.helpers import compose_stage

    cfg = compose_stage("make_dataset", tmp_path, ["experiment=quickstart"])
    p = S.RenderParams.from_config(cfg.data.render)
    specs, _ = S.plan_dataset(p)
    assert p.num_train_ids == 100 and p.num_test_ids == 100
    assert 1500 <= len(specs) <= 3000


# ----------------------------------------------------------------------------- grids
def test_image_grid_layout_borders_labels_and_tensors(tmp_path):
    import torch

    from reid_gan.report.grids import image_grid, save_grid

    imgs = [np.full((128, 64, 3), v, np.uint8) for v in (0, 50, 100, 150, 200)]
    g = image_grid(imgs, nrow=3, padding=2, border_colors=[(0, 0, 255)] + [None] * 4, border_width=2)
    assert g.shape == (2 + 2 * (128 + 2), 2 + 3 * (64 + 2), 3)
    assert tuple(g[2, 2]) == (0, 0, 255)          # red frame on the first cell
    assert tuple(g[2 + 64, 2 + 66 + 32]) == (50, 50, 50)  # second cell's centre untouched
    assert tuple(g[-40, -20]) == (255, 255, 255)  # empty sixth cell
    gl = image_grid(imgs, nrow=3, row_labels=["a", "b"], label_width=30)
    assert gl.shape[1] == g.shape[1] + 30 and (gl[:, :30] < 128).any()  # text drawn
    t = torch.zeros(2, 3, 16, 8)
    t[:, 0] = 1.0  # red in RGB
    gt = image_grid(t, nrow=2, padding=0)
    assert gt.shape == (16, 16, 3) and tuple(gt[0, 0]) == (0, 0, 255)  # → BGR
    out = save_grid(tmp_path / "g.png", imgs, nrow=5)
    assert cv2.imread(str(out)).shape == (2 + 130, 2 + 5 * 66, 3)
    with pytest.raises(ValueError, match="border colours"):
        image_grid(imgs, border_colors=[(0, 0, 0)])
