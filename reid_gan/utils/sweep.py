"""Multirun (``-m``) bookkeeping: a failed job fails alone, and the end of a sweep says what happened.

* :func:`record_failure`: inside a multirun job, the stage's exception is written to ``FAILED.json`` in the
  job's folder (the reason, the job's overrides) instead of ending the sweep, so the other jobs go on
  and ``python -m reid_gan.report sweep_dir=...`` lists the job as failed with that reason.
* :class:`SweepSummary` (a Hydra callback, ``conf/hydra/default.yaml``): at the end of a multirun it
  prints how many jobs finished and failed (and why), the report command, where the offline W&B runs
  are and the ``wandb sync`` command that uploads them; it then exits non-zero if a job failed.
* :func:`expand_ellipsis`: the thesis's notation ``aug.persons=10,20,...,320`` on the command line becomes
  the explicit sweep ``10,20,30,...`` before Hydra reads it (Hydra itself would read ``...`` as a value).
"""

from __future__ import annotations

import glob
import json
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

FAILED = "FAILED.json"
METRICS = "metrics.json"

__all__ = ["FAILED", "SweepSummary", "expand_ellipsis", "in_multirun", "job_status", "record_failure", "wandb_group"]


def expand_ellipsis(args: list[str]) -> list[str]:
    """Command-line overrides with an arithmetic ellipsis, ``key=a,b,...,z`` (integers; the step is ``b - a``;
    values before the ``...`` must follow it and ``z`` must be on it), written out as ``key=a,b,...`` in full.
    Anything else is left as it is. A malformed ellipsis is a ``SystemExit`` naming the override."""
    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        parts = value.split(",") if eq else []
        if "..." not in parts or key.startswith("-"):
            out.append(arg)
            continue
        i = parts.index("...")
        head, tail = parts[:i], parts[i + 1:]
        try:
            nums = [int(v) for v in head + tail]
        except ValueError:
            raise SystemExit(f"{arg}: an ellipsis sweep takes whole numbers, as in {key}=10,20,...,320") from None
        if len(head) < 2 or len(tail) != 1:
            raise SystemExit(f"{arg}: write two values before the '...' and one after it, as in {key}=10,20,...,320")
        start, step, stop = nums[0], nums[1] - nums[0], nums[-1]
        if step == 0 or any(b - a != step for a, b in zip(nums[:len(head)], nums[1:len(head)])) \
                or (stop - start) % step or (stop - start) // step < len(head) - 1:
            raise SystemExit(f"{arg}: the values before the '...' must step evenly and reach {stop} "
                             f"(as in {key}=10,20,...,320)")
        values = list(range(start, stop + (1 if step > 0 else -1), step))
        # (Hydra's "Launching N jobs" lists the values; logging is not set up yet here)
        out.append(f"{key}={','.join(map(str, values))}")
    return out


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # noqa: BLE001 - not under Hydra
        return False


def wandb_group(task_name: str) -> str | None:
    """The W&B group of the jobs of one multirun: ``<task>-<sweep folder name>`` (None outside one)."""
    if not in_multirun():
        return None
    from hydra.core.hydra_config import HydraConfig

    return f"{task_name}-{Path(str(HydraConfig.get().sweep.dir)).name}"


def record_failure(exc: BaseException) -> Path | None:
    """Write ``FAILED.json`` (the reason and the job's overrides) into the running job's folder."""
    from hydra.core.hydra_config import HydraConfig

    from reid_gan.utils.io import atomic_write_json

    hc = HydraConfig.get()
    out = Path(str(hc.runtime.output_dir))
    rec = {"job": int(hc.job.num), "overrides": list(hc.overrides.task), "error": type(exc).__name__,
           "reason": str(exc), "traceback": traceback.format_exception(exc)[-6:]}
    try:
        return atomic_write_json(out / FAILED, rec)
    except OSError:  # pragma: no cover - the folder itself is unwritable: the log still says it
        log.exception("could not write %s", out / FAILED)
        return None


def job_status(sweep_dir: str | Path) -> dict[str, Any]:
    """The jobs of a sweep folder: ``finished`` (job folders with metrics.json), ``failed`` (their
    FAILED.json records, with ``dir``), ``unfinished`` (neither) and the offline W&B run folders."""
    root = Path(sweep_dir)
    jobs = sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)) \
        if root.is_dir() else []
    finished, failed, unfinished = [], [], []
    for j in jobs:
        if (j / METRICS).is_file():
            finished.append(j)
        elif (j / FAILED).is_file():
            failed.append({**json.loads((j / FAILED).read_text()), "dir": str(j)})
        else:
            unfinished.append(j)
    runs = sorted(glob.glob(str(root / "*" / "wandb" / "offline-run-*")))
    return {"jobs": jobs, "finished": finished, "failed": failed, "unfinished": unfinished, "wandb_runs": runs}


def summary_lines(sweep_dir: str | Path, task_name: str) -> list[str]:
    st = job_status(sweep_dir)
    if task_name != "train":  # only train jobs write metrics.json: the others finished unless they failed
        st["finished"], st["unfinished"] = [j for j in st["jobs"] if not (j / FAILED).is_file()], []
    lines = [f"Sweep finished: {len(st['jobs'])} jobs in {sweep_dir}: {len(st['finished'])} finished, "
             f"{len(st['failed'])} failed" + (f", {len(st['unfinished'])} unfinished" if st["unfinished"] else "")]
    for f in st["failed"]:
        lines.append(f"  job {f['job']} ({' '.join(f['overrides'])}) failed: {f['error']}: {f['reason']}")
    if task_name == "train" and st["finished"]:
        lines.append(f"Table and plot: python -m reid_gan.report sweep_dir={sweep_dir}")
    if st["wandb_runs"]:
        lines.append(f"W&B: {len(st['wandb_runs'])} offline runs in {sweep_dir}/*/wandb/ (group "
                     f"{task_name}-{Path(sweep_dir).name}); upload them with:")
        lines.append(f"  wandb sync {sweep_dir}/*/wandb/offline-run-*")
    return lines


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra < 1.1
    Callback = object  # type: ignore[misc,assignment]


class SweepSummary(Callback):
    """Hydra callback: the end-of-sweep summary (see the module docstring)."""

    def __init__(self, fail_on_error: bool = True) -> None:
        self.fail_on_error = fail_on_error

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = str(config.hydra.sweep.dir)
        lines = summary_lines(sweep_dir, str(config.get("task_name", "")))
        for line in lines:
            print(line, flush=True)
        failed = job_status(sweep_dir)["failed"]
        if failed and self.fail_on_error:
            raise SystemExit(f"{len(failed)} job(s) of the sweep failed (the others ran; each reason is in its "
                             f"{FAILED}): {sweep_dir}")
