"""Generator snapshots and :func:`load_generator` (what ``generate`` and ``train_encoder`` read).

A snapshot ``network-snapshot-<kimg>.pt`` is a plain dict readable with ``torch.load(weights_only=True)``:

``{'class_name': 'reid_gan.gan.networks.Generator', 'init_kwargs': {...}, 'state_dict': {...},
'kimg': float, 'format': 'reid_gan.gan.snapshot/1'}``

``load_generator(path)`` accepts such a snapshot, a folder of snapshots (the newest is used), a Lightning
checkpoint written by ``train_gan`` (its ``G_ema``), a packed pretrained file (``reid_gan.gan.embed``) or NVIDIA's ``.pkl`` (via ``reid_gan.gan.nvlabs.load_pkl``,
which never executes anything from the pickle). It returns the generator in eval mode on the CPU.
"""

from __future__ import annotations

import copy
import importlib
import re
from pathlib import Path
from typing import Any

from torch import nn

from reid_gan.utils.io import atomic_torch_save
from reid_gan.utils.logging import get_logger
from reid_gan.utils.weights import read_torch_file

log = get_logger(__name__)

__all__ = ["save_snapshot", "load_generator", "build_module", "snapshot_name", "latest_snapshot", "SNAPSHOT_FORMAT"]

SNAPSHOT_FORMAT = "reid_gan.gan.snapshot/1"
DEFAULT_G_CLASS = "reid_gan.gan.networks.Generator"
_SNAP_RE = re.compile(r"^network-snapshot-(\d+(?:\.\d+)?)\.pt$")


def snapshot_name(cur_nimg: int) -> str:
    """``network-snapshot-000012.500.pt`` for 12,500 images shown (kimg with 3 decimals, sortable)."""
    return f"network-snapshot-{cur_nimg / 1000:010.3f}.pt"


def latest_snapshot(folder: str | Path) -> Path | None:
    snaps = [p for p in Path(folder).glob("network-snapshot-*.pt") if _SNAP_RE.match(p.name)]
    if not snaps:
        return None
    return max(snaps, key=lambda p: float(_SNAP_RE.match(p.name).group(1)))


def _plain(obj: Any) -> Any:
    """Init kwargs as plain Python (lists, dicts, numbers, strings) so ``weights_only`` can read them."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, (DictConfig, ListConfig)):
            return OmegaConf.to_container(obj, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def save_snapshot(G: nn.Module, init_kwargs: dict, path: str | Path, class_name: str = DEFAULT_G_CLASS,
                  cur_nimg: int | None = None) -> Path:
    """Write ``G``'s state + constructor arguments atomically (CPU tensors)."""
    state = {k: v.detach().cpu().clone() for k, v in G.state_dict().items()}
    obj = {"format": SNAPSHOT_FORMAT, "class_name": class_name, "init_kwargs": _plain(init_kwargs),
           "state_dict": state, "kimg": None if cur_nimg is None else cur_nimg / 1000}
    return atomic_torch_save(obj, path)


def _import_class(class_name: str) -> type:
    module, _, attr = class_name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import generator class {class_name!r}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"{class_name!r} is not a torch.nn.Module class; refusing to build it")
    return cls


def build_module(class_name: str, init_kwargs: dict, state_dict: dict, what: str) -> nn.Module:
    """``class_name(**init_kwargs)`` loaded strictly with ``state_dict``; mismatches are named."""
    from reid_gan.utils.weights import load_strict

    G = _import_class(class_name)(**copy.deepcopy(init_kwargs))
    load_strict(G, state_dict, f"{what} ({class_name}(**{init_kwargs}))")
    return G


def _from_lightning(ckpt: dict, path: Path) -> nn.Module:
    meta = ckpt.get("gan")
    if not isinstance(meta, dict) or "G_init_kwargs" not in meta:
        raise ValueError(f"{path}: a Lightning checkpoint without train_gan's 'gan' record (not a GAN checkpoint?)")
    prefix = "G_ema."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise ValueError(f"{path}: no G_ema.* weights in the checkpoint's state_dict")
    return build_module(meta.get("G_class", DEFAULT_G_CLASS), meta["G_init_kwargs"], state, str(path))


def load_generator(path: str | Path, which: str = "G_ema") -> nn.Module:
    """An eval-mode generator from a snapshot ``.pt``, a snapshot folder, a Lightning ``.ckpt``, a packed
    pretrained file (``reid_gan.gan.embed``; the word ``embedded`` names the package's own) or an NVIDIA ``.pkl``.

    Args:
        path: the file (or a folder holding ``network-snapshot-*.pt``; the newest is taken).
        which: for ``.pkl`` and packed files, which network to take (``G_ema`` by default, else ``G``).
    """
    if str(path) == "embedded":
        from reid_gan.gan.embed import resolve_resume

        path = resolve_resume("embedded")
    p = Path(path)
    if p.is_dir():
        snap = latest_snapshot(p)
        if snap is None:
            raise FileNotFoundError(f"{p}: no network-snapshot-*.pt in this folder")
        p = snap
    if not p.exists():
        raise FileNotFoundError(f"generator file not found: {p}")
    if p.suffix == ".pkl":
        from reid_gan.gan.nvlabs import load_pkl

        nets = load_pkl(p)
        key = which if which in nets else ("G_ema" if "G_ema" in nets else "G")
        if key not in nets:
            raise ValueError(f"{p}: the pickle holds no generator (found {sorted(nets)})")
        return nets[key].eval().requires_grad_(False)
    obj = read_torch_file(p, what="a generator snapshot or checkpoint", error=ValueError)
    if not isinstance(obj, dict):
        raise ValueError(f"{p}: expected a dict, found {type(obj).__name__}")
    from reid_gan.gan.embed import bundle_network, is_bundle

    if is_bundle(obj):
        key = which if which in ("G", "G_ema") else "G_ema"
        G = bundle_network(obj, key, str(p))
    elif "state_dict" in obj and "init_kwargs" in obj:
        G = build_module(obj.get("class_name", DEFAULT_G_CLASS), obj["init_kwargs"], obj["state_dict"], str(p))
    elif "state_dict" in obj and "gan" in obj:
        G = _from_lightning(obj, p)
    else:
        raise ValueError(f"{p}: neither a generator snapshot nor a train_gan checkpoint (keys {sorted(obj)[:10]})")
    return G.eval().requires_grad_(False)
