"""Filter stage: YOLOv4-tiny equality with OpenCV, thresholds, cache, report counts, the stage itself."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from reid_gan.filters.chain import (
    DetectorFilter,
    FilterChain,
    IdentityFilter,
    SSIMFilter,
    load_image_set,
)
from reid_gan.filters.detector import YOLOv4Tiny, darknet_conv_layers, darknet_weights_size
from reid_gan.filters.identity import ColourLayoutExtractor
from reid_gan.utils.weights import WeightsError
from tests.filter_helpers import YOLO_CFG, make_generated_set, person_like, write_random_darknet_weights
from tests.helpers import compose_stage


@pytest.fixture(scope="module")
def yolo_weights(tmp_path_factory) -> Path:
    return write_random_darknet_weights(YOLO_CFG, tmp_path_factory.mktemp("yolo") / "random.weights")


# ------------------------------------------------------------------------------------------- YOLO
def test_darknet_weights_layout_matches_yolov4_tiny(yolo_weights):
    convs = darknet_conv_layers(YOLO_CFG)
    assert len(convs) == 21
    assert sum(c["n_floats"] for c in convs) == 6_062_814
    assert darknet_weights_size(YOLO_CFG) == 24_251_276
    assert yolo_weights.stat().st_size == 24_251_276
    # the two detection heads: 255 = 3 anchors x (5 + 80 classes)
    assert [c["filters"] for c in convs if c["filters"] == 255] == [255, 255]


def test_yolov4_tiny_scores_equal_opencv_forward_pass(yolo_weights):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(128, 64), (200, 96), (64, 64)]]
    images.append(person_like(rng))
    det = YOLOv4Tiny(str(YOLO_CFG), str(yolo_weights), input_size=416, batch_size=3)
    ours = det.score(images)

    # independently: OpenCV's own net, one image at a time, best class-0 column of both yolo layers
    net = cv2.dnn.readNetFromDarknet(str(YOLO_CFG), str(yolo_weights))
    names = list(net.getUnconnectedOutLayersNames())
    assert len(names) == 2
    layer_names = list(net.getLayerNames())
    pre = [layer_names[layer_names.index(n) - 1] for n in names]  # raw head outputs (before the yolo layer)
    ref = []
    for img in images:
        net.setInput(cv2.dnn.blobFromImage(img, 1 / 255.0, (416, 416), swapRB=True, crop=False))
        outs = net.forward(names + pre)
        ref.append(max(float(o[:, 5].max()) for o in outs[:2]))
        # the class columns are objectness x class probability (zeroed at <= 0.2) as the docstring says
        for o, raw in zip(outs[:2], outs[2:]):
            raw = raw.reshape(-1, 85).astype(np.float64)
            prod = 1 / (1 + np.exp(-raw[:, 4])) / (1 + np.exp(-raw[:, 5]))
            np.testing.assert_allclose(o[:, 5], np.where(prod > 0.2, prod, 0.0), atol=1e-5)
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)
    assert np.ptp(ours) > 1e-3  # the images get different scores


def test_yolov4_tiny_clear_errors(tmp_path, yolo_weights):
    with pytest.raises(WeightsError, match=r"filter\.detector\.cfg"):
        YOLOv4Tiny(None, str(yolo_weights))
    with pytest.raises(WeightsError, match=r"filter\.detector\.weights=.*not found"):
        YOLOv4Tiny(str(YOLO_CFG), str(tmp_path / "missing.weights"))
    short = tmp_path / "short.weights"
    short.write_bytes(yolo_weights.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="24251276 bytes"):
        YOLOv4Tiny(str(YOLO_CFG), str(short))


def test_stage_names_missing_yolo_key(tmp_path):
    from reid_gan.filter import filter as run_filter

    make_generated_set(tmp_path / "gen", persons=1, per_person=2)
    cfg = compose_stage("filter", tmp_path, ["detector=yolov4_tiny", f"filter.source={tmp_path / 'gen'}",
                                             f"filter.detector.cfg={YOLO_CFG}"])
    with pytest.raises(WeightsError, match=r"filter\.detector\.weights"):
        run_filter(cfg)


# ------------------------------------------------------------------------------------------ chain
class TableDetector:
    """Scores from a table keyed by the image's mean pixel value (deterministic, for decisions)."""

    def __init__(self, table):
        self.table = table
        self.calls = 0

    def score(self, images):
        self.calls += len(images)
        return np.array([self.table(img) for img in images])


