"""Re-ID checkpoints written by ``reid_gan.train``: the one reader (the evaluate stage and the identity filter).

A checkpoint is a Lightning ``.ckpt`` read with ``torch.load(weights_only=True)``; it records the network's
settings under ``reid_net`` (the :class:`reid_gan.reid.models.ReIDNet` keyword arguments), the ranking
distance under ``reid_distance`` and the weights under ``state_dict`` (prefix ``net.``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reid_gan.utils.weights import WeightsError, load_strict, read_torch_file

__all__ = ["read_checkpoint", "reid_net_from_settings", "load_reid_net"]


def read_checkpoint(path: str | Path, key: str = "ckpt_path", what: str = "a weights-only checkpoint") -> Any:
    """``torch.load(path, weights_only=True)``; a ``WeightsError`` naming ``key`` when it cannot be read."""
    return read_torch_file(path, key, what=what)


def reid_net_from_settings(settings: dict[str, Any]):
    """The :class:`ReIDNet` a checkpoint's ``reid_net`` entry describes (random weights, no init log)."""
    from reid_gan.reid.models import ReIDNet

    return ReIDNet(**{**settings, "pretrained": None}, log_init=False)


def load_reid_net(path: str | Path, key: str = "ckpt_path"):
    """The :class:`ReIDNet` stored in a train-stage checkpoint, in eval mode, and the ranking distance."""
    ckpt = read_checkpoint(path, key)
    if not isinstance(ckpt, dict) or "reid_net" not in ckpt or "state_dict" not in ckpt:
        raise WeightsError(f"{key}={path}: not a checkpoint of reid_gan.train (no 'reid_net' entry)")
    net = reid_net_from_settings(ckpt["reid_net"])
    sd = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    load_strict(net, sd, f"{key}={path}")  # a mismatch names the keys and the shapes, file vs model
    return net.eval(), str(ckpt.get("reid_distance", "cosine"))
