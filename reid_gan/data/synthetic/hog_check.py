"""How often OpenCV's HOG people detector fires on a rendered dataset: ``<root>/hog_check.json``.

The images are taken evenly spaced over the sorted file list of all splits (deterministic); the pass
rate is the share whose calibrated score (:class:`reid_gan.filters.hog.HOGDetector`) reaches ``threshold``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reid_gan.data.synthetic.params import SPLITS

HOG_CHECK = "hog_check.json"


def hog_pass_rate(root: str | Path, n_images: int, threshold: float = 0.6) -> dict[str, Any]:
    """HOG detector pass rates on up to ``n_images`` person images (pid > 0) and on all images.

    The images are taken evenly spaced over the sorted file list of each split (deterministic).
    """
    import cv2

    from reid_gan.data.market1501 import parse_name
    from reid_gan.filters.hog import HOGDetector

    root = Path(root)
    files = sorted(p for s in SPLITS for p in (root / s).glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"{root}: no images in {', '.join(SPLITS)}")
    idx = np.unique(np.linspace(0, len(files) - 1, min(n_images, len(files))).round().astype(int))
    sel = [files[i] for i in idx]
    imgs = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sel]
    bad = [str(p) for p, im in zip(sel, imgs) if im is None]
    if bad:
        raise OSError(f"unreadable image(s): {bad[:5]}")
    det = HOGDetector()
    scores = det.score(imgs)
    pids = np.array([parse_name(p.name)[0] for p in sel])
    person = pids > 0
    ok = scores >= threshold
    return {
        "threshold": threshold,
        "images": int(len(sel)),
        "person_images": int(person.sum()),
        "pass_rate_person": float(ok[person].mean()) if person.any() else float("nan"),
        "pass_rate_all": float(ok.mean()),
        "pass_rate_distractor_junk": float(ok[~person].mean()) if (~person).any() else float("nan"),
        "median_score_person": float(np.median(scores[person])) if person.any() else float("nan"),
    }


def write_hog_check(root: str | Path, n_images: int, threshold: float, fingerprint: str) -> dict[str, Any]:
    """:func:`hog_pass_rate` plus the render's ``fingerprint``, written atomically to ``<root>/hog_check.json``."""
    from reid_gan.utils.io import atomic_write_json

    hog = hog_pass_rate(root, n_images, threshold)
    hog["fingerprint"] = fingerprint
    atomic_write_json(Path(root) / HOG_CHECK, hog)
    return hog
