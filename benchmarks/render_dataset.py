"""Render speed of the embedded dataset.

    python benchmarks/render_dataset.py [--ids 40]

Renders the same dataset (``--ids`` train + ``--ids`` test identities, quickstart settings otherwise)
three times into temporary folders and prints images/s for: one process without the detector loop
(``detector_tries=1``, the baseline), one process with the default loop (``detector_tries=4``), and the
default loop in 2 processes; ratios are against the baseline. The quickstart size (100 + 100
identities, 1,885 images) takes about 1885 / (images/s of the last line) seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid_gan.data import synthetic as S  # noqa: E402


def run(tmp: Path, name: str, **kw) -> float:
    root = tmp / name
    t0 = time.perf_counter()
    info = S.render_dataset(root, progress=False, grid_ids=0, **kw)
    dt = time.perf_counter() - t0
    return info["stats"]["total_images"] / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids", type=int, default=40)
    a = ap.parse_args()
    size = dict(num_train_ids=a.ids, num_test_ids=a.ids, num_distractors=a.ids // 2, num_junk=a.ids // 3)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        S.writer._PARALLEL_MIN = 0
        base = run(tmp, "a", detector_tries=1, num_workers=1, **size)
        loop = run(tmp, "b", detector_tries=4, num_workers=1, **size)
        par = run(tmp, "c", detector_tries=4, num_workers=2, **size)
    print(f"{'1 process, no detector loop (baseline)':44s} {base:7.1f} images/s  1.00x")
    print(f"{'1 process, detector_tries=4':44s} {loop:7.1f} images/s  {loop / base:.2f}x")
    print(f"{'2 processes, detector_tries=4 (default)':44s} {par:7.1f} images/s  {par / base:.2f}x")


if __name__ == "__main__":
    main()
