"""Where and how a stage runs: the device it computes on and its progress bar."""

from __future__ import annotations

from typing import Any

__all__ = ["pick_device", "progress_bar"]


def pick_device(name: str = "auto", key: str = "device"):
    """``torch.device`` for ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available); asking for
    CUDA on a machine without it is a ``ConfigError`` naming ``key``."""
    import torch

    from reid_gan.config import ConfigError

    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key}={name}: CUDA is not available on this machine")
    return torch.device(name)


def progress_bar(*columns: Any, enabled: bool = True, transient: bool = False):
    """A rich progress bar: ``columns`` (rich columns or format strings) before a bar and ``done/total``,
    then the remaining time; disabled (no output) when ``enabled`` is false."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    cols = [TextColumn(c) if isinstance(c, str) else c for c in columns] or [TextColumn("[bold]{task.description}")]
    return Progress(*cols[:1], BarColumn(), MofNCompleteColumn(), *cols[1:], TimeRemainingColumn(),
                    disable=not enabled, transient=transient)
