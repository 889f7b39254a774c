"""The generated-set format: the one module that names, reads and writes it.

A generated set is a dataset in the Market-1501 layout (so :class:`reid_gan.data.market1501.FolderDataset`
reads it), plus files that say how each image was made::

    <set>/bounding_box_train/PPPPP_c7s1_FFFFFF_00.jpg   camera 7 = generated; frame = image index of the person
    <set>/manifest.jsonl       one JSON object per image: file, pid, source, seed, method, params, psi,
                               generator_sha256, frame, latent (+ scores, kept, ... in a kept set)
    <set>/latents/<pid>.pt     per person: the exact ws/transforms/synthesis calls of its images
    <set>/generate.json        the settings that made the set and their hash (the resume guard)
    <kept>/kept_set.json       marks a folder written by the filter stage (only such a folder is updated)

Person ids: synthetic persons have pids from :data:`SYNTHETIC_PID_START` (10000) upward, so they never
collide with real Market-1501/DukeMTMC ids (all < 10000); a variant of a real person keeps its real pid.

Two latents files: the *per-person* file written beside the images (:func:`save_person_latents`,
:func:`load_person_latents`) and the *real-person* file an inversion writes and ``generate.latents``
reads (:func:`load_latents_file`)::

    torch.save({'pids': LongTensor[N], 'ws': FloatTensor[N, num_ws, w_dim]}, FILE)   # read with weights_only=True

written by :func:`save_latents_file` (``invert``), optionally with per-person ``files`` (the real image each
code was inverted from; :func:`latents_reference_files`, copied into real-variant manifests as
``reference``, the SSIM filter's reference with ``filter.chain.ssim.reference=real``) and ``camids``.

Writers (the generate stage, the kept-set writer) write every file to a temporary name and rename it;
manifest lines are appended only after the files they name exist, so :func:`reconcile` can make a
killed writer's folder consistent and the writer resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

from reid_gan.data.market1501 import TRAIN_DIR, format_name, parse_name
from reid_gan.utils.io import (append_jsonl, atomic_torch_save, atomic_write_json, atomic_write_text, jsonl_text,
                               read_jsonl, safe_member)
from reid_gan.utils.logging import get_logger
from reid_gan.utils.weights import read_torch_file

log = get_logger(__name__)

__all__ = [
    "GENERATED_CAMERA", "SYNTHETIC_PID_START", "TRAIN_DIR", "LATENTS_DIR", "MANIFEST", "SETTINGS_FILE",
    "SETTINGS_FORMAT", "LATENTS_FORMAT", "KEPT_MARKER", "image_name", "frame_of", "is_synthetic",
    "read_manifest", "write_manifest", "append_manifest", "sort_manifest", "persons_in", "settings_hash",
    "guard_folder", "reconcile", "save_person_latents", "load_person_latents", "load_latents_file",
    "save_latents_file", "latents_reference_files",
    "write_kept_set",
]

GENERATED_CAMERA = 7
#: synthetic persons' pids start here; real ids (Market-1501, DukeMTMC) stay below
SYNTHETIC_PID_START = 10000
LATENTS_DIR = "latents"
MANIFEST = "manifest.jsonl"
SETTINGS_FILE = "generate.json"
SETTINGS_FORMAT = "reid_gan.generate/1"
LATENTS_FORMAT = "reid_gan.generate.latents/1"
KEPT_MARKER = "kept_set.json"


# ------------------------------------------------------------------------------------------------ names
def image_name(pid: int, frame: int, fmt: str) -> str:
    """``10000_c7s1_000003_00.jpg`` (real pids keep the Market 4-digit width)."""
    return format_name(pid, GENERATED_CAMERA, 1, frame, 0, fmt)


def frame_of(record: Mapping[str, Any]) -> int:
    """The frame (image index within its person) of a manifest record."""
    if "frame" in record:
        return int(record["frame"])
    return parse_name(Path(record["file"]).name).frame


def is_synthetic(pid: int) -> bool:
    return int(pid) >= SYNTHETIC_PID_START


# --------------------------------------------------------------------------------------------- manifest
def read_manifest(root: str | os.PathLike) -> list[dict]:
    """The records of ``<root>/manifest.jsonl`` (none when it is absent; a half-written last line is dropped).

    A set may come from somebody else: every path it names (``file``, ``latent``) must stay inside the
    set — an absolute path, a ``..`` or a symbolic link leading out raises
    :class:`~reid_gan.utils.io.UnsafePathError` naming the line. (``reference``, the real image a variant
    was inverted from, points into the real dataset by design; it is only ever read as an image.)
    """
    records = read_jsonl(Path(root) / MANIFEST)
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"{Path(root) / MANIFEST}: line {i + 1} is not a JSON object")
        for field in ("file", "latent"):
            if field in rec:
                safe_member(root, rec[field], f"{Path(root) / MANIFEST} line {i + 1} ({field})")
    return records


def write_manifest(root: str | os.PathLike, records: Iterable[dict]) -> Path:
    """Replace ``<root>/manifest.jsonl`` atomically (one sorted-key JSON object per line)."""
    return atomic_write_text(Path(root) / MANIFEST, jsonl_text(records))


def append_manifest(root: str | os.PathLike, records: list[dict]) -> None:
    """Append lines (call only once the files they name are in place)."""
    append_jsonl(Path(root) / MANIFEST, records)


def sort_manifest(root: str | os.PathLike, order: Mapping[int, int]) -> int:
    """Rewrite the manifest in canonical order (person by ``order[pid]``, then frame); returns its length."""
    records = read_manifest(root)
    records.sort(key=lambda r: (order.get(int(r["pid"]), 1 << 40), int(r["frame"])))
    write_manifest(root, records)
    return len(records)


def persons_in(root: str | os.PathLike) -> int:
    """Distinct person ids in a generated (or kept) set, from its manifest."""
    return len({r["pid"] for r in read_manifest(root)})


# ------------------------------------------------------------------------------------ settings and resume
def settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(f"{prefix}{k}: {vb!r} in the folder, {va!r} now")
    return keys


def guard_folder(out: Path, settings: dict[str, Any], meta: dict[str, Any], key: str = "generate.out") -> bool:
    """Refuse a folder made with other settings; returns True when resuming an existing set."""
    from reid_gan.config import ConfigError

    h = settings_hash(settings)
    sfile = out / SETTINGS_FILE
    if sfile.is_file():
        old = json.loads(sfile.read_text())
        if old.get("settings_hash") != h:
            diff = _diff_keys(settings, old.get("settings", {}))
            raise ConfigError(
                f"{key}={out}: this folder holds a set made with other settings; refusing to mix them. "
                f"Differences: {'; '.join(diff) or 'format version'}. Use another {key} or delete the folder.")
        return True
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{key}={out}: the folder is not empty and holds no {SETTINGS_FILE}: it is not "
                          f"a generated set made by this stage; refusing to write into it")
    atomic_write_json(sfile, {"format": SETTINGS_FORMAT, "settings_hash": h, "settings": settings, **meta})
    return False


def _is_temp(name: str) -> bool:
    return name.startswith(".") and ".tmp" in name


def reconcile(out: Path) -> tuple[set[str], dict[str, int]]:
    """Make the folder consistent after a kill; returns the files already done and what was repaired
    (temporary files and images without a manifest line deleted, lines without a file, duplicate lines
    and a half-written last line dropped)."""
    fixed = {"temp_files": 0, "orphan_images": 0, "lines_without_file": 0, "duplicate_lines": 0, "bad_last_line": 0}
    for d in (out, out / TRAIN_DIR, out / LATENTS_DIR):
        if d.is_dir():
            for p in d.iterdir():
                if _is_temp(p.name):
                    p.unlink()
                    fixed["temp_files"] += 1
    mpath = out / MANIFEST
    raw = mpath.read_text(encoding="utf-8") if mpath.exists() else ""
    records = read_manifest(out)
    if raw and not raw.endswith("\n"):
        fixed["bad_last_line"] = 1
    on_disk = {f"{TRAIN_DIR}/{p.name}" for p in (out / TRAIN_DIR).iterdir()} if (out / TRAIN_DIR).is_dir() else set()
    kept, seen = [], set()
    for r in records:
        f = r.get("file")
        if f in seen:
            fixed["duplicate_lines"] += 1
            continue
        if f not in on_disk:
            fixed["lines_without_file"] += 1
            continue
        seen.add(f)
        kept.append(r)
    for f in sorted(on_disk - seen):
        (out / f).unlink()
        fixed["orphan_images"] += 1
    if len(kept) != len(records) or fixed["bad_last_line"]:
        write_manifest(out, kept)
    return seen, fixed


# ---------------------------------------------------------------------------------------------- latents
def person_latents_path(pid: int) -> str:
    """A person's latents file, relative to the set root."""
    return f"{LATENTS_DIR}/{int(pid)}.pt"


