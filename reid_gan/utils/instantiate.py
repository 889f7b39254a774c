"""Building Lightning callbacks and loggers from their config groups (``_target_`` nodes)."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)


def _instantiate_dict(cfg: DictConfig | None, what: str) -> list[Any]:
    objs: list[Any] = []
    if not cfg:
        return objs
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"{what} config must be a mapping of name -> _target_ node")
    for name, node in cfg.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            log.info("Instantiating %s <%s>", what, node._target_)
            objs.append(hydra.utils.instantiate(node))
    return objs


def instantiate_callbacks(cfg: DictConfig | None) -> list[Any]:
    return _instantiate_dict(cfg, "callback")


def instantiate_loggers(cfg: DictConfig | None) -> list[Any]:
    return _instantiate_dict(cfg, "logger")


def log_hyperparameters(loggers: list[Any], cfg: DictConfig, extra: dict[str, Any] | None = None) -> None:
    """Send the full resolved config (and e.g. parameter counts) to every logger."""
    hp = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    hp.pop("hydra", None)
    if extra:
        hp.update(extra)
    for lg in loggers:
        lg.log_hyperparams(hp)


def instantiate_node(node: Any, key: str) -> Any:
    """``hydra.utils.instantiate`` that re-raises our own errors (which name the key) unwrapped."""
    from reid_gan.config import ConfigError
    from reid_gan.utils.weights import WeightsError

    try:
        return hydra.utils.instantiate(node)
    except Exception as e:  # noqa: BLE001
        cause = e.__cause__ or e.__context__
        if isinstance(cause, (WeightsError, ConfigError, FileNotFoundError, ValueError, TypeError)):
            raise cause from None
        if isinstance(cause, ImportError):
            raise ImportError(f"{key}._target_: cannot import {OmegaConf.select(node, '_target_')} ({cause})") from None
        raise
