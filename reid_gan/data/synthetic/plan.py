"""The plan: which files the dataset has (split, name, pid, camera, kind) and who wears whose colours."""

from __future__ import annotations

import numpy as np

from reid_gan.data.market1501 import format_name
from reid_gan.data.synthetic.params import _T_PLAN, ImageSpec, RenderParams, _rng

_DISTRACTOR_BASE = 20000  # identity numbers of never-listed people drawn into distractors


def plan_dataset(params: RenderParams) -> tuple[list[ImageSpec], dict[int, int]]:
    """The list of files to render and, per identity, whose clothing colours it wears.

    Returns ``(specs, scheme_of)``; ``scheme_of[pid]`` is the identity whose colours ``pid`` copies
    (itself when it has its own).
    """
    rng = _rng(params.seed, _T_PLAN)
    n_total = params.num_train_ids + params.num_test_ids
    pids = rng.permutation(np.arange(params.pid_start, params.pid_start + n_total))
    train_ids = sorted(int(p) for p in pids[: params.num_train_ids])
    test_ids = sorted(int(p) for p in pids[params.num_train_ids:])

    scheme_of: dict[int, int] = {}
    for group in (train_ids, test_ids):
        order = [int(p) for p in rng.permutation(group)]
        for i, pid in enumerate(order):
            if i > 0 and rng.random() < params.shared_colour_prob:
                src = order[int(rng.integers(0, i))]
                scheme_of[pid] = scheme_of[src]
            else:
                scheme_of[pid] = pid

    specs: list[ImageSpec] = []
    used: set[str] = set()

    def unique_name(pid: int, cam: int) -> str:
        while True:
            seq = int(rng.integers(1, 7))
            frame = int(rng.integers(1, 999999))
            box = int(rng.integers(0 if pid <= 0 else 1, 9))
            name = format_name(pid, cam, seq, frame, box)
            if name not in used:
                used.add(name)
                return name

    def id_images(pid: int) -> dict[int, int]:
        n = int(rng.integers(params.images_per_id[0], params.images_per_id[1] + 1))
        k_hi = min(params.cameras_per_id[1], params.num_cameras, n)
        k_lo = min(params.cameras_per_id[0], k_hi)
        k = int(rng.integers(k_lo, k_hi + 1))
        cams = sorted(int(c) + 1 for c in rng.choice(params.num_cameras, size=k, replace=False))
        counts = {c: 1 for c in cams}
        for c in rng.choice(cams, size=n - k, replace=True):
            counts[int(c)] += 1
        return counts

    for pid in train_ids:
        for cam, cnt in id_images(pid).items():
            for _ in range(cnt):
                specs.append(ImageSpec("bounding_box_train", unique_name(pid, cam), pid, cam, "person", pid))
    for pid in test_ids:
        counts = id_images(pid)
        cams = list(counts)
        gallery_only = cams[int(rng.integers(0, len(cams)))]
        for cam, cnt in counts.items():
            for j in range(cnt):
                split = "query" if (j == 0 and cam != gallery_only) else "bounding_box_test"
                specs.append(ImageSpec(split, unique_name(pid, cam), pid, cam, "person", pid))
    for i in range(params.num_distractors):
        cam = int(rng.integers(1, params.num_cameras + 1))
        specs.append(ImageSpec("bounding_box_test", unique_name(0, cam), 0, cam, "distractor",
                               _DISTRACTOR_BASE + i))
    for i in range(params.num_junk):
        cam = int(rng.integers(1, params.num_cameras + 1))
        specs.append(ImageSpec("bounding_box_test", unique_name(-1, cam), -1, cam, "junk",
                               _DISTRACTOR_BASE + params.num_distractors + i))
    return specs, scheme_of
