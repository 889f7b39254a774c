"""Composing the real configs in tests (Hydra compose API), shrunk to run in seconds under tmp_path."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import reid_gan.config  # noqa: F401  (registers the schemas)

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
DATA = Path(__file__).resolve().parent / "data"


def compose_stage(config_name: str, tmp_path: Path, overrides: list[str] | None = None,
                  smoke: bool = True) -> DictConfig:
    """The stage's real primary config, with every output under ``tmp_path``.

    ``smoke=True`` applies ``experiment=smoke`` (tiny data and models) unless the overrides name
    another experiment.
    """
    overrides = list(overrides or [])
    if smoke and not any(o.startswith("experiment=") for o in overrides):
        overrides.insert(0, "experiment=smoke")
    overrides = [f"paths.root_dir={tmp_path}", *overrides]
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.paths.work_dir = str(REPO)
        cfg.print_config = False
    return cfg


def make_generated_set(out: Path, samples, n_persons: int | None = None, per_person: int = 3,
                       real_pids: bool = False) -> Path:
    """A hand-made generated set (bounding_box_train/ + manifest.jsonl) from copies of ``samples``
    (``(path, pid, camid)``, e.g. a dataset's train split). ``real_pids=False``: ``n_persons`` synthetic
    persons (pids 10000+, camera c7), ``per_person`` images each; ``real_pids=True``: ``per_person``
    "variants" of every real pid in ``samples`` (the real pid kept)."""
    import json
    import shutil
    from collections import defaultdict

    by_pid = defaultdict(list)
    for s in samples:
        by_pid[int(s[1])].append(str(s[0]))
    out = Path(out)
    (out / "bounding_box_train").mkdir(parents=True, exist_ok=True)
    lines = []
    pool = [p for paths in by_pid.values() for p in paths]
    if real_pids:
        plan = [(pid, [paths[i % len(paths)] for i in range(per_person)], pid) for pid, paths in sorted(by_pid.items())]
    else:
        plan = [(10000 + i, [pool[(i * per_person + j) % len(pool)] for j in range(per_person)], "seed")
                for i in range(int(n_persons))]
    for pid, paths, source in plan:
        for j, src in enumerate(paths):
            name = f"{pid:05d}_c7s1_{j:06d}_00.jpg" if pid >= 10000 else f"{pid:04d}_c7s1_{j:06d}_00.jpg"
            shutil.copyfile(src, out / "bounding_box_train" / name)
            lines.append(json.dumps({"file": f"bounding_box_train/{name}", "pid": pid, "source": source, "seed": j,
                                     "method": "base" if source == "seed" else "transform", "params": {},
                                     "psi": 0.7, "generator_sha256": None}))
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return out
