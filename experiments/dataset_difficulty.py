"""How hard is the embedded dataset for a colour-histogram matcher? (re-ID with no learning at all)

    python experiments/dataset_difficulty.py [DATASET_ROOT]

Ranks the gallery for every query by the chi-square distance between HSV colour histograms (8×8×4
bins; over the whole crop or the central person box; in 1 or 3 horizontal stripes), with the Market-1501 protocol
(gallery images of the query's identity from the query's camera are ignored, junk pid -1 ignored,
distractors pid 0 kept), and prints Rank@1 and mAP next to a random ranking's. A learned re-ID
model should beat these by a clear margin; if colour histograms solved the dataset, it would be useless
for testing whether generated people help.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import cv2
import numpy as np

PAT = re.compile(r"^(-1|\d{4})_c(\d)s\d_\d{6}_\d{2}\.jpg$")


def load(folder: Path):
    paths, pids, cams = [], [], []
    for p in sorted(folder.glob("*.jpg")):
        m = PAT.match(p.name)
        if m is None or int(m.group(1)) == -1:
            continue
        paths.append(p)
        pids.append(int(m.group(1)))
        cams.append(int(m.group(2)))
    return paths, np.array(pids), np.array(cams)


def hist(img: np.ndarray, stripes: int, centre: bool = False) -> np.ndarray:
    if centre:  # where the person is: the middle half of the width, head to feet
        H, W = img.shape[:2]
        img = img[int(0.12 * H):int(0.9 * H), int(0.3 * W):int(0.7 * W)]
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    h = img.shape[0]
    feats = []
    for i in range(stripes):
        part = hsv[i * h // stripes:(i + 1) * h // stripes]
        f = cv2.calcHist([part], [0, 1, 2], None, [8, 8, 4], [0, 180, 0, 256, 0, 256]).ravel()
        feats.append(f / max(f.sum(), 1.0))
    return np.concatenate(feats) / stripes


def evaluate(dist: np.ndarray, qp, qc, gp, gc) -> tuple[float, float]:
    r1, aps = [], []
    for i in range(len(qp)):
        keep = ~((gp == qp[i]) & (gc == qc[i]))
        order = np.argsort(dist[i][keep], kind="stable")
        match = (gp[keep][order] == qp[i])
        if not match.any():
            continue
        r1.append(float(match[0]))
        hits = np.cumsum(match)
        prec = hits[match] / (np.flatnonzero(match) + 1)
        aps.append(float(prec.mean()))
    return float(np.mean(r1)), float(np.mean(aps))


def chi2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty((len(a), len(b)))
    for i, x in enumerate(a):
        out[i] = 0.5 * (((x - b) ** 2) / (x + b + 1e-10)).sum(1)
    return out


def main(root: str) -> None:
    root = Path(root)
    qpaths, qp, qc = load(root / "query")
    gpaths, gp, gc = load(root / "bounding_box_test")
    if not len(qp) or not len(gp):
        sys.exit(f"{root}: no query or gallery images")
    qi = [cv2.imread(str(p)) for p in qpaths]
    gi = [cv2.imread(str(p)) for p in gpaths]
    print(f"{root}: {len(qp)} queries, {len(gp)} gallery images")
    rng = np.random.default_rng(0)
    r1, mAP = evaluate(rng.random((len(qp), len(gp))), qp, qc, gp, gc)
    print(f"{'random ranking':40s} Rank@1 {r1:.3f}  mAP {mAP:.3f}")
    for centre in (False, True):
        for stripes in (1, 3):
            qf = np.stack([hist(x, stripes, centre) for x in qi])
            gf = np.stack([hist(x, stripes, centre) for x in gi])
            r1, mAP = evaluate(chi2(qf, gf), qp, qc, gp, gc)
            name = f"HSV hist, {stripes} stripe(s), {'person box' if centre else 'whole crop'}"
            print(f"{name:40s} Rank@1 {r1:.3f}  mAP {mAP:.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/synthetic-market")
