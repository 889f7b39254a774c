"""Every benchmark that README.md or docs/ tells a user to run (``python benchmarks/<name>.py``) runs to the
end, made tiny (a few images, steps or iterations), from a fresh folder as a user types it. Slow: the
benchmarks' figures are not checked here (they are timings and figures for a person to read, see
``make bench``); this only keeps the commands from rotting.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.test_sweep import _env, run_cli

pytestmark = pytest.mark.slow

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# benchmark → tiny arguments ({data}: a rendered smoke dataset's root)
TINY: dict[str, list[str]] = {
    "data_loading.py": ["--images", "160"],
    "eval_rank.py": ["--dims", "16", "--repeats", "1"],
    "filters.py": ["--pairs", "4", "--repeat", "1", "--images", "4", "--yolo-images", "1"],
    "gan_fit.py": ["--steps", "2", "--images", "4", "--threads", "1", "--data", "{data}"],
    "gan_hog_pass.py": ["--data", "{data}", "--n", "8"],
    "gan_train.py": ["--iters", "1", "--profile", "--data-root", "{data}"],
    "generate_memory.py": ["--persons", "2", "--images", "2"],
    "generator.py": ["--configs", "T128x64", "--batch", "1", "--no-ref"],
    "pipeline.py": ["experiment=smoke"],
    "render_dataset.py": ["--ids", "4"],
}


def test_every_documented_benchmark_has_a_tiny_run():
    documented = set()
    for doc in DOCS:
        documented |= set(re.findall(r"python benchmarks/([a-z_]+\.py)", doc.read_text()))
    assert documented, "no benchmark command found in the docs"
    assert documented <= set(TINY), f"documented but not run here: {sorted(documented - set(TINY))}"
    assert set(TINY) == {p.name for p in (REPO / "benchmarks").glob("*.py")}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("bench_data")
    run_cli(["-m", "reid_gan.make_dataset", "experiment=smoke"], cwd)
    (root,) = {p.parent for p in cwd.rglob("bounding_box_train")}
    return root


@pytest.mark.parametrize("name", sorted(TINY))
def test_benchmark_runs_tiny(name, data_root, tmp_path):
    args = [a.replace("{data}", str(data_root)) for a in TINY[name]]
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *args], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{name} {' '.join(args)}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert re.search(r"\d", r.stdout), f"{name} printed no figure:\n{r.stdout[-2000:]}"
