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
from reid_gan.data.market1501 import IMAGE_SUFFIXES, list_split, parse_name
from reid_gan.utils.logging import get_logger
from reid_gan.utils.image import read_bgr

if TYPE_CHECKING:
    from reid_gan.filters.cache import ScoreCache

__all__ = ["SetImage", "ImageSet", "load_image_set", "read_bgr", "ImageFilter"]

log = get_logger(__name__)


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
                   key: str = "filter.source", on_bad_image: str = "error") -> ImageSet:
    """A generated set (``manifest.jsonl``) or any Market-layout folder (images of ``splits``).

    Without a manifest, pids come from the file names (``PPPP_cC…``); junk (pid −1) is skipped. With one,
    its lines must agree with the files (every image listed, the file name's pid = the line's pid) and
    name files inside the set only (no absolute path, ``..`` or symbolic link leading out).
    Every image is decoded once before any scoring: a bad one raises
    :class:`~reid_gan.data.BadImageError` naming it (``on_bad_image="error"``) or is dropped with a
    warning naming it and a final count (``"skip"``).
    """
    image_set = _index_image_set(Path(root), splits, key)
    return _drop_bad_images(image_set, on_bad_image, key)


def _drop_bad_images(image_set: ImageSet, on_bad_image: str, key: str) -> ImageSet:
    from reid_gan.data.market1501 import BadImageError, check_image_file

    if on_bad_image not in ("skip", "error"):
        raise ValueError(f"on_bad_image must be 'skip' or 'error' (got {on_bad_image!r})")
    good, bad = [], []
    for it in image_set.items:
        reason = check_image_file(it.path, "decode")
        if reason is None:
            good.append(it)
        else:
            bad.append(f"{it.path} [{reason}]")
            if on_bad_image == "skip":
                log.warning("%s: skipping bad image %s (filter.on_bad_image=skip)", key, bad[-1])
    if bad and on_bad_image == "error":
        shown = ", ".join(bad[:5]) + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
        raise BadImageError(f"{key}={image_set.root}: {len(bad)} bad image(s): {shown} "
                            f"(set filter.on_bad_image=skip to drop them with a warning)")
    if bad:
        log.warning("%s=%s: skipped %d bad image(s) of %d (filter.on_bad_image=skip)", key, image_set.root,
                    len(bad), len(image_set.items))
        if not good:
            raise BadImageError(f"{key}={image_set.root}: every one of its {len(bad)} images is bad")
    return ImageSet(image_set.root, good, image_set.has_manifest)


def _index_image_set(root: Path, splits: Sequence[str], key: str) -> ImageSet:
    if not root.is_dir():
        raise FileNotFoundError(f"{key}={root}: folder not found (a set in Market-1501 layout: run "
                                f"`python -m reid_gan.generate` first, or give {key}=PATH, any Market-layout folder)")
    manifest = root / MANIFEST
    items: list[SetImage] = []
    if manifest.is_file():
        for i, rec in enumerate(read_manifest(root)):
            if "file" not in rec or "pid" not in rec:
                raise ValueError(f"{manifest}: line {i + 1} lacks 'file' or 'pid'")
            p = root / rec["file"]  # read_manifest refused any path leading outside the set
            if not p.is_file():
                raise FileNotFoundError(f"{manifest}: line {i + 1} names {rec['file']}, which is not in {root}")
            try:
                name_pid = parse_name(p.name).pid
            except ValueError:
                name_pid = None
            if name_pid is None or name_pid != int(rec["pid"]):
                raise ValueError(f"{manifest}: line {i + 1} disagrees with the file name: {rec['file']} has "
                                 f"{'no Market-1501 name' if name_pid is None else f'pid {name_pid}'}, the line "
                                 f"says pid {rec['pid']}")
            items.append(SetImage(file=str(rec["file"]), path=p, pid=int(rec["pid"]), record=dict(rec)))
        if not items:
            raise ValueError(f"{manifest}: no images listed")
        listed = {it.file for it in items}
        unlisted = sorted(f"{d.name}/{p.name}" for d in {(root / it.file).parent for it in items} if d.is_dir()
                          for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                          and f"{d.name}/{p.name}" not in listed)
        if unlisted:
            raise ValueError(f"{manifest} disagrees with the files: {len(unlisted)} image(s) have no line in it: "
                             f"{', '.join(unlisted[:5])}{' …' if len(unlisted) > 5 else ''}")
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
