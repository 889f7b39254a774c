"""Lightning callbacks and plugins every training stage installs itself (not optional config entries).

:class:`FiniteLossGuard` stops a run at the first training step whose loss is NaN or infinite, with an
error naming the step and the loss term, before anything of that step is checkpointed: the last good
checkpoint stays as it was, and the run resumes from it (``gan.resume=auto``, ``ckpt_path=...``).
:class:`AtomicCheckpointIO` writes checkpoints to a temporary name in their own folder and renames them,
so a full disk or a kill never replaces a good checkpoint with a partial one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable

import pytorch_lightning as pl
import torch

__all__ = ["NonFiniteLossError", "FiniteLossGuard", "AtomicCheckpointIO", "LastCheckpointEveryEpoch"]


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; the message names the step, the term and the last checkpoint."""


def _as_float(v: Any) -> float | None:
    if isinstance(v, torch.Tensor):
        return float(v.detach().float().reshape(-1)[0]) if v.numel() == 1 else (
            math.nan if not bool(torch.isfinite(v.detach()).all()) else 0.0)
    if isinstance(v, (int, float)):
        return float(v)
    return None


class FiniteLossGuard(pl.Callback):
    """Raise :class:`NonFiniteLossError` at the end of the first training step with a non-finite loss.

    The loss terms checked are the step's returned loss (``train/loss``; automatic optimisation) and every
    entry of ``pl_module.last_stats`` whose name starts with one of ``prefixes`` (the GAN's
    ``train/loss_G``, ``train/loss_D``, ``train/r1``; manual optimisation). The step reported is the
    module's ``iteration`` counter when it has one (the GAN), else ``trainer.global_step``; both count
    steps done, so "step 7" is the seventh.

    Put it before any callback that writes a checkpoint at batch end (train_gan's tick callback): the
    state of the bad step is then never saved.

    Args:
        prefixes: names in ``last_stats`` that are loss terms.
        last_checkpoint: where the stage keeps its resumable checkpoint (named in the error); ``None`` →
            the trainer's ModelCheckpoint's last/best path, if any.
    """

    def __init__(self, prefixes: Iterable[str] = ("train/loss", "train/r1"),
                 last_checkpoint: str | Path | None = None) -> None:
        self.prefixes = tuple(prefixes)
        self.last_checkpoint = last_checkpoint

    def _terms(self, pl_module: pl.LightningModule, outputs: Any) -> dict[str, float]:
        terms: dict[str, float] = {}
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        v = _as_float(loss)
        if v is not None:
            terms["train/loss"] = v
        for k, val in (getattr(pl_module, "last_stats", None) or {}).items():
            if str(k).startswith(self.prefixes):
                f = _as_float(val)
                if f is not None:
                    terms[str(k)] = f
        return terms

    def _checkpoint_text(self, trainer: pl.Trainer) -> str:
        path = self.last_checkpoint
        if path is None:
            cb = getattr(trainer, "checkpoint_callback", None)
            path = (getattr(cb, "last_model_path", "") or getattr(cb, "best_model_path", "")) if cb else ""
        if path and Path(path).is_file():
            return f"the last good checkpoint, {path}, is kept: resume from it (e.g. with a lower learning rate)"
        return "no checkpoint had been written yet"

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        terms = self._terms(pl_module, outputs)
        bad = {k: v for k, v in terms.items() if not math.isfinite(v)}
        if not bad:
            return
        step = getattr(pl_module, "iteration", None)
        step = int(step) if isinstance(step, int) else int(trainer.global_step)
        what = ", ".join(f"{k} = {v}" for k, v in sorted(bad.items()))
        raise NonFiniteLossError(
            f"non-finite loss at training step {step} (epoch {trainer.current_epoch}, batch {batch_idx}): {what}; "
            f"training stopped before this step was checkpointed; {self._checkpoint_text(trainer)}")


class AtomicCheckpointIO:
    """Lightning's ``TorchCheckpointIO``, but a checkpoint is written to a temporary file *in its own folder*
    and renamed into place (:func:`reid_gan.utils.io.atomic_path`).

    Lightning's own writer stages the bytes in the system temporary folder and moves them; when that is
    another file system the move is a copy into the final name, so a full disk (``ENOSPC``) during the
    copy would leave a truncated ``last.ckpt`` in place of the good one. Here the old checkpoint stays
    intact until the new one is complete. Pass as ``Trainer(plugins=[AtomicCheckpointIO()])``.
    """

    def __new__(cls, *args: Any, **kwargs: Any):  # a real CheckpointIO subclass, built lazily
        from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

        class _AtomicCheckpointIO(TorchCheckpointIO):
            def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
                import io

                from reid_gan.utils.io import atomic_path

                if storage_options is not None:
                    raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
                buf = io.BytesIO()
                torch.save(checkpoint, buf)
                with atomic_path(path) as tmp:
                    with open(tmp, "wb") as f:
                        f.write(buf.getbuffer())
                        f.flush()
                        os.fsync(f.fileno())

        return _AtomicCheckpointIO(*args, **kwargs)


class LastCheckpointEveryEpoch(pl.Callback):
    """Keep ``last.ckpt`` of a ``ModelCheckpoint(save_last=True)`` current at the end of *every* training
    epoch.

    Lightning (2.6) rewrites ``last.ckpt`` only when a top-k checkpoint is saved, i.e. when the monitored
    metric improved; after an epoch that did not improve it, ``last.ckpt`` is an older epoch, and a run
    resumed from it silently redoes epochs from an older state. This writes it (through the trainer, so
    with the same content and checkpoint I/O) whenever the ModelCheckpoint did not save at this step.
    """

    def __init__(self, model_checkpoint: Any) -> None:
        self.cb = model_checkpoint

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        cb = self.cb
        if not getattr(cb, "save_last", False) or trainer.sanity_checking:
            return
        if getattr(cb, "_last_global_step_saved", None) == trainer.global_step and cb.last_model_path:
            return  # ModelCheckpoint wrote last.ckpt at this very step
        path = cb.format_checkpoint_name({}, cb.CHECKPOINT_NAME_LAST)
        cb.last_model_path = path  # before saving: it is part of the callback's saved state
        trainer.save_checkpoint(path, weights_only=False)  # full state: resumable
