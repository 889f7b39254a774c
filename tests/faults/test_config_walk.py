"""Fault 3: invalid config values and unknown keys, for every group and stage. Every field of every schema
node of every stage's composed config is set to a value of the wrong type (rejected, the message naming
the full key) and to out-of-range values (at least one rejected by the schema's checks, the message
naming the field), unless the field takes any value of its type (listed below, with why); an unknown key
under every schema node is rejected; a bad value stops a stage before its task function runs."""

from __future__ import annotations

import copy
import dataclasses
import fnmatch

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from reid_gan.config import ConfigError
from tests.faults.config_walk import STAGES, range_candidates, schema_fields, try_value, wrong_type_value
from tests.helpers import compose_stage

# Fields where every value of the type is valid (so no out-of-range value exists), and why.
ANY_VALUE = {
    "paths.*": "a folder; where it is cannot be wrong until it is used (the stage then names it)",
    "*.root": "a dataset folder: checked when read (DatasetError names it)",
    "*.seed": "any integer is a seed", "generate.plan_seed": "any integer is a seed",
    "data.render.detector_min_margin": "an SVM margin: any real number",
    "trainer.default_root_dir": "a folder",
    "filter.source": "a folder (checked when read)", "filter.out": "a folder", "filter.report_dir": "a folder",
    "filter.cache": "a file path", "filter.calibrate_source": "a folder (checked when read)",
    "gan.name": "a label", "gan.run_name": "a label", "gan.out_dir": "a folder",
    "gan.resume": "auto, a file (checked when read) or null",
    "metrics.inception": "a weights file (checked when read) or null",
    "generate.ckpt": "a file or folder (checked when read)", "generate.out": "a folder",
    "generate.latents": "a file (checked when read)",
    "generate.psi": "truncation psi: any real number is defined (1 = none, 0 = the mean, < 0 flips, > 1 extrapolates)",
    "reid.pretrained": "a weights file (checked when read) or null",
    "aug.source": "a folder (checked when read)",
    "encoder.out_dir": "a folder", "encoder.ckpt": "a generator file or folder (checked when read) or null",
    "encoder.backbone_weights": "a weights file (checked when read) or null",
    "encoder.lpips.trunk": "a weights file (checked when read) or null",
    "encoder.moco.weights": "a weights file (checked when read) or null",
    "encoder.reid.ckpt": "a checkpoint (checked when read) or null",
    "encoder.resume": "auto, a checkpoint (checked when read) or null",
    "invert.source": "an encoder folder or file (checked when read)",
    "invert.ckpt": "a generator (checked when read) or null",
    "invert.out": "a folder",
}


def _any_value(key: str) -> bool:
    return any(fnmatch.fnmatch(key, pat) for pat in ANY_VALUE)


def _all_fields():
    """``(stage, key, type)`` for each distinct field (first stage whose config has it), and the configs."""
    import tempfile
    from pathlib import Path

    cfgs, fields, seen = {}, [], set()
    for st in STAGES:
        cfgs[st] = compose_stage(st, Path(tempfile.mkdtemp(prefix=f"walk_{st}_")))
        for key, tp, _ in schema_fields(cfgs[st]):
            if key not in seen:
                seen.add(key)
                fields.append((st, key, tp))
    return cfgs, fields


@pytest.fixture(scope="module")
def walk():
    return _all_fields()


def test_the_walk_covers_every_schema_group(walk):
    _, fields = walk
    groups = {k.split(".")[0] for _, k, _ in fields}
    assert groups >= {"paths", "data", "trainer", "filter", "gan", "metrics", "generate", "reid", "aug", "pipeline"}
    assert len(fields) > 150


def test_every_field_rejects_a_wrong_type_naming_the_key(walk):
    cfgs, fields = walk
    missed, checked = [], 0
    for st, key, tp in fields:
        bad = wrong_type_value(tp)
        if bad is None:
            continue  # Any-typed: a _target_ node or a Lightning passthrough
        checked += 1
        err = try_value(cfgs[st], key, bad)
        if err is None or key not in str(err):
            missed.append(f"{key} ({tp}): {err!r}")
    assert checked > 130
    assert not missed, "wrong types accepted or not named:\n" + "\n".join(missed)


