"""Logging helpers: one logger per module, messages from rank zero only under DDP."""

from __future__ import annotations

import logging

from pytorch_lightning.utilities import rank_zero_only


def get_logger(name: str = __name__) -> logging.Logger:
    """A logger whose ``info``/``warning``/... only emit on global rank 0 (no duplicated DDP logs)."""
    logger = logging.getLogger(name)
    for level in ("debug", "info", "warning", "error", "exception", "critical"):
        fn = getattr(logger, level)
        if not getattr(fn, "_rank_zero_wrapped", False):
            wrapped = rank_zero_only(fn)
            wrapped._rank_zero_wrapped = True  # type: ignore[attr-defined]
            setattr(logger, level, wrapped)
    return logger
