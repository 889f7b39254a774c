"""The score cache of the filter chain and the identity of a filter's configuration.

Scores are cached in a JSON-lines file keyed by ``sha256(filter identity) + sha256(image bytes)``
(+ the reference image for SSIM, + the person's image set for identity), where the identity is the
filter's config without its threshold and with the SHA-256 of every file it reads (detector weights,
re-ID checkpoint). So re-running with another threshold, or on a set that shares images, computes
nothing again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from reid_gan.utils.config import stable_hash, to_plain
from reid_gan.utils.io import append_jsonl, file_sha256, read_jsonl

__all__ = ["ScoreCache", "filter_identity"]


# ---------------------------------------------------------------------------------------------- cache
class ScoreCache:
    """Scores by key in a JSON-lines file (``{"k": key, "s": score}``); appends, never rewrites."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.data: dict[str, float] = {}
        self.pending: list[dict[str, Any]] = []
        if self.path is not None and self.path.is_file():
            with self._lock():
                for rec in read_jsonl(self.path):
                    self.data[rec["k"]] = float(rec["s"])

    def _lock(self):
        """Parallel jobs (a -m sweep) share the cache file: one writer/reader at a time."""
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path) + ".lock")

    def get(self, key: str) -> float | None:
        return self.data.get(key)

    def put(self, key: str, score: float) -> None:
        self.data[key] = float(score)
        self.pending.append({"k": key, "s": float(score)})

    def flush(self) -> None:
        if self.path is not None and self.pending:
            with self._lock():
                append_jsonl(self.path, self.pending)
        self.pending = []


def filter_identity(node: Any, exclude: Iterable[str] = ("threshold", "enabled", "batch_size", "name")) -> str:
    """SHA-256 of a filter's config (minus what does not change scores) with every referenced file's hash.

    ``node`` is a plain dict (or DictConfig); a string value naming an existing file is replaced by
    that file's SHA-256, so new weights under the same path give new scores.
    """
    node = to_plain(node)
    exclude = set(exclude)

    def plain(v: Any, top: bool) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x, False) for k, x in v.items() if not (top and k in exclude)}
        if isinstance(v, (list, tuple)):
            return [plain(x, False) for x in v]
        if isinstance(v, str) and len(v) < 4096 and os.path.isfile(v):
            return {"file_sha256": file_sha256(v)}
        return v

    return stable_hash(plain(node, True))
