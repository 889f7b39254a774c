"""Loading pretrained weight files safely and with errors that name the file.

Never unpickles arbitrary objects: ``torch.load(weights_only=True)`` only rebuilds tensors and plain
containers. Nothing here downloads anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable or has the wrong content. The message names the file."""


def resolve_weights_path(path: str | os.PathLike | None, key: str) -> Path | None:
    """``None``/empty → ``None`` (the caller uses its named substitute); a missing file → clear error."""
    if path in (None, "", "null"):
        return None
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise WeightsError(f"{key}={path!s}: file not found (give a local file; nothing is downloaded)")
    return p


def read_torch_file(path: str | os.PathLike, key: str | None = None, *, what: str = "a weights-only torch file",
                    error: type[Exception] = WeightsError, missing: type[Exception] | None = None) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``: the one reader of every torch file.

    Errors name ``key=path`` (the path alone without ``key``) and are raised as the caller's types:
    ``missing`` for an absent file (``None``: not checked apart, the read fails as ``error``), ``error``
    for a file torch cannot read as tensors and plain containers (``what`` says what was expected).
    """
    import torch

    p = Path(path)
    name = f"{key}={p}" if key else str(p)
    if missing is not None and not p.is_file():
        raise missing(f"{name}: file not found")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file's name
        raise error(f"{name}: cannot be read as {what} ({e})") from e


def load_state_dict(path: str | os.PathLike, key: str = "weights") -> dict[str, Any]:
    """A state dict from a ``.pth``/``.pt``/Lightning ``.ckpt`` file, read with ``weights_only=True``."""
    p = Path(path)
    obj = read_torch_file(p, key)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{key}={p}: expected a state dict, found {type(obj).__name__}")
    return obj


def load_strict(module: Any, state: dict[str, Any], what: str) -> None:
    """``module.load_state_dict(state, strict=True)``, but a mismatch names the missing and unexpected keys
    and the shape differences (``what`` says which file/network, e.g. ``"gan.resume: x.pt's G"``)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
             for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shape:
        raise ValueError(f"{what}: the weights do not fit {type(module).__name__}: missing {missing[:8]}, "
                         f"unexpected {unexpected[:8]}, shape mismatches {shape[:8]}")
    module.load_state_dict(state, strict=True)