def test_threshold_boundary_is_kept_and_cache_skips_recomputation(tmp_path):
    gen = make_generated_set(tmp_path / "gen", persons=2, per_person=4)
    image_set = load_image_set(gen)
    det = TableDetector(lambda img: round(float(img.mean()) / 255.0, 6))
    cache = tmp_path / "cache.jsonl"

    def chain(thr_det, thr_ssim):
        d = DetectorFilter(det, threshold=thr_det)
        s = SSIMFilter(threshold=thr_ssim)
        d.identity, s.identity = "det", "ssim"
        return FilterChain([d, s], cache, progress=False)

    r1 = chain(0.0, 0.0).run(load_image_set(gen))
    assert det.calls == len(image_set.items)
    assert r1.kept.all()
    # a threshold equal to an image's score keeps that image; anything above discards it
    scores = r1.scores["detector"]
    mid = float(np.sort(scores)[len(scores) // 2])
    r2 = chain(mid, 0.0).run(load_image_set(gen))
    np.testing.assert_array_equal(r2.passes["detector"], scores >= mid)
    assert r2.passes["detector"][int(np.argmin(np.abs(scores - mid)))]
    assert det.calls == len(image_set.items)  # nothing recomputed: all from the cache
    assert r2.computed == {"detector": 0, "ssim": 0} and r2.cached["detector"] == len(scores)
    ssim_scores = r1.scores["ssim"]
    base_idx = [i for i, it in enumerate(image_set.items) if it.record["method"] == "base"]
    np.testing.assert_allclose(ssim_scores[base_idx], 1.0, atol=1e-6)  # the reference itself
    thr = float(np.sort(ssim_scores)[2])
    r3 = chain(0.0, thr).run(load_image_set(gen))
    np.testing.assert_array_equal(r3.passes["ssim"], ssim_scores >= thr)
    assert det.calls == len(image_set.items)


def test_ssim_filter_base_and_medoid_reference(tmp_path):
    gen = make_generated_set(tmp_path / "gen", persons=2, per_person=5, noise_images=1)
    image_set = load_image_set(gen)
    for ref in ("base", "medoid"):
        f = SSIMFilter(threshold=0.75, reference=ref)
        f.identity = ref
        r = FilterChain([f], None, progress=False).run(load_image_set(gen))
        methods = [it.record["method"] for it in image_set.items]
        noise = np.array([m == "style_mix" for m in methods])
        assert not r.passes["ssim"][noise].any()      # pure noise vs the person: discarded
        assert r.passes["ssim"][~noise].all()         # the person's variants: kept
        refs = f.reference_files(r.image_set)
        assert all(image_set.items[[it.file for it in image_set.items].index(v)].record["method"] != "style_mix"
                   for v in refs.values())


def test_medoid_is_the_image_with_the_highest_mean_ssim(tmp_path):
    from skimage.metrics import structural_similarity

    gen = make_generated_set(tmp_path / "gen", persons=1, per_person=5, noise_images=2)
    image_set = load_image_set(gen)
    f = SSIMFilter(threshold=0.5, reference="medoid")
    f.identity = "m"
    r = FilterChain([f], tmp_path / "c.jsonl", progress=False).run(load_image_set(gen))
    imgs = [cv2.imread(str(it.path))[:, :, ::-1] for it in image_set.items]
    sim = np.array([[structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, data_range=255) for b in imgs] for a in imgs])
    want = image_set.items[int(np.argmax(sim.mean(axis=1)))].file
    assert f.reference_files(r.image_set)[10000] == want
    j = [it.file for it in image_set.items].index(want)
    np.testing.assert_allclose(r.scores["ssim"], sim[:, j], atol=1e-4)
    # the medoid choice itself is cached: a second run computes no SSIM at all
    f2 = SSIMFilter(threshold=0.9, reference="medoid")
    f2.identity = "m"
    calls = {"n": 0}
    orig = f2._pairs
    f2._pairs = lambda *a, **k: (calls.__setitem__("n", calls["n"] + 1), orig(*a, **k))[1]
    r2 = FilterChain([f2], tmp_path / "c.jsonl", progress=False).run(load_image_set(gen))
    assert calls["n"] == 0 and f2.reference_files(r2.image_set)[10000] == want


def test_identity_filter_with_tiny_extractor(tmp_path):
    gen = make_generated_set(tmp_path / "gen", persons=2, per_person=5, noise_images=1)
    f = IdentityFilter(ColourLayoutExtractor(bands=6), threshold=0.5, batch_size=3)
    f.identity = "id"
    r = FilterChain([f], None, progress=False).run(load_image_set(gen))
    s = r.scores["identity"]
    assert np.all(s <= 1 + 1e-9) and np.all(s >= -1 - 1e-9)
    methods = np.array([it.record["method"] for it in r.image_set.items])
    # the person's own variants are closer to the centroid than the noise image
    for pid, idx in r.image_set.by_pid().items():
        idx = np.array(idx)
        assert s[idx][methods[idx] != "style_mix"].min() > s[idx][methods[idx] == "style_mix"].max()


# ------------------------------------------------------------------------------------------ stage
def _stage_cfg(tmp_path, weights, extra=()):
    return compose_stage("filter", tmp_path, [
        "detector=yolov4_tiny", f"filter.detector.cfg={YOLO_CFG}", f"filter.detector.weights={weights}",
        "filter.detector.input_size=64", f"filter.source={tmp_path / 'gen'}", "filter.progress=false", *extra])


def test_stage_writes_kept_set_report_and_reuses_cache(tmp_path, yolo_weights, monkeypatch):
    from reid_gan.filter import filter as run_filter

    gen = make_generated_set(tmp_path / "gen", persons=3, per_person=4, noise_images=1)
    before = {p.name: p.read_bytes() for p in (gen / "bounding_box_train").iterdir()}
    calls = {"n": 0}
    orig = YOLOv4Tiny.score

    def counting(self, images):
        calls["n"] += len(images)
        return orig(self, images)

    monkeypatch.setattr(YOLOv4Tiny, "score", counting)
    m1, o1 = run_filter(_stage_cfg(tmp_path, yolo_weights, ["filter.chain.detector.threshold=0.0"]))
    assert calls["n"] == 12
    assert m1["filter/images"] == 12
    assert m1["filter/discarded_detector"] == 0 and m1["filter/discarded_ssim"] == 3  # the noise images
    kept = tmp_path / "out" / "kept"
    files = sorted(p.name for p in (kept / "bounding_box_train").iterdir())
    assert len(files) == m1["filter/kept"] == 9
    recs = [json.loads(x) for x in (kept / "manifest.jsonl").read_text().splitlines()]
    assert sorted(Path(r["file"]).name for r in recs) == files
    assert all(set(r["scores"]) == {"detector", "ssim"} and r["kept"] for r in recs)
    assert all(r["method"] != "style_mix" for r in recs)
    # source untouched, kept files are the same bytes
    assert {p.name: p.read_bytes() for p in (gen / "bounding_box_train").iterdir()} == before
    assert all((kept / "bounding_box_train" / f).read_bytes() == before[f] for f in files)
    from reid_gan.data import FolderDataset  # the kept set is a dataset the data layer reads as-is

    assert len(FolderDataset(kept).train) == 9

    # another threshold: nothing recomputed, and the decision follows the cached scores
    scores = pd.read_csv(tmp_path / "out" / "report" / "scores.csv")
    thr = float(np.sort(scores["score_detector"].to_numpy())[5])
    m2, o2 = run_filter(_stage_cfg(tmp_path, yolo_weights, [f"filter.chain.detector.threshold={thr}"]))
    assert calls["n"] == 12
    assert m2["filter/computed_detector"] == 0 and m2["filter/cached_detector"] == 12
    expect_det = int((scores["score_detector"] < thr).sum())
    assert m2["filter/discarded_detector"] == expect_det
    # report counts add up
    summary = pd.read_csv(o2["summary_csv"]).set_index("filter")
    per = pd.read_csv(o2["per_person_csv"])
    assert summary.loc["total", "discarded"] == summary.loc[["detector", "ssim"], "discarded"].sum()
    assert summary.loc["total", "discarded"] + summary.loc["kept", "discarded"] == 12
    assert per["images"].sum() == 12 and per["kept"].sum() == m2["filter/kept"]
    assert per["discarded_detector"].sum() == expect_det
    assert (per["discarded_detector"] + per["discarded_ssim"] + per["kept"] == per["images"]).all()
    assert len(list((kept / "bounding_box_train").iterdir())) == m2["filter/kept"]  # stale links removed
    assert Path(o2["report_md"]).is_file() and Path(o2["grid_ssim"]).is_file()
    # a folder the stage did not write is never used as the output (its files could be deleted)
    other = tmp_path / "someone_elses"
    (other / "bounding_box_train").mkdir(parents=True)
    (other / "bounding_box_train" / "0001_c1s1_000001_00.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"filter\.out=.*not written by the filter stage"):
        run_filter(_stage_cfg(tmp_path, yolo_weights, [f"filter.out={other}"]))
    assert (other / "bounding_box_train" / "0001_c1s1_000001_00.jpg").is_file()


def test_stage_calibrate_on_a_real_layout_set(tmp_path, yolo_weights):
    from reid_gan.filter import filter as run_filter
    from reid_gan.report.calibration import pick_threshold

    real = tmp_path / "real" / "bounding_box_train"
    real.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for pid in (1, 2, 3):
        for k in range(3):
            cv2.imwrite(str(real / f"{pid:04d}_c{k + 1}s1_{k:06d}_00.jpg"), person_like(rng))
    cfg = _stage_cfg(tmp_path, yolo_weights, ["calibrate=true", f"filter.calibrate_source={tmp_path / 'real'}",
                                               "filter.calibrate_target=0.25"])
    m, o = run_filter(cfg)
    assert m["calibrate/images"] == 9
    s = o["result"].scores["detector"]
    thr = m["calibrate/detector_picked_threshold"]
    assert np.mean(s < thr) <= 0.25 and np.mean(s <= thr) > 0.25  # the largest threshold within target
    assert Path(o["curve_png"]).is_file() and Path(o["hist_ssim"]).is_file()
    assert pick_threshold(np.array([0.1, 0.2, 0.3, 0.4]), 0.5) == (0.3, 0.5)


def test_schema_rejects_bad_thresholds(tmp_path):
    from reid_gan.config import ConfigError, validate_config

    for bad, key in (("filter.chain.detector.threshold=1.2", "filter.chain.detector.threshold"),
                     ("filter.chain.ssim.reference=mean", "filter.chain.ssim.reference"),
                     ("filter.order=[detector,nope]", "filter.order"),
                     ("detector=yolov4_tiny filter.detector.input_size=100", "filter.detector.input_size")):
        cfg = compose_stage("filter", tmp_path, bad.split())
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            validate_config(cfg)


def test_identity_filter_from_a_reid_checkpoint_in_the_stage(tmp_path, yolo_weights):
    import torch

    from reid_gan.filter import filter as run_filter
    from reid_gan.filters.identity import ReIDFeatureExtractor
    from tests.filter_helpers import TinyReID

    torch.manual_seed(0)
    model = TinyReID()
    ckpt = tmp_path / "reid.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    ext = ReIDFeatureExtractor(str(ckpt), {"_target_": "tests.filter_helpers.TinyReID"})
    x = torch.rand(2, 3, 128, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(ext(x), model((x - mean) / std))
    with pytest.raises(WeightsError, match=r"filter\.chain\.identity\.extractor\.checkpoint"):
        ReIDFeatureExtractor(None, {"_target_": "tests.filter_helpers.TinyReID"})

    make_generated_set(tmp_path / "gen", persons=2, per_person=3)
    cfg = _stage_cfg(tmp_path, yolo_weights, [
        "filter.chain.detector.threshold=0.0", "filter.chain.identity.enabled=true",
        "filter.chain.identity.threshold=-1.0", f"filter.chain.identity.extractor.checkpoint={ckpt}",
        "filter.chain.identity.extractor.model={_target_: tests.filter_helpers.TinyReID}"])
    m, o = run_filter(cfg)
    s = o["result"].scores["identity"]
    assert m["filter/computed_identity"] == 6 and np.all(np.abs(s) <= 1 + 1e-6)
    assert m["filter/discarded_identity"] == 0  # threshold -1 keeps everything
    missing = _stage_cfg(tmp_path, yolo_weights, ["filter.chain.identity.enabled=true"])
    with pytest.raises(WeightsError, match=r"identity\.extractor\.checkpoint: not set"):
        run_filter(missing)


def test_default_hog_chain_separates_dataset_persons_from_noise_and_background(tmp_path):
    """The stage with its default detector (HOG): rendered persons kept, non-person images discarded."""
    from reid_gan.data import synthetic as S
    from reid_gan.filter import filter as run_filter

    params = dict(num_train_ids=10, num_test_ids=2, images_per_id=(4, 5), num_distractors=0, num_junk=0,
                  grid_ids=0, num_workers=0, seed=11)
    ds = tmp_path / "ds"
    S.render_dataset(ds, progress=False, **params)
    rp = S.RenderParams.from_config(params)
    gen = tmp_path / "gen" / "bounding_box_train"
    gen.mkdir(parents=True)
    lines = []
    persons = sorted((ds / "bounding_box_train").glob("*.jpg"))
    for k, p in enumerate(persons):  # one "person" per image so SSIM compares each image with itself
        name = f"{10000 + k:05d}_c7s1_000000_00.jpg"
        (gen / name).write_bytes(p.read_bytes())
        lines.append({"file": f"bounding_box_train/{name}", "pid": 10000 + k, "method": "base", "kind": "person"})
    rng = np.random.default_rng(0)
    for k in range(30):
        if k % 2 == 0:  # a camera's background without anyone in it
            bg = S._draw_scene(S.make_camera(1 + k % 6, rp.seed), np.random.default_rng(k), 256, 128)
            img = cv2.resize(np.clip(bg, 0, 255).astype(np.uint8), (64, 128), interpolation=cv2.INTER_AREA)
        else:  # noise
            img = cv2.GaussianBlur(rng.integers(0, 256, (128, 64, 3), dtype=np.uint8), (0, 0), 1.0)
        name = f"{20000 + k:05d}_c7s1_000000_00.jpg"
        cv2.imwrite(str(gen / name), img)
        lines.append({"file": f"bounding_box_train/{name}", "pid": 20000 + k, "method": "base", "kind": "other"})
    (tmp_path / "gen" / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))

    # experiment=quickstart: the default chain (the smoke preset opens the detector for its noise generator)
    cfg = compose_stage("filter", tmp_path, ["experiment=quickstart", f"filter.source={tmp_path / 'gen'}",
                                             "filter.progress=false"])
    assert cfg.filter.detector._target_ == "reid_gan.filters.hog.HOGDetector"  # the default
    m, o = run_filter(cfg)
    recs = o["result"].records()
    person_kept = np.mean([r["kept"] for r in recs if r["kind"] == "person"])
    other_kept = np.mean([r["kept"] for r in recs if r["kind"] == "other"])
    assert len(persons) >= 40 and person_kept >= 0.9, person_kept
    assert other_kept <= 0.05, other_kept
    assert m["filter/discarded_ssim"] == 0  # each image is its own reference (SSIM 1)


def test_stage_reads_what_the_generate_stage_writes(tmp_path):
    """generate (smoke: a tiny randomly initialised Generator) → filter (smoke: HOG opened to 0, SSIM 0.75),
    through the configs."""
    from reid_gan.filter import filter as run_filter
    from reid_gan.generate import generate

    gcfg = compose_stage("generate", tmp_path, [f"generate.out={tmp_path / 'set'}", "generate.progress=false"])
    generate(gcfg)
    cfg = compose_stage("filter", tmp_path, [f"generate.out={tmp_path / 'set'}", "filter.progress=false",
                                             "filter.chain.detector.threshold=0.0"])
    assert cfg.filter.source == str(tmp_path / "set")  # the default source is the generate stage's output
    m, o = run_filter(cfg)
    src = [json.loads(x) for x in (tmp_path / "set" / "manifest.jsonl").read_text().splitlines()]
    assert m["filter/images"] == len(src) == 18
    kept = [json.loads(x) for x in (Path(o["kept_dir"]) / "manifest.jsonl").read_text().splitlines()]
    assert len(kept) == m["filter/kept"] >= 3  # at least every base image (SSIM 1 to itself)
    for r in kept:  # the records keep the generator's fields, and their latents come along
        assert {"seed", "method", "psi", "generator_sha256", "scores"} <= set(r)
        if r.get("latent"):
            assert (Path(o["kept_dir"]) / r["latent"]).is_file()


def test_identity_extractor_rebuilds_the_reid_stage_network_from_its_checkpoint(tmp_path):
    """A re-ID stage checkpoint (Lightning: ``net.``-prefixed state dict + ``reid_net`` settings) loads
    with no model node. Runs once the re-ID model (reid_gan.reid.models) is on the branch."""
    import torch

    models = pytest.importorskip("reid_gan.reid.models")
    from reid_gan.filters.identity import ReIDFeatureExtractor

    torch.manual_seed(0)
    net = models.ReIDNet(arch="resnet18", num_classes=5).eval()
    ckpt = tmp_path / "reid.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "reid_net": dict(net.config), "epoch": 1}, ckpt)
    ext = ReIDFeatureExtractor(str(ckpt))
    x = torch.rand(2, 3, 128, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(ext(x), net((x - mean) / std))
    bare = tmp_path / "bare.pt"
    torch.save(net.state_dict(), bare)
    with pytest.raises(WeightsError, match="reid_net"):
        ReIDFeatureExtractor(str(bare))


@pytest.mark.slow
def test_threshold_sweep_as_subprocess_shares_the_cache(tmp_path, yolo_weights):
    """`python -m reid_gan.filter -m filter.chain.ssim.threshold=0.5,0.9`: the second job scores nothing."""
    import subprocess
    import sys

    from tests.helpers import REPO

    make_generated_set(tmp_path / "gen", persons=2, per_person=3)
    cmd = [sys.executable, "-m", "reid_gan.filter", "-m", "experiment=smoke", f"paths.root_dir={tmp_path}",
           "detector=yolov4_tiny", f"filter.detector.cfg={YOLO_CFG}", f"filter.detector.weights={yolo_weights}",
           "filter.detector.input_size=64", f"filter.source={tmp_path / 'gen'}", "filter.progress=false",
           "print_config=false", "filter.chain.ssim.threshold=0.5,0.9"]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = sorted((tmp_path / "logs" / "filter" / "multiruns").glob("*/*/report/metrics.json"))
    assert len(metrics) == 2
    m0, m1 = (json.loads(p.read_text()) for p in metrics)
    assert m0["filter/computed_detector"] == 6 and m0["filter/computed_ssim"] == 6
    assert m1["filter/computed_detector"] == 0 and m1["filter/computed_ssim"] == 0
    assert m1["filter/discarded_ssim"] >= m0["filter/discarded_ssim"]
