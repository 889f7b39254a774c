"""Structured-config schemas (dataclasses in Hydra's ConfigStore) and config validation.

How a group gets a schema: a domain module ``reid_gan/config/<domain>.py`` defines dataclasses and a
``register(cs)`` that stores each one as ``group=<group>, name=<name>_schema``; every YAML option of the
group lists that schema first in its ``defaults``. Hydra then rejects unknown keys and wrong types at
composition. Range checks live in each dataclass's ``__post_init__`` (use :func:`check`) and run in
:func:`validate_config`, which every stage calls before doing any work; the error names the full key.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

# One module per domain; each exposes ``register(cs: ConfigStore)``.
SCHEMA_MODULES = [
    "reid_gan.config.common",
    "reid_gan.config.data",
    "reid_gan.config.encoder",
    "reid_gan.config.filter",
    "reid_gan.config.gan",
    "reid_gan.config.generate",
    "reid_gan.config.pipeline",
    "reid_gan.config.reid",
]

_registered = False


class ConfigError(ValueError):
    """A config value is invalid. The message starts with the dotted key."""


def check(condition: bool, key: str, message: str, value: Any = None) -> None:
    """Raise :class:`ConfigError` naming ``key`` unless ``condition`` holds (use in ``__post_init__``)."""
    if not condition:
        got = "" if value is None else f" (got {value!r})"
        raise ConfigError(f"{key}: {message}{got}")


def launch_dir() -> str:
    """The folder the command was started from (the ``${launch_dir:}`` resolver behind ``paths.root_dir``).

    Inside a job this is Hydra's ``runtime.cwd`` (also on a submitit worker, whose config travels with
    the job). Before Hydra has set its config, which is when a multirun launcher resolves
    ``hydra.sweep.dir``, and outside Hydra (the compose API), it is the process's working folder: the
    same folder, since the launcher runs in the process the user started. ``${hydra:runtime.cwd}`` would
    fail there ("HydraConfig was not set").
    """
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.cwd)
    return os.getcwd()


def register_resolvers() -> None:
    """OmegaConf resolvers the config tree uses (idempotent; the package's import registers them)."""
    from reid_gan import _register_resolvers

    _register_resolvers()


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent; must run before composing)."""
    global _registered
    if _registered:
        return
    register_resolvers()
    cs = ConfigStore.instance()
    for name in SCHEMA_MODULES:
        importlib.import_module(name).register(cs)
    _registered = True


def _validate_node(node: Any, key: str) -> None:
    if isinstance(node, DictConfig):
        obj_type = OmegaConf.get_type(node)
        if obj_type is not None and dataclasses.is_dataclass(obj_type):
            try:
                OmegaConf.to_object(node)  # constructs the dataclasses → runs every __post_init__
            except ConfigError as e:
                msg = str(e)
                raise ConfigError(msg if msg.startswith(key + ".") else f"{key}.{msg}") from None
            except Exception as e:  # noqa: BLE001 - OmegaConf's own type errors
                raise ConfigError(f"{key}: {e}") from None
            return
        for k, v in node.items_ex(resolve=False) if hasattr(node, "items_ex") else node.items():
            _validate_node(v, f"{key}.{k}")
    elif isinstance(node, ListConfig):
        for i, v in enumerate(node):
            _validate_node(v, f"{key}[{i}]")


def validate_config(cfg: DictConfig) -> None:
    """Run every schema's range checks on the composed config. Raises :class:`ConfigError`."""
    for key in cfg:
        if key == "hydra":
            continue
        _validate_node(cfg[key], str(key))


register_configs()
