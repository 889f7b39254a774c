"""The re-ID LightningDataModule: training on relabelled pids (+ extra training sets), query/gallery for
evaluation.

Batches
-------
* ``train_dataloader()`` → ``(images [B, 3, H, W] float32, labels [B] int64, camids [B] int64)``; labels are
  class indices ``0 .. num_classes - 1`` (real train identities first, then the extra sets' new classes).
* ``query_dataloader()`` / ``gallery_dataloader()`` → ``(images, pids, camids, is_query [B] bool)`` with
  **original** pids (distractors keep pid 0) and 0-based camids.
* ``val_dataloader()`` / ``test_dataloader()`` → one loader over query then gallery (same 4-tuples, in
  the order of ``dataset.query`` then ``dataset.gallery``); split the features with ``is_query``.

Extra training sets (augmentation)
----------------------------------
``add_train_set(dataset_or_folder, label_mode)`` / ``add_train_samples(samples, label_mode)`` add images to
the **training split only** — they never enter query or gallery. ``samples`` are ``(path, pid, camid)``
with the set's *original* pids (e.g. 10000+ for generated persons, a real pid for a variant of a
real person). ``label_mode``:

* ``"new"``  — every distinct pid of the set is a new class, labelled after all existing classes
  (``num_classes`` grows). Pids of different calls never merge, so they cannot collide with real ids or
  with each other.
* ``"real"`` — each pid is a real training identity and gets that identity's label (``pid2label`` of the
  base dataset); ``num_classes`` is unchanged. A pid that is a query/gallery identity raises
  :class:`~reid_gan.data.leakage.LeakageError`; any other pid unknown to the train split raises
  :class:`DatasetError`.

Sets given to the constructor (``extra_train_sets``) are added in ``setup``; ``add_*`` calls run ``setup``
first and check everything at once. Add them before the model reads ``num_classes``. An extra image that is also a query/gallery file, or
a generated set whose ``manifest.jsonl`` says it was derived (``source``) from a test identity, is refused.

Determinism: the training order comes from a ``torch.Generator`` seeded with ``seed``; augmentation draws
from torch's RNG (seeded by ``seed_everything`` in the main process, per worker from the loader's
generator), so a given ``seed`` and ``num_workers`` give the same batches.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from reid_gan.data.leakage import LeakageError, manifest_source_pids
from reid_gan.data.market1501 import DatasetError, FolderDataset, ReIDDataset, Sample
from reid_gan.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_eval_transform,
    build_train_transform,
    load_image,
)
from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["ReIDDataModule", "TrainItem", "EvalItem", "ExtraTrainSet", "ReIDImageDataset", "LABEL_MODES"]

LABEL_MODES = ("new", "real")


class TrainItem(NamedTuple):
    """One training image: ``label`` is the class index, ``pid`` the original pid, ``source`` "real" or the
    name of the extra set it came from."""

    path: str
    label: int
    camid: int
    pid: int
    source: str


class EvalItem(NamedTuple):
    path: str
    pid: int
    camid: int
    is_query: bool


@dataclass
class ExtraTrainSet:
    """What :meth:`ReIDDataModule.add_train_samples` added: the set's name, mode, size and its pid → label map."""

    name: str
    label_mode: str
    num_images: int = 0
    pid2label: dict[int, int] = field(default_factory=dict)

    @property
    def num_new_classes(self) -> int:
        return len(self.pid2label) if self.label_mode == "new" else 0


class ReIDImageDataset(Dataset):
    """Map-style dataset over ``TrainItem``/``EvalItem`` records; returns the transformed image and the
    record's integer fields (train: ``(img, label, camid)``; eval: ``(img, pid, camid, is_query)``)."""

    def __init__(self, items: Sequence[TrainItem] | Sequence[EvalItem], transform: Callable) -> None:
        self.items = list(items)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        img = self.transform(load_image(item.path))
        if isinstance(item, TrainItem):
            return img, item.label, item.camid
        return img, item.pid, item.camid, item.is_query


def _seed_worker(worker_id: int) -> None:
    """Seed ``random``/``numpy`` in a DataLoader worker from torch's per-worker seed."""
    s = torch.initial_seed() % 2**32
    random.seed(s)
    np.random.seed(s)


