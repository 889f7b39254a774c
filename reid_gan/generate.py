"""``python -m reid_gan.generate``: a generated set of new persons (or variants of real persons) from a generator.

::

    python -m reid_gan.generate generate.ckpt=PATH generate.out=DIR generate.persons=401 generate.images_per_person=51

**Persons.** Seed mode (default): person ``i`` has seed ``seed_start + i`` and pid ``pid_start + i`` (10000
upward, so real Market-1501/Duke ids, all < 10000, never collide); ``seed → z → w`` with truncation
``psi``. Real mode (``generate.latents=FILE``): the persons are real people whose ``w+`` codes the
``invert`` stage wrote; they keep their real pid. The latents file format::

    torch.save({'pids': LongTensor[N], 'ws': FloatTensor[N, num_ws, w_dim]}, FILE)   # read with weights_only=True

**Images of a person** (``images_per_person = K``): frame 0 is the base image (the person's own ``w``); the
other ``K - 1`` are split between the methods in proportion to their ``weight`` (largest remainder):
``style_mix`` (the person's ``w`` with a layer range taken from a donor seed's ``w``; ranges cycled),
``interpolate`` (``lerp`` in W, or ``slerp`` in Z for seed persons, toward a partner seed by an ``alpha`` in
``[min_alpha, max_alpha]`` — the maximum step keeps the identity) and ``transform`` (translation/rotation
of the input Fourier features through ``synthesis.input.transform``). Each person's donors, partners,
alphas and transforms come from its own RNG ``numpy.random.default_rng([plan_seed, mode, key])`` (key =
seed, or the real pid), so a person's images do not depend on how many persons there are.

**Output** (``generate.out``) — the generated-set format of the brief:

* ``bounding_box_train/PPPPP_c7s1_FFFFFF_00.jpg`` — camera 7 is reserved for generated images, frame =
  image index within the person (JPEG quality ``generate.quality``, or PNG with ``generate.format=png``);
  ``generate.height``/``width`` resize every image (``cv2.INTER_AREA`` when shrinking, bicubic when
  enlarging); by default images have the generator's size (128×64 for a 128×64 generator).
* ``manifest.jsonl`` — one line per image: ``file``, ``pid``, ``source`` (``"seed"`` or the real pid),
  ``seed`` (null for real persons), ``method``, ``params`` (``donor_seed`` + ``layers`` ``[start, end)`` +
  ``range``; ``partner_seed`` + ``alpha`` + ``space``; ``translate`` + ``angle``), ``psi``,
  ``generator_sha256``, plus ``frame`` and ``latent`` (the person's latents file).
* ``latents/<pid>.pt`` — per person: the exact ``ws [K, num_ws, w_dim]`` each image was synthesised from,
  the image transforms ``[K, 3, 3]``, and the synthesis call each image belonged to; :func:`remake`
  re-makes any image byte for byte from its manifest line.
* ``generate.json`` — the settings and their hash (the resume guard); ``style_mixing.png`` and
  ``interpolation.png`` — the figures (thesis figs. 4.7 and 4.8).

**Determinism.** The same generator and settings give byte-identical files on the same device type.
Every person is computed on its own, in synthesis calls that depend only on the person's plan (the
non-transformed images in chunks of ``synthesis_batch``; each transformed image alone, since the input
transform is one buffer shared by a batch), never on ``batch_persons`` (persons per write step).

**Streaming and resume.** Persons are written as they are made (memory does not grow with N). Every
file is written to a temporary name and renamed; a person's manifest lines are appended only after its
image files are in place. A restart with the same settings reconciles the folder (deletes temporary
files and images without a manifest line, drops lines without a file and a half-written last line) and
makes only what is missing; a folder made with other settings is refused with the differing keys named.
At the end the manifest is rewritten in canonical order (person, frame), so an interrupted-and-resumed
run ends byte-identical to an uninterrupted one.

Testing aid: the environment variable ``REID_GAN_GENERATE_THROTTLE_S`` makes the stage sleep that many
seconds after each person (used by the kill-and-resume test; it changes no output).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import cv2
import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.config import ConfigError
from reid_gan.data.generated import (
    LATENTS_DIR,
    MANIFEST,
    TRAIN_DIR,
    append_manifest,
    frame_of,
    guard_folder,
    image_name,
    latents_reference_files,
    load_latents_file,
    load_person_latents,
    reconcile,
    save_person_latents,
    sort_manifest,
)
from reid_gan.gan import sampling
from reid_gan.utils.io import atomic_write_bytes, atomic_write_json, file_sha256
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage

log = get_logger(__name__)

__all__ = [
    "generate",
    "main",
    "remake",
    "remake_bytes",
    "method_counts",
    "plan_person",
    "Person",
    "ImagePlan",
]

METHODS = ("style_mix", "interpolate", "transform")
THROTTLE_ENV = "REID_GAN_GENERATE_THROTTLE_S"
# ----------------------------------------------------------------------------------------------------------
# Plans: what each image of a person is
# ----------------------------------------------------------------------------------------------------------


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


def _cfg_get(node: Any, key: str) -> Any:
    return node[key] if isinstance(node, dict) else getattr(node, key)


def plan_person(person: Person, gcfg: Any, num_ws: int) -> list[ImagePlan]:
    """The person's K images (method + parameters), drawn from the person's own RNG."""
    methods = _cfg_get(gcfg, "methods")
    weights = {m: float(_cfg_get(_cfg_get(methods, m), "weight")) for m in METHODS}
    k = int(_cfg_get(gcfg, "images_per_person"))
    counts = method_counts(k, weights)
    mode, key = (0, int(person.seed)) if person.source == "seed" else (1, int(person.pid))
    rng = np.random.default_rng([int(_cfg_get(gcfg, "plan_seed")), mode, key])
    lo = int(_cfg_get(gcfg, "partner_seed_min"))

    def partner() -> int:
        return int(rng.integers(lo, 2**31))

    plans = [ImagePlan(0, "base", {})]
    sm = _cfg_get(methods, "style_mix")
    ranges = list(_cfg_get(sm, "ranges"))
    for i in range(counts["style_mix"]):
        spec = ranges[i % len(ranges)]
        spec = spec if isinstance(spec, str) else [int(v) for v in spec]
        start, end = sampling.layer_range(spec, num_ws)
        plans.append(ImagePlan(len(plans), "style_mix", {
            "donor_seed": partner(), "layers": [start, end], "range": spec if isinstance(spec, str) else "explicit"}))
    it = _cfg_get(methods, "interpolate")
    space = str(_cfg_get(it, "space"))
    if counts["interpolate"] and space == "z" and person.source != "seed":
        raise ConfigError("generate.methods.interpolate.space: 'z' (slerp) needs seed persons; real persons "
                          "have only w+ codes — use space=w")
    a0, a1 = float(_cfg_get(it, "min_alpha")), float(_cfg_get(it, "max_alpha"))
    for _ in range(counts["interpolate"]):
        p = partner()
        alpha = round(float(rng.uniform(a0, a1)), 6)
        plans.append(ImagePlan(len(plans), "interpolate", {"partner_seed": p, "alpha": alpha, "space": space}))
    tr = _cfg_get(methods, "transform")
    mt, mr = float(_cfg_get(tr, "max_translate")), float(_cfg_get(tr, "max_rotate"))
    for _ in range(counts["transform"]):
        tx, ty = (round(float(v), 6) for v in rng.uniform(-mt, mt, 2))
        angle = round(float(rng.uniform(-mr, mr)), 6)
        plans.append(ImagePlan(len(plans), "transform", {"translate": [tx, ty], "angle": angle}))
    assert len(plans) == k
    return plans


# ----------------------------------------------------------------------------------------------------------
# Latents → images
# ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def person_latents(G: torch.nn.Module, person: Person, plans: list[ImagePlan], psi: float,
                   truncation_cutoff: int | None, synthesis_batch: int) -> dict[str, torch.Tensor]:
    """``ws [K, num_ws, w_dim]``, image transforms ``[K, 3, 3]`` and synthesis call ids ``[K]`` of one person.

    All mapping is done in one call whose composition depends only on the plan (deterministic).
    """
    seeds: list[int] = []
    zs_extra: list[torch.Tensor] = []
    if person.source == "seed":
        seeds.append(int(person.seed))
    for p in plans:
        if p.method == "style_mix":
            seeds.append(p.params["donor_seed"])
        elif p.method == "interpolate":
            seeds.append(p.params["partner_seed"])
    z = sampling.z_from_seeds(seeds, G.z_dim)
    if person.source == "seed":
        for p in plans:  # slerp in Z: the interpolated z goes through the same mapping call
            if p.method == "interpolate" and p.params["space"] == "z":
                zp = sampling.z_from_seeds([p.params["partner_seed"]], G.z_dim)
                zs_extra.append(sampling.slerp(z[0:1], zp, p.params["alpha"]))
    z_all = torch.cat([z, *zs_extra], 0) if zs_extra else z
    ws_all = sampling.z_to_ws(G, z_all, psi, truncation_cutoff).float() if z_all.shape[0] else None
    cursor = 0
    if person.source == "seed":
        base, cursor = ws_all[0], 1
    else:
        assert person.ws is not None
        base = person.ws.to(next(G.parameters()).device).float()
    extra_cursor = len(seeds)
    out_ws, transforms = [], []
    for p in plans:
        T = np.eye(3)
        if p.method == "base":
            w = base
        elif p.method == "style_mix":
            start, end = p.params["layers"]
            w = sampling.style_mix(base, ws_all[cursor], start, end)
            cursor += 1
        elif p.method == "interpolate":
            if p.params["space"] == "z":
                w = ws_all[extra_cursor]
                extra_cursor += 1
            else:
                w = sampling.lerp(base, ws_all[cursor], p.params["alpha"])
            cursor += 1
        elif p.method == "transform":
            w = base
            T = sampling.make_transform(p.params["translate"], p.params["angle"])
        else:  # pragma: no cover
            raise ValueError(p.method)
        out_ws.append(w)
        transforms.append(T)
    ws = torch.stack(out_ws, 0).cpu()
    tf = torch.from_numpy(np.stack(transforms, 0))
    calls = synthesis_calls(plans, synthesis_batch)
    return {"ws": ws, "transforms": tf, "calls": torch.tensor(calls, dtype=torch.long)}


def synthesis_calls(plans: Sequence[ImagePlan], synthesis_batch: int) -> list[int]:
    """Call id of each image: untransformed images in chunks of ``synthesis_batch`` (in frame order), then
    one call per transformed image (the input transform is a buffer shared by the whole batch)."""
    calls = [0] * len(plans)
    plain = [i for i, p in enumerate(plans) if p.method != "transform"]
    for j, i in enumerate(plain):
        calls[i] = j // synthesis_batch
    nxt = (len(plain) + synthesis_batch - 1) // synthesis_batch
    for i, p in enumerate(plans):
        if p.method == "transform":
            calls[i] = nxt
            nxt += 1
    return calls


@torch.no_grad()
def render(G: torch.nn.Module, ws: torch.Tensor, transforms: torch.Tensor, calls: torch.Tensor,
           noise_mode: str, size: tuple[int, int] | None, only: Iterable[int] | None = None) -> dict[int, np.ndarray]:
    """RGB uint8 images (after resizing) by image index, made call by call; ``only`` restricts to some images
    (their whole calls are still synthesised, so the result does not depend on ``only``)."""
    want = set(range(ws.shape[0])) if only is None else set(only)
    out: dict[int, np.ndarray] = {}
    for call in sorted({int(calls[i]) for i in want}):
        idx = [i for i in range(ws.shape[0]) if int(calls[i]) == call]
        T = transforms[idx[0]].numpy()
        assert all(torch.equal(transforms[i], transforms[idx[0]]) for i in idx), "one transform per call"
        imgs = sampling.to_uint8(sampling.synthesize(G, ws[idx], noise_mode, None if np.allclose(T, np.eye(3), 0, 0) else T))
        for j, i in enumerate(idx):
            if i in want:
                out[i] = _resize(imgs[j], size)
    return out


def _resize(rgb: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if size is None or tuple(rgb.shape[:2]) == tuple(size):
        return np.ascontiguousarray(rgb)
    h, w = size
    shrink = h <= rgb.shape[0] and w <= rgb.shape[1]
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def encode(rgb: np.ndarray, fmt: str, quality: int) -> bytes:
    """JPEG (``quality``, baseline, 4:2:0 — OpenCV's defaults) or PNG bytes of an RGB uint8 image."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode("." + fmt, bgr, params)
    if not ok:  # pragma: no cover
        raise RuntimeError(f"cannot encode a {rgb.shape} image as {fmt}")
    return buf.tobytes()


def remake(record: dict, G: torch.nn.Module, root: str | Path) -> np.ndarray:
    """Re-make one image of a generated set from its manifest line: the RGB uint8 array that was encoded.

    Uses the person's ``latents/<pid>.pt`` (exact ``ws``, transform and synthesis call of every image), so
    with the same generator on the same device type the result equals the written image before encoding.
    """
    data = load_person_latents(root, record)
    frame = frame_of(record)
    frames = [int(f) for f in data["frames"].tolist()]
    if frame not in frames:
        raise KeyError(f"frame {frame} of pid {record['pid']} is not in its latents file")
    i = frames.index(frame)
    sha = data.get("generator_sha256")
    if sha and record.get("generator_sha256") and sha != record["generator_sha256"]:
        raise ValueError(f"pid {record['pid']}: latents made by generator {sha[:12]}…, manifest says "
                         f"{record['generator_sha256'][:12]}…")
    size = tuple(data["size"]) if data.get("size") is not None else None
    G = G.eval()
    return render(G, data["ws"], data["transforms"], data["calls"], data["noise_mode"], size, only=[i])[i]


def remake_bytes(record: dict, G: torch.nn.Module, root: str | Path) -> bytes:
    """:func:`remake` encoded as the set was (format and quality from the latents file)."""
    data = load_person_latents(root, record)
    return encode(remake(record, G, root), data["format_ext"], int(data["quality"]))


# ----------------------------------------------------------------------------------------------------------
# Inputs: the generator and the persons
# ----------------------------------------------------------------------------------------------------------


def _state_sha256(G: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(G.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def resolve_ckpt(path: str | Path) -> Path:
    """The file a ``generate.ckpt`` value names (a folder of snapshots → its newest, as ``load_generator`` does)."""
    p = Path(path)
    if p.is_dir():
        try:
            from reid_gan.gan.checkpoint import latest_snapshot
        except ImportError as e:  # pragma: no cover - until the GAN training code is present
            raise ImportError(f"generate.ckpt={p}: a folder needs reid_gan.gan.checkpoint ({e})") from None
        snap = latest_snapshot(p)
        if snap is None:
            raise FileNotFoundError(f"generate.ckpt={p}: no network-snapshot-*.pt in this folder")
        return snap
    if not p.is_file():
        raise FileNotFoundError(f"generate.ckpt={p}: no such file")
    return p


def random_generator(node: Any, seed: int) -> torch.nn.Module:
    """``random_init``'s generator, its weights drawn from ``torch.manual_seed(seed)`` (same seed → same G;
    the global RNG state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return hydra.utils.instantiate(node, _convert_="all").eval()


def load_G(gcfg: DictConfig, seed: int = 0) -> tuple[torch.nn.Module, str, str]:
    """The generator, its sha256 and a description. ``random_init`` (weights from ``seed``) only when no
    ``ckpt`` is given."""
    if gcfg.ckpt:
        path = resolve_ckpt(gcfg.ckpt)
        try:
            from reid_gan.gan.checkpoint import load_generator
        except ImportError as e:  # pragma: no cover - until the GAN training code is present
            raise ImportError(f"generate.ckpt: loading a generator needs reid_gan.gan.checkpoint ({e})") from None
        log.info("Generator: %s", path)
        G = load_generator(path)
        return G, file_sha256(path), str(path)
    if gcfg.random_init:
        G = random_generator(gcfg.random_init, seed)
        log.warning("generate.ckpt is not set: using a RANDOMLY INITIALISED generator (%s) — these images "
                    "are noise, fit for a smoke test only", gcfg.random_init.get("_target_"))
        return G, _state_sha256(G), "random-init"
    raise ConfigError("generate.ckpt: not set — pass generate.ckpt=PATH (a train_gan snapshot "
                      "network-snapshot-*.pt or a folder of them, a train_gan .ckpt, or an NVIDIA .pkl)")


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
# ----------------------------------------------------------------------------------------------------------

_NOT_HASHED = ("out", "ckpt", "random_init", "latents", "batch_persons", "progress", "figures", "device")


def settings_of(gcfg: DictConfig, generator_sha: str, latents_sha: str | None, device: torch.device,
                out_size: tuple[int, int]) -> dict[str, Any]:
    """Everything that determines the set's bytes (the resume guard hashes it)."""
    g = OmegaConf.to_container(gcfg, resolve=True)
    s = {k: v for k, v in g.items() if k not in _NOT_HASHED}
    s.update({"generator_sha256": generator_sha, "latents_sha256": latents_sha, "device_type": device.type,
              "out_size": list(out_size)})
    return s


# ----------------------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------------------


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"generate.device={name}: CUDA is not available on this machine")
    return torch.device(name)


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]generate"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
                    TextColumn("{task.fields[ips]:.2f} img/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                    disable=not enabled)


def _batches(items: Sequence[Person], n: int) -> Iterator[Sequence[Person]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def generate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task function: writes (or finishes) the generated set in ``cfg.generate.out``."""
    gcfg = cfg.generate
    out = Path(gcfg.out)
    device = _device(gcfg.device)
    G, gsha, gdesc = load_G(gcfg, int(cfg.get("seed", 0)))
    G = G.eval().requires_grad_(False).to(device)
    num_ws = int(G.num_ws)
    persons, latents_sha = build_persons(gcfg, G)
    synthesis_batch = int(gcfg.synthesis_batch)

    probe_ws = sampling.seeds_to_ws(G, [0], 1.0)
    g_size = tuple(sampling.synthesize(G, probe_ws, gcfg.noise_mode).shape[-2:])
    out_size = (int(gcfg.height), int(gcfg.width)) if gcfg.height else g_size
    if out_size != g_size:
        log.info("Generator makes %dx%d images; writing them resized to %dx%d", *g_size, *out_size)
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
    with _progress(bool(gcfg.progress)) as bar:
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
    figures = {}
    if gcfg.figures.enabled:
        figures = make_figures(G, persons, gcfg, out, out_size)
    ips = written / seconds if written and seconds > 0 else 0.0
    summary = {"persons": len(persons), "images_per_person": K, "images": total, "written_this_run": written,
               "seconds": round(seconds, 3), "images_per_s": round(ips, 3), "generator": gdesc,
               "generator_sha256": gsha, "out_size": list(out_size)}
    atomic_write_json(out / "summary.json", summary)
    log.info("Generated set complete: %d images of %d persons in %s (%d made now, %.2f img/s)", total,
             len(persons), out, written, ips)
    metrics = {"generate/images": total, "generate/persons": len(persons), "generate/written": written,
               "generate/images_per_s": ips}
    return metrics, {"out": str(out), "manifest": str(out / MANIFEST), **figures}


# ----------------------------------------------------------------------------------------------------------
# Figures (thesis figs. 4.7 and 4.8)
# ----------------------------------------------------------------------------------------------------------


def _save_grid(path: Path, images: list[np.ndarray], nrow: int, captions: list[str] | None = None,
               borders: list[tuple[int, int, int] | None] | None = None, scale: int = 1) -> Path:
    """A PNG grid of RGB uint8 images (:func:`reid_gan.report.grids.save_grid`, which takes BGR)."""
    from reid_gan.report.grids import save_grid

    bgr = [np.ascontiguousarray(im[:, :, ::-1]) for im in images]
    return save_grid(path, bgr, nrow=nrow, captions=captions, border_colors=borders, scale=scale)


@torch.no_grad()
def _base_ws(G: torch.nn.Module, person: Person, gcfg: DictConfig) -> torch.Tensor:
    if person.source == "seed":
        return sampling.seeds_to_ws(G, [person.seed], float(gcfg.psi), gcfg.truncation_cutoff)[0]
    return person.ws.to(next(G.parameters()).device)


@torch.no_grad()
def make_figures(G: torch.nn.Module, persons: list[Person], gcfg: DictConfig, out: Path,
                 size: tuple[int, int]) -> dict[str, str]:
    """``style_mixing.png`` (rows: persons; columns: the person, then for each layer range its donors'
    styles mixed in; top row: the donors) and ``interpolation.png`` (rows: persons; columns: alpha from
    0 to 1 toward a partner; frames in green where alpha <= max_alpha, the range the set uses)."""
    f = gcfg.figures
    sel = persons[: int(f.persons)]
    rng = np.random.default_rng([int(gcfg.plan_seed), 2])
    donor_seeds = [int(rng.integers(int(gcfg.partner_seed_min), 2**31)) for _ in range(int(f.donors))]
    donors = sampling.seeds_to_ws(G, donor_seeds, float(gcfg.psi), gcfg.truncation_cutoff)
    ranges = [r if isinstance(r, str) else [int(v) for v in r] for r in OmegaConf.to_container(f.ranges)]

    def img(ws: torch.Tensor) -> np.ndarray:
        return _resize(sampling.to_uint8(sampling.synthesize(G, ws, gcfg.noise_mode))[0], size)

    cols = 1 + len(ranges) * len(donor_seeds)
    cells, caps = [np.full((*size, 3), 255, np.uint8)], [""]
    for r in ranges:
        for j in range(len(donor_seeds)):
            cells.append(img(donors[j:j + 1]))
            caps.append(f"donor{j + 1}")
    for p in sel:
        base = _base_ws(G, p, gcfg)[None]
        cells.append(img(base))
        caps.append(str(p.pid))
        for r in ranges:
            start, end = sampling.layer_range(r, G.num_ws)
            name = r if isinstance(r, str) else f"{start}-{end}"
            for j in range(len(donor_seeds)):
                cells.append(img(sampling.style_mix(base, donors[j:j + 1], start, end)))
                caps.append(name)
    p_mix = _save_grid(out / "style_mixing.png", cells, nrow=cols, captions=caps, scale=int(f.scale))

    steps = int(f.steps)
    alphas = np.linspace(0.0, 1.0, steps)
    amax = float(gcfg.methods.interpolate.max_alpha)
    space = str(gcfg.methods.interpolate.space)
    cells, caps, borders = [], [], []
    for k, p in enumerate(sel):
        partner = int(rng.integers(int(gcfg.partner_seed_min), 2**31))
        base = _base_ws(G, p, gcfg)[None]
        if space == "z" and p.source == "seed":
            z0 = sampling.z_from_seeds([p.seed], G.z_dim)
            z1 = sampling.z_from_seeds([partner], G.z_dim)
            zs = torch.cat([sampling.slerp(z0, z1, float(a)) for a in alphas], 0)
            ws = sampling.z_to_ws(G, zs, float(gcfg.psi), gcfg.truncation_cutoff)
        else:
            wp = sampling.seeds_to_ws(G, [partner], float(gcfg.psi), gcfg.truncation_cutoff)
            ws = torch.cat([sampling.lerp(base, wp, float(a)) for a in alphas], 0)
        for a, w in zip(alphas, ws):
            cells.append(img(w[None]))
            caps.append(f"a={a:.2f}")
            borders.append((0, 200, 0) if a <= amax + 1e-9 else None)
    p_int = _save_grid(out / "interpolation.png", cells, nrow=steps, captions=caps, borders=borders,
                       scale=int(f.scale))
    return {"style_mixing_png": str(p_mix), "interpolation_png": str(p_int)}


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, generate)


if __name__ == "__main__":
    main()
