"""A stand-in for a kept generated set, until the generate/filter stages produce real ones.

Renders NEW people with the embedded renderer under another seed (so they are not the dataset's
identities) and writes them in the generated-set format: ``bounding_box_train/PPPPP_c7s1_FFFFFF_00.jpg``
with pids from 10000 and ``manifest.jsonl`` (``method: "standin_render"``, ``source: "seed"``). These are
rendered people, not GAN output: use them to exercise ``aug.persons=N`` and the sweep/report machinery,
not to answer the thesis's question.

    python experiments/standin_generated_set.py OUT --persons 40 --images-per-person 8
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid_gan.data.market1501 import FolderDataset  # noqa: E402
from reid_gan.data.synthetic import ensure_rendered  # noqa: E402
from reid_gan.utils.io import append_jsonl  # noqa: E402


def build_standin_set(out: str | Path, persons: int, images_per_person: int, seed: int = 777,
                      height: int = 128, width: int = 64) -> Path:
    out = Path(out)
    if (out / "manifest.jsonl").exists():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        root = ensure_rendered(Path(tmp) / "render", {
            "seed": seed, "num_train_ids": persons, "num_test_ids": 1,
            "images_per_id": [images_per_person, images_per_person], "num_distractors": 1, "num_junk": 1,
            "height": height, "width": width, "grid_ids": 0, "num_workers": 1}, progress=False)
        ds = FolderDataset(root)
        (out / "bounding_box_train").mkdir(parents=True, exist_ok=True)
        frame: dict[int, int] = {}
        records = []
        for s, pid in zip(ds.train, ds.train_orig_pids):
            new_pid = 10000 + sorted(set(ds.train_orig_pids)).index(pid)
            i = frame.get(new_pid, 0)
            frame[new_pid] = i + 1
            name = f"{new_pid:05d}_c7s1_{i:06d}_00.jpg"
            shutil.copyfile(s.path, out / "bounding_box_train" / name)
            records.append({"file": f"bounding_box_train/{name}", "pid": new_pid, "source": "seed", "seed": seed,
                            "method": "standin_render", "params": {"render_pid": int(pid)}, "psi": None,
                            "generator_sha256": None})
        append_jsonl(out / "manifest.jsonl", records)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--persons", type=int, default=40)
    ap.add_argument("--images-per-person", type=int, default=8)
    ap.add_argument("--seed", type=int, default=777)
    a = ap.parse_args()
    print(build_standin_set(a.out, a.persons, a.images_per_person, a.seed))


if __name__ == "__main__":
    main()
