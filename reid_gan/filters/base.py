"""What every filter works on: an image set (a generated set, or any Market-layout folder) and the filter base class.

A filter gives every image a score and keeps it when ``score >= threshold`` (a score equal to the
threshold is kept). Subclasses: :class:`reid_gan.filters.detection.DetectorFilter`,
:class:`reid_gan.filters.ssim.SSIMFilter`, :class:`reid_gan.filters.identity.IdentityFilter`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from reid_gan.data.generated import MANIFEST, read_manifest
from reid_gan.data.market1501 import list_split
from reid_gan.utils.image import read_bgr

if TYPE_CHECKING:
    from reid_gan.filters.cache import ScoreCache

__all__ = ["SetImage", "ImageSet", "load_image_set", "read_bgr", "ImageFilter"]


# ----------------------------------------------------------------------------------------------- sets
@dataclass
class SetImage:
    """One image of a set: ``file`` relative to the set root, its person id and manifest record."""

    file: str
    path: Path
    pid: int
    record: dict[str, Any]
    sha256: str = ""


@dataclass
class ImageSet:
    root: Path
    items: list[SetImage]
    has_manifest: bool

    def by_pid(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i, it in enumerate(self.items):
            out.setdefault(it.pid, []).append(i)
        return out


def load_image_set(root: str | os.PathLike, splits: Sequence[str] = ("bounding_box_train",),
                   key: str = "filter.source") -> ImageSet:
    """A generated set (``manifest.jsonl``) or any Market-layout folder (images of ``splits``).

    Without a manifest, pids come from the file names (``PPPP_cC…``); junk (pid −1) is skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{key}={root}: folder not found (a set in Market-1501 layout: run "
                                f"`python -m reid_gan.generate` first, or give {key}=PATH, any Market-layout folder)")
    manifest = root / MANIFEST
    items: list[SetImage] = []
    if manifest.is_file():
        for i, rec in enumerate(read_manifest(root)):
            if "file" not in rec or "pid" not in rec:
                raise ValueError(f"{manifest}: line {i + 1} lacks 'file' or 'pid'")
            p = root / rec["file"]
            if not p.is_file():
                raise FileNotFoundError(f"{manifest}: line {i + 1} names {rec['file']}, which is not in {root}")
            items.append(SetImage(file=str(rec["file"]), path=p, pid=int(rec["pid"]), record=dict(rec)))
        if not items:
            raise ValueError(f"{manifest}: no images listed")
        return ImageSet(root, items, True)
    for split in splits:
        d = root / split
        if not d.is_dir():
            raise FileNotFoundError(f"{key}={root}: no {split}/ folder and no {MANIFEST}")
        for p, name in list_split(d):
            if name.pid == -1:
                continue
            rel = f"{split}/{p.name}"
            items.append(SetImage(file=rel, path=p, pid=name.pid, record={"file": rel, "pid": name.pid}))
    if not items:
        raise ValueError(f"{key}={root}: no images in {', '.join(splits)}")
    return ImageSet(root, items, False)


class ImageFilter:
    """Base class. A filter scores images; ``keep = score >= threshold``.

    Subclasses implement :meth:`compute` (scores of some items) and may override :meth:`item_keys`
    (what besides the image itself a score depends on) and :meth:`prepare` (per-set work).
    """

    name = "filter"
    score_name = "score"

    def __init__(self, threshold: float, enabled: bool = True, name: str | None = None,
                 batch_size: int = 32):
        self.threshold = float(threshold)
        self.enabled = bool(enabled)
        self.batch_size = int(batch_size)
        if name:
            self.name = name
        self.identity = ""  # set by the chain (hash of the config)

    def prepare(self, image_set: ImageSet, cache: ScoreCache) -> None:  # noqa: B027 - optional hook
        pass

    def item_keys(self, image_set: ImageSet) -> list[str]:
        return [it.sha256 for it in image_set.items]

    def compute(self, image_set: ImageSet, indices: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def batches(self, image_set: ImageSet, todo: Sequence[int]) -> Iterable[list[int]]:
        """How the images still to score are grouped into :meth:`compute` calls."""
        step = max(self.batch_size, 1)
        for b in range(0, len(todo), step):
            yield list(todo[b:b + step])

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float64) >= self.threshold

    def describe(self) -> str:
        return f"{self.name} ({self.score_name} >= {self.threshold:g})"