def save_person_latents(root: str | os.PathLike, *, pid: int, source: str | int, seed: int | None, psi: float,
                        noise_mode: str, methods: list[str], ws, transforms, calls, size: list[int],
                        format_ext: str, quality: int, generator_sha256: str) -> str:
    """Write ``latents/<pid>.pt`` (everything :func:`reid_gan.generation.remake` needs); returns its relative path.

    Fields: ``ws [K, num_ws, w_dim]``, ``transforms [K, 3, 3]``, ``calls [K]`` (synthesis call of each
    image), ``frames [K]``, ``methods``, ``size`` (written image size), ``format_ext`` + ``quality``.
    """
    import torch

    rel = person_latents_path(pid)
    atomic_torch_save({
        "format": LATENTS_FORMAT, "pid": pid, "source": source, "seed": seed,
        "psi": float(psi), "noise_mode": str(noise_mode), "frames": torch.arange(len(methods)),
        "methods": list(methods), "ws": ws, "transforms": transforms,
        "calls": calls, "size": list(size), "format_ext": format_ext, "quality": quality,
        "generator_sha256": generator_sha256}, Path(root) / rel)
    return rel


def load_person_latents(root: str | os.PathLike, record: Mapping[str, Any]) -> dict[str, Any]:
    """The per-person latents file a manifest record names (``latent``, else ``latents/<pid>.pt``)."""
    path = safe_member(root, record.get("latent", person_latents_path(record["pid"])),
                       f"{Path(root) / MANIFEST}: the latents of pid {record.get('pid')}")  # never outside the set
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the latents of pid {record['pid']} are missing")
    # weights-only: a latents file from elsewhere cannot run code here
    data = read_torch_file(path, what="a latents file", error=ValueError)
    if not isinstance(data, dict) or data.get("format") != LATENTS_FORMAT:
        raise ValueError(f"{path}: not a generate latents file (format {LATENTS_FORMAT})")
    return data


