"""OpenCV's HOG people detector as a person-crop scorer (the embedded default detector).

OpenCV ships a linear SVM trained on the INRIA person set (Dalal & Triggs 2005) over the default HOG
descriptor of a 64×128 (W×H) window: 8×8 cells, 16×16 blocks with an 8-pixel stride, 9 unsigned
orientation bins, L2-Hys block normalisation, gamma correction — 3780 features.
``cv2.HOGDescriptor_getDefaultPeopleDetector()`` returns 3781 numbers: the weight vector ``w`` followed by
the bias ``b``. ``hog.detect`` reports a window as a person when ``descriptor · w + b >= hitThreshold``;
OpenCV's default ``hitThreshold`` is 0, the SVM's own decision boundary.

A 128×64 (H×W) re-ID crop is exactly one detection window, so the score of a crop is the SVM **margin**
``m = descriptor(crop) · w + b`` computed here from ``hog.compute`` (tests check that it equals what
``hog.detect`` reports for the same window). Crops of another size are handled by ``mode``:

* ``"resize"`` (default): the crop is resized (``cv2.INTER_AREA`` when shrinking, ``INTER_LINEAR``
  otherwise) to 64×128 and scored as one window — the right thing for person crops of any resolution
  (e.g. 256×128 generator output), since a crop is by construction one candidate box;
* ``"search"``: a multi-scale sliding-window search (scale step ``search_scale``, stride 8 px) over the
  image, upscaled first so that its smaller side fits the window, returning the best window's margin —
  for images that are not tight person crops.

**Calibration to [0, 1].** ``score = 1 / (1 + exp(-(m - m0) / T))`` with ``T = 0.5`` and
``m0 = -T·ln(1.5) ≈ -0.2027``, chosen so that the filter threshold **0.6 corresponds to m = 0**, the SVM
boundary that OpenCV itself uses (``hitThreshold = 0``): "score ≥ 0.6" means exactly "OpenCV's HOG people
detector fires on this window". ``T`` only sets how fast the score saturates: with ``T = 0.5`` a
margin of +1 gives 0.92 and −1 gives 0.08 (on the synthetic dataset, person crops have margins of
roughly 0…+3 and background crops roughly −3…−1; see ``docs/dataset.md``). The score is monotone in
the margin, so thresholding either is the same decision.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

__all__ = ["HOGDetector", "WINDOW_HW", "margin_to_score", "score_to_margin"]

WINDOW_HW = (128, 64)  # the default people detector's window, H×W
DEFAULT_TEMPERATURE = 0.5
DEFAULT_THRESHOLD_SCORE = 0.6  # the filter stage's threshold ↔ margin 0


def _offset(temperature: float, threshold_score: float) -> float:
    # m0 such that sigmoid((0 - m0) / T) == threshold_score
    return -temperature * math.log(threshold_score / (1.0 - threshold_score))


def margin_to_score(margin: np.ndarray | float, temperature: float = DEFAULT_TEMPERATURE,
                    threshold_score: float = DEFAULT_THRESHOLD_SCORE) -> np.ndarray:
    """Calibrated score in [0, 1]; ``threshold_score`` is the score of margin 0 (the SVM boundary)."""
    m = np.asarray(margin, dtype=np.float64)
    z = (m - _offset(temperature, threshold_score)) / temperature
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))


def score_to_margin(score: np.ndarray | float, temperature: float = DEFAULT_TEMPERATURE,
                    threshold_score: float = DEFAULT_THRESHOLD_SCORE) -> np.ndarray:
    """Inverse of :func:`margin_to_score` (score in (0, 1))."""
    s = np.clip(np.asarray(score, dtype=np.float64), 1e-12, 1 - 1e-12)
    return _offset(temperature, threshold_score) + temperature * np.log(s / (1.0 - s))


class HOGDetector:
    """Scores BGR uint8 person crops with OpenCV's default HOG + linear-SVM people detector.

    Args:
        mode: ``"resize"`` (score the crop as one 64×128 window) or ``"search"`` (best window of a
            multi-scale sliding-window search); see the module docstring.
        temperature: ``T`` of the logistic calibration (> 0).
        threshold_score: the calibrated score that margin 0 maps to (in (0, 1); 0.6 = the filter's
            threshold, so "score ≥ 0.6" ⇔ "OpenCV's detector fires").
        search_scale: pyramid step of ``mode="search"`` (> 1).
    """

    def __init__(self, mode: str = "resize", temperature: float = DEFAULT_TEMPERATURE,
                 threshold_score: float = DEFAULT_THRESHOLD_SCORE, search_scale: float = 1.1) -> None:
        if mode not in ("resize", "search"):
            raise ValueError(f"HOGDetector.mode must be 'resize' or 'search' (got {mode!r})")
        if not temperature > 0:
            raise ValueError(f"HOGDetector.temperature must be > 0 (got {temperature!r})")
        if not 0.0 < threshold_score < 1.0:
            raise ValueError(f"HOGDetector.threshold_score must be in (0, 1) (got {threshold_score!r})")
        if not search_scale > 1.0:
            raise ValueError(f"HOGDetector.search_scale must be > 1 (got {search_scale!r})")
        self.mode = mode
        self.temperature = float(temperature)
        self.threshold_score = float(threshold_score)
        self.search_scale = float(search_scale)
        self.hog = cv2.HOGDescriptor()  # defaults: 64×128 window, 16/8/8 block/stride/cell, 9 bins
        detector = np.asarray(cv2.HOGDescriptor_getDefaultPeopleDetector(), dtype=np.float32).ravel()
        n = self.hog.getDescriptorSize()
        assert detector.shape == (n + 1,), (detector.shape, n)
        self.weights = detector[:n].astype(np.float64)  # (3780,)
        self.bias = float(detector[n])
        self.hog.setSVMDetector(detector)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check(img: np.ndarray, i: int) -> np.ndarray:
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            raise TypeError(f"image {i}: expected a uint8 numpy array (BGR), got "
                            f"{type(img).__name__} {getattr(img, 'dtype', '')}")
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise ValueError(f"image {i}: expected H×W×3 BGR, got shape {img.shape}")
        if img.shape[2] == 4:
            img = img[:, :, :3]
        return np.ascontiguousarray(img)

    @staticmethod
    def to_window(img: np.ndarray) -> np.ndarray:
        """Resize a crop to the 64×128 detection window (no-op for 128×64 crops)."""
        h, w = img.shape[:2]
        if (h, w) == WINDOW_HW:
            return img
        shrink = h > WINDOW_HW[0] or w > WINDOW_HW[1]
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        return cv2.resize(img, (WINDOW_HW[1], WINDOW_HW[0]), interpolation=interp)

    def window_margin(self, window: np.ndarray) -> float:
        """``descriptor · w + b`` of one 128×64 BGR window (the SVM's decision value)."""
        assert window.shape[:2] == WINDOW_HW, window.shape
        desc = self.hog.compute(window)
        desc = np.asarray(desc, dtype=np.float64).ravel()
        assert desc.shape == self.weights.shape, desc.shape
        return float(desc @ self.weights + self.bias)

    def _search_margin(self, img: np.ndarray) -> float:
        h, w = img.shape[:2]
        up = max(WINDOW_HW[0] / h, WINDOW_HW[1] / w, 1.0)
        if up > 1.0:
            img = cv2.resize(img, (max(WINDOW_HW[1], math.ceil(w * up)), max(WINDOW_HW[0], math.ceil(h * up))),
                             interpolation=cv2.INTER_LINEAR)
        best = -math.inf
        scale = 1.0
        cur = img
        while cur.shape[0] >= WINDOW_HW[0] and cur.shape[1] >= WINDOW_HW[1]:
            _, weights = self.hog.detect(cur, hitThreshold=-1e9, winStride=(8, 8), padding=(0, 0))
            if len(weights):
                best = max(best, float(np.max(weights)))
            scale *= self.search_scale
            nh, nw = round(img.shape[0] / scale), round(img.shape[1] / scale)
            if nh < WINDOW_HW[0] or nw < WINDOW_HW[1]:
                break
            cur = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        return best

    # ------------------------------------------------------------------ API
    def margin(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """The SVM margin of each BGR uint8 image (float64, shape ``(N,)``); ≥ 0 ⇔ OpenCV detects."""
        out = np.empty(len(images), dtype=np.float64)
        for i, img in enumerate(images):
            img = self._check(img, i)
            out[i] = self.window_margin(self.to_window(img)) if self.mode == "resize" else self._search_margin(img)
        return out

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Calibrated person score in [0, 1] per image (see the module docstring)."""
        return margin_to_score(self.margin(images), self.temperature, self.threshold_score)

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.score(images)

    def __repr__(self) -> str:
        return (f"HOGDetector(mode={self.mode!r}, temperature={self.temperature}, "
                f"threshold_score={self.threshold_score})")
