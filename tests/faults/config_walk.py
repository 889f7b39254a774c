"""The schema walk behind test_config_walk.py: every field of every schema node of every stage's config."""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from reid_gan.config import ConfigError, validate_config
from tests.helpers import CONF_DIR, compose_stage

STAGES = sorted(p.stem for p in CONF_DIR.glob("*.yaml") if p.stem != "common")


def _base(tp: Any) -> Any:
    """``Optional[X]`` → ``X``; other types unchanged."""
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def schema_fields(cfg: DictConfig) -> Iterator[tuple[str, Any, DictConfig]]:
    """``(dotted key, field type, parent node)`` of every typed field under every schema node of ``cfg``."""
    def walk(node: Any, prefix: str) -> Iterator[tuple[str, Any, DictConfig]]:
        if not isinstance(node, DictConfig):
            return
        obj_type = OmegaConf.get_type(node)
        if obj_type is not None and dataclasses.is_dataclass(obj_type):
            hints = typing.get_type_hints(obj_type)
            for f in dataclasses.fields(obj_type):
                if f.name.startswith("_"):
                    continue
                key = f"{prefix}.{f.name}" if prefix else f.name
                tp = _base(hints[f.name])
                if dataclasses.is_dataclass(tp):
                    yield from walk(node.get(f.name), key)
                else:
                    yield key, tp, node
            return
        for k in node.keys():
            if k != "hydra":
                yield from walk(node.get(k), f"{prefix}.{k}" if prefix else str(k))

    yield from walk(cfg, "")


def wrong_type_value(tp: Any) -> Any | None:
    origin = typing.get_origin(tp) or tp
    if tp is Any:
        return None  # untyped (a _target_ node, a Lightning passthrough): nothing to reject by type
    if origin in (int, float, bool, list, dict, typing.List, typing.Dict):
        return "not-a-value-of-this-type"
    if tp is str:
        return {"not": "a string"}
    return None


def range_candidates(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp) or tp
    if tp is bool:
        return []
    if tp is int:
        return [-1, 0, -(10**6), 10**9]
    if tp is float:
        return [-1.0, -1e-3, 1.5, 1e9]
    if tp is str:
        return ["no-such-option"]
    if origin is list:
        return [[], [-1], [10**9, 1], [-1, -1, -1]]
    return []


def try_value(cfg: DictConfig, key: str, value: Any) -> Exception | None:
    """The error setting ``key=value`` gives (assignment type check, then the schema's range checks).

    Works on a copy of the key's top-level group only (it keeps its parent, so interpolations into other
    groups still resolve) and validates that group as :func:`reid_gan.config.validate_config` does."""
    from reid_gan.config import _validate_node

    group, _, rest = key.partition(".")
    node = copy.deepcopy(cfg[group])
    try:
        if rest:
            OmegaConf.update(node, rest, value, merge=False)
        _validate_node(node, group)
    except (ConfigError, OmegaConfBaseException, ValueError, TypeError) as e:
        return e
    return None


def compose(stage: str, tmp: Path) -> DictConfig:
    return compose_stage(stage, tmp)
