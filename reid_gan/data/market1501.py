"""Datasets in the Market-1501 layout: Market-1501, DukeMTMC-reID and any folder laid out like them.

Every dataset object exposes three lists of :class:`Sample` ``(path, pid, camid)``:

* ``train``   — ``bounding_box_train/``, pids **relabelled** to ``0 .. num_train_pids - 1`` (sorted by
  original pid), the label a classifier is trained on. The original pid of ``train[i]`` is
  ``train_orig_pids[i]``; ``pid2label`` maps original pid → label and ``label2pid`` the reverse.
* ``query``   — ``query/``, original pids.
* ``gallery`` — ``bounding_box_test/``, original pids, distractors (pid 0) kept.

Conventions (torchreid's): junk images (pid −1) are dropped from every split; distractors (pid 0) are
kept in the gallery only (dropped, and counted, if they appear in train or query); camera ids are
0-based (file camera ``c1`` → ``camid 0``; the generated-image camera ``c7`` → ``camid 6``).

Images are checked while indexing (``verify_images``):

* ``"header"`` (default) reads the first 16 and last 64 bytes of each file: the JPEG start/end markers
  (or PNG signature / IEND chunk). It catches empty, non-image and truncated files for the cost of one
  ``open`` per image: measured 0.03 ms/image (warm page cache, 1 CPU thread), ≈ 1 s for the 36,036
  files of Market-1501.
* ``"decode"`` additionally decodes every image with OpenCV (catches corrupt data inside a complete
  file): measured 0.17 ms/image for 128×64 JPEGs, ≈ 6 s for Market-1501.
* ``"none"`` skips the check; a bad file then fails when the loader reads it (the error names it).

A bad image raises :class:`BadImageError` (``on_bad_image="error"``, default: silently losing images
changes the numbers) or is dropped with a warning naming it and counted in ``bad_images``
(``on_bad_image="skip"``, which upgrades ``"header"`` to ``"decode"`` so that a corrupt image is skipped
while indexing instead of failing the run when the loader reaches it).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = [
    "Sample",
    "DatasetError",
    "BadImageError",
    "ReIDDataset",
    "Market1501",
    "DukeMTMCreID",
    "FolderDataset",
    "check_image_file",
    "IMAGE_SUFFIXES",
    "NAME_PATTERN",
    "MarketName",
    "parse_name",
    "format_name",
    "list_split",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
TRAIN_DIR, QUERY_DIR, GALLERY_DIR = "bounding_box_train", "query", "bounding_box_test"
SPLIT_DIRS = {"train": TRAIN_DIR, "query": QUERY_DIR, "gallery": GALLERY_DIR}
_MAX_LISTED = 5  # offenders named in an error message

#: File names of a folder in the Market-1501 layout (the embedded dataset, generated and kept sets, any user
#: folder): person id (``-1`` = junk, else 4 or more digits), camera (1-based), sequence, frame, box index.
#: The one pattern of this layout; the real Market-1501 and DukeMTMC-reID releases have stricter ones below.
NAME_PATTERN = re.compile(
    r"^(?P<pid>-1|\d{4,})_c(?P<cam>\d+)s(?P<seq>\d+)_(?P<frame>\d{6})_(?P<box>\d{2})\.(?P<ext>jpg|jpeg|png)$")
NAME_TEXT = "PPPP_cCsS_FFFFFF_NN.jpg"


class MarketName(NamedTuple):
    """The fields of a Market-1501 file name."""

    pid: int
    cam: int
    seq: int
    frame: int
    box: int
    ext: str


def parse_name(name: str) -> MarketName:
    """The fields of a file name in the Market-1501 layout; ``ValueError`` naming it if it does not match."""
    m = NAME_PATTERN.match(name)
    if m is None:
        raise ValueError(f"{name}: file name is not in the Market-1501 pattern {NAME_TEXT}")
    return MarketName(int(m["pid"]), int(m["cam"]), int(m["seq"]), int(m["frame"]), int(m["box"]), m["ext"])


def format_name(pid: int, cam: int, seq: int, frame: int, box: int, ext: str = "jpg") -> str:
    """``0002_c1s1_000451_03.jpg``: pid at least 4 digits (``-1`` for junk), frame 6, box 2."""
    p = "-1" if pid == -1 else f"{pid:04d}"
    return f"{p}_c{cam}s{seq}_{frame:06d}_{box:02d}.{ext}"


def list_split(folder: str | Path) -> list[tuple[Path, MarketName]]:
    """The image files of one split folder (sorted; hidden files and other suffixes skipped) with their
    parsed names; ``ValueError`` naming the first file that is not named in the Market-1501 pattern."""
    files = sorted(p for p in Path(folder).iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
    return [(p, parse_name(p.name)) for p in files]


class Sample(NamedTuple):
    """One image: absolute ``path``, person id ``pid`` and 0-based camera id ``camid``."""

    path: str
    pid: int
    camid: int


class DatasetError(ValueError):
    """A dataset on disk is missing, empty or malformed. The message names the path."""


class BadImageError(DatasetError):
    """An image file is unreadable, truncated or not an image. The message names the file(s)."""


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")


def check_image_file(path: str | Path, mode: str = "header") -> str | None:
    """Why ``path`` is not a readable image, or ``None`` when it is (``mode``: header|decode|none)."""
    if mode == "none":
        return None
    p = Path(path)
    try:
        size = p.stat().st_size
        if size == 0:
            return "empty file"
        with open(p, "rb") as f:
            head = f.read(16)
            f.seek(max(0, size - 64))
            tail = f.read()
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    tail = tail.rstrip(b"\x00\r\n\t ")
    if head.startswith(b"\xff\xd8\xff"):
        if not tail.endswith(b"\xff\xd9"):
            return "truncated JPEG (no end-of-image marker)"
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        if b"IEND" not in tail:
            return "truncated PNG (no IEND chunk)"
    else:
        return "not a JPEG or PNG file (bad signature)"
    if mode == "decode":
        import cv2
        import numpy as np

        try:
            img = cv2.imdecode(np.fromfile(str(p), dtype=np.uint8), cv2.IMREAD_COLOR)
        except (OSError, cv2.error) as e:  # pragma: no cover - depends on the codec
            return f"cannot be decoded ({e})"
        if img is None or img.size == 0:
            return "cannot be decoded"
    elif mode != "header":
        raise ValueError(f"verify_images must be none, header or decode (got {mode!r})")
    return None


class ReIDDataset:
    """Base class: indexes a root in the Market-1501 layout. Subclasses set the naming rules.

    Args:
        root: the dataset folder (the one holding ``bounding_box_train/``) or a parent folder
            containing one of ``subdir_candidates`` (e.g. ``Market-1501-v15.09.15/``).
        on_bad_image: ``"error"`` (raise :class:`BadImageError`) or ``"skip"`` (warn, drop, count).
        verify_images: ``"header"``, ``"decode"`` or ``"none"`` (see the module docstring).
    """

    #: human-readable name used in messages and the summary table
    display_name = "dataset"
    #: sub-folders of a parent folder that may hold the dataset (tried in order after ``root`` itself)
    subdir_candidates: tuple[str, ...] = ()
    #: file-name pattern; groups ``pid`` and ``cam`` are required
    pattern = NAME_PATTERN
    #: the pattern written out for error messages
    pattern_text = NAME_TEXT
    #: splits that must exist and be non-empty
    required_splits: tuple[str, ...] = ("train", "query", "gallery")
    #: inclusive ranges allowed for the original pid (besides −1) and the 1-based camera
    pid_range: tuple[int, int] = (0, 10**9)
    cam_range: tuple[int, int] = (1, 10**6)

    def __init__(self, root: str | Path, on_bad_image: str = "error", verify_images: str = "header") -> None:
        if on_bad_image not in ("skip", "error"):
            raise ValueError(f"on_bad_image must be 'skip' or 'error' (got {on_bad_image!r})")
        if verify_images not in ("none", "header", "decode"):
            raise ValueError(f"verify_images must be none, header or decode (got {verify_images!r})")
        if on_bad_image == "skip" and verify_images == "header":
            # skipping is only possible for what indexing finds: decode every image now, so a corrupt one is
            # skipped here rather than failing the run when the loader reaches it
            log.info("data.on_bad_image=skip: decoding every image while indexing (verify_images=decode)")
            verify_images = "decode"
        self.on_bad_image = on_bad_image
        self.verify_images = verify_images
        self.root = self._resolve_root(Path(root).expanduser())
        #: ``(path, reason)`` of every image dropped by ``on_bad_image="skip"``
        self.bad_images: list[tuple[str, str]] = []
        #: images dropped by the protocol, per split: ``{"train": {"junk": n, "distractor": m}, ...}``
        self.dropped: dict[str, Counter] = {}

        splits: dict[str, list[Sample]] = {}
        for split in ("train", "query", "gallery"):
            folder = self.root / SPLIT_DIRS[split]
            if not folder.is_dir():
                if split in self.required_splits:
                    raise DatasetError(f"{self.display_name}: split folder {folder} does not exist "
                                       f"(expected {', '.join(SPLIT_DIRS[s] + '/' for s in self.required_splits)} "
                                       f"under {self.root})")
                splits[split] = []
                continue
            splits[split] = self._index_split(split, folder)
        self._check_optional_test_splits(splits)

        train_raw = splits["train"]
        self.train_orig_pids: list[int] = [s.pid for s in train_raw]
        #: original pid → train label (0..N-1, in order of original pid)
        self.pid2label: dict[int, int] = {pid: i for i, pid in enumerate(sorted(set(self.train_orig_pids)))}
        #: train label → original pid
        self.label2pid: list[int] = sorted(self.pid2label)
        self.train: list[Sample] = [Sample(s.path, self.pid2label[s.pid], s.camid) for s in train_raw]
        self.query: list[Sample] = splits["query"]
        self.gallery: list[Sample] = splits["gallery"]
        if self.bad_images:
            log.warning("%s at %s: skipped %d bad image(s) (on_bad_image=skip), e.g. %s", self.display_name,
                        self.root, len(self.bad_images), _listing([f"{p} [{r}]" for p, r in self.bad_images]))

    # ----------------------------------------------------------------------------------- indexing
    def _resolve_root(self, root: Path) -> Path:
        if root.name in (QUERY_DIR, GALLERY_DIR, "gt_bbox", "gt_query"):
            raise DatasetError(f"{self.display_name}: {root} is a test split folder; give the dataset folder "
                               f"that contains {TRAIN_DIR}/ instead")
        if not root.exists():
            raise DatasetError(f"{self.display_name}: dataset folder {root} does not exist")
        if not root.is_dir():
            raise DatasetError(f"{self.display_name}: {root} is not a folder")
        candidates = [root] + [root / s for s in self.subdir_candidates]
        for c in candidates:
            if (c / TRAIN_DIR).is_dir():
                return c
        looked = ", ".join(str(c / TRAIN_DIR) for c in candidates)
        raise DatasetError(f"{self.display_name}: no {TRAIN_DIR}/ folder found under {root} (looked for {looked})")

    def parse_name(self, name: str) -> tuple[int, int] | str:
        """``(pid, camera 1-based)`` parsed from a file name, or the reason it is not acceptable."""
        m = self.pattern.match(name)
        if m is None:
            return f"not named like {self.pattern_text}"
        pid, cam = int(m.group("pid")), int(m.group("cam"))
        if pid != -1 and not self.pid_range[0] <= pid <= self.pid_range[1]:
            return f"pid {pid} outside {self.pid_range[0]}..{self.pid_range[1]}"
        if not self.cam_range[0] <= cam <= self.cam_range[1]:
            return f"camera {cam} outside {self.cam_range[0]}..{self.cam_range[1]}"
        return pid, cam

    def _index_split(self, split: str, folder: Path) -> list[Sample]:
        files = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
        bad_names: list[str] = []
        bad_images: list[tuple[str, str]] = []
        dropped: Counter = Counter()
        samples: list[Sample] = []
        for p in files:
            parsed = self.parse_name(p.name)
            if isinstance(parsed, str):
                bad_names.append(f"{p.name} ({parsed})")
                continue
            pid, cam = parsed
            if pid == -1:
                dropped["junk"] += 1
                continue
            if pid == 0 and split != "gallery":
                dropped["distractor"] += 1
                continue
            reason = check_image_file(p, self.verify_images)
            if reason is not None:
                bad_images.append((str(p), reason))
                continue
            samples.append(Sample(str(p), pid, cam - 1))
        if bad_names:
            raise DatasetError(f"{self.display_name}: {len(bad_names)} file(s) in {folder} are not valid "
                               f"{self.pattern_text} names: {_listing(bad_names)}")
        if bad_images:
            if self.on_bad_image == "error":
                raise BadImageError(f"{self.display_name}: {len(bad_images)} bad image(s) in {folder}: "
                                    f"{_listing([f'{p} [{r}]' for p, r in bad_images])} "
                                    f"(set data.on_bad_image=skip to drop them with a warning)")
            for path, reason in bad_images:  # each file named, then the count (in __init__)
                log.warning("%s: skipping bad image %s [%s] (data.on_bad_image=skip)", self.display_name, path, reason)
            self.bad_images.extend(bad_images)
        if dropped:
            log.info("%s %s: dropped %s", self.display_name, split,
                     ", ".join(f"{n} {k}" for k, n in sorted(dropped.items())))
        self.dropped[split] = dropped
        if not samples and split not in self.required_splits and not files:
            log.info("%s: optional split folder %s is empty; treated as absent", self.display_name, folder)
            return samples
        if not samples:
            raise DatasetError(f"{self.display_name}: split {split!r} is empty: no usable image in {folder} "
                               f"({len(files)} image file(s) found, {sum(dropped.values())} dropped as junk/"
                               f"distractor, {len(bad_images)} bad)")
        return samples

    def _check_optional_test_splits(self, splits: dict[str, list[Sample]]) -> None:
        has_q, has_g = bool(splits["query"]), bool(splits["gallery"])
        if has_q != has_g:
            present, missing = ("query", "gallery") if has_q else ("gallery", "query")
            raise DatasetError(f"{self.display_name}: {self.root} has a {present} split but no {missing} split "
                               f"({self.root / SPLIT_DIRS[missing]}); give both or neither")

    # --------------------------------------------------------------------------------- statistics
    @property
    def num_train_pids(self) -> int:
        return len(self.pid2label)

    @property
    def has_test(self) -> bool:
        return bool(self.query) and bool(self.gallery)

    def test_pids(self) -> set[int]:
        """Identities of query ∪ gallery (distractor pid 0 excluded: it is not one person)."""
        return {s.pid for s in self.query} | {s.pid for s in self.gallery if s.pid != 0}

    @staticmethod
    def split_stats(samples: Iterable[Sample]) -> tuple[int, int, int]:
        """``(number of ids, number of images, number of cameras)`` of a list of samples."""
        samples = list(samples)
        return len({s.pid for s in samples}), len(samples), len({s.camid for s in samples})

    def stats(self) -> dict[str, tuple[int, int, int]]:
        """Per split ``(ids, images, cameras)``; gallery ids count the distractor pid 0 as one id."""
        return {split: self.split_stats(getattr(self, split)) for split in ("train", "query", "gallery")}

    def summary_table(self):
        """A :class:`rich.table.Table` of ids / images / cameras per split."""
        from rich.table import Table

        table = Table(title=f"{self.display_name} — {self.root}")
        table.add_column("split")
        for col in ("ids", "images", "cameras"):
            table.add_column(col, justify="right")
        for split, (n_ids, n_img, n_cam) in self.stats().items():
            table.add_row(split, str(n_ids), str(n_img), str(n_cam))
        return table

    def print_summary(self, console=None) -> None:
        from rich.console import Console

        (console or Console()).print(self.summary_table())

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v[0]} ids/{v[1]} images" for k, v in self.stats().items())
        return f"{type(self).__name__}(root={str(self.root)!r}, {parts})"


class Market1501(ReIDDataset):
    """Market-1501 (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015).

    Reference: https://zheng-lab.cecs.anu.edu.au/Project/project_reid.html — release
    ``Market-1501-v15.09.15``.

    Layout (``root`` is this folder, or a parent holding ``Market-1501-v15.09.15/`` or
    ``market1501/Market-1501-v15.09.15/``)::

        bounding_box_train/  0002_c1s1_000451_03.jpg ...   (training identities)
        bounding_box_test/   0000_c1s1_000151_01.jpg ...   (gallery; 0000 = distractor, -1 = junk)
        query/               0001_c1s1_001051_00.jpg ...   (one query per identity and camera at most)
        gt_bbox/ gt_query/   (not used)

    File names ``PPPP_cCsS_FFFFFF_NN.jpg``: person id (4 digits, ``-1`` for junk), camera 1–6, sequence,
    frame, index of the detection box in the frame. Other files (``Thumbs.db``) are ignored.

    Statistics: 1,501 identities and 32,668 boxes from 6 cameras. ``bounding_box_train`` 12,936 images of
    751 ids; ``query`` 3,368 images of 750 ids; ``bounding_box_test`` 19,732 files, of which 15,913 remain
    after dropping junk (750 ids + the distractor pid 0, i.e. 751 "ids" in :meth:`stats`).
    """

    display_name = "Market-1501"
    subdir_candidates = ("Market-1501-v15.09.15", "market1501/Market-1501-v15.09.15", "Market-1501")
    pattern = re.compile(r"^(?P<pid>-1|\d{4})_c(?P<cam>\d)s(?P<seq>\d)_(?P<frame>\d{6})_(?P<box>\d{2})\.jpg$")
    pattern_text = "PPPP_cCsS_FFFFFF_NN.jpg"
    pid_range = (0, 1501)
    cam_range = (1, 6)


class DukeMTMCreID(ReIDDataset):
    """DukeMTMC-reID (Zheng et al., "Unlabeled Samples Generated by GAN Improve the Person
    Re-identification Baseline in vitro", ICCV 2017; frames from Ristani et al., DukeMTMC, ECCVW 2016).

    Layout (``root`` is this folder, or a parent holding ``DukeMTMC-reID/`` or
    ``dukemtmc-reid/DukeMTMC-reID/``): ``bounding_box_train/``, ``bounding_box_test/``, ``query/`` as in
    Market-1501. File names ``PPPP_cC_fFFFFFFF.jpg``: person id (4 digits), camera 1–8, frame (7 digits).
    There are no junk images; the gallery's extra identities (distractors) have ordinary pids.

    Statistics: 1,404 identities appearing in ≥ 2 cameras + 408 distractor identities, 8 cameras.
    ``bounding_box_train`` 16,522 images of 702 ids; ``query`` 2,228 images of 702 ids;
    ``bounding_box_test`` 17,661 images of 1,110 ids.
    """

    display_name = "DukeMTMC-reID"
    subdir_candidates = ("DukeMTMC-reID", "dukemtmc-reid/DukeMTMC-reID")
    pattern = re.compile(r"^(?P<pid>-1|\d{4})_c(?P<cam>\d)_f(?P<frame>\d{7})\.jpg$")
    pattern_text = "PPPP_cC_fFFFFFFF.jpg"
    pid_range = (0, 9999)
    cam_range = (1, 8)


class FolderDataset(ReIDDataset):
    """Any folder in the Market-1501 layout: the embedded synthetic dataset, generated and filtered sets.

    Layout: ``bounding_box_train/`` (required); ``query/`` + ``bounding_box_test/`` (both or neither —
    generated sets have neither, ``require_test=True`` makes them required); optional ``manifest.jsonl``
    (one JSON object per image with at least ``file``, the path relative to the root, e.g.
    ``bounding_box_train/10000_c7s1_000000_00.jpg``), exposed as :attr:`manifest` keyed by that path.

    File names ``P…P_cCsS_FFFFFF_NN.jpg`` (or ``.png``): person id of 4 or more digits (generated persons
    start at 10000) or ``-1`` (junk); any camera ≥ 1 (camera 7 is reserved for generated images → camid 6).

    Statistics: whatever the folder holds; see :meth:`stats` / :meth:`print_summary`.
    ``display_name`` names the set in messages and the summary table (default "folder dataset").
    """

    display_name = "folder dataset"
    required_splits = ("train",)

    def __init__(self, root: str | Path, on_bad_image: str = "error", verify_images: str = "header",
                 require_test: bool = False, display_name: str | None = None) -> None:
        if display_name:
            self.display_name = display_name
        if require_test:
            self.required_splits = ("train", "query", "gallery")
        super().__init__(root, on_bad_image=on_bad_image, verify_images=verify_images)
        #: manifest records keyed by the image path relative to :attr:`root` (empty without a manifest)
        from reid_gan.data.generated import MANIFEST, read_manifest

        self.manifest: dict[str, dict] = {}
        mpath = self.root / MANIFEST
        if mpath.exists():
            try:
                records = read_manifest(self.root)
            except ValueError as e:
                raise DatasetError(f"{self.display_name}: {e}") from None
            for i, rec in enumerate(records):
                if not isinstance(rec, dict) or "file" not in rec:
                    raise DatasetError(f"{self.display_name}: {mpath} line {i + 1} has no 'file' key")
                self.manifest[str(rec["file"])] = rec
        if self.manifest:
            self._check_manifest()

    def _check_manifest(self) -> None:
        """The manifest must agree with the file names (pid); missing lines/files are reported."""
        from reid_gan.data.generated import MANIFEST

        mpath = self.root / MANIFEST
        on_disk = {}
        for s, pid in zip(self.train, self.train_orig_pids):
            on_disk[Path(s.path).relative_to(self.root).as_posix()] = pid
        wrong = [f"{f} (file name pid {on_disk[f]}, manifest pid {r['pid']})" for f, r in self.manifest.items()
                 if f in on_disk and "pid" in r and int(r["pid"]) != on_disk[f]]
        if wrong:
            raise DatasetError(f"{self.display_name}: {mpath} disagrees with the file names: {_listing(wrong)}")
        no_line = sorted(set(on_disk) - set(self.manifest))
        skipped = {Path(p).relative_to(self.root).as_posix() for p, _ in self.bad_images}
        no_file = sorted(f for f in set(self.manifest) - set(on_disk) - skipped if f.startswith(TRAIN_DIR + "/"))
        if no_line or no_file:
            parts = ([f"{len(no_line)} image(s) have no line in it: {_listing(no_line)}"] if no_line else []) + \
                    ([f"{len(no_file)} line(s) name images that are not in {self.root / TRAIN_DIR}: "
                      f"{_listing(no_file)}"] if no_file else [])
            raise DatasetError(f"{self.display_name}: {mpath} disagrees with the files: {'; '.join(parts)} "
                               f"(a set from `reid_gan.generate` or `reid_gan.filter` always agrees; re-run it)")
        if skipped:
            log.warning("%s: %d line(s) of %s name images skipped as bad (data.on_bad_image=skip)",
                        self.display_name, len(skipped & set(self.manifest)), mpath)

    def manifest_record(self, path: str | Path) -> dict | None:
        """The manifest line of an image (absolute path or relative to the root), if any."""
        p = Path(path)
        try:
            rel = p.relative_to(self.root) if p.is_absolute() else p
        except ValueError:
            return None
        return self.manifest.get(rel.as_posix())