class ReIDDataModule(pl.LightningDataModule):
    """Re-ID data: ``dataset`` (a :class:`ReIDDataset`, or a zero-argument callable building one in ``setup``)
    + optional extra training sets. See the module docstring for batches and label modes.

    Args:
        dataset: the real dataset, or a callable returning it (called once, in ``setup``).
        height, width: network input size.
        batch_size: training batch size; ``eval_batch_size`` (default: ``batch_size``) for query/gallery.
        num_workers, pin_memory: DataLoader settings; ``drop_last``: drop the last incomplete train batch.
        flip_p, pad, random_erasing, random_erasing_p, mean, std: see :mod:`reid_gan.data.transforms`.
        seed: seeds the training order.
        extra_train_sets: items for :meth:`add_train_set`: a dataset, a folder, a ``(dataset_or_folder,
            label_mode)`` pair or a mapping ``{root|dataset, label_mode, name}``.
    """

    def __init__(self, dataset: ReIDDataset | Callable[[], ReIDDataset], height: int = 256, width: int = 128,
                 batch_size: int = 16, eval_batch_size: int | None = None, num_workers: int = 0,
                 pin_memory: bool = False, drop_last: bool = True, flip_p: float = 0.5, pad: int = 10,
                 random_erasing: bool = False, random_erasing_p: float = 0.5,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, seed: int = 0,
                 extra_train_sets: Iterable[Any] = ()) -> None:
        super().__init__()
        self._dataset_or_factory = dataset
        self.dataset: ReIDDataset | None = dataset if isinstance(dataset, ReIDDataset) else None
        self.height, self.width = int(height), int(width)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers, self.pin_memory, self.drop_last = int(num_workers), bool(pin_memory), bool(drop_last)
        self.seed = int(seed)
        self.train_transform = build_train_transform(height, width, flip_p, pad, random_erasing, random_erasing_p,
                                                     mean, std)
        self.eval_transform = build_eval_transform(height, width, mean, std)
        self.extra_sets: list[ExtraTrainSet] = []
        self._pending_specs: list[Any] = list(extra_train_sets)
        self._train_items: list[TrainItem] = []
        self._num_classes = 0
        self._ready = False

    @classmethod
    def from_config(cls, data_cfg: Any, seed: int = 0, extra_train_sets: Iterable[Any] = ()) -> "ReIDDataModule":
        """Build from a ``data`` config node; the dataset is indexed (or rendered) in ``setup``."""
        from reid_gan.data import build_dataset

        g = data_cfg.get if hasattr(data_cfg, "get") else partial(getattr, data_cfg)
        return cls(partial(build_dataset, data_cfg), height=g("height"), width=g("width"),
                   batch_size=g("batch_size"), eval_batch_size=g("eval_batch_size", None),
                   num_workers=g("num_workers", 0), pin_memory=g("pin_memory", False),
                   drop_last=g("drop_last", True), flip_p=g("flip_p", 0.5), pad=g("pad", 10),
                   random_erasing=g("random_erasing", False), random_erasing_p=g("random_erasing_p", 0.5),
                   mean=list(g("mean", IMAGENET_MEAN)), std=list(g("std", IMAGENET_STD)), seed=seed,
                   extra_train_sets=extra_train_sets)

    # ------------------------------------------------------------------------------------------ setup
    def prepare_data(self) -> None:
        """Nothing to download (never any network); indexing happens in :meth:`setup`."""

    def setup(self, stage: str | None = None) -> None:
        """Index the dataset once and apply queued extra sets (idempotent: later calls do nothing)."""
        if self._ready:
            return
        if self.dataset is None:
            self.dataset = self._dataset_or_factory()
            if not isinstance(self.dataset, ReIDDataset):
                raise TypeError(f"the dataset factory returned {type(self.dataset).__name__}, not a ReIDDataset")
        ds = self.dataset
        self._train_items = [TrainItem(s.path, s.pid, s.camid, orig, "real")
                             for s, orig in zip(ds.train, ds.train_orig_pids)]
        self._num_classes = ds.num_train_pids
        self._test_paths = {os.path.realpath(s.path) for s in ds.query + ds.gallery}
        self._ready = True
        pending, self._pending_specs = self._pending_specs, []
        for spec in pending:
            self._add_spec(spec)

    # ------------------------------------------------------------------------------- extra train sets
    def _add_spec(self, spec: Any) -> None:
        if isinstance(spec, Mapping):
            src = spec.get("dataset", spec.get("root"))
            self.add_train_set(src, label_mode=spec.get("label_mode", "new"), name=spec.get("name"))
        elif isinstance(spec, tuple) and len(spec) == 2:
            self.add_train_set(spec[0], label_mode=spec[1])
        else:
            self.add_train_set(spec)

    def add_train_set(self, dataset: ReIDDataset | str | Path, label_mode: str = "new",
                      name: str | None = None) -> ExtraTrainSet:
        """Add the train split of ``dataset`` (a folder → :class:`FolderDataset`) with its original pids.

        Only ``bounding_box_train/`` of the set is used. A set whose manifest ``source`` names a
        query/gallery identity of the base dataset is refused (checked when the base is indexed).
        Calls :meth:`setup` first (indexes the base dataset; no network). Returns the
        :class:`ExtraTrainSet` record.
        """
        if not isinstance(dataset, ReIDDataset):
            dataset = FolderDataset(dataset)
        samples = [Sample(s.path, pid, s.camid) for s, pid in zip(dataset.train, dataset.train_orig_pids)]
        return self.add_train_samples(samples, label_mode=label_mode, name=name or str(dataset.root),
                                      source_pids=manifest_source_pids(dataset))

    def add_train_samples(self, samples: Iterable[tuple[str, int, int]], label_mode: str = "new",
                          name: str = "extra", source_pids: Iterable[int] = ()) -> ExtraTrainSet:
        """Add ``(path, pid, camid)`` training samples (original pids) labelled by ``label_mode``.

        ``source_pids``: real pids the samples were derived from (refused if any is a test identity).
        Calls :meth:`setup` first, so every check happens now. Returns the :class:`ExtraTrainSet` record.
        """
        if label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode must be one of {LABEL_MODES} (got {label_mode!r})")
        samples = [Sample(str(p), int(pid), int(cam)) for p, pid, cam in samples]
        if not samples:
            raise DatasetError(f"extra training set {name!r} has no samples")
        self.setup()
        return self._apply_samples(samples, label_mode, name, set(source_pids))

    def _apply_samples(self, samples: list[Sample], label_mode: str, name: str, source_pids: set[int]) -> ExtraTrainSet:
        ds = self.dataset
        assert ds is not None
        test_pids = ds.test_pids()
        leaked_files = [s.path for s in samples if os.path.realpath(s.path) in self._test_paths]
        if leaked_files:
            raise LeakageError(f"extra training set {name!r} contains query/gallery images of {ds.root}: "
                               f"{leaked_files[:5]}")
        derived = source_pids & test_pids
        if derived:
            raise LeakageError(f"extra training set {name!r} was derived from query/gallery identities of "
                               f"{ds.root} (manifest source pids {sorted(derived)[:10]})")
        pids = sorted({s.pid for s in samples})
        if label_mode == "real":
            leaked = [p for p in pids if p in test_pids]
            if leaked:
                raise LeakageError(f"extra training set {name!r} (label_mode=real) uses query/gallery identities "
                                   f"of {ds.root} as training labels: pids {leaked[:10]}")
            unknown = [p for p in pids if p not in ds.pid2label]
            if unknown:
                raise DatasetError(f"extra training set {name!r} (label_mode=real): pids {unknown[:10]} are not "
                                   f"training identities of {ds.root}")
            mapping = {p: ds.pid2label[p] for p in pids}
        else:
            mapping = {p: self._num_classes + i for i, p in enumerate(pids)}
            self._num_classes += len(pids)
        self._train_items += [TrainItem(s.path, mapping[s.pid], s.camid, s.pid, name) for s in samples]
        record = ExtraTrainSet(name, label_mode, len(samples), mapping)
        self.extra_sets.append(record)
        log.info("Extra training set %s: %d images, %d pids, label_mode=%s%s", name, len(samples), len(pids),
                 label_mode, f" → labels {min(mapping.values())}..{max(mapping.values())}")
        return record

    # -------------------------------------------------------------------------------------- accessors
    @property
    def num_classes(self) -> int:
        """Classes of the training loader: real train identities + new classes of the extra sets."""
        self.setup()
        return self._num_classes

    @property
    def train_items(self) -> list[TrainItem]:
        self.setup()
        return list(self._train_items)

    @property
    def query_items(self) -> list[EvalItem]:
        self.setup()
        return [EvalItem(s.path, s.pid, s.camid, True) for s in self.dataset.query]

    @property
    def gallery_items(self) -> list[EvalItem]:
        self.setup()
        return [EvalItem(s.path, s.pid, s.camid, False) for s in self.dataset.gallery]

    def summary_table(self):
        """A rich table: the base dataset's splits plus one row per extra training set."""
        self.setup()
        table = self.dataset.summary_table()
        for rec in self.extra_sets:
            cams = len({it.camid for it in self._train_items if it.source == rec.name})
            table.add_row(f"+ {rec.name} ({rec.label_mode})", str(len(rec.pid2label)), str(rec.num_images), str(cams))
        table.caption = f"{self.num_classes} training classes"
        return table

    # ------------------------------------------------------------------------------------ dataloaders
    def _loader(self, items, transform, batch_size, shuffle: bool, drop_last: bool) -> DataLoader:
        gen = torch.Generator()
        gen.manual_seed(self.seed)
        return DataLoader(ReIDImageDataset(items, transform), batch_size=batch_size, shuffle=shuffle,
                          drop_last=drop_last, num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0, worker_init_fn=_seed_worker, generator=gen)

    def train_dataloader(self) -> DataLoader:
        items = self.train_items
        # drop_last never drops the only batch (a train split smaller than batch_size)
        drop_last = self.drop_last and len(items) > self.batch_size
        return self._loader(items, self.train_transform, self.batch_size, shuffle=True, drop_last=drop_last)

    def _require_test(self) -> None:
        self.setup()
        if not self.dataset.has_test:
            raise DatasetError(f"{self.dataset.root} has no query/ and bounding_box_test/ splits to evaluate on")

    def query_dataloader(self) -> DataLoader:
        self._require_test()
        return self._loader(self.query_items, self.eval_transform, self.eval_batch_size, False, False)

    def gallery_dataloader(self) -> DataLoader:
        self._require_test()
        return self._loader(self.gallery_items, self.eval_transform, self.eval_batch_size, False, False)

    def eval_dataloader(self) -> DataLoader:
        """Query then gallery in one loader; ``is_query`` tells them apart."""
        self._require_test()
        return self._loader(self.query_items + self.gallery_items, self.eval_transform, self.eval_batch_size,
                            False, False)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader()

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader()
