"""Filter-stage speed: SSIM pairs/s (ours vs a per-pair scikit-image loop) and detector images/s.

    python benchmarks/filters.py [--pairs 256] [--threads 2] [--yolo-images 16]

SSIM: 128×64 RGB uint8 pairs, the Wang et al. 2004 setting (11×11 Gaussian, σ 1.5), ours
(``reid_gan.metrics.ssim.ssim``, batched torch) against ``skimage.metrics.structural_similarity`` called
once per pair, both in this process with the same thread count; the results are checked equal (1e-4).
Detectors: HOG (OpenCV's people detector, one 64×128 window per crop) and YOLOv4-tiny through OpenCV DNN
at 416×416 with a **random-valued** weights file in darknet's format written here (speed does not depend
on the values; no real weights are needed or downloaded).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_ssim(pairs: int, repeat: int) -> dict[str, float]:
    import torch
    from skimage.metrics import structural_similarity

    from reid_gan.metrics.ssim import ssim

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (pairs, 128, 64, 3), dtype=np.uint8)
    noise = rng.integers(-40, 41, a.shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    ta = torch.from_numpy(a).permute(0, 3, 1, 2)
    tb = torch.from_numpy(b).permute(0, 3, 1, 2)

    def ref_loop():
        return np.array([structural_similarity(a[i], b[i], channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False, data_range=255) for i in range(pairs)])

    ours_vals = ssim(ta, tb).numpy()
    ref_vals = ref_loop()
    err = float(np.abs(ours_vals - ref_vals).max())
    assert err < 1e-4, f"SSIM differs from skimage by {err}"
    t_ours = best_of(lambda: ssim(ta, tb), repeat)
    t_ref = best_of(ref_loop, max(1, repeat // 2))
    return {"ours_pairs_s": pairs / t_ours, "skimage_pairs_s": pairs / t_ref, "max_abs_diff": err}


def bench_detectors(n_images: int, repeat: int, yolo_images: int) -> dict[str, float]:
    import cv2

    from reid_gan.filters.detector import YOLOv4Tiny

    out: dict[str, float] = {}
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (128, 64, 3), dtype=np.uint8) for _ in range(n_images)]
    try:
        from reid_gan.filters.hog import HOGDetector
    except ImportError:
        HOGDetector = None
    if HOGDetector is not None:
        hog = HOGDetector()
        hog.score(crops[:2])
        out["hog_images_s"] = n_images / best_of(lambda: hog.score(crops), repeat)
    # baseline in the same process: OpenCV's raw HOG descriptor + SVM dot product per crop
    h = cv2.HOGDescriptor()
    w = np.asarray(cv2.HOGDescriptor_getDefaultPeopleDetector(), np.float32).ravel()
    out["raw_hog_compute_images_s"] = n_images / best_of(
        lambda: [float(h.compute(c).ravel() @ w[:-1] + w[-1]) for c in crops], repeat)

    sys.path.insert(0, str(ROOT / "tests"))
    from filter_helpers import YOLO_CFG, write_random_darknet_weights

    with tempfile.TemporaryDirectory() as tmp:
        weights = write_random_darknet_weights(YOLO_CFG, Path(tmp) / "random.weights")
        det = YOLOv4Tiny(str(YOLO_CFG), str(weights), input_size=416, batch_size=8)
        det.score(crops[:2])
        sub = crops[:yolo_images]
        out["yolov4_tiny_416_images_s"] = len(sub) / best_of(lambda: det.score(sub), max(1, repeat // 2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--images", type=int, default=256, help="crops for the HOG timing")
    ap.add_argument("--yolo-images", type=int, default=16)
    args = ap.parse_args()

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    print(f"torch {torch.__version__}, OpenCV {cv2.__version__}, {args.threads} threads")
    s = bench_ssim(args.pairs, args.repeat)
    print(f"SSIM 128x64 RGB ({args.pairs} pairs): ours {s['ours_pairs_s']:.0f} pairs/s, "
          f"skimage loop {s['skimage_pairs_s']:.0f} pairs/s -> {s['ours_pairs_s'] / s['skimage_pairs_s']:.2f}x "
          f"(max |diff| {s['max_abs_diff']:.1e})")
    d = bench_detectors(args.images, args.repeat, args.yolo_images)
    if "hog_images_s" in d:
        print(f"HOG detector (128x64 crops): {d['hog_images_s']:.0f} images/s "
              f"(raw cv2 HOG compute + dot: {d['raw_hog_compute_images_s']:.0f} images/s, "
              f"ratio {d['hog_images_s'] / d['raw_hog_compute_images_s']:.2f}x)")
    else:
        print(f"HOG detector: reid_gan.filters.hog not available; raw cv2 HOG compute + dot: "
              f"{d['raw_hog_compute_images_s']:.0f} images/s")
    print(f"YOLOv4-tiny 416x416 via OpenCV DNN (random weights): {d['yolov4_tiny_416_images_s']:.1f} images/s")


if __name__ == "__main__":
    main()
