"""The pedestrian-detector filter: keep an image when a detector's person score clears the threshold."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from reid_gan.filters.base import ImageFilter, ImageSet, read_bgr

__all__ = ["DetectorFilter"]


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
