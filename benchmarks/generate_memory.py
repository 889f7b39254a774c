"""Peak memory (RSS) of ``reid_gan.generate`` for N and 4N persons: streaming means the ratio stays ≈ 1.0.

    python benchmarks/generate_memory.py [--persons 40] [--images 8]

Each size runs in a fresh child process (``experiment=smoke``'s tiny random-init generator, figures off)
that reports its own peak RSS (``ru_maxrss``) and images/s; the parent prints both and the ratio 4N / N.
The generator is smoke's randomly initialised tiny ``reid_gan.gan.networks.Generator`` (32×16).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(persons: int, images: int, root: str, target: str) -> None:
    sys.path.insert(0, str(REPO))
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    import reid_gan.config  # noqa: F401
    from reid_gan.generate import generate

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("generate", overrides=[
            "experiment=smoke", f"paths.root_dir={root}", f"generate.persons={persons}",
            f"generate.images_per_person={images}", "generate.figures.enabled=false", "generate.progress=false",
            f"generate.random_init._target_={target}", "print_config=false"])
    with open_dict(cfg):
        cfg.paths.output_dir = root
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    metrics, _ = generate(cfg)
    sec = time.perf_counter() - t
    print(json.dumps({"persons": persons, "images": metrics["generate/images"], "seconds": sec,
                      "rss_before_kb": rss0, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def run(persons: int, images: int, target: str) -> dict:
    with tempfile.TemporaryDirectory() as root:
        out = subprocess.run([sys.executable, __file__, "--child", str(persons), str(images), root, target],
                             cwd=REPO, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(out.stdout[-2000:] + out.stderr[-4000:])
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=40)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--child", nargs=4, metavar=("PERSONS", "IMAGES", "ROOT", "TARGET"))
    a = ap.parse_args()
    if a.child:
        child(int(a.child[0]), int(a.child[1]), a.child[2], a.child[3])
        return
    target = "reid_gan.gan.networks.Generator"
    rows = [run(n, a.images, target) for n in (a.persons, 4 * a.persons)]
    print(f"generator: {target} (experiment=smoke sizes), {a.images} images/person, "
          f"{os.environ.get('BENCH_THREADS', '2')} threads")
    print(f"{'persons':>8} {'images':>7} {'img/s':>7} {'peak RSS MB':>12} {'RSS before run MB':>18}")
    for r in rows:
        print(f"{r['persons']:>8} {r['images']:>7} {r['images'] / r['seconds']:>7.1f} "
              f"{r['peak_rss_kb'] / 1024:>12.1f} {r['rss_before_kb'] / 1024:>18.1f}")
    ratio = rows[1]["peak_rss_kb"] / rows[0]["peak_rss_kb"]
    grow = (rows[1]["peak_rss_kb"] - rows[1]["rss_before_kb"]) / max(1, rows[0]["peak_rss_kb"] - rows[0]["rss_before_kb"])
    print(f"peak RSS ratio 4N / N: {ratio:.3f} (flat = 1.0); growth during the run 4N / N: {grow:.2f}")


if __name__ == "__main__":
    main()
