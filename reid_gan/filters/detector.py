"""Pedestrian detectors for the filter stage: the common interface and YOLOv4-tiny via OpenCV DNN.

A detector maps a list of BGR uint8 images (``cv2.imread``'s layout, any size) to one person score in
[0, 1] per image (``score(images) -> np.ndarray[float64]``). The filter keeps an image whose score is
≥ the threshold (0.6 in the thesis, which used YOLOv4-tiny).

YOLOv4-tiny (:class:`YOLOv4Tiny`): a local darknet ``.cfg`` + ``.weights`` pair (nothing is downloaded),
read by ``cv2.dnn.readNetFromDarknet``. Preprocessing is exactly
``cv2.dnn.blobFromImage(img, 1/255, (size, size), swapRB=True, crop=False)`` (a plain resize to the
square input, no letterbox). OpenCV's yolo layers output one row per anchor box:
``[cx, cy, w, h, objectness, p_0 … p_79]`` where the class columns are already
``objectness × P(class | object)`` (OpenCV multiplies them in its region layer and writes 0 where that
product is at or below the layer's threshold, 0.2 for darknet yolo layers — so scores below ~0.2 read as 0;
the filter's thresholds are well above that). Image score = the largest person (COCO class 0) column over
all rows of both yolo output layers, i.e. the best person confidence of any box, before NMS (NMS never
removes the best box, so this equals the best confidence after NMS).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from reid_gan.utils.weights import WeightsError, resolve_weights_path

__all__ = [
    "Detector",
    "YOLOv4Tiny",
    "parse_darknet_cfg",
    "darknet_conv_layers",
    "darknet_weights_size",
]


@runtime_checkable
class Detector(Protocol):
    """What the filter chain needs from a pedestrian detector."""

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """BGR uint8 [H, W, 3] arrays → float array [len(images)] of person scores in [0, 1]."""
        ...


def parse_darknet_cfg(path: str | os.PathLike) -> list[dict[str, str]]:
    """Sections of a darknet ``.cfg`` in order: ``[{'type': 'convolutional', 'filters': '32', ...}, ...]``."""
    sections: list[dict[str, str]] = []
    for lineno, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ValueError(f"{path}:{lineno}: malformed section header {raw!r}")
            sections.append({"type": line[1:-1].strip()})
        elif "=" in line:
            if not sections:
                raise ValueError(f"{path}:{lineno}: option before the first section")
            k, v = line.split("=", 1)
            sections[-1][k.strip()] = v.strip()
        else:
            raise ValueError(f"{path}:{lineno}: cannot parse {raw!r}")
    if not sections or sections[0]["type"] not in ("net", "network"):
        raise ValueError(f"{path}: a darknet cfg starts with a [net] section")
    return sections


def darknet_conv_layers(cfg_path: str | os.PathLike) -> list[dict[str, int]]:
    """Every convolutional layer's shape as darknet stores it in a ``.weights`` file, in order.

    Each entry: ``in_channels``, ``filters``, ``size``, ``groups``, ``batch_normalize`` and ``n_floats``
    (biases [+ BN scales, rolling means, rolling variances] + weights). Follows channel counts through
    route (incl. ``groups``/``group_id``), shortcut, maxpool, upsample and yolo layers.
    """
    sections = parse_darknet_cfg(cfg_path)
    net = sections[0]
    channels = int(net.get("channels", 3))
    out_ch: list[int] = []  # output channels of each layer after [net]
    convs: list[dict[str, int]] = []
    for idx, s in enumerate(sections[1:]):
        t = s["type"]
        if t in ("convolutional", "conv"):
            filters = int(s.get("filters", 1))
            size = int(s.get("size", 1))
            groups = int(s.get("groups", 1))
            bn = int(s.get("batch_normalize", 0))
            n = filters + (3 * filters if bn else 0) + filters * (channels // groups) * size * size
            convs.append({"in_channels": channels, "filters": filters, "size": size, "groups": groups,
                          "batch_normalize": bn, "n_floats": n})
            channels = filters
        elif t == "route":
            layers = [int(v) for v in s["layers"].split(",")]
            total = 0
            for li in layers:
                j = li if li >= 0 else idx + li
                total += out_ch[j]
            channels = total // int(s.get("groups", 1))
        elif t == "shortcut":
            pass
        elif t in ("maxpool", "upsample", "yolo", "region", "dropout", "avgpool"):
            pass
        else:
            raise ValueError(f"{cfg_path}: unsupported darknet layer [{t}] (section {idx + 1})")
        out_ch.append(channels)
    return convs


def darknet_weights_size(cfg_path: str | os.PathLike, major: int = 0, minor: int = 2) -> int:
    """Bytes of a darknet ``.weights`` file for this cfg (header of 3 int32 + ``seen`` int32/int64)."""
    header = 12 + (8 if major * 10 + minor >= 2 else 4)
    return header + 4 * sum(c["n_floats"] for c in darknet_conv_layers(cfg_path))


class YOLOv4Tiny:
    """YOLOv4-tiny person confidence through OpenCV's DNN module (CPU).

    Args:
        cfg: path of the darknet ``yolov4-tiny.cfg``.
        weights: path of the matching darknet ``.weights`` (24,251,276 bytes for the COCO model).
        input_size: square network input (a multiple of 32; 416 as in the thesis).
        person_class: index of the person class (COCO: 0).
        batch_size: images per forward pass.
        key: config key prefix used in error messages (``filter.detector``).
    """

    name = "yolov4_tiny"

    def __init__(self, cfg: str, weights: str, input_size: int = 416, person_class: int = 0,
                 batch_size: int = 16, key: str = "filter.detector"):
        import cv2

        if input_size <= 0 or input_size % 32:
            raise ValueError(f"{key}.input_size: must be a positive multiple of 32 (got {input_size})")
        cfg_path = resolve_weights_path(cfg, f"{key}.cfg")
        w_path = resolve_weights_path(weights, f"{key}.weights")
        if cfg_path is None or w_path is None:
            missing = f"{key}.cfg" if cfg_path is None else f"{key}.weights"
            raise WeightsError(f"{missing}: not set; YOLOv4-tiny needs a local darknet cfg and weights file "
                               f"(or use detector=hog, the embedded substitute)")
        sizes = {darknet_weights_size(cfg_path, 0, 2), darknet_weights_size(cfg_path, 0, 1)}
        actual = w_path.stat().st_size
        if actual not in sizes:
            raise WeightsError(f"{key}.weights={w_path}: {actual} bytes, but {cfg_path.name} needs "
                               f"{' or '.join(str(s) for s in sorted(sizes))} bytes (wrong file or cfg?)")
        try:
            self.net = cv2.dnn.readNetFromDarknet(str(cfg_path), str(w_path))
        except cv2.error as e:
            raise WeightsError(f"{key}: OpenCV cannot read {cfg_path} / {w_path}: {e}") from e
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.out_names = list(self.net.getUnconnectedOutLayersNames())
        self.input_size = int(input_size)
        self.person_class = int(person_class)
        self.batch_size = int(batch_size)
        self.cfg_path, self.weights_path = cfg_path, w_path

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Best person confidence (objectness × class probability) per image, in [0, 1]."""
        import cv2

        scores = np.zeros(len(images), dtype=np.float64)
        size = (self.input_size, self.input_size)
        for start in range(0, len(images), self.batch_size):
            batch = list(images[start:start + self.batch_size])
            for img in batch:
                if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3
                        and img.shape[2] == 3):
                    raise ValueError("YOLOv4Tiny.score: expected BGR uint8 [H, W, 3] arrays")
            blob = cv2.dnn.blobFromImages(batch, 1 / 255.0, size, swapRB=True, crop=False)
            self.net.setInput(blob)
            outs = self.net.forward(self.out_names)
            col = 5 + self.person_class
            best = np.zeros(len(batch), dtype=np.float64)
            for out in outs:
                # batched yolo output: [batch, rows, 5 + classes]; a single image may come as [rows, 85]
                arr = out.reshape(len(batch), -1, out.shape[-1])
                best = np.maximum(best, arr[:, :, col].max(axis=1))
            scores[start:start + len(batch)] = best
        return np.clip(scores, 0.0, 1.0)

    def describe(self) -> str:
        return (f"YOLOv4-tiny (OpenCV DNN, {self.cfg_path.name} + {self.weights_path.name}, "
                f"{self.input_size}x{self.input_size}, person = class {self.person_class})")
