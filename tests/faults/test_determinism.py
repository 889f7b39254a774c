"""Determinism: two runs of make_dataset, generate, filter and (CPU, ``trainer.deterministic=true``) train with
the same seed give identical artifacts (SHA-256 of every file; for train, of every weight tensor and the
metrics, since the checkpoint file also records its own path)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from reid_gan.config import validate_config
from tests.helpers import compose_stage

pytestmark = pytest.mark.usefixtures("one_thread")


def _tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    out = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in sorted(Path(root).rglob("*")) if p.is_file() and not p.name.endswith(skip)}
    assert out, f"nothing under {root}"
    return out


def _cfg(stage: str, root: Path, extra: list[str] = ()):  # noqa: B006
    cfg = compose_stage(stage, root, list(extra))
    validate_config(cfg)
    return cfg


def test_make_dataset_generate_filter_twice_give_identical_artifacts(tmp_path):
    from reid_gan.filter import filter as run_filter
    from reid_gan.generate import generate
    from reid_gan.make_dataset import make_dataset

    trees = []
    for run in ("a", "b"):
        root = tmp_path / run
        make_dataset(_cfg("make_dataset", root))
        generate(_cfg("generate", root, ["generate.persons=3", "generate.images_per_person=4"]))
        run_filter(_cfg("filter", root, ["filter.progress=false", f"filter.out={root}/kept",
                                         f"filter.report_dir={root}/report", f"filter.cache={root}/cache.jsonl"]))
        # generate's summary.json is the run's own record (what this run wrote, how long it took), not the set
        trees.append({"data": _tree(root / "data"), "generated": _tree(root / "artifacts" / "generated",
                                                                       skip=("summary.json",)),
                      "kept": _tree(root / "kept", skip=("kept_set.json",)),  # records its source folder
                      "scores": _tree(root / "report", skip=(".html", ".md", "metrics.json"))})
    for part in trees[0]:
        assert trees[0][part] == trees[1][part], part


def test_train_on_cpu_deterministic_twice_gives_identical_weights_and_metrics(smoke_data, tmp_path):
    from reid_gan.train import train

    results = []
    for run in ("a", "b"):
        cfg = _cfg("train", tmp_path / run, ["logger=csv", "callbacks=none", "reid.ranked_queries=0",
                                             "trainer.accelerator=cpu", "trainer.deterministic=true",
                                             "trainer.limit_train_batches=3", "data.name=folder",
                                             f"data.root={smoke_data}"])
        metrics, objs = train(cfg)
        sd = torch.load(objs["last_ckpt"], map_location="cpu", weights_only=True)["state_dict"]
        h = hashlib.sha256()
        for k in sorted(sd):
            h.update(k.encode())
            h.update(sd[k].cpu().contiguous().numpy().tobytes())
        m = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["metrics"]
        results.append((h.hexdigest(), {k: v for k, v in m.items() if k.startswith("val/")}))
    assert results[0] == results[1]
