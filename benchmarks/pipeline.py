"""Wall time and peak memory of the whole quickstart study (``python -m reid_gan.pipeline``).

Runs the pipeline twice in fresh subprocesses under a fresh root folder: first from nothing (every stage
runs), then again (every artifact is reused: the baseline, i.e. the fixed cost of composing configs and
checking artifacts). Prints wall seconds and peak RSS of each, their ratio, and the ratio against the
budget (10 minutes, 4 GB on a 2-core CPU).

    python benchmarks/pipeline.py [--root DIR] [extra overrides ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

BUDGET_S = 600.0
BUDGET_GB = 4.0


def run(root: str, overrides: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB of the largest process) of one pipeline run in a subprocess."""
    cmd = [sys.executable, "-c",
           "import resource, runpy, sys; sys.argv = ['reid_gan.pipeline'] + sys.argv[1:];\n"
           "try:\n    runpy.run_module('reid_gan.pipeline', run_name='__main__')\n"
           "finally:\n    print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)",
           f"paths.root_dir={root}", "print_config=false", *overrides]
    env = dict(os.environ, WANDB_MODE="offline")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"pipeline failed (exit {proc.returncode})")
    kb = max(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    # render workers are forked children: count them too
    kb = max(kb, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return wall, kb / 1024 ** 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="root folder (default: a new temporary folder)")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    root = a.root or tempfile.mkdtemp(prefix="reid_gan_pipeline_bench_")
    full_s, full_gb = run(root, a.overrides)
    again_s, again_gb = run(root, a.overrides)
    print(f"root: {root}")
    print(f"full quickstart study : {full_s:8.1f} s wall, peak RSS {full_gb:.2f} GB")
    print(f"re-run (all reused)   : {again_s:8.1f} s wall, peak RSS {again_gb:.2f} GB")
    print(f"ratio full / re-run   : {full_s / again_s:8.1f}x")
    print(f"vs budget             : {full_s / BUDGET_S:.2f} of {BUDGET_S:.0f} s, {full_gb / BUDGET_GB:.2f} of {BUDGET_GB:.0f} GB")


if __name__ == "__main__":
    main()
