"""Content-addressed stage artifacts: ``paths.artifacts/<stage>/<key>``.

The key is a hash of the part of the config that affects a stage's output plus the keys of the
artifacts it reads, so a change anywhere upstream gives a new key downstream, and an unchanged stage is
found again and skipped. A stage's folder is complete only when its ``_COMPLETE.json`` marker exists;
the marker is written last (atomically), so a killed stage is simply redone (the stage itself resumes
from what it left where it can). A file lock per artifact makes parallel jobs that need the same
upstream artifact wait for one builder instead of building it twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from filelock import FileLock
from omegaconf import DictConfig, ListConfig, OmegaConf

from reid_gan.utils.io import atomic_write_json

COMPLETE = "_COMPLETE.json"

# Keys that only wire stages together (where things are, not what they are): never hashed.
WIRING_KEYS = frozenset({"root", "out", "out_dir", "report_dir", "cache", "ckpt", "source", "latents",
                         "output_dir", "dirpath", "calibrate_source"})


def _plain(node: Any, exclude: frozenset[str]) -> Any:
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=True)
    if isinstance(node, dict):
        return {str(k): _plain(v, exclude) for k, v in sorted(node.items(), key=lambda kv: str(kv[0]))
                if str(k) not in exclude}
    if isinstance(node, (list, tuple)):
        return [_plain(v, exclude) for v in node]
    return node


def config_key(cfg: DictConfig, fields: Iterable[str], upstream: Iterable[str] = (),
               exclude: frozenset[str] = WIRING_KEYS, length: int = 12) -> str:
    """Hash of the selected config fields (dotted keys; missing ones count as null) + upstream keys."""
    payload = {f: _plain(OmegaConf.select(cfg, f, default=None), exclude) for f in sorted(fields)}
    payload["__upstream__"] = list(upstream)
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def is_complete(folder: str | Path) -> bool:
    return (Path(folder) / COMPLETE).is_file()


def read_complete(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / COMPLETE).read_text())


def mark_complete(folder: str | Path, info: dict[str, Any]) -> None:
    info = dict(info)
    info.setdefault("finished_at", time.strftime("%Y-%m-%dT%H:%M:%S"))
    info.setdefault("stamp", time.time_ns())  # identifies this build: downstream records the stamps it used
    atomic_write_json(Path(folder) / COMPLETE, info)


@contextlib.contextmanager
def artifact_lock(folder: str | Path, timeout: float = -1) -> Iterator[None]:
    """Exclusive lock on an artifact folder (``<folder>.building.lock`` beside it); waits for another
    builder. Its own name, so a stage may lock ``<folder>.lock`` itself."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".building.lock", timeout=timeout):
        yield


# ------------------------------------------------------------------------------------------------------
# The newest complete study: a stable pointer that the pipeline rewrites (atomically) at the end of each
# study, so that a stage run by hand finds that study's artifacts without their keys (aug.source=null).

LATEST = "latest.json"


def write_latest(artifacts: str | Path, info: dict[str, Any]) -> Path:
    """Point ``<artifacts>/latest.json`` at a study that has just finished: ``info`` names each stage's
    artifact folder (``stages``) and the sets later stages read (``kept``, ``generated``, ...)."""
    info = dict(info)
    info.setdefault("finished_at", time.strftime("%Y-%m-%dT%H:%M:%S"))
    path = Path(artifacts) / LATEST
    atomic_write_json(path, info)
    return path


def read_latest(artifacts: str | Path) -> dict[str, Any] | None:
    """The pointer written by :func:`write_latest`, or ``None`` when no study has finished there."""
    path = Path(artifacts) / LATEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a valid study pointer ({e}); delete it or re-run the pipeline") from None
