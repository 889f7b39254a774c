"""A W&B logger that can never fail or block a run.

:class:`SafeWandbLogger` is Lightning's ``WandbLogger`` with every call that reaches W&B guarded: the
first failure (no service, a full disk, a network error in online mode, a bad key) is logged once as a
warning naming what failed, W&B logging is switched off for the rest of the run, and the run goes on
(the CSV logger is unaffected). Offline mode is the default (``conf/logger/wandb.yaml``,
``WANDB_MODE=offline`` set by :func:`reid_gan.utils.task.configure_environment`), so without a key and
without a network W&B writes its offline run folder and never prompts.
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning.loggers import WandbLogger

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["SafeWandbLogger"]


class _NoRun:
    """Stands in for a W&B run that could not start: every attribute is a method that does nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class SafeWandbLogger(WandbLogger):
    """``WandbLogger`` whose failures become one warning; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wandb_failed = False

    def _guarded(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        if self._wandb_failed:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - W&B must never fail the run
            self._wandb_failed = True
            log.warning("W&B %s failed (%s: %s): W&B logging is off for the rest of this run; the run goes on "
                        "(the CSV logs are complete)", what, type(e).__name__, e)
            return None

    @property
    def experiment(self) -> Any:  # type: ignore[override]
        """The W&B run; after a failure (here or in any call) a stand-in whose every method does nothing."""
        if not self._wandb_failed:
            try:
                return WandbLogger.experiment.fget(self)
            except Exception as e:  # noqa: BLE001 - W&B must never fail the run
                self._wandb_failed = True
                log.warning("W&B init failed (%s: %s): W&B logging is off for this run; the run goes on (the CSV "
                            "logs are complete)", type(e).__name__, e)
        return _NoRun()

    def log_hyperparams(self, params: Any) -> None:  # type: ignore[override]
        self._guarded("log_hyperparams", super().log_hyperparams, params)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:  # type: ignore[override]
        self._guarded("log_metrics", super().log_metrics, metrics, step)

    def log_table(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self._guarded("log_table", super().log_table, *args, **kwargs)

    def log_text(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self._guarded("log_text", super().log_text, *args, **kwargs)

    def log_image(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self._guarded("log_image", super().log_image, *args, **kwargs)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:  # type: ignore[override]
        self._guarded("after_save_checkpoint", super().after_save_checkpoint, checkpoint_callback)

    def finalize(self, status: str) -> None:  # type: ignore[override]
        self._guarded("finalize", super().finalize, status)
