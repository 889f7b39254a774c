"""Datasets in the Market-1501 layout, the re-ID DataModule and the synthetic dataset renderer.

``build_dataset(cfg.data)`` returns a dataset object (``.train`` / ``.query`` / ``.gallery`` lists of
``Sample(path, pid, camid)``, see :mod:`reid_gan.data.market1501`) from the ``data`` config node:

=============  =====================================================================
``data.name``  class
=============  =====================================================================
synthetic      :class:`FolderDataset` (test splits required), rendered first when missing
market1501     :class:`Market1501`
dukemtmc       :class:`DukeMTMCreID`
folder         :class:`FolderDataset`
a.dotted.Path  that class, called as ``cls(root, on_bad_image=..., verify_images=...)``
=============  =====================================================================
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from reid_gan.data.market1501 import (
    BadImageError,
    DatasetError,
    DukeMTMCreID,
    FolderDataset,
    Market1501,
    ReIDDataset,
    Sample,
)

__all__ = [
    "BadImageError",
    "DATASETS",
    "DatasetError",
    "DukeMTMCreID",
    "FolderDataset",
    "Market1501",
    "ReIDDataModule",
    "ReIDDataset",
    "Sample",
    "build_dataset",
    "dataset_class",
    "source_folder",
]

DATASETS: dict[str, type[ReIDDataset]] = {
    "synthetic": FolderDataset,
    "market1501": Market1501,
    "dukemtmc": DukeMTMCreID,
    "folder": FolderDataset,
}


def dataset_class(name: str) -> type[ReIDDataset]:
    """The dataset class for ``data.name``: a registered name or a dotted ``module.Class`` path."""
    if name in DATASETS:
        return DATASETS[name]
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"data.name: cannot import dataset class {name!r} ({e})") from None
        return cls
    raise ValueError(f"data.name: unknown dataset {name!r} (one of {', '.join(DATASETS)} or a dotted class path)")


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    if hasattr(cfg, "get"):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def build_dataset(data_cfg: Any) -> ReIDDataset:
    """The dataset described by a ``data`` config node (a DictConfig, dict or dataclass).

    For ``data.name == "synthetic"`` the embedded dataset is rendered first when it is missing
    (``reid_gan.data.synthetic.ensure_rendered(data.root, data.render)``); the others are only read.
    """
    name = str(_get(data_cfg, "name"))
    root = _get(data_cfg, "root")
    if root is None:
        raise ValueError("data.root: no dataset folder given")
    kwargs = dict(on_bad_image=_get(data_cfg, "on_bad_image", "error"),
                  verify_images=_get(data_cfg, "verify_images", "header"))
    if name == "synthetic":
        from reid_gan.data.synthetic import ensure_rendered  # lazy: the renderer is optional here

        root = ensure_rendered(root, _get(data_cfg, "render"))
        return FolderDataset(root, require_test=True, display_name="synthetic dataset", **kwargs)
    cls = dataset_class(name)
    return cls(root, **kwargs)


def source_folder(path: Any, data_cfg: Any) -> Path:
    """``path`` itself, except when it is ``data.root``: then the configured dataset is built first
    (the embedded synthetic dataset is rendered if missing; a Market-1501 parent folder is resolved)."""
    if data_cfg is not None and str(path) == str(_get(data_cfg, "root", "")):
        ds = build_dataset(data_cfg)
        return Path(getattr(ds, "root", path))
    return Path(path)


def __getattr__(name: str):  # lazy: importing the DataModule pulls in Lightning
    if name == "ReIDDataModule":
        from reid_gan.data.datamodule import ReIDDataModule

        return ReIDDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
