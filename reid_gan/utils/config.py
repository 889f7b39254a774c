"""Config helpers shared by every layer: one getter, one to-plain converter, one stable hash.

Light on purpose (OmegaConf is imported lazily): the renderer's worker processes use it too.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["cfg_get", "to_plain", "plain_config", "stable_hash"]

_REQUIRED = object()


def cfg_get(node: Any, key: str, default: Any = _REQUIRED) -> Any:
    """``node[key]`` of a DictConfig, a dict or an attribute of any object (a dataclass schema).

    Without ``default`` a missing key is a ``KeyError`` naming it; with one, the default is returned.
    """
    if hasattr(node, "get") and not isinstance(node, type):
        value = node.get(key, _REQUIRED)
    else:
        value = getattr(node, key, _REQUIRED)
    if value is _REQUIRED:
        if default is _REQUIRED:
            raise KeyError(f"config key {key!r} is missing")
        return default
    return value


def to_plain(node: Any, resolve: bool = True) -> Any:
    """Plain Python (dicts with string keys, lists, scalars) of a DictConfig/ListConfig or nested containers."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=resolve)
    if isinstance(node, dict):
        return {str(k): to_plain(v, resolve) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [to_plain(v, resolve) for v in node]
    return node


def stable_hash(obj: Any, length: int | None = None) -> str:
    """SHA-256 (hex, optionally cut to ``length``) of ``obj`` as sorted-key JSON (non-JSON values as ``str``)."""
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
    return digest if length is None else digest[:length]


def plain_config(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain Python, without the ``hydra`` node (for metrics files and loggers)."""
    return {str(k): to_plain(cfg[k]) for k in cfg if k != "hydra"}
