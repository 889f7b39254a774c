"""Schemas of the ``filter`` group (the filter stage: detector, SSIM, identity consistency)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

from reid_gan.config import check

SPLITS = ("bounding_box_train", "query", "bounding_box_test")
KNOWN_STEPS = ("detector", "ssim", "identity")


@dataclass
class FilterSchema:
    # the set to filter: a generated set (Market layout + manifest.jsonl) or any Market-layout folder
    source: str = "${oc.select:generate.out,${paths.artifacts}/generated}"
    # the kept set (hard links to the source's files, copies where links fail) + its manifest
    out: str = "${paths.output_dir}/kept"
    report_dir: str = "${paths.output_dir}/report"
    # score cache shared by runs (JSON lines, keyed by image hash + filter config)
    cache: Optional[str] = "${paths.artifacts}/filter_cache/scores.jsonl"
    # splits read when the source has no manifest.jsonl
    splits: List[str] = field(default_factory=lambda: ["bounding_box_train"])
    # filters applied in this order (names of entries in `chain`; disabled ones are skipped)
    order: List[str] = field(default_factory=lambda: ["detector", "ssim", "identity"])
    # name → _target_ node of a reid_gan.filters.chain.ImageFilter (threshold, enabled, ...)
    chain: Dict[str, Any] = field(default_factory=dict)
    # the pedestrian detector (`detector=hog|yolov4_tiny` fills this node)
    detector: Any = None
    link: str = "hardlink"          # hardlink | copy
    # an image of the set that cannot be decoded: error (default, before any scoring) or skip (warning + count)
    on_bad_image: str = "${data.on_bad_image}"
    grid_examples: int = 32         # discarded examples shown per filter (PNG grid)
    progress: bool = True
    # calibrate=true: score a real set and plot rejection rate vs threshold
    calibrate_source: str = "${data.root}"
    calibrate_splits: List[str] = field(default_factory=lambda: ["bounding_box_train"])
    calibrate_target: Optional[float] = None   # pick the threshold rejecting this fraction of real images
    calibrate_max_images: Optional[int] = None  # score at most this many (evenly spaced) real images

    def __post_init__(self) -> None:
        check(self.link in ("hardlink", "copy"), "link", "must be hardlink or copy", self.link)
        check(self.on_bad_image in ("skip", "error"), "on_bad_image", "must be skip or error", self.on_bad_image)
        for key in ("splits", "calibrate_splits"):
            v = list(getattr(self, key))
            check(len(v) > 0 and all(s in SPLITS for s in v), key, f"must list split folders among {', '.join(SPLITS)}", v)
        check(self.grid_examples >= 0, "grid_examples", "must be >= 0", self.grid_examples)
        check(len(set(self.order)) == len(self.order), "order", "must not repeat a filter", self.order)
        for name in self.order:
            check(name in self.chain, "order", f"names a filter {name!r} that is not in filter.chain "
                  f"(known: {sorted(self.chain)})", self.order)
        for name, node in self.chain.items():
            check(isinstance(node, dict) and "_target_" in node, f"chain.{name}",
                  "must be a node with a _target_", None)
            thr = node.get("threshold")
            lo = -1.0 if name == "identity" else 0.0  # identity: a cosine similarity
            check(isinstance(thr, (int, float)) and lo <= thr <= 1.0, f"chain.{name}.threshold",
                  f"must be a number in [{lo:g}, 1]", thr)
            bs = node.get("batch_size", 1)
            check(isinstance(bs, int) and bs > 0, f"chain.{name}.batch_size", "must be an int > 0", bs)
            if name == "ssim" or "SSIMFilter" in str(node.get("_target_")):
                ref = node.get("reference", "base")
                check(ref in ("base", "medoid", "real"), f"chain.{name}.reference", "must be base, medoid or real", ref)
        det = self.detector if isinstance(self.detector, dict) else {}
        if "YOLOv4Tiny" in str(det.get("_target_", "")):
            size = det.get("input_size", 416)
            check(isinstance(size, int) and size > 0 and size % 32 == 0, "detector.input_size",
                  "must be a positive multiple of 32", size)
        check(self.calibrate_target is None or 0.0 <= self.calibrate_target <= 1.0, "calibrate_target",
              "must be a fraction in [0, 1]", self.calibrate_target)
        check(self.calibrate_max_images is None or self.calibrate_max_images > 0, "calibrate_max_images",
              "must be > 0", self.calibrate_max_images)


def register(cs: ConfigStore) -> None:
    cs.store(group="filter", name="filter_schema", node=FilterSchema)
