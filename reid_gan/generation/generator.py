"""The generator a generated set is made with: a checkpoint (snapshot, folder, Lightning .ckpt, NVIDIA .pkl)
or, for smoke tests only, a randomly initialised one; with the SHA-256 that identifies it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from reid_gan.config import ConfigError
from reid_gan.gan.checkpoint import latest_snapshot, load_generator
from reid_gan.utils.io import file_sha256
from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["state_sha256", "resolve_ckpt", "random_generator", "load_G"]


def state_sha256(G: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(G.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def resolve_ckpt(path: str | Path) -> Path:
    """The file a ``generate.ckpt`` value names (a folder of snapshots → its newest, as ``load_generator`` does)."""
    p = Path(path)
    if p.is_dir():
        snap = latest_snapshot(p)
        if snap is None:
            raise FileNotFoundError(f"generate.ckpt={p}: no network-snapshot-*.pt in this folder")
        return snap
    if not p.is_file():
        raise FileNotFoundError(f"generate.ckpt={p}: no such file")
    return p


def random_generator(node: Any, seed: int) -> torch.nn.Module:
    """``random_init``'s generator, its weights drawn from ``torch.manual_seed(seed)`` (same seed → same G;
    the global RNG state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return hydra.utils.instantiate(node, _convert_="all").eval()


def load_G(gcfg: DictConfig, seed: int = 0) -> tuple[torch.nn.Module, str, str]:
    """The generator, its sha256 and a description. ``random_init`` (weights from ``seed``) only when no
    ``ckpt`` is given."""
    if gcfg.ckpt:
        path = resolve_ckpt(gcfg.ckpt)
        log.info("Generator: %s", path)
        G = load_generator(path)
        return G, file_sha256(path), str(path)
    if gcfg.random_init:
        G = random_generator(gcfg.random_init, seed)
        log.warning("generate.ckpt is not set: using a RANDOMLY INITIALISED generator (%s) — these images "
                    "are noise, fit for a smoke test only", gcfg.random_init.get("_target_"))
        return G, state_sha256(G), "random-init"
    raise ConfigError("generate.ckpt: not set — pass generate.ckpt=PATH (a train_gan snapshot "
                      "network-snapshot-*.pt or a folder of them, a train_gan .ckpt, or an NVIDIA .pkl)")