def load_latents_file(path: str | os.PathLike, num_ws: int, w_dim: int, key: str = "generate.latents"):
    """Read a real-person latents file ``{'pids': LongTensor[N], 'ws': FloatTensor[N, num_ws, w_dim]}``;
    returns ``(pids, ws)``."""
    import torch

    p = Path(path)
    data = read_torch_file(p, key, what="a latents file", error=ValueError, missing=FileNotFoundError)
    if not isinstance(data, dict) or "pids" not in data or "ws" not in data:
        raise ValueError(f"{key}={p}: expected a dict with 'pids' and 'ws'")
    pids, ws = torch.as_tensor(data["pids"]), torch.as_tensor(data["ws"])
    if pids.ndim != 1 or pids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{key}={p}: 'pids' must be a 1-D integer tensor, got {pids.dtype} {tuple(pids.shape)}")
    if ws.ndim != 3 or ws.shape[0] != pids.shape[0] or ws.shape[1:] != (num_ws, w_dim):
        raise ValueError(f"{key}={p}: 'ws' must be [{pids.shape[0]}, {num_ws}, {w_dim}] for this "
                         f"generator, got {tuple(ws.shape)}")
    if not ws.is_floating_point() or not torch.isfinite(ws).all():
        raise ValueError(f"{key}={p}: 'ws' must be finite floats")
    if (pids < 0).any() or (pids >= SYNTHETIC_PID_START).any():
        raise ValueError(f"{key}={p}: real pids must be in [0, {SYNTHETIC_PID_START}) (synthetic ids start at "
                         f"{SYNTHETIC_PID_START})")
    if len(set(pids.tolist())) != pids.shape[0]:
        raise ValueError(f"{key}={p}: pids are not unique")
    return pids.long(), ws.float()


