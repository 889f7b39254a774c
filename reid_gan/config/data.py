"""Schemas of the ``data`` group (datasets in Market-1501 layout and the re-ID loaders)."""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from reid_gan.config import check


@dataclass
class DataSchema:
    name: str = "synthetic"
    root: str = "${paths.data_dir}/synthetic-market"
    height: int = 256
    width: int = 128
    batch_size: int = 16
    num_workers: int = 0

    def __post_init__(self) -> None:
        check(self.height > 0, "height", "must be > 0", self.height)
        check(self.width > 0, "width", "must be > 0", self.width)
        check(self.batch_size > 0, "batch_size", "must be > 0", self.batch_size)
        check(self.num_workers >= 0, "num_workers", "must be >= 0", self.num_workers)


def register(cs: ConfigStore) -> None:
    cs.store(group="data", name="data_schema", node=DataSchema)
