"""The filter chain: score every image of a set with each filter, cache the scores, decide.

A set is a folder in Market-1501 layout (``bounding_box_train/`` …) with an optional ``manifest.jsonl``
(generated sets; see DESIGN.md). Each filter gives every image a score and keeps it when
``score >= threshold`` (a score equal to the threshold is kept). Filters run in the configured order;
every filter scores *every* image (so the report can say how each filter alone would decide), and an
image discarded by several filters is attributed to the first of them in the order (the thesis's
Tables 4/6 count "discarded by the detector", then "discarded by SSIM" among the rest).

The set (:mod:`.base`), the cache (:mod:`.cache`) and each filter (:mod:`.detection`, :mod:`.ssim`,
:mod:`.identity`) have their own modules; the filters are importable from here too, because the
``filter.chain.*._target_`` paths name them so and those paths are part of every artifact key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from reid_gan.filters.base import ImageFilter, ImageSet, SetImage, load_image_set, read_bgr
from reid_gan.filters.cache import ScoreCache, filter_identity
from reid_gan.filters.detection import DetectorFilter
from reid_gan.filters.identity import IdentityFilter
from reid_gan.filters.ssim import SSIMFilter
from reid_gan.utils.config import to_plain
from reid_gan.utils.instantiate import instantiate_node
from reid_gan.utils.io import file_sha256
from reid_gan.utils.logging import get_logger
from reid_gan.utils.runtime import progress_bar

log = get_logger(__name__)

HOG_TARGET = "reid_gan.filters.hog.HOGDetector"

__all__ = [
    "SetImage", "ImageSet", "load_image_set", "read_bgr", "ScoreCache", "ImageFilter", "DetectorFilter",
    "SSIMFilter", "IdentityFilter", "FilterChain", "ChainResult", "filter_identity", "build_chain", "write_kept",
    "chain_metrics",
]


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
        return progress_bar(enabled=self.progress)

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


def build_chain(fcfg: DictConfig, progress: bool | None = None) -> FilterChain:
    """The enabled filters of ``filter.chain`` in ``filter.order``, each with its cache identity."""
    import reid_gan

    filters: list[ImageFilter] = []
    for name in fcfg.order:
        node = fcfg.chain[name]
        if not node.get("enabled", True):
            log.info("filter %s: disabled", name)
            continue
        det = OmegaConf.select(node, "detector", default=None)
        if det is not None:
            target = str(det.get("_target_", ""))
            if target == HOG_TARGET:
                log.info("filter %s: OpenCV's HOG people detector, the embedded substitute for the thesis's "
                         "YOLOv4-tiny (use detector=yolov4_tiny filter.detector.cfg=PATH "
                         "filter.detector.weights=PATH for the real one)", name)
        flt = instantiate_node(node, f"filter.chain.{name}")
        if not isinstance(flt, ImageFilter):
            raise TypeError(f"filter.chain.{name}._target_ must build a reid_gan.filters.chain.ImageFilter, "
                            f"got {type(flt).__name__}")
        flt.name = name
        plain = to_plain(node)
        plain["__version__"] = reid_gan.__version__  # a new release may score differently
        flt.identity = filter_identity(plain)[:24]
        log.info("filter %d: %s", len(filters) + 1, flt.describe())
        filters.append(flt)
    if not filters:
        raise ValueError("filter.order: every filter is disabled; nothing to do")
    return FilterChain(filters, fcfg.cache, progress=fcfg.progress if progress is None else progress)


def write_kept(result: ChainResult, out: str | os.PathLike, link: str = "hardlink"):
    """The kept images of ``result`` as a set of their own (:func:`reid_gan.data.generated.write_kept_set`),
    each manifest record with its ``scores``."""
    from reid_gan.data.generated import write_kept_set

    records = [r for r in result.records() if r["kept"]]
    return write_kept_set(result.image_set.root, records, out, link,
                          marker={"filters": [f.describe() for f in result.filters]})


def chain_metrics(result: ChainResult) -> dict[str, Any]:
    """``filter/*`` metrics: images, kept, discarded (per filter: first to reject, computed, cached)."""
    n = len(result.image_set.items)
    kept = int(result.kept.sum())
    metrics: dict[str, Any] = {"filter/images": n, "filter/kept": kept, "filter/kept_fraction": kept / n,
                               "filter/discarded": n - kept}
    for f in result.filters:
        d = sum(1 for x in result.discarded_by if x == f.name)
        metrics[f"filter/discarded_{f.name}"] = d
        metrics[f"filter/discarded_{f.name}_fraction"] = d / n
        metrics[f"filter/computed_{f.name}"] = result.computed.get(f.name, 0)
        metrics[f"filter/cached_{f.name}"] = result.cached.get(f.name, 0)
    return metrics