def save_latents_file(path: str | os.PathLike, pids: Any, ws: Any, **extra: Any) -> Path:
    """Write a real-person latents file (one code per person; :func:`load_latents_file` reads it), atomically.

    ``extra``: per-person ``files`` (list of str: the real images) and ``camids``, or plain metadata.
    """
    import torch

    pids, ws = torch.as_tensor(pids).long(), torch.as_tensor(ws).float()
    if ws.ndim != 3 or ws.shape[0] != pids.shape[0]:
        raise ValueError(f"{path}: ws must be [N, num_ws, w_dim] with N = len(pids), got {tuple(ws.shape)}")
    if len(set(pids.tolist())) != pids.shape[0]:
        raise ValueError(f"{path}: pids must be unique (one code per person)")
    if "files" in extra and len(extra["files"]) != pids.shape[0]:
        raise ValueError(f"{path}: 'files' must name one real image per person")
    atomic_torch_save({"pids": pids, "ws": ws, **extra}, Path(path))
    return Path(path)


def latents_reference_files(path: str | os.PathLike) -> list[str] | None:
    """The real image of each person of a real-person latents file (its ``files``), or ``None``."""
    data = read_torch_file(path, what="a latents file", error=ValueError, missing=FileNotFoundError)
    files = data.get("files") if isinstance(data, dict) else None
    return [str(f) for f in files] if files is not None else None


# ---------------------------------------------------------------------------------------- the kept set
def write_kept_set(src: str | os.PathLike, records: list[dict], out: str | os.PathLike, link: str = "hardlink",
                   marker: dict[str, Any] | None = None, key: str = "filter.out") -> Path:
    """A subset of a set: links (or copies) of the images ``records`` name, in the source's layout, plus
    ``manifest.jsonl`` holding ``records`` (each may carry more fields, e.g. scores).

    Files a record points to besides the image (a generated person's ``latent``) come along under the
    same relative path. Nothing in the source is modified. A folder is only updated in place when this
    writer made it (:data:`KEPT_MARKER`); images no longer in ``records`` are removed from it.
    """
    out = Path(out)
    src = Path(src).resolve()
    if out.resolve() == src or src in out.resolve().parents:
        raise ValueError(f"{key}={out}: must not be the source set {src} or inside it")
    mfile = out / KEPT_MARKER
    if out.is_dir() and any(out.iterdir()) and not mfile.is_file():
        raise ValueError(f"{key}={out}: folder exists and was not written by the filter stage "
                         f"(no {KEPT_MARKER}); refusing to replace files in it")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(mfile, {"source": str(src), **(marker or {})})
    wanted = {r["file"] for r in records}
    # our own previous output (e.g. another threshold): remove what is no longer kept
    for sub in {Path(f).parts[0] for f in wanted} | {p.name for p in out.glob("bounding_box_*")}:
        d = out / sub
        if d.is_dir():
            for p in d.iterdir():
                if f"{sub}/{p.name}" not in wanted:
                    p.unlink()
    n_links = n_copies = 0
    for rec in records:
        item, dst = src / rec["file"], out / rec["file"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            if os.path.samefile(dst, item):
                continue
            dst.unlink()
        if link == "hardlink":
            try:
                os.link(item, dst)
                n_links += 1
                continue
            except OSError:
                pass
        shutil.copy2(item, dst)
        n_copies += 1
    extra = sorted({v for r in records for k, v in r.items() if k != "file" and isinstance(v, str)
                    and v and not os.path.isabs(v) and ".." not in Path(v).parts and (src / v).is_file()})
    for rel in extra:
        dst = out / rel
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            if link != "hardlink":
                raise OSError
            os.link(src / rel, dst)
        except OSError:
            shutil.copy2(src / rel, dst)
    write_manifest(out, records)
    log.info("kept set: %d images in %s (%d new links, %d copies)", len(records), out, n_links, n_copies)
    return out
