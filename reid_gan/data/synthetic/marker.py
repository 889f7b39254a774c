"""The rendered dataset's record: ``DATASET.json`` (parameters, statistics, content hash; written last, the
completion marker), the in-progress marker, the README, and whether a folder holds a complete render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from reid_gan.data.synthetic.params import SPLITS, ImageSpec, RenderParams

MARKER = "DATASET.json"
IN_PROGRESS = ".render_in_progress.json"
#: the ``generator`` recorded in the markers (a folder only this renderer made is ever replaced)
GENERATOR = "reid_gan.data.synthetic"


def _stats(specs: list[ImageSpec], scheme_of: Mapping[int, int]) -> dict[str, Any]:
    def per_split(split: str) -> dict[str, Any]:
        s = [x for x in specs if x.split == split]
        ids = {x.pid for x in s if x.pid > 0}
        per_id: dict[int, int] = {}
        cams: dict[int, set] = {}
        for x in s:
            if x.pid > 0:
                per_id[x.pid] = per_id.get(x.pid, 0) + 1
                cams.setdefault(x.pid, set()).add(x.cam)
        counts = list(per_id.values()) or [0]
        return {"images": len(s), "identities": len(ids),
                "images_per_identity": {"min": min(counts), "mean": round(float(np.mean(counts)), 2),
                                        "max": max(counts)},
                "distractors": sum(1 for x in s if x.pid == 0),
                "junk": sum(1 for x in s if x.pid == -1),
                "cameras": sorted({x.cam for x in s})}

    test_ids = {x.pid for x in specs if x.split != "bounding_box_train" and x.pid > 0}
    all_cams: dict[int, set] = {}
    for x in specs:
        if x.pid > 0:
            all_cams.setdefault(x.pid, set()).add(x.cam)
    ncams = [len(v) for v in all_cams.values()]
    twins = sum(1 for p, s in scheme_of.items() if s != p)
    return {
        "splits": {sp: per_split(sp) for sp in SPLITS},
        "total_images": len(specs),
        "test_identities": len(test_ids),
        "cameras_per_identity": {"min": min(ncams), "mean": round(float(np.mean(ncams)), 2), "max": max(ncams)},
        "colour_twins": twins,
    }


def is_rendered(root: str | Path, params: RenderParams | None = None) -> bool:
    """True when ``root`` holds a complete render (of ``params``, when given)."""
    root = Path(root)
    marker = root / MARKER
    if not marker.is_file() or (root / IN_PROGRESS).exists():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if params is not None and info.get("fingerprint") != params.fingerprint():
        return False
    counts = info.get("file_counts", {})
    for split in SPLITS:
        d = root / split
        if not d.is_dir() or sum(1 for _ in d.glob("*.jpg")) != counts.get(split, -1):
            return False
    return True


def _ours(root: Path) -> bool:
    for name in (MARKER, IN_PROGRESS):
        p = root / name
        if p.is_file():
            try:
                if json.loads(p.read_text()).get("generator") == GENERATOR:
                    return True
            except (OSError, json.JSONDecodeError):
                pass
    return False


def _readme(info: dict[str, Any]) -> str:
    st = info["stats"]
    lines = [
        "# Synthetic pedestrian dataset (Market-1501 layout)",
        "",
        "Rendered procedurally by `reid_gan.data.synthetic` (`python -m reid_gan.make_dataset`).",
        "Same parameters give byte-identical files; `content_sha256` in DATASET.json hashes them all.",
        "",
        "| split | images | identities | distractors (0000) | junk (-1) |",
        "|---|---|---|---|---|",
    ]
    for sp in SPLITS:
        s = st["splits"][sp]
        lines.append(f"| {sp} | {s['images']} | {s['identities']} | {s['distractors']} | {s['junk']} |")
    c = st["cameras_per_identity"]
    lines += [
        "",
        f"Cameras per identity: min {c['min']}, mean {c['mean']}, max {c['max']}. "
        f"Identities wearing another identity's clothing colours: {st['colour_twins']}.",
        "",
        "Parameters:",
        "",
        "```json",
        json.dumps(info["params"], indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)
