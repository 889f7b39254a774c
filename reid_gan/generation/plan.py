"""What each image of a generated person is: the persons of a run and each person's plan of K images.

Frame 0 is the base image (the person's own ``w``); the other ``K - 1`` are split between the methods in
proportion to their ``weight`` (largest remainder). Each person's donors, partners, alphas and
transforms come from its own RNG ``numpy.random.default_rng([plan_seed, mode, key])`` (key = seed, or
the real pid), so a person's images do not depend on how many persons there are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from reid_gan.config import ConfigError
from reid_gan.data.generated import latents_reference_files, load_latents_file
from reid_gan.gan import sampling
from reid_gan.utils.config import cfg_get
from reid_gan.utils.io import file_sha256
from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["METHODS", "Person", "ImagePlan", "method_counts", "plan_person", "build_persons"]

METHODS = ("style_mix", "interpolate", "transform")


@dataclass
class Person:
    """One identity: a seed person (``source == "seed"``) or a real person (``source`` = its pid, ``ws`` given)."""

    index: int
    pid: int
    source: str | int
    seed: int | None = None
    ws: torch.Tensor | None = None  # [num_ws, w_dim] for real persons
    reference: str | None = None  # real persons: the real image its code was inverted from (latents 'files')


@dataclass
class ImagePlan:
    frame: int
    method: str
    params: dict[str, Any] = field(default_factory=dict)


def method_counts(k: int, weights: dict[str, float]) -> dict[str, int]:
    """Split the ``k - 1`` non-base images between methods in proportion to ``weights`` (largest remainder).

    Ties go to the method listed first (style_mix, interpolate, transform). All weights zero is an
    error unless ``k == 1``.
    """
    n = k - 1
    names = [m for m in METHODS if m in weights]
    total = float(sum(max(0.0, float(weights[m])) for m in names))
    if n == 0:
        return {m: 0 for m in names}
    if total <= 0:
        raise ConfigError("generate.methods: every method weight is 0 but images_per_person > 1")
    exact = {m: n * float(weights[m]) / total for m in names}
    counts = {m: int(math.floor(exact[m])) for m in names}
    rest = n - sum(counts.values())
    order = sorted(names, key=lambda m: (-(exact[m] - counts[m]), names.index(m)))
    for m in order[:rest]:
        counts[m] += 1
    return counts


def plan_person(person: Person, gcfg: Any, num_ws: int) -> list[ImagePlan]:
    """The person's K images (method + parameters), drawn from the person's own RNG."""
    methods = cfg_get(gcfg, "methods")
    weights = {m: float(cfg_get(cfg_get(methods, m), "weight")) for m in METHODS}
    k = int(cfg_get(gcfg, "images_per_person"))
    counts = method_counts(k, weights)
    mode, key = (0, int(person.seed)) if person.source == "seed" else (1, int(person.pid))
    rng = np.random.default_rng([int(cfg_get(gcfg, "plan_seed")), mode, key])
    lo = int(cfg_get(gcfg, "partner_seed_min"))

    def partner() -> int:
        return int(rng.integers(lo, 2**31))

    plans = [ImagePlan(0, "base", {})]
    sm = cfg_get(methods, "style_mix")
    ranges = list(cfg_get(sm, "ranges"))
    for i in range(counts["style_mix"]):
        spec = ranges[i % len(ranges)]
        spec = spec if isinstance(spec, str) else [int(v) for v in spec]
        start, end = sampling.layer_range(spec, num_ws)
        plans.append(ImagePlan(len(plans), "style_mix", {
            "donor_seed": partner(), "layers": [start, end], "range": spec if isinstance(spec, str) else "explicit"}))
    it = cfg_get(methods, "interpolate")
    space = str(cfg_get(it, "space"))
    if counts["interpolate"] and space == "z" and person.source != "seed":
        raise ConfigError("generate.methods.interpolate.space: 'z' (slerp) needs seed persons; real persons "
                          "have only w+ codes — use space=w")
    a0, a1 = float(cfg_get(it, "min_alpha")), float(cfg_get(it, "max_alpha"))
    for _ in range(counts["interpolate"]):
        p = partner()
        alpha = round(float(rng.uniform(a0, a1)), 6)
        plans.append(ImagePlan(len(plans), "interpolate", {"partner_seed": p, "alpha": alpha, "space": space}))
    tr = cfg_get(methods, "transform")
    mt, mr = float(cfg_get(tr, "max_translate")), float(cfg_get(tr, "max_rotate"))
    for _ in range(counts["transform"]):
        tx, ty = (round(float(v), 6) for v in rng.uniform(-mt, mt, 2))
        angle = round(float(rng.uniform(-mr, mr)), 6)
        plans.append(ImagePlan(len(plans), "transform", {"translate": [tx, ty], "angle": angle}))
    assert len(plans) == k
    return plans


# ----------------------------------------------------------------------------------------------------------
# Latents → images
# ----------------------------------------------------------------------------------------------------------


def build_persons(gcfg: DictConfig, G: torch.nn.Module) -> tuple[list[Person], str | None]:
    if gcfg.latents:
        pids, ws = load_latents_file(gcfg.latents, G.num_ws, G.w_dim)
        n = pids.shape[0] if gcfg.persons is None else min(int(gcfg.persons), pids.shape[0])
        if gcfg.persons is not None and gcfg.persons > pids.shape[0]:
            log.info("generate.persons=%d but %s holds %d persons: using all of them", gcfg.persons,
                     gcfg.latents, pids.shape[0])
        files = latents_reference_files(gcfg.latents)
        persons = [Person(i, int(pids[i]), int(pids[i]), None, ws[i], files[i] if files else None) for i in range(n)]
        return persons, file_sha256(gcfg.latents)
    if gcfg.persons is None:
        raise ConfigError("generate.persons: null is only allowed with generate.latents (real persons)")
    persons = [Person(i, int(gcfg.pid_start) + i, "seed", int(gcfg.seed_start) + i) for i in range(int(gcfg.persons))]
    return persons, None


# ----------------------------------------------------------------------------------------------------------
# The output folder: settings guard, reconciliation
