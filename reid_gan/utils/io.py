"""Atomic, resumable file output.

Every artifact is written to a temporary name in the same folder and renamed into place, so a killed
process never leaves a half-written file under the final name (``os.replace`` is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "remove_temp_files",
    "clean_run_folder",
    "append_jsonl",
    "jsonl_text",
    "read_jsonl",
    "file_sha256",
    "UnsafePathError",
    "safe_member",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on normal exit it is renamed to ``path``.

    On an exception the temporary file is removed and ``path`` (if it existed) is untouched.
    ``suffix`` defaults to the final name's suffix so that writers that infer the format from the
    extension (``cv2.imwrite``, ``matplotlib.savefig``) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts get the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def remove_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left in ``folder`` (not below it) when their writer was
    killed (``kill -9`` gives it no chance to clean up). Returns the paths removed.

    Call it only where no other process writes into ``folder``: a stage, at its start, on its own output.
    """
    removed = []
    d = Path(folder)
    if d.is_dir():
        for p in d.iterdir():
            if p.name.startswith(".") and ".tmp" in p.name and p.is_file():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    return removed


def clean_run_folder(out_dir: str | os.PathLike, from_scratch: bool,
                     stale: tuple[str, ...] = ("metrics.jsonl", "metrics.csv")) -> None:
    """At the start of a resumable training stage (train_gan, train_encoder) on its own folder: remove the
    temporary files a killed run left there (the folder, ``checkpoints/``, ``grids/``) and, for a run from
    scratch, an earlier run's ``stale`` history files, which are not this run's (without this, a rerun after
    a kill before the first checkpoint repeated that run's first lines)."""
    from reid_gan.utils.logging import get_logger

    d = Path(out_dir)
    for sub in (d, d / "checkpoints", d / "grids"):
        for p in remove_temp_files(sub):
            get_logger(__name__).info("removed %s, left by a killed run", p)
    if from_scratch:
        for name in stale:
            (d / name).unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temporary file (checkpoints are never half-written)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def append_jsonl(path: str | os.PathLike, records: list[dict]) -> None:
    """Append records to a JSON-lines file, one ``write`` + ``fsync`` per call.

    A crash can at worst leave a partial *last* line; :func:`read_jsonl` ignores such a line, so
    resumable writers can re-create the record, and the next append first cuts it off (appending after
    it would join it to the new record: a broken line in the middle, which no reader accepts).
    """
    if not records:
        return
    payload = jsonl_text(records)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _drop_partial_last_line(path)
    with open(path, "a", encoding="utf-8") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def _drop_partial_last_line(path: str | os.PathLike) -> None:
    """Make a JSON-lines file end in a newline: a last line that is not valid JSON (a killed writer's half
    line) is cut off; a complete record that only lacks its newline gets one."""
    try:
        f = open(path, "r+b")
    except FileNotFoundError:
        return
    with f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return
        start = pos = end
        while pos > 0:
            step = min(1 << 16, pos)
            pos -= step
            f.seek(pos)
            i = f.read(step).rfind(b"\n")
            if i >= 0:
                start = pos + i + 1
                break
        else:
            start = 0
        f.seek(start)
        tail = f.read()
        try:
            json.loads(tail.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            f.truncate(start)
        else:
            f.seek(end)
            f.write(b"\n")


def jsonl_text(records) -> str:
    """JSON lines: one sorted-key object per line (what :func:`append_jsonl` appends)."""
    return "".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in records)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines file; a truncated final line (from a killed writer) is dropped."""
    out: list[dict] = []
    p = Path(path)
    if not p.exists():
        return out
    lines = p.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # half-written last line of a killed run
            raise ValueError(f"{p}: line {i + 1} is not valid JSON") from None
    return out


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class UnsafePathError(ValueError):
    """A path read from a file (a manifest line, a latents record) would leave its folder."""


def safe_member(root: str | os.PathLike, rel: Any, what: str) -> Path:
    """``root / rel`` for a path ``rel`` read from a file inside ``root`` (a manifest's ``file``), refusing
    anything that could reach outside ``root``: a non-string, an absolute path, a ``..`` component, or a
    symbolic link (anywhere along the way) that resolves outside ``root``. ``what`` names the source in
    the error (e.g. ``"<set>/manifest.jsonl line 3"``)."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise UnsafePathError(f"{what}: {rel!r} is not a relative file path")
    pure = Path(rel)
    if pure.is_absolute() or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        raise UnsafePathError(f"{what}: {rel!r} is an absolute path; paths must be relative to {root}")
    if ".." in pure.parts or ".." in rel.replace("\\", "/").split("/"):
        raise UnsafePathError(f"{what}: {rel!r} climbs out of {root} with '..'")
    base = Path(root).resolve()
    target = (base / pure).resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(f"{what}: {rel!r} is a symbolic link (or under one) leading outside {root} "
                              f"(to {target})")
    return Path(root) / pure


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
