"""The smoke study end to end: every stage runs once, a re-run does no work, deleting one stage's
artifact redoes that stage and what follows only; the study report and the results notebook."""

import json
import os
import shutil
from pathlib import Path

import pytest

from reid_gan.pipeline import pipeline
from reid_gan.utils.artifacts import COMPLETE
from tests.helpers import REPO, compose_stage

# Wiring test: the smoke GAN's images are noise, so the filters are opened up (detector threshold 0, no
# SSIM) for synthetic persons to reach training. The thresholds themselves are tested in test_filters.
OVERRIDES = ["pipeline.sweep.persons=[0,2]", "pipeline.sweep.seeds=[0]",
             "filter.chain.detector.threshold=0.0", "filter.chain.ssim.enabled=false"]


def _run(tmp: Path, out: str):
    cfg = compose_stage("pipeline", tmp, OVERRIDES)
    cfg.paths.output_dir = str(tmp / out)
    metrics, objects = pipeline(cfg)
    return metrics, objects["index"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    metrics, index = _run(tmp, "run1")
    return tmp, metrics, index


def test_first_run_runs_every_stage(study):
    tmp, metrics, index = study
    ran = [s["stage"] for s in index["stages"]]
    assert ran == ["make_dataset", "train_gan", "generate", "filter", "train", "train"]
    assert not any(s["skipped"] for s in index["stages"])
    assert [(r["persons"], r["seed"]) for r in index["runs"]] == [(0, 0), (2, 0)]
    base, aug = (json.loads((Path(r["dir"]) / "metrics.json").read_text())["metrics"] for r in index["runs"])
    for r, rec in zip(index["runs"], (base, aug)):
        assert r["val/mAP"] == rec["val/mAP"] and r["val/rank1"] == rec["val/rank1"]
    # the augmented run really trained on the 2 generated persons: 2 more classes in its classifier (in the
    # checkpoint it saved) and exactly the selected generated images more in its training set
    assert aug["aug/persons"] == 2 and aug["aug/images"] >= 2
    assert aug["train/num_classes"] == base["train/num_classes"] + 2
    assert aug["train/num_images"] == base["train/num_images"] + aug["aug/images"]
    import torch

    batches = []
    for r, rec in zip(index["runs"], (base, aug)):
        (ckpt,) = Path(r["dir"]).rglob("last.ckpt")
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        assert state["state_dict"]["net.classifier.weight"].shape[0] == rec["train/num_classes"]
        # the trainer ran the batches of all those images (drop_last), not of the real images only
        bs = json.loads((Path(r["dir"]) / "metrics.json").read_text())["config"]["data"]["batch_size"]
        n = rec["train/num_images"]
        batches.append(state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"])
        assert batches[-1] == rec["epochs"] * (n // bs if n > bs else 1)
    assert batches[1] > batches[0]  # the generated images make a batch more, so a loader without them fails
    # the reported mAP is the saved model's: the evaluate stage on its checkpoint gives the same numbers
    from reid_gan.evaluate import evaluate

    (ckpt,) = Path(index["runs"][1]["dir"]).rglob("last.ckpt")
    data_root = json.loads((Path(index["runs"][1]["dir"]) / "metrics.json").read_text())["config"]["data"]["root"]
    me, _ = evaluate(compose_stage("evaluate", tmp / "ev", [f"data.root={data_root}", f"ckpt_path={ckpt}",
                                                            "logger=csv"]))
    assert me["test/mAP"] == pytest.approx(aug["val/mAP"], abs=1e-6)
    assert me["test/rank1"] == pytest.approx(aug["val/rank1"], abs=1e-6)
    report = Path(index["report"])
    text = report.read_text()
    assert "thesis Table 7" in text and "| baseline | 0 | 0 | 1 |" in text
    assert (report.parent / "report.html").is_file() and (report.parent / "img").is_dir()
    assert (tmp / "run1" / "study.json").is_file()


def test_rerun_does_no_work_and_deleting_an_artifact_redoes_it_and_what_follows(study):
    tmp, _, first = study
    _, again = _run(tmp, "run2")
    assert all(s["skipped"] for s in again["stages"])
    assert [r["val/mAP"] for r in again["runs"]] == [r["val/mAP"] for r in first["runs"]]
    assert again["report"] == first["report"]           # the report too is reused

    flt = next(s for s in first["stages"] if s["stage"] == "filter")
    shutil.rmtree(flt["dir"])
    _, third = _run(tmp, "run3")
    redone = {s["stage"] for s in third["stages"] if not s["skipped"]}
    skipped = [s["stage"] for s in third["stages"] if s["skipped"]]
    assert skipped == ["make_dataset", "train_gan", "generate", "train"]  # the baseline does not read it
    assert redone == {"filter", "train"}                                  # the filter and the N=2 run
    assert (Path(flt["dir"]) / COMPLETE).is_file()


def test_results_notebook_executes_on_the_study(study):
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    tmp, _, _ = study
    nb = nbformat.read(REPO / "notebooks" / "01_results.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "outputs must be stripped in git"
    os.environ["REID_GAN_STUDY"] = str(tmp / "run1")
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp)}}).execute()
    finally:
        os.environ.pop("REID_GAN_STUDY", None)
    outputs = "".join(str(o) for c in nb.cells for o in c.get("outputs", []))
    assert "val/mAP" in outputs


def test_the_finished_study_is_the_default_aug_source(study):
    """The pipeline points artifacts/latest.json at the study's kept set, and `aug.persons=N` with no
    aug.source finds it (at 961d352 the default, artifacts/filter/kept, was a folder nothing writes)."""
    from reid_gan.reid.augment import resolve_source
    from reid_gan.utils.artifacts import read_latest

    tmp, _, index = study
    flt = next(s for s in index["stages"] if s["stage"] == "filter")
    latest = read_latest(tmp / "artifacts")
    assert latest["kept"] == str(Path(flt["dir"]) / "kept") == index["kept"]
    assert latest["stages"]["filter"] == flt["dir"] and latest["study_dir"] in (str(tmp / "run1"), str(tmp / "run2"),
                                                                                str(tmp / "run3"))
    cfg = compose_stage("train", tmp, ["aug.persons=2"])
    assert resolve_source(cfg.aug, cfg.paths.artifacts) == index["kept"]
