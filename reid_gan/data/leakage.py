"""Leakage guard: what the GAN and encoder stages may learn from.

A generator or an encoder fitted on query/gallery people would leak the test identities into the
augmented training set and inflate every re-ID number built on it. Their training images therefore
come from :func:`training_images_for_generation`, which returns ``bounding_box_train/`` only and
refuses (:class:`LeakageError`) when the source shares an identity with the test splits:

* with the dataset's own ``query/`` + ``bounding_box_test/`` (a folder whose train split was built
  from test people, e.g. train and test merged);
* with ``eval_dataset``'s test identities, when the training source is a different folder (e.g. a
  user folder passed as ``data=folder`` while evaluation runs on Market-1501);
* through a generated set's ``manifest.jsonl`` whose ``source`` (the real pid an image was derived
  from) is a test identity.

The distractor pid 0 is not an identity and never counts; junk (−1) never reaches a split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from reid_gan.data.market1501 import (
    GALLERY_DIR,
    QUERY_DIR,
    TRAIN_DIR,
    DatasetError,
    FolderDataset,
    ReIDDataset,
    Sample,
)
from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["LeakageError", "training_images_for_generation", "generation_images_from_config",
           "manifest_source_pids", "assert_disjoint"]


class LeakageError(DatasetError):
    """A training source for generation/augmentation contains query or gallery identities."""


def _pids_text(pids: Iterable[int]) -> str:
    pids = sorted(pids)
    return ", ".join(str(p) for p in pids[:10]) + (f" (and {len(pids) - 10} more)" if len(pids) > 10 else "")


def assert_disjoint(train_pids: Iterable[int], test_pids: Iterable[int], what: str, against: str) -> None:
    """Raise :class:`LeakageError` if a training identity is also a test identity (pid 0 ignored)."""
    common = (set(train_pids) & set(test_pids)) - {0, -1}
    if common:
        raise LeakageError(f"refusing to use {what}: {len(common)} of its identities are query/gallery "
                           f"identities of {against} (pids {_pids_text(common)})")


def manifest_source_pids(dataset: ReIDDataset) -> set[int]:
    """Real pids that a generated set's images were derived from (manifest ``source`` ≠ ``"seed"``)."""
    out: set[int] = set()
    for rec in getattr(dataset, "manifest", {}).values():
        src = rec.get("source")
        if src is None or src == "seed":
            continue
        try:
            out.add(int(src))
        except (TypeError, ValueError):
            continue
    return out


def training_images_for_generation(dataset: ReIDDataset | str | Path,
                                   eval_dataset: ReIDDataset | None = None) -> list[Sample]:
    """The images a GAN or encoder may train on: ``bounding_box_train/`` of ``dataset`` only.

    Args:
        dataset: a dataset object, or a folder (loaded as :class:`FolderDataset`).
        eval_dataset: the dataset the re-ID model will be evaluated on, when it differs from ``dataset``;
            its query/gallery identities are refused too.

    Returns:
        ``Sample(path, pid, camid)`` with the **original** pid (not the train label), sorted by path.

    Raises:
        LeakageError: the source shares an identity with a test split, or a path outside
            ``bounding_box_train/`` would be used.
    """
    if not isinstance(dataset, ReIDDataset):
        p = Path(dataset)
        if p.name in (QUERY_DIR, GALLERY_DIR, "gt_bbox", "gt_query"):
            raise LeakageError(f"refusing to train a generator on {p}: it is a test split folder")
        dataset = FolderDataset(p)
    samples = [Sample(s.path, pid, s.camid) for s, pid in zip(dataset.train, dataset.train_orig_pids)]
    train_dir = (Path(dataset.root) / TRAIN_DIR).resolve()
    outside = [s.path for s in samples if Path(s.path).resolve().parent != train_dir]
    if outside:
        raise LeakageError(f"refusing to train a generator on images outside {train_dir}: {outside[:5]}")
    train_pids = set(dataset.train_orig_pids) | manifest_source_pids(dataset)
    assert_disjoint(train_pids, dataset.test_pids(), f"{dataset.root}/{TRAIN_DIR} as a training source",
                    str(dataset.root))
    if eval_dataset is not None:
        assert_disjoint(train_pids, eval_dataset.test_pids(), f"{dataset.root}/{TRAIN_DIR} as a training source",
                        str(eval_dataset.root))
    if not dataset.has_test and eval_dataset is None:
        log.info("%s has no query/gallery and no evaluation dataset was given: identity overlap with a "
                 "test set could not be checked", dataset.root)
    return sorted(samples, key=lambda s: s.path)


def generation_images_from_config(data_cfg, eval_data_cfg=None) -> list[Sample]:
    """:func:`training_images_for_generation` on ``build_dataset(data_cfg)`` (what GAN/encoder stages call)."""
    from reid_gan.data import build_dataset

    ds = build_dataset(data_cfg)
    ev = build_dataset(eval_data_cfg) if eval_data_cfg is not None else None
    return training_images_for_generation(ds, ev)
