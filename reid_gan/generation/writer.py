"""Writing a generated set: persons streamed to disk, resumable, byte-identical however it was interrupted.

Persons are written as they are made (memory does not grow with N). Every file is written to a
temporary name and renamed; a person's manifest lines are appended only after its image files are in
place. A restart with the same settings reconciles the folder (:func:`reid_gan.data.generated.reconcile`)
and makes only what is missing; a folder made with other settings is refused with the differing keys
named. At the end the manifest is rewritten in canonical order (person, frame), so an
interrupted-and-resumed run ends byte-identical to an uninterrupted one.

Testing aid: the environment variable ``REID_GAN_GENERATE_THROTTLE_S`` makes the writer sleep that many
seconds after each person (used by the kill-and-resume test; it changes no output).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from rich.progress import TimeElapsedColumn

from reid_gan.data.generated import (
    LATENTS_DIR,
    MANIFEST,
    TRAIN_DIR,
    append_manifest,
    guard_folder,
    image_name,
    reconcile,
    save_person_latents,
    sort_manifest,
)
from reid_gan.gan import sampling
from reid_gan.generation.plan import Person, plan_person
from reid_gan.generation.synthesis import encode, person_latents, render
from reid_gan.utils.io import atomic_write_bytes
from reid_gan.utils.logging import get_logger
from reid_gan.utils.runtime import progress_bar

log = get_logger(__name__)

__all__ = ["THROTTLE_ENV", "SetWritten", "output_size", "settings_of", "write_set"]

THROTTLE_ENV = "REID_GAN_GENERATE_THROTTLE_S"

# generate.* keys that do not change a byte of the set (where things are, how they are batched or shown)
_NOT_HASHED = ("out", "ckpt", "random_init", "latents", "batch_persons", "progress", "figures", "device")


@dataclass
class SetWritten:
    images: int          # images in the set
    written: int         # images made by this call (the rest were there already)
    seconds: float
    out_size: tuple[int, int]


def output_size(G: torch.nn.Module, gcfg: DictConfig) -> tuple[int, int]:
    """``(height, width)`` of the written images: ``generate.height/width``, else the generator's size."""
    probe_ws = sampling.seeds_to_ws(G, [0], 1.0)
    g_size = tuple(sampling.synthesize(G, probe_ws, gcfg.noise_mode).shape[-2:])
    out_size = (int(gcfg.height), int(gcfg.width)) if gcfg.height else g_size
    if out_size != g_size:
        log.info("Generator makes %dx%d images; writing them resized to %dx%d", *g_size, *out_size)
    return out_size


def settings_of(gcfg: DictConfig, generator_sha: str, latents_sha: str | None, device: torch.device,
                out_size: tuple[int, int]) -> dict[str, Any]:
    """Everything that determines the set's bytes (the resume guard hashes it)."""
    g = OmegaConf.to_container(gcfg, resolve=True)
    s = {k: v for k, v in g.items() if k not in _NOT_HASHED}
    s.update({"generator_sha256": generator_sha, "latents_sha256": latents_sha, "device_type": device.type,
              "out_size": list(out_size)})
    return s


def _batches(items: Sequence[Person], n: int) -> Iterator[Sequence[Person]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def write_set(G: torch.nn.Module, persons: list[Person], gcfg: DictConfig, out: Path, gsha: str, gdesc: str,
              latents_sha: str | None, device: torch.device) -> SetWritten:
    """Write (or finish) the set of ``persons`` in ``out`` with generator ``G`` (sha ``gsha``)."""
    num_ws = int(G.num_ws)
    synthesis_batch = int(gcfg.synthesis_batch)
    out_size = output_size(G, gcfg)
    settings = settings_of(gcfg, gsha, latents_sha, device, out_size)
    resumed = guard_folder(out, settings, {"generator": gdesc, "latents": gcfg.latents})
    done, fixed = reconcile(out)
    if resumed:
        log.info("Resuming %s: %d images already complete; repaired %s", out, len(done),
                 {k: v for k, v in fixed.items() if v} or "nothing")
    (out / TRAIN_DIR).mkdir(parents=True, exist_ok=True)
    (out / LATENTS_DIR).mkdir(parents=True, exist_ok=True)

    K = int(gcfg.images_per_person)
    total = len(persons) * K
    fmt, quality = str(gcfg.format), int(gcfg.quality)
    throttle = float(os.environ.get(THROTTLE_ENV, "0") or 0)
    written = 0
    t0 = time.perf_counter()
    log.info("Generating %d persons × %d images = %d images (%s) into %s", len(persons), K, total,
             "real-person variants" if gcfg.latents else "new persons from seeds", out)
    with progress_bar("[bold]generate", "images", "{task.fields[ips]:.2f} img/s",
                      TimeElapsedColumn(), enabled=bool(gcfg.progress)) as bar:
        task = bar.add_task("generate", total=total, completed=len(done), ips=0.0)
        for batch in _batches(persons, int(gcfg.batch_persons)):
            for person in batch:
                plans = plan_person(person, gcfg, num_ws)
                names = [image_name(person.pid, p.frame, fmt) for p in plans]
                missing = [i for i, n in enumerate(names) if f"{TRAIN_DIR}/{n}" not in done]
                if not missing:
                    continue
                lat = person_latents(G, person, plans, float(gcfg.psi), gcfg.truncation_cutoff, synthesis_batch)
                latent_rel = save_person_latents(
                    out, pid=person.pid, source=person.source, seed=person.seed, psi=float(gcfg.psi),
                    noise_mode=str(gcfg.noise_mode), methods=[p.method for p in plans], ws=lat["ws"],
                    transforms=lat["transforms"], calls=lat["calls"], size=list(out_size), format_ext=fmt,
                    quality=quality, generator_sha256=gsha)
                images = render(G, lat["ws"], lat["transforms"], lat["calls"], gcfg.noise_mode, out_size, missing)
                records = []
                for i in missing:
                    rel = f"{TRAIN_DIR}/{names[i]}"
                    atomic_write_bytes(out / rel, encode(images[i], fmt, quality))
                    records.append({
                        "file": rel, "pid": person.pid, "source": person.source, "seed": person.seed,
                        "method": plans[i].method, "params": plans[i].params, "psi": float(gcfg.psi),
                        "generator_sha256": gsha, "frame": plans[i].frame, "latent": latent_rel,
                        **({"reference": person.reference} if person.reference else {})})
                append_manifest(out, records)  # only after every file of the person is in place
                done.update(r["file"] for r in records)
                written += len(records)
                el = time.perf_counter() - t0
                bar.update(task, advance=len(records), ips=written / el if el > 0 else 0.0)
                if throttle:
                    time.sleep(throttle)
    seconds = time.perf_counter() - t0
    n_lines = sort_manifest(out, {p.pid: p.index for p in persons})
    if n_lines != total:
        raise RuntimeError(f"{out}/{MANIFEST}: {n_lines} lines for {total} images — the set is inconsistent")
    return SetWritten(total, written, seconds, out_size)
