"""The filter chain: score every image of a set with each filter, cache the scores, decide, report.

A set is a folder in Market-1501 layout (``bounding_box_train/`` …) with an optional ``manifest.jsonl``
(generated sets; see DESIGN.md). Each filter gives every image a score and keeps it when
``score >= threshold`` (a score equal to the threshold is kept). Filters run in the configured order;
every filter scores *every* image (so the report can say how each filter alone would decide), and an
image discarded by several filters is attributed to the first of them in the order (the thesis's
Tables 4/6 count "discarded by the detector", then "discarded by SSIM" among the rest).

Scores are cached in a JSON-lines file keyed by ``sha256(filter identity) + sha256(image bytes)``
(+ the reference image for SSIM, + the person's image set for identity), where the identity is the
filter's config without its threshold and with the SHA-256 of every file it reads (detector weights,
re-ID checkpoint). So re-running with another threshold, or on a set that shares images, computes
nothing again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from reid_gan.data.generated import MANIFEST, read_manifest
from reid_gan.data.market1501 import list_split
from reid_gan.utils.io import append_jsonl, file_sha256, read_jsonl
from reid_gan.utils.logging import get_logger

log = get_logger(__name__)


__all__ = [
    "SetImage", "ImageSet", "load_image_set", "ScoreCache", "ImageFilter", "DetectorFilter",
    "SSIMFilter", "IdentityFilter", "FilterChain", "ChainResult", "filter_identity",
]


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


def read_bgr(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: cannot be read as an image (corrupt or not an image)")
    return img


# ---------------------------------------------------------------------------------------------- cache
class ScoreCache:
    """Scores by key in a JSON-lines file (``{"k": key, "s": score}``); appends, never rewrites."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.data: dict[str, float] = {}
        self.pending: list[dict[str, Any]] = []
        if self.path is not None and self.path.is_file():
            with self._lock():
                for rec in read_jsonl(self.path):
                    self.data[rec["k"]] = float(rec["s"])

    def _lock(self):
        """Parallel jobs (a -m sweep) share the cache file: one writer/reader at a time."""
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path) + ".lock")

    def get(self, key: str) -> float | None:
        return self.data.get(key)

    def put(self, key: str, score: float) -> None:
        self.data[key] = float(score)
        self.pending.append({"k": key, "s": float(score)})

    def flush(self) -> None:
        if self.path is not None and self.pending:
            with self._lock():
                append_jsonl(self.path, self.pending)
        self.pending = []


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def filter_identity(node: Any, exclude: Iterable[str] = ("threshold", "enabled", "batch_size", "name")) -> str:
    """SHA-256 of a filter's config (minus what does not change scores) with every referenced file's hash.

    ``node`` is a plain dict (or DictConfig); a string value naming an existing file is replaced by
    that file's SHA-256, so new weights under the same path give new scores.
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=True)
    exclude = set(exclude)

    def plain(v: Any, top: bool) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x, False) for k, x in v.items() if not (top and k in exclude)}
        if isinstance(v, (list, tuple)):
            return [plain(x, False) for x in v]
        if isinstance(v, str) and len(v) < 4096 and os.path.isfile(v):
            return {"file_sha256": file_sha256(v)}
        return v

    return _hash(plain(node, True))


# -------------------------------------------------------------------------------------------- filters
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


class DetectorFilter(ImageFilter):
    """Keep an image when the pedestrian detector's person score is ≥ ``threshold`` (thesis: 0.6).

    Args:
        detector: any object with ``score(list of BGR uint8 arrays) -> scores in [0, 1]``
            (:class:`reid_gan.filters.hog.HOGDetector`, :class:`reid_gan.filters.detector.YOLOv4Tiny`).
        threshold: keep if score ≥ threshold.
    """

    name = "detector"
    score_name = "person confidence"

    def __init__(self, detector: Any, threshold: float = 0.6, enabled: bool = True, name: str | None = None,
                 batch_size: int = 32):
        super().__init__(threshold, enabled, name, batch_size)
        if not callable(getattr(detector, "score", None)):
            raise TypeError(f"filter detector must have a score(images) method, got {type(detector).__name__}")
        self.detector = detector

    def compute(self, image_set: ImageSet, indices: Sequence[int]) -> np.ndarray:
        imgs = [read_bgr(image_set.items[i].path) for i in indices]
        s = np.asarray(self.detector.score(imgs), dtype=np.float64).reshape(-1)
        if s.shape[0] != len(imgs):
            raise ValueError(f"detector returned {s.shape[0]} scores for {len(imgs)} images")
        return s

    def describe(self) -> str:
        d = getattr(self.detector, "describe", None)
        what = d() if callable(d) else repr(self.detector)
        return f"{self.name}: {what}, keep person confidence >= {self.threshold:g}"


class SSIMFilter(ImageFilter):
    """Keep an image when its SSIM to the person's reference image is ≥ ``threshold`` (thesis: 0.75).

    Args:
        threshold: keep if SSIM ≥ threshold.
        reference: ``base`` — the person's image with ``method == "base"`` in the manifest (else the
            person's first image); ``medoid`` — the person's image with the highest mean SSIM to the
            person's other images; ``real`` — the real image the person's code was inverted from (the
            manifest's ``reference``, written by ``generate`` for real-variant sets; every image needs one).
        data_range: 255 (8-bit images).
    SSIM setting: :data:`reid_gan.metrics.ssim.SSIM_SETTING`. An image of another size than its
    reference is resized to the reference's size (``cv2.INTER_AREA``) before comparison.
    """

    name = "ssim"
    score_name = "SSIM to reference"

    def __init__(self, threshold: float = 0.75, reference: str = "base", enabled: bool = True,
                 name: str | None = None, batch_size: int = 64, data_range: float = 255.0):
        super().__init__(threshold, enabled, name, batch_size)
        if reference not in ("base", "medoid", "real"):
            raise ValueError(f"ssim.reference must be 'base', 'medoid' or 'real' (got {reference!r})")
        self.reference = reference
        self.data_range = float(data_range)
        self.ref_index: dict[int, int] = {}
        self.ref_path: dict[int, str] = {}  # reference=real: pid -> the real image

    def _pairs(self, image_set: ImageSet, idx_a: Sequence[int], idx_b: Sequence[int]) -> np.ndarray:
        import cv2
        import torch

        from reid_gan.metrics.ssim import ssim

        out = np.zeros(len(idx_a), dtype=np.float64)
        loaded: dict[int, np.ndarray] = {}

        def get(i: int | str) -> np.ndarray:  # an index into the set, or a file (reference=real)
            if i not in loaded:
                path = i if isinstance(i, str) else image_set.items[i].path
                loaded[i] = read_bgr(path)[:, :, ::-1]  # RGB (SSIM is per channel anyway)
            return loaded[i]

        for s in range(0, len(idx_a), self.batch_size):
            a_idx, b_idx = idx_a[s:s + self.batch_size], idx_b[s:s + self.batch_size]
            a, b = [], []
            for i, j in zip(a_idx, b_idx):
                x, r = get(i), get(j)
                if x.shape != r.shape:
                    x = cv2.resize(np.ascontiguousarray(x), (r.shape[1], r.shape[0]), interpolation=cv2.INTER_AREA)
                a.append(x)
                b.append(r)
            # group by size (a set normally has one size)
            shapes = sorted({x.shape for x in b})
            for shp in shapes:
                sel = [k for k, x in enumerate(b) if x.shape == shp]
                ta = torch.from_numpy(np.stack([a[k] for k in sel])).permute(0, 3, 1, 2)
                tb = torch.from_numpy(np.stack([b[k] for k in sel])).permute(0, 3, 1, 2)
                vals = ssim(ta, tb, data_range=self.data_range).double().numpy()
                for k, v in zip(sel, vals):
                    out[s + k] = v
            if len(loaded) > 4 * self.batch_size:
                loaded.clear()
        return out

    def prepare(self, image_set: ImageSet, cache: ScoreCache) -> None:
        self.ref_index, self.ref_path = {}, {}
        if self.reference == "real":
            for pid, idx in image_set.by_pid().items():
                refs = {image_set.items[i].record.get("reference") for i in idx}
                if None in refs or len(refs) != 1:
                    raise ValueError(f"filter.chain.{self.name}.reference=real: the images of pid {pid} in "
                                     f"{image_set.root} name {'no' if None in refs else 'several'} real reference "
                                     f"image(s) in the manifest ('reference'); a real-variant set from generate "
                                     f"with an invert latents file has one")
                ref = Path(refs.pop())
                if not ref.is_file():
                    raise FileNotFoundError(f"filter.chain.{self.name}.reference=real: {ref} (pid {pid}) not found")
                self.ref_path[pid] = str(ref)
            self._ref_sha = {pid: file_sha256(p) for pid, p in self.ref_path.items()}
            return
        for pid, idx in image_set.by_pid().items():
            if self.reference == "base":
                base = [i for i in idx if image_set.items[i].record.get("method") == "base"]
                self.ref_index[pid] = base[0] if base else idx[0]
                continue
            if len(idx) <= 2:
                self.ref_index[pid] = idx[0]
                continue
            key = "medoid:" + _hash([self.identity, sorted(image_set.items[i].sha256 for i in idx)])
            hit = cache.get(key)
            if hit is not None:  # cached as the sha's position in the sorted list
                shas = sorted(image_set.items[i].sha256 for i in idx)
                want = shas[int(hit)]
                self.ref_index[pid] = next(i for i in idx if image_set.items[i].sha256 == want)
                continue
            ia = [i for i in idx for _ in idx]
            ib = [j for _ in idx for j in idx]
            sim = self._pairs(image_set, ia, ib).reshape(len(idx), len(idx))
            best = idx[int(np.argmax(sim.sum(axis=1)))]
            self.ref_index[pid] = best
            shas = sorted(image_set.items[i].sha256 for i in idx)
            cache.put(key, float(shas.index(image_set.items[best].sha256)))

    def item_keys(self, image_set: ImageSet) -> list[str]:
        if self.reference == "real":
            return [it.sha256 + ":real:" + self._ref_sha[it.pid] for it in image_set.items]
        return [it.sha256 + ":" + image_set.items[self.ref_index[it.pid]].sha256 for it in image_set.items]

    def compute(self, image_set: ImageSet, indices: Sequence[int]) -> np.ndarray:
        if self.reference == "real":
            return self._pairs(image_set, list(indices), [self.ref_path[image_set.items[i].pid] for i in indices])
        refs = [self.ref_index[image_set.items[i].pid] for i in indices]
        return self._pairs(image_set, list(indices), refs)

    def reference_files(self, image_set: ImageSet) -> dict[int, str]:
        if self.reference == "real":
            return dict(self.ref_path)
        return {pid: image_set.items[i].file for pid, i in self.ref_index.items()}

    def describe(self) -> str:
        ref = {"base": "base image (method == base in the manifest, else the person's first image)",
               "medoid": "medoid image (highest mean SSIM to the person's others)",
               "real": "real image (the one its code was inverted from: manifest 'reference')"}[self.reference]
        return (f"{self.name}: SSIM to the person's {ref} (11x11 Gaussian window, "
                f"sigma 1.5, K1 0.01, K2 0.03), keep >= {self.threshold:g}")


class IdentityFilter(ImageFilter):
    """Keep an image whose re-ID feature has cosine similarity ≥ ``threshold`` to its person's centroid.

    Beyond the thesis; off by default. The centroid is the mean of the L2-normalised features of all
    the person's images in the set.

    Args:
        extractor: callable ``float tensor [N, 3, H, W] (RGB, 0..1) -> features [N, D]`` (e.g.
            :class:`reid_gan.filters.identity.ReIDFeatureExtractor` built from a re-ID checkpoint).
        threshold: cosine similarity in [-1, 1].
        height, width: input size the extractor expects.
    """

    name = "identity"
    score_name = "cosine similarity to the person's centroid"

    def __init__(self, extractor: Callable[[Any], Any], threshold: float = 0.5, enabled: bool = True,
                 name: str | None = None, batch_size: int = 32, height: int = 128, width: int = 64):
        super().__init__(threshold, enabled, name, batch_size)
        if not callable(extractor):
            raise TypeError(f"identity extractor must be callable, got {type(extractor).__name__}")
        self.extractor = extractor
        self.height, self.width = int(height), int(width)
        self.person_key: dict[int, str] = {}

    def prepare(self, image_set: ImageSet, cache: ScoreCache) -> None:
        self.person_key = {pid: _hash(sorted(image_set.items[i].sha256 for i in idx))
                           for pid, idx in image_set.by_pid().items()}

    def item_keys(self, image_set: ImageSet) -> list[str]:
        return [it.sha256 + ":" + self.person_key[it.pid] for it in image_set.items]

    def _features(self, image_set: ImageSet, indices: Sequence[int]) -> np.ndarray:
        import cv2
        import torch

        feats = []
        for s in range(0, len(indices), self.batch_size):
            batch = []
            for i in indices[s:s + self.batch_size]:
                img = read_bgr(image_set.items[i].path)
                img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
                batch.append(img[:, :, ::-1].astype(np.float32) / 255.0)
            x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()
            with torch.no_grad():
                f = self.extractor(x)
            f = torch.as_tensor(f).float().reshape(len(batch), -1)
            feats.append(torch.nn.functional.normalize(f, dim=1).numpy())
        return np.concatenate(feats).astype(np.float64)

    def batches(self, image_set: ImageSet, todo: Sequence[int]) -> Iterable[list[int]]:
        # the centroid needs every image of the person: one call per person
        by: dict[int, list[int]] = {}
        for i in todo:
            by.setdefault(image_set.items[i].pid, []).append(i)
        yield from by.values()

    def compute(self, image_set: ImageSet, indices: Sequence[int]) -> np.ndarray:
        # the centroid needs every image of the person: compute whole persons
        by_pid = image_set.by_pid()
        pids = sorted({image_set.items[i].pid for i in indices})
        out: dict[int, float] = {}
        for pid in pids:
            idx = by_pid[pid]
            f = self._features(image_set, idx)
            c = f.mean(axis=0)
            c = c / max(np.linalg.norm(c), 1e-12)
            for i, v in zip(idx, f @ c):
                out[i] = float(v)
        return np.array([out[i] for i in indices], dtype=np.float64)

    def describe(self) -> str:
        return f"{self.name}: re-ID feature cosine similarity to the person's centroid, keep >= {self.threshold:g}"


# ---------------------------------------------------------------------------------------------- chain
@dataclass
class ChainResult:
    image_set: ImageSet
    filters: list[ImageFilter]
    scores: dict[str, np.ndarray]          # filter name → [n] scores
    passes: dict[str, np.ndarray]          # filter name → [n] bool (this filter alone keeps)
    discarded_by: list[str | None]         # first failing filter in order, None = kept
    computed: dict[str, int] = field(default_factory=dict)  # scores computed (not from the cache)
    cached: dict[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> np.ndarray:
        return np.array([d is None for d in self.discarded_by], dtype=bool)

    def records(self) -> list[dict[str, Any]]:
        """Every image's manifest record + ``scores`` + ``kept`` + ``discarded_by``."""
        out = []
        for i, it in enumerate(self.image_set.items):
            rec = dict(it.record)
            rec["file"] = it.file
            rec["pid"] = it.pid
            rec["scores"] = {n: float(s[i]) for n, s in self.scores.items()}
            rec["kept"] = self.discarded_by[i] is None
            rec["discarded_by"] = self.discarded_by[i]
            rec["sha256"] = it.sha256
            out.append(rec)
        return out


class FilterChain:
    """Filters applied in order, with the score cache.

    Args:
        filters: the enabled filters, in order (each with ``identity`` set to its config hash).
        cache_path: JSON-lines cache file (None: no cache).
        progress: show rich progress bars.
    """

    def __init__(self, filters: Sequence[ImageFilter], cache_path: str | os.PathLike | None = None,
                 progress: bool = True):
        names = [f.name for f in filters]
        if len(set(names)) != len(names):
            raise ValueError(f"filter names must be unique, got {names}")
        self.filters = list(filters)
        self.cache = ScoreCache(cache_path)
        self.progress = progress

    def _progress(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), disable=not self.progress, transient=False)

    def hash_images(self, image_set: ImageSet) -> None:
        with self._progress() as prog:
            task = prog.add_task("hashing images", total=len(image_set.items))
            for it in image_set.items:
                if not it.sha256:
                    it.sha256 = file_sha256(it.path)
                prog.advance(task)

    def score(self, image_set: ImageSet) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, int]]:
        self.hash_images(image_set)
        n = len(image_set.items)
        scores: dict[str, np.ndarray] = {}
        computed: dict[str, int] = {}
        cached: dict[str, int] = {}
        for flt in self.filters:
            flt.prepare(image_set, self.cache)
            keys = [f"{flt.identity}:{k}" for k in flt.item_keys(image_set)]
            s = np.full(n, np.nan)
            todo = []
            for i, k in enumerate(keys):
                v = self.cache.get(k)
                if v is None:
                    todo.append(i)
                else:
                    s[i] = v
            cached[flt.name] = n - len(todo)
            computed[flt.name] = len(todo)
            if todo:
                with self._progress() as prog:
                    task = prog.add_task(f"scoring: {flt.name}", total=len(todo))
                    for idx in flt.batches(image_set, todo):
                        vals = flt.compute(image_set, idx)
                        for i, v in zip(idx, vals):
                            s[i] = float(v)
                            self.cache.put(keys[i], float(v))
                        self.cache.flush()  # a killed run keeps what it scored
                        prog.advance(task, len(idx))
            self.cache.flush()
            log.info("filter %s: %d scores computed, %d from the cache", flt.name, computed[flt.name],
                     cached[flt.name])
            scores[flt.name] = s
        return scores, computed, cached

    def run(self, image_set: ImageSet) -> ChainResult:
        scores, computed, cached = self.score(image_set)
        return self.decide(image_set, scores, computed, cached)

    def decide(self, image_set: ImageSet, scores: dict[str, np.ndarray], computed: dict[str, int] | None = None,
               cached: dict[str, int] | None = None) -> ChainResult:
        passes = {f.name: f.keep(scores[f.name]) for f in self.filters}
        discarded_by: list[str | None] = []
        for i in range(len(image_set.items)):
            first = next((f.name for f in self.filters if not passes[f.name][i]), None)
            discarded_by.append(first)
        return ChainResult(image_set, self.filters, scores, passes, discarded_by, computed or {}, cached or {})
