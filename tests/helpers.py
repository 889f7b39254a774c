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
