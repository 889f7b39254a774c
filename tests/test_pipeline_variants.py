"""The smoke study's second arm end to end (thesis Table 8): train_encoder → invert → generate (variants of
real persons) → filter (SSIM to the real image) → train with aug=real_variants → the report's Table 8."""

import json
from pathlib import Path

import pytest

from reid_gan.pipeline import pipeline
from reid_gan.utils.io import read_jsonl
from tests.helpers import compose_stage

# one torch thread: on a busy 2-core machine two OpenMP threads made this study many times slower
pytestmark = pytest.mark.usefixtures("one_thread")

# Wiring test: the smoke GAN's images are noise, so the filters are opened up (thresholds 0) for the
# variants to reach training; the SSIM filter still scores every variant against the real image.
OVERRIDES = ["pipeline.sweep.persons=[0]", "pipeline.sweep.seeds=[0]", "pipeline.sweep.images_per_person=[2]",
             "filter.chain.detector.threshold=0.0", "filter.chain.ssim.threshold=0.0"]


def test_smoke_study_runs_the_variants_arm(tmp_path):
    cfg = compose_stage("pipeline", tmp_path, OVERRIDES)
    cfg.paths.output_dir = str(tmp_path / "run")
    metrics, objects = pipeline(cfg)
    index = objects["index"]
    ran = [s["stage"] for s in index["stages"]]
    assert ran == ["make_dataset", "train_gan", "train", "train_encoder", "invert", "generate_variants",
                   "filter_variants", "train"]
    assert [(r["persons"], r.get("images_per_person"), r["seed"]) for r in index["runs"]] == [(0, None, 0), (0, 2, 0)]
    base, run = (json.loads((Path(r["dir"]) / "metrics.json").read_text()) for r in index["runs"])
    assert run["metrics"]["aug/name"] == "real_variants" and run["metrics"]["aug/images"] > 0
    # the variants joined the training set as the real identities they show (no new classes), and the
    # trainer ran the batches of all those images
    assert run["metrics"]["train/num_classes"] == base["metrics"]["train/num_classes"]
    assert run["metrics"]["train/num_images"] == base["metrics"]["train/num_images"] + run["metrics"]["aug/images"]
    import torch

    (ckpt,) = Path(index["runs"][1]["dir"]).rglob("last.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["state_dict"]["net.classifier.weight"].shape[0] == base["metrics"]["train/num_classes"]
    n, bs = run["metrics"]["train/num_images"], run["config"]["data"]["batch_size"]
    assert state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"] == \
        run["metrics"]["epochs"] * (n // bs if n > bs else 1)
    enc = json.loads((Path(index["variants"]["encoder"]) / "summary.json").read_text())
    assert enc["identity_model"] and enc["similarity"] == "sim_reid" and enc["identity_same_as_similarity"]
    assert "val/identity_mAP" in enc["last"]
    # the variants carry real pids and were scored against the real image they were inverted from
    kept = read_jsonl(Path(index["variants"]["kept"]) / "manifest.jsonl")
    assert kept and all(r["pid"] < 10000 and Path(r["reference"]).parent.name == "bounding_box_train" for r in kept)
    assert all("ssim" in r["scores"] for r in kept)
    text = Path(index["report"]).read_text()
    assert "thesis Table 8" in text and "| 0 (baseline) |" in text and "| 2 |" in text
    assert "identity Rank@1" in text and "variants_plot" in text
    # no synthetic-persons point ran, so no one-point Table 7 plot beside Table 8's
    assert "arms_plot" not in text and "sweep_plot" not in text and "ran no synthetic-persons point" in text
    assert any(k.startswith("variants_2/seed_0/val/") for k in metrics)