def test_every_bounded_field_rejects_an_out_of_range_value_naming_it(walk):
    cfgs, fields = walk
    missed, unnamed, listed_but_bounded = [], [], []
    for st, key, tp in fields:
        cands = range_candidates(tp)
        if not cands:
            continue  # bool, Any
        errors = [e for e in (try_value(cfgs[st], key, v) for v in cands) if e is not None]
        leaf = key.rsplit(".", 1)[-1]
        if _any_value(key):
            if errors:
                listed_but_bounded.append(f"{key}: {errors[0]}")
            continue
        if not errors:
            missed.append(key)
        elif not any(key in str(e) or (str(e).startswith(key.rsplit(".", 1)[0]) and leaf in str(e))
                     for e in errors if isinstance(e, ConfigError)):
            unnamed.append(f"{key}: {[str(e) for e in errors]}")
        elif any(not isinstance(e, ConfigError) and key not in str(e) for e in errors):
            unnamed.append(f"{key}: not a ConfigError naming it: {[repr(e) for e in errors]}")
    assert not missed, "fields with no range check (add one, or list them in ANY_VALUE with why):\n" + "\n".join(missed)
    assert not unnamed, "range errors that do not name the field:\n" + "\n".join(unnamed)
    assert not listed_but_bounded, "ANY_VALUE fields that do reject values:\n" + "\n".join(listed_but_bounded)


def test_unknown_key_under_every_schema_node_is_rejected(walk):
    cfgs, fields = walk
    parents = sorted({(st, key.rsplit(".", 1)[0]) for st, key, _ in fields if "." in key})
    accepted = []
    for st, parent in parents:
        c = copy.deepcopy(cfgs[st])
        try:
            OmegaConf.update(c, f"{parent}.no_such_key", 1, merge=False)
        except (ConfigKeyError, OmegaConfBaseException):
            continue
        accepted.append(parent)
    assert not accepted, f"unknown keys accepted under: {accepted}"


@pytest.mark.parametrize("stage", STAGES)
def test_cli_unknown_key_and_wrong_type_rejected_at_composition(stage, tmp_path):
    group = {"pipeline": "pipeline", "report": "data"}.get(stage, "data")
    with pytest.raises((ConfigCompositionException, ConfigKeyError), match="no_such_key"):
        compose_stage(stage, tmp_path, [f"{group}.no_such_key=1"])
    with pytest.raises((ConfigCompositionException, OmegaConfBaseException), match="trainer.max_steps"):
        compose_stage(stage, tmp_path, ["trainer.max_steps=lots"])


STAGE_TASKS = {"make_dataset": "reid_gan.make_dataset:make_dataset", "train_gan": "reid_gan.train_gan:train_gan",
               "generate": "reid_gan.generate:generate", "filter": "reid_gan.filter:filter",
               "train": "reid_gan.train:train", "evaluate": "reid_gan.evaluate:evaluate",
               "pipeline": "reid_gan.pipeline:pipeline", "report": "reid_gan.report.stage:report",
               "train_encoder": "reid_gan.train_encoder:train_encoder", "invert": "reid_gan.invert:invert"}


@pytest.mark.parametrize("stage", STAGES)
def test_a_bad_value_stops_the_stage_before_its_task_runs(stage, tmp_path):
    """``run_stage`` (what every ``python -m reid_gan.<stage>`` calls) validates first."""
    from reid_gan.utils.task import run_stage

    assert stage in STAGE_TASKS, f"new stage {stage}: add it here"
    cfg = compose_stage(stage, tmp_path, ["data.batch_size=0"])
    ran = []
    with pytest.raises(ConfigError, match=r"^data\.batch_size: must be > 0"):
        run_stage(cfg, lambda c: ran.append(1) or ({}, {}))
    assert not ran


def test_schemas_are_dataclasses_with_checks():
    """Every registered schema has range checks (a __post_init__), except pure path holders."""
    import importlib

    from reid_gan.config import SCHEMA_MODULES

    without = []
    for mod in SCHEMA_MODULES:
        for name, obj in vars(importlib.import_module(mod)).items():
            if dataclasses.is_dataclass(obj) and obj.__module__ == mod and "__post_init__" not in vars(obj):
                without.append(name)
    assert set(without) <= {"PathsSchema", "MethodsSchema", "GanGridSchema"}, without
